/**
 * The spawner process (sandbox/README.md, "No root left after set-up"): started by the manager at
 * set-up, through setpriv, with only the capabilities launching needs on every thread; serves the
 * spawner protocol on fd 3 until the manager's end closes, then kills every process it launched
 * and exits.
 *
 * argv: --entry PATH (repeated: the only entries it starts), --flag FLAG (repeated: node flags a
 * launch may carry), --forbid ID (repeated: uids and gids no launched process may have), --pin
 * SANDBOX/ROLE=UID:GID (repeated: the identities policies name; every other one is allocated). The
 * environment it was started with is the only one a launch may ask for.
 */
import { defaultSys } from 'linux-sys';
import { launch } from './launch.js';
import { launchHost } from './host.js';
import { SpawnerServer } from './server.js';

const FD = 3;
/** How long the spawner waits for its processes to go after the manager has gone. */
const EXIT_WAIT_MS = 5000;

const entries: string[] = [];
const flags: string[] = [...process.execArgv];
const forbid: number[] = [0];
const argv = process.argv.slice(2);
for (let i = 0; i + 1 < argv.length; i += 2) {
  const v = argv[i + 1]!;
  if (argv[i] === '--entry') entries.push(v);
  else if (argv[i] === '--flag') flags.push(v);
  else if (argv[i] === '--forbid') forbid.push(Number(v));
  else if (argv[i] === '--pin') {
    const m = /^([A-Za-z0-9._-]+)\/(driver|device)=(\d+):(\d+)$/.exec(v);
    if (!m) {
      process.stderr.write(`dmabox spawner: --pin ${v}: expected SANDBOX/ROLE=UID:GID\n`);
      process.exit(78);
    }
    launchHost().identities.pin(m[1]!, m[2] as 'driver' | 'device', { uid: Number(m[3]), gid: Number(m[4]) });
  }
}
// Signals from a terminal belong to the manager, which stops in order; the spawner ends with it.
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => undefined);

const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '' };
const server = new SpawnerServer({
  sys: defaultSys(),
  fd: FD,
  node: process.execPath,
  nodeFlags: flags,
  entries,
  env,
  forbiddenIds: forbid.filter((n) => Number.isInteger(n)),
  launch: (spec) => launch(spec),
  gone: () => {
    const deadline = Date.now() + EXIT_WAIT_MS;
    const check = (): void => {
      if (server.running.size === 0 || Date.now() > deadline) {
        server.removeSockets();
        process.exit(0);
      }
      server.killAll();
      setTimeout(check, 50);
    };
    check();
  },
});
server.hello();
