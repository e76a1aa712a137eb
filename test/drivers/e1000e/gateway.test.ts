/**
 * The shared driver suite (suite.ts) on the simulator: one 82574L model whose wire ends in a
 * stand-in for slirp's gateway (packets.ts gatewayReply), answering a tick later as slirp would.
 * Run twice: polling and MSI-X.
 */
import { withEndpoint } from './harness.js';
import { gatewaySuite } from './suite.js';
import { gatewayReply } from './packets.js';
import { E1000e } from '../../../drivers/e1000e/device.js';

const GATEWAY_MAC = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];

for (const interrupts of ['poll', 'msix', 'intx'] as const) {
  gatewaySuite(
    `e1000e on the simulator (${interrupts})`,
    async () => {
      let send: (f: Uint8Array) => boolean = () => false;
      const s = withEndpoint((f) => {
        const r = gatewayReply(f, GATEWAY_MAC);
        if (r !== null) setImmediate(() => send(r));
      });
      send = (f) => s.ep.send(f);
      const nic = await E1000e.open(s.p, { interrupts });
      return {
        nic,
        done: async () => {
          await nic.close();
          s.p.close();
        },
      };
    },
    2000,
  ).run();
}
