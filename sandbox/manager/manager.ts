/**
 * The manager: one supervisor per policy, a control socket for `dmabox status`, and an orderly
 * shutdown. It is the trusted side: it holds the (simulated) devices and their IOMMU mappings;
 * containers hold only what they were handed (sandbox/README.md, "No root left after set-up").
 *
 * Control socket: a unix stream socket, mode 0600; a client writes one line (`status`) and reads
 * one JSON line back. Nothing else is accepted; a line longer than 64 bytes closes the connection.
 */
import { EventEmitter } from 'node:events';
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SandboxError } from './errors.js';
import { claimSocketPath } from '../../common/unix-socket.js';
import type { Policy } from '../../policies/types.js';
import { KmsgFaultMonitor } from './faults.js';
import { capsStatus, dropRoot, managerIdentity, type DropRootReport } from './privilege.js';
import { CONTAINER_NODE_FLAGS, defaultEntry } from './incarnation.js';
import { EAGER_COMPILE } from './spare.js';
import { defaultDeviceEntry } from './device-process.js';
import { directLauncher, SpawnerClient, type Launcher } from './launcher.js';
import { Supervisor, type SandboxEvent, type SupervisorOptions } from './supervisor.js';
import { defaultSys } from 'linux-sys';
import { closeOnExecAll } from '../spawner/fds.js';
import { launchHost } from '../spawner/host.js';

const ROOT_CONTROL_PATH = '/run/dmabox/control.sock';

/** Where the control socket lives: $DMABOX_CONTROL, /run/dmabox (root), or a per-user folder. */
export function defaultControlPath(): string {
  if (process.env.DMABOX_CONTROL) return process.env.DMABOX_CONTROL;
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return ROOT_CONTROL_PATH;
  return join(process.env.XDG_RUNTIME_DIR ?? tmpdir(), `dmabox-${uid}`, 'control.sock');
}

export interface ManagerOptions {
  /** Control socket path; null for none. Default: defaultControlPath(). */
  controlPath?: string | null;
  /** Options of every supervisor; never a campaign (campaigns build their own Supervisor). */
  supervisor?: Omit<SupervisorOptions, 'campaign'>;
  /** Kernel log to follow for IOMMU faults of real devices (default /dev/kmsg). */
  kmsgPath?: string;
  /**
   * Leave root after set-up (sandbox/manager/privilege.ts): `start()` first starts the privileged
   * spawner, which from then on starts and kills every container; `endSetup()` switches the manager
   * to its own unprivileged uid and gid, with no capability on any thread. Needs root. Default
   * false; `dmabox up` and `dmabox demo` turn it on when root unless --keep-privileges.
   */
  dropPrivileges?: boolean;
}

export class Manager extends EventEmitter {
  readonly sandboxes: Supervisor[] = [];
  readonly startedAt = Date.now();
  readonly controlPath: string | null;
  private server: Server | undefined;
  private stopping: Promise<void> | undefined;
  /** The kernel-log fault monitor, when any sandbox has a real device. */
  kmsg: KmsgFaultMonitor | undefined;
  /** What `endSetup()` did, once it dropped root. */
  privilege: DropRootReport | undefined;
  /** The privileged spawner (with `dropPrivileges`), once started. */
  spawner: SpawnerClient | undefined;
  /** Why the manager cannot go on (its spawner died), once it happened. */
  fatal: string | undefined;
  private identity: { uid: number; gid: number } | undefined;

  private readonly supervisorOptions: SupervisorOptions | undefined;
  private started = false;

  constructor(
    policies: readonly Policy[],
    private readonly options: ManagerOptions = {},
  ) {
    super();
    this.controlPath = options.controlPath === undefined ? defaultControlPath() : options.controlPath;
    // fd hygiene: nothing this process inherited (a log file, the invoking shell's pipes) reaches a container.
    closeOnExecAll(options.supervisor?.sys ?? defaultSys());
    // With the spawner, every container is started through it, from the first one on.
    const launcher: Launcher = { launch: (spec) => (this.spawner ?? directLauncher).launch(spec) };
    // A fault-injection campaign is never armed here, whatever a caller passes (campaigns/README.md).
    const { campaign: _never, ...base } = (options.supervisor ?? {}) as SupervisorOptions;
    this.supervisorOptions = options.dropPrivileges ? { ...base, launcher } : base;
    try {
      for (const p of policies) this.adopt(p);
    } catch (e) {
      for (const s of this.sandboxes) s.device.release();
      throw e;
    }
  }

