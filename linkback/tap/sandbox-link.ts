/**
 * The `tap` linkback of a sandboxed NIC (policy `linkback: { tap: { interface } }`), started by
 * linkback/service.ts once the sandbox is ready: the manager creates the TAP interface (root or
 * CAP_NET_ADMIN), carrying the NIC's MAC, and bridges it to the sandbox's SandboxNicPort (the
 * packet rings of sandbox/net). The port suspends the bridge when a container dies and resumes it
 * on the next one's READY: the interface, its addresses and routes stay; frames queued in the
 * bridge move to the new container; those lost with the old one are counted.
 *
 * Without root no TAP can be made. Then, on the simulator, the sandboxed NIC stays linked to its
 * simulated peer (`peer: echo` answers ARP and ping for 10.0.2.2, as slirp does): the linkback
 * says so, and proves the path with a self-check (ARP and three pings to 10.0.2.2 from the
 * manager's side of the rings), instead of pretending an interface exists.
 */
import { LinkbackServiceError, type Linkback, type LinkbackContext } from '../registry.js';
import { pingThroughPort } from '../../sandbox/manager/services/net-selfcheck.js';
import { ECHO_PEER_IP } from '../../sim/net/peer.js';
import { formatMac, linkTap, type TapLink } from './index.js';
import { TapError } from './errors.js';
import { configureInterface } from './address.js';

/** The host side of slirp's 10.0.2.0/24, for the usage lines. */
const HOST_CIDR = '10.0.2.15/24';

export async function startTapLinkback(ctx: LinkbackContext): Promise<Linkback> {
  const { supervisor, policy } = ctx;
  const port = supervisor.nic;
  if (!port) {
    throw new LinkbackServiceError(
      'ERR_LINKBACK_ARG',
      `policy ${policy.name}: a tap linkback needs a net driver (e1000e, or a module of kind net); this sandbox runs ${supervisor.driver.label}, a ${supervisor.kind} driver`,
      { fix: 'use linkback: { nbd: ... } for a disk' },
    );
  }
  const lb = policy.linkback;
  if (!lb || !('tap' in lb)) throw new LinkbackServiceError('ERR_LINKBACK_ARG', `policy ${policy.name}: no tap linkback in the policy`);
  const name = lb.tap.interface;
  const peer = 'sim' in policy.device && policy.device.sim === 'e1000e' ? policy.device.peer : undefined;
  let link: TapLink | undefined;
  let noRoot: string | undefined;
  try {
    link = linkTap(port, { name, onError: (e) => ctx.log(`TAP ${name}: ${(e as Error).message}`, 'warn') });
  } catch (e) {
    if (!(e instanceof TapError) || (e.code !== 'ERR_TAP_PERMISSION' && e.code !== 'ERR_TAP_NO_TUN')) throw e;
    if (peer === undefined) throw e; // a real NIC with no TAP has nothing to link to: say why
    noRoot = e.message.split('\n')[0]!;
  }
  if (link && lb.tap.address !== undefined) {
    try {
      configureInterface(link.tap.name, { address: lb.tap.address, ...(lb.tap.gateway !== undefined ? { gateway: lb.tap.gateway } : {}) });
    } catch (e) {
      await link.close();
      throw e;
    }
    ctx.log(`TAP ${link.tap.name}: address ${lb.tap.address}${lb.tap.gateway !== undefined ? `, default route via ${lb.tap.gateway}` : ''}, up`);
  }
  if (link) {
    const l = link;
    port.join(l.bridge);
    // A device marked failed gets no more containers: the host should see the cable pulled, not a
    // link that swallows frames.
    const onFailed = (): void => {
      try {
        l.tap.setCarrier(false);
      } catch {
        /* closed already */
      }
      ctx.log(`TAP ${l.tap.name}: the sandbox failed; carrier off (the interface stays until the linkback closes)`, 'error');
    };
    supervisor.once('failed', onFailed);
    ctx.log(`TAP ${l.tap.name} (MAC ${formatMac(port.mac)}) bridged to the sandboxed NIC`);
    return {
      kind: 'tap',
      sandbox: policy.name,
      addresses: [`tap:${l.tap.name}`],
      usage: () => [
        ...(lb.tap.address === undefined ? [`ip addr add ${HOST_CIDR} dev ${l.tap.name} && ip link set ${l.tap.name} up`] : []),
        ...(peer === 'echo' ? [`ping -c 3 ${ECHO_PEER_IP}        # answered by the simulated peer behind the sandboxed NIC`] : []),
      ],
      status: () => ({ interface: l.tap.name, bridge: l.bridge.counters(), port: { ...port.counters } }),
      close: async () => {
        supervisor.off('failed', onFailed);
        port.join(null);
        await l.close();
      },
    };
  }
  // No root: the NIC keeps its simulated peer; check the path end to end and say what this is.
  let check = 'not run';
  if (peer === 'echo') {
    try {
      const r = await pingThroughPort(port, { hostIp: '10.0.2.15', peerIp: ECHO_PEER_IP, count: 3, timeoutMs: 5000 });
      check = `ARP for ${ECHO_PEER_IP} answered by ${r.peerMac}, ${r.rtts.length}/${r.sent} pings answered${r.rtts.length ? ` (${r.rtts.map((t) => t.toFixed(1)).join(', ')} ms)` : ''}`;
    } catch (e) {
      check = `failed: ${(e as Error).message.split('\n')[0]}`;
    }
  }
  ctx.log(
    `no TAP interface (${noRoot}); the sandboxed NIC is linked to its simulated peer '${peer}' only; self-check through the packet rings: ${check}`,
    'warn',
  );
  return {
    kind: 'tap',
    sandbox: policy.name,
    addresses: [`sim-peer:${peer === 'echo' ? ECHO_PEER_IP : 'none'}`],
    usage: () => [
      `no TAP interface: creating ${name} needs root or CAP_NET_ADMIN (${noRoot})`,
      `the sandboxed NIC talks to the simulated peer '${peer}' instead; self-check: ${check}`,
      `run as root (sudo npm start) to get ${name}, then: ip addr add ${HOST_CIDR} dev ${name} && ip link set ${name} up && ping ${ECHO_PEER_IP}`,
    ],
    status: () => ({ interface: null, peer, selfCheck: check, port: { ...port.counters } }),
    close: async () => undefined,
  };
}
