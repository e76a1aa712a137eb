/**
 * Running host tools (apt-get, dpkg-deb, depmod) with a bound on time and a clear error when they fail.
 * Image building is not a hot path: it runs once per kernel version and is cached.
 */
import { spawn } from 'node:child_process';
import { ApplianceError, type ApplianceCode } from './errors.js';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the tool after this long (default 10 minutes: a kernel download on a slow mirror). */
  timeoutMs?: number;
}

/** Run `cmd args`, capture its output; resolves even on a non-zero exit (the caller decides). */
export function execTool(cmd: string, args: string[], options: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = options.timeoutMs ?? 600_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ENOENT') {
        reject(
          new ApplianceError('ERR_IMAGE_TOOL_MISSING', `'${cmd}' is not installed (or not on PATH)`, {
            cause: e,
            fix: 'run `npm run setup` (scripts/setup-host.sh) as root to install the lab packages',
          }),
        );
      } else {
        reject(new ApplianceError('ERR_IMAGE_COMMAND', `'${cmd}' could not be started: ${e.code ?? e.message}`, { cause: e }));
      }
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && code === null) {
        reject(new ApplianceError('ERR_IMAGE_COMMAND', `'${cmd} ${args.join(' ')}' took longer than ${timeoutMs / 1000} s and was killed`));
        return;
      }
      resolve({ code: code ?? 128, stdout, stderr });
    });
  });
}

/** Like execTool, but a non-zero exit is an ApplianceError with the tool's own last words. */
export async function execOk(cmd: string, args: string[], options: ExecOptions & { what: string; code?: ApplianceCode; fix?: string }): Promise<ExecResult> {
  const r = await execTool(cmd, args, options);
  if (r.code !== 0) {
    const tail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-5).join('\n    ');
    throw new ApplianceError(
      options.code ?? 'ERR_IMAGE_COMMAND',
      `${options.what} failed: '${cmd} ${args.join(' ')}' exited ${r.code}\n    ${tail}`,
      options.fix ? { fix: options.fix } : {},
    );
  }
  return r;
}