  /** Make the supervisor of one policy (its device taken, nothing started) and add it. */
  private adopt(p: Policy): Supervisor {
    const s = new Supervisor(p, this.supervisorOptions);
    s.on('event', (e: SandboxEvent) => this.emit('event', e));
    this.sandboxes.push(s);
    if (s.device.kind === 'vfio') {
      // Real IOMMU faults arrive in the kernel log (needs root or CAP_SYSLOG).
      if (!this.kmsg) {
        this.kmsg = new KmsgFaultMonitor(this.options.kmsgPath ?? '/dev/kmsg');
        // The first real device came with a reload: the monitor starts now (start() has run).
        if (this.started) this.kmsg.start();
      }
      this.kmsg.add(s);
    }
    return s;
  }

  /**
   * Reload: add a sandbox for a policy the manager does not run yet, and start it (resolves when it
   * is ready or failed). Containers go through the spawner once there is one, which only knows the
   * identities pinned at start: a new policy's own uid is refused after privileges were dropped.
   */
  async add(policy: Policy): Promise<Supervisor> {
    if (this.sandboxes.some((s) => s.name === policy.name)) {
      throw new SandboxError('ERR_SANDBOX_STATE', `a sandbox named ${policy.name} runs already`, { fix: 'remove it first (a reload does)' });
    }
    const s = this.adopt(policy);
    await s.start().catch(() => undefined);
    return s;
  }

  /** Reload: stop one sandbox (its container, quarantine, device released) and forget it. */
  async remove(name: string): Promise<void> {
    const s = this.sandboxes.find((x) => x.name === name);
    if (!s) return;
    await s.stop();
    this.kmsg?.remove(s);
    this.sandboxes.splice(this.sandboxes.indexOf(s), 1);
  }

  /** Open the control socket, start every sandbox; resolves when each is ready or failed. */
  async start(): Promise<void> {
    this.started = true;
    if (this.controlPath !== null) await this.listen(this.controlPath);
    if (this.options.dropPrivileges) await this.startSpawner();
    this.kmsg?.start();
    await Promise.all(this.sandboxes.map((s) => s.start().catch(() => undefined)));
  }

  /**
   * Set-up is over (sandboxes started, their linkbacks up): with `dropPrivileges`, the spawner is
   * told the unix sockets to remove when it exits (the control socket and `sockets`, the
   * linkbacks'), and the manager leaves root. Idempotent; returns the report, or undefined when the
   * option is off. Throws PrivilegeError (ERR_SANDBOX_PRIVILEGE) when a step fails.
   */
  endSetup(sockets: readonly string[] = []): DropRootReport | undefined {
    if (!this.options.dropPrivileges) return undefined;
    if (this.privilege) return this.privilege;
    const id = (this.identity ??= managerIdentity());
    // The sockets the manager serves sit in root's folders: the spawner removes them when it exits.
    this.spawner?.seal([...(this.controlPath !== null && this.server ? [this.controlPath] : []), ...sockets]);
    // The control socket: the manager's own from now on (root, who ran dmabox, still reaches it), so it can remove it at stop.
    this.privilege = dropRoot({ uid: id.uid, gid: id.gid });
    return this.privilege;
  }

  /** Start the spawner while root; containers are started through it from now on. */
  private async startSpawner(): Promise<void> {
    const id = (this.identity ??= managerIdentity());
    // While still root with every capability: the sandboxes' parent cgroups (the v1 controller
    // roots are 0555, so the spawner, without CAP_DAC_OVERRIDE, could not make them).
    launchHost();
    // Identities the policies name: fixed now, so no request to the spawner ever carries one.
    const pins = this.sandboxes.flatMap((s) =>
      s.policy.container.uid !== undefined && s.policy.container.gid !== undefined
        ? [{ sandbox: s.policy.name, role: 'driver' as const, uid: s.policy.container.uid, gid: s.policy.container.gid }]
        : [],
    );
    const sup = this.options.supervisor;
    const entries = new Set([defaultEntry(), defaultDeviceEntry(), ...(sup?.entry ? [sup.entry] : []), ...(sup?.deviceEntry ? [sup.deviceEntry] : [])]);
    this.spawner = await SpawnerClient.start({
      sys: this.options.supervisor?.sys ?? defaultSys(),
      entries: [...entries],
      // Spares run with V8's eager compilation (spare.ts).
      flags: [...CONTAINER_NODE_FLAGS, EAGER_COMPILE],
      forbid: [id.uid, id.gid],
      pins,
    });
    this.spawner.on('gone', (reason: string) => {
      if (this.stopping) return;
      this.fatal = `the spawner is gone (${reason}): containers can no longer be started or killed`;
      for (const s of this.sandboxes)
        s.emit('event', { time: Date.now(), sandbox: s.name, kind: 'failed', text: this.fatal, level: 'error' } satisfies SandboxEvent);
      this.emit('fatal', this.fatal);
    });
  }

