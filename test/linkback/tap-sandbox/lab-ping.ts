/**
 * The TAP linkback of a SANDBOXED e1000e on real VFIO (a script, run INSIDE the lab guest; not a
 * unit test): the manager (Supervisor) holds QEMU's e1000e through vfio-pci and VT-d, the e1000e
 * driver runs in its own unprivileged, seccomp-confined container with only the device fd, its
 * windows and the packet rings; startTapLinkback bridges the rings to a TAP given 10.0.2.15/24;
 * the guest's stack pings slirp's 10.0.2.2 through it, then again after the driver container is
 * killed with SIGKILL and restarted (quarantine: bus mastering off and VFIO reset in between).
 *
 *   npm run build
 *   node dist/cli/main.js lab run --e1000e -- node dist/test/linkback/tap-sandbox/lab-ping.js [polling|msix]
 *
 * Exit 0 when both `ping -c 3` got their replies; prints the sandbox events, RTTs and counters.
 */
import { parsePolicies } from '../../../policies/index.js';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { startTapLinkback } from '../../../linkback/tap/sandbox-link.js';
import { run } from '../../helpers/run.js';

async function until(what: string, pred: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main(): Promise<number> {
  if (process.env.DMABOX_LAB !== '1') {
    console.error('lab-ping: runs only inside the lab guest: node dist/cli/main.js lab run --e1000e -- node dist/test/linkback/tap-sandbox/lab-ping.js');
    return 2;
  }
  const bdf = (process.env.DMABOX_LAB_E1000E ?? '').split(',').filter(Boolean)[0];
  if (!bdf) {
    console.error('lab-ping: DMABOX_LAB_E1000E names no e1000e (boot with --e1000e)');
    return 2;
  }
  const interrupts = process.argv[2] === 'msix' ? 'msix' : 'polling';
  const policy = parsePolicies(
    `
version: 1
name: lab-sandboxed-e1000e
device: { pci: '${bdf}' }
driver: { name: e1000e, depth: 128, interrupts: ${interrupts} }
windows:
  - { size: 64KiB, access: read-write, label: rx-descriptors }
  - { size: 2MiB, label: buffers }
restart: { maxRestarts: 3, window: 5m, backoff: { initial: 100ms, max: 1s } }
linkback: { tap: { interface: dmxsb0 } }
`,
    'lab-ping.yaml',
  ).policies[0]!.policy;
  const s = new Supervisor(policy, { readyTimeoutMs: 60_000, helloTimeoutMs: 60_000, heartbeatMs: 2000 });
  s.on('event', (e: { kind: string; text: string }) => console.log(`lab-ping: event ${e.kind}: ${e.text}`));
  let ok = false;
  try {
    await s.start();
    const link = await startTapLinkback({ supervisor: s, policy, log: (l) => console.log(`lab-ping: linkback: ${l}`) });
    try {
      const ifname = link.addresses[0]!.replace(/^tap:/, '');
      for (const argv of [
        ['ip', 'addr', 'add', '10.0.2.15/24', 'dev', ifname],
        ['ip', 'link', 'set', ifname, 'up'],
      ]) {
        const r = await run(argv, 10_000);
        if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.out}`);
      }
      const first = await run(['ping', '-c', '3', '-W', '5', '10.0.2.2'], 40_000);
      console.log(first.out.trim());
      const pid = s.pid!;
      process.kill(pid, 'SIGKILL');
      await until('the restart', () => s.restarts === 1 && s.state === 'running' && s.nic!.isAttached, 60_000);
      console.log(`lab-ping: container pid ${pid} killed with SIGKILL, restarted as pid ${s.pid}`);
      const second = await run(['ping', '-c', '3', '-W', '5', '10.0.2.2'], 40_000);
      console.log(second.out.trim());
      console.log(`lab-ping: status ${JSON.stringify(link.status())}`);
      ok = [first, second].every((r) => r.code === 0 && /3 packets transmitted, 3 received/.test(r.out)) && s.nic!.counters.violations === 0;
    } finally {
      await link.close();
    }
  } catch (e) {
    console.error(`lab-ping: ${(e as Error).stack ?? String(e)}`);
  } finally {
    await s.stop();
  }
  console.log(`lab-ping: ${ok ? 'PASS' : 'FAIL'}`);
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
