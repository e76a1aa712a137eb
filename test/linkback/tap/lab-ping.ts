/**
 * The TAP linkback on real VFIO (a script, run INSIDE the lab guest; not a unit test):
 * QEMU's e1000e through vfio-pci and VT-d, driven by the e1000e driver, bridged to a TAP interface
 * given 10.0.2.15/24; the guest's own stack pings slirp's 10.0.2.2 through it. The guest is a
 * throwaway VM whose only interface is lo, so the TAP sits in its root namespace.
 *
 *   npm run build
 *   node dist/cli/main.js lab run --e1000e -- node dist/test/linkback/tap/lab-ping.js [poll|msix]
 *
 * Exit 0 when `ping -c 3` got its replies and the bridge counted them; prints RTTs and counters.
 */
import { VfioPlatform } from '../../../platform/vfio.js';
import { E1000e, type E1000eInterruptMode } from '../../../drivers/e1000e/device.js';
import { linkTap } from '../../../linkback/tap/index.js';
import { E1000ePort } from '../../../linkback/in-process/e1000e.js';
import { run } from '../../helpers/run.js';

async function main(): Promise<number> {
  if (process.env.DMABOX_LAB !== '1') {
    console.error('lab-ping: runs only inside the lab guest: node dist/cli/main.js lab run --e1000e -- node dist/test/linkback/tap/lab-ping.js');
    return 2;
  }
  const bdf = (process.env.DMABOX_LAB_E1000E ?? '').split(',').filter(Boolean)[0];
  if (!bdf) {
    console.error('lab-ping: DMABOX_LAB_E1000E names no e1000e (boot with --e1000e)');
    return 2;
  }
  const interrupts = (process.argv[2] ?? 'msix') as E1000eInterruptMode;
  const p = VfioPlatform.open(bdf);
  let ok: boolean;
  try {
    const nic = await E1000e.open(p, { interrupts, linkTimeoutMs: 10_000 });
    try {
      const errors: unknown[] = [];
      const link = linkTap(new E1000ePort(nic), { name: 'dmabox%d', onError: (e) => errors.push(e) });
      try {
        const ifname = link.tap.name;
        for (const argv of [
          ['ip', 'addr', 'add', '10.0.2.15/24', 'dev', ifname],
          ['ip', 'link', 'set', ifname, 'up'],
        ]) {
          const r = await run(argv, 10_000);
          if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.out}`);
        }
        console.log(`lab-ping: ${bdf} (${interrupts}) linked to ${ifname}, 10.0.2.15/24`);
        const r = await run(['ping', '-c', '3', '-W', '5', '10.0.2.2'], 30_000);
        console.log(r.out.trim());
        const rtt = await run(['ping', '-c', '20', '-i', '0.2', '-q', '10.0.2.2'], 30_000);
        console.log(rtt.out.trim().split('\n').slice(-2).join('\n'));
        const c = link.bridge.counters();
        console.log(`lab-ping: counters ${JSON.stringify(c)}`);
        ok =
          r.code === 0 &&
          /3 packets transmitted, 3 received/.test(r.out) &&
          c.toNic.icmp >= 3 &&
          c.toTap.icmp >= 3 &&
          c.toNic.arp >= 1 &&
          c.toTap.arp >= 1 &&
          errors.length === 0;
        if (errors.length) console.log(`lab-ping: bridge errors: ${errors.map(String).join('; ')}`);
      } finally {
        await link.close();
      }
    } finally {
      await nic.close();
    }
  } finally {
    p.close();
  }
  console.log(`lab-ping: ${ok ? 'OK' : 'FAILED'}`);
  return ok ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);
