/**
 * The driver container's entrypoint (run.ts does the work): spawned by the manager, never by hand.
 * With the argument `spare` it is a spare (sandbox/abi/handover.ts): its modules loaded and warmed
 * up (warm.ts), prepared when the manager sends PREPARE (prepare.ts: confined, the driver's code
 * evaluated), it waits for its fds, then runs as any container.
 */
import { defaultSys } from 'linux-sys';
import { collectBeforeWaiting, HANDOVER_EXIT, receiveHandover, receiveSpareMessage, SPARE_ARG } from '../abi/handover.js';
import { prepareSpare, type Prepared } from './prepare.js';
import { runContainer } from './run.js';
import { warmUp } from './warm.js';

async function spare(): Promise<Prepared | undefined> {
  const sys = defaultSys();
  warmUp();
  const first = receiveSpareMessage(sys);
  if (first.kind === 'handover') return undefined;
  const prepared = await prepareSpare(sys, first.fd, first.profile);
  collectBeforeWaiting();
  receiveHandover(sys);
  return prepared;
}

if (process.argv[2] === SPARE_ARG) {
  spare().then(
    (prepared) => runContainer(undefined, prepared),
    (e: unknown) => {
      process.stderr.write(`dmabox spare container: ${(e as Error).message}\n`);
      process.exit(HANDOVER_EXIT);
    },
  );
} else {
  runContainer();
}
