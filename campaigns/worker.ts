/** A campaign worker process (forked by runner.ts): runs the trial indices it is sent, one record per message. */
import { loadCampaign } from './spec.js';
import { runIndices } from './runner.js';

process.once('message', (m: { spec: string; seed: number; iommuOff: boolean; indices: number[]; deadline: number; ackBeforeDurable: boolean }) => {
  runIndices(loadCampaign(m.spec), m.indices, m.seed, m.iommuOff, m.deadline, (record) => process.send!({ record }), { ackBeforeDurable: m.ackBeforeDurable })
    // Exit at once: timers a killed driver incarnation left (its I/O timeouts) must not hold the worker.
    .then(() => process.send!({ done: true }, () => process.exit(0)))
    .catch((e: unknown) => {
      process.send!({ error: (e as Error).message }, () => process.exit(1));
    });
});
