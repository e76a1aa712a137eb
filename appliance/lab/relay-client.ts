/**
 * The guest side of the monitor relay (relay.ts): ask the host to run one checked monitor command.
 * Writes `$DMABOX_LAB_RELAY/ID.req` (to a temporary name, then renamed, so the host never reads
 * half a request) and waits, bounded, for `ID.res`. Runs only inside the lab guest.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApplianceError } from '../image/errors.js';
import type { RelayAnswer, RelayRequest } from './relay.js';

let sequence = 0;

/** Send `req` and return QEMU's output; ERR_LAB_RELAY when refused, unanswered within `timeoutMs`, or outside the lab. */
export async function relayRequest(req: RelayRequest, timeoutMs = 20_000, dir = process.env.DMABOX_LAB_RELAY): Promise<string> {
  if (!dir)
    throw new ApplianceError('ERR_LAB_RELAY', 'no monitor relay: DMABOX_LAB_RELAY is not set', {
      fix: 'run inside the lab with the device-error extras (the lab suite, or dmabox lab run --device-errors)',
    });
  const id = `${process.pid}-${Date.now()}-${sequence++}`;
  const tmp = join(dir, `${id}.tmp`);
  writeFileSync(tmp, JSON.stringify(req));
  renameSync(tmp, join(dir, `${id}.req`));
  const res = join(dir, `${id}.res`);
  const end = Date.now() + timeoutMs;
  while (!existsSync(res)) {
    if (Date.now() > end) throw new ApplianceError('ERR_LAB_RELAY', `the monitor relay did not answer ${id} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const ans = JSON.parse(readFileSync(res, 'utf8')) as RelayAnswer;
  if (!ans.ok) throw new ApplianceError('ERR_LAB_RELAY', `the monitor relay refused: ${ans.message}`);
  return ans.output;
}
