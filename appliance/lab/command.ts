/**
 * The guest command, as the shell script the lab's /init runs in the chroot
 * (/run/dmabox-lab/cmd.sh, written by the launcher into the run channel). Arguments are passed as
 * an argv, never re-split: each is single-quoted.
 */
import { ApplianceError } from '../image/errors.js';

/** Quote one word for a POSIX shell. */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface GuestCommand {
  /** argv[0] is looked up on PATH inside the guest (the host's own PATH, as the guest sees the host root). */
  argv: readonly string[];
  /** The working directory inside the guest (the host path: the guest sees the host's / read-only). */
  cwd: string;
  env: Readonly<Record<string, string>>;
}

/** The cmd.sh text: cd, export, exec. */
export function commandScript(cmd: GuestCommand): string {
  if (cmd.argv.length === 0) throw new ApplianceError('ERR_LAB_OPTIONS', 'the guest command is empty', { fix: 'give a program and its arguments' });
  if (!cmd.cwd.startsWith('/')) throw new ApplianceError('ERR_LAB_OPTIONS', `the guest working directory must be absolute, got '${cmd.cwd}'`);
  const lines = ['# written by dmabox lab (appliance/lab/command.ts)', `cd ${shellQuote(cmd.cwd)} || exit 126`];
  for (const [k, v] of Object.entries(cmd.env)) {
    if (!ENV_NAME.test(k))
      throw new ApplianceError('ERR_LAB_OPTIONS', `environment variable name '${k}' is not valid in a shell`, {
        fix: 'use letters, digits and _, not starting with a digit',
      });
    lines.push(`export ${k}=${shellQuote(v)}`);
  }
  lines.push(`exec ${cmd.argv.map(shellQuote).join(' ')}`);
  return `${lines.join('\n')}\n`;
}