  private async listen(path: string): Promise<void> {
    // Never delete a live manager's socket: only a stale one is taken over.
    await claimSocketPath(path, {
      error: (message, fix) => new SandboxError('ERR_SANDBOX_CONTROL', message, { fix }),
      what: 'the control socket',
      busyFix: 'another dmabox manager is running (`dmabox status`); stop it, or give this one --control PATH',
      notSocketFix: `remove ${path}, or give this manager --control PATH`,
    });
    const server = createServer((conn) => {
      let buf = '';
      conn.setTimeout(2000, () => conn.destroy());
      conn.on('error', () => undefined);
      conn.on('data', (d) => {
        buf += d.toString('utf8');
        if (buf.length > 64) return conn.destroy();
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const cmd = buf.slice(0, nl).trim();
        if (cmd === 'status') conn.end(`${JSON.stringify(this.status())}\n`);
        else conn.end(`${JSON.stringify({ error: `unknown command '${cmd.slice(0, 32)}': the control socket answers 'status'` })}\n`);
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(
          new SandboxError('ERR_SANDBOX_CONTROL', `cannot listen on ${path}: ${e.message}`, {
            fix: 'is another dmabox up running? set DMABOX_CONTROL to another path',
          }),
        ),
      );
      server.listen(path, () => {
        chmodSync(path, 0o600);
        resolve();
      });
    });
  }

  status(): Record<string, unknown> {
    const root = process.getuid?.() === 0;
    return {
      manager: {
        pid: process.pid,
        uid: process.getuid?.() ?? null,
        gid: process.getgid?.() ?? null,
        root,
        dropped: this.privilege !== undefined,
        uptimeMs: Date.now() - this.startedAt,
        control: this.controlPath,
        caps: capsStatus('self'),
      },
      spawner: this.spawner ? { pid: this.spawner.pid, caps: capsStatus(this.spawner.pid) } : null,
      ...(this.fatal ? { fatal: this.fatal } : {}),
      sandboxes: this.sandboxes.map((s) => s.status()),
    };
  }

  /** Stop every container (SHUTDOWN, bounded), quarantine and release every device, close the socket. */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        await Promise.all(this.sandboxes.map((s) => s.stop()));
        this.kmsg?.close();
        // The spawner ends with its socket, after killing whatever is left.
        await this.spawner?.close();
        if (this.server) {
          await new Promise<void>((r) => this.server!.close(() => r()));
          try {
            if (this.controlPath) rmSync(this.controlPath, { force: true });
          } catch {
            // Its folder is root's, and the manager is not root any more: the spawner removes it when it exits.
          }
        }
      })();
    }
    return this.stopping;
  }
}

/** Ask a running manager for its status over the control socket (bounded wait). */
export function queryStatus(path = defaultControlPath(), timeoutMs = 3000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    import('node:net').then(({ createConnection }) => {
      const c = createConnection(path);
      let buf = '';
      const t = setTimeout(() => {
        c.destroy();
        reject(new SandboxError('ERR_SANDBOX_CONTROL', `no answer from ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      c.on('connect', () => c.write('status\n'));
      c.on('data', (d) => {
        buf += d.toString('utf8');
      });
      c.on('end', () => {
        clearTimeout(t);
        try {
          resolve(JSON.parse(buf) as Record<string, unknown>);
        } catch {
          reject(new SandboxError('ERR_SANDBOX_CONTROL', `malformed answer from ${path}`));
        }
      });
      c.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(t);
        reject(
          new SandboxError('ERR_SANDBOX_CONTROL', `cannot reach the manager at ${path} (${e.code ?? e.message})`, {
            fix: "start it with 'dmabox up POLICY...', or point DMABOX_CONTROL / --control at its socket",
          }),
        );
      });
    }, reject);
  });
}
