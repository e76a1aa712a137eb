/**
 * One trial in container mode for a NIC target (`device: { sim: e1000e, peer: echo }`): the driver
 * in a real container (its first one carries the injector), the simulated 82574L and its echo peer
 * in the device process, the packet rings, and the TAP linkback's bridge (linkback/tap/bridge.ts)
 * over a frame endpoint of the campaign's own (FrameClient: what the kernel's side of a TAP device
 * would read and write). The workload sends sequence-numbered ICMP echo requests to the peer, as a
 * host pinging through the TAP interface would, and keeps a digest of each request's payload.
 *
 * The oracle, every trial:
 * (1) a canary (memory of this process no device ever has mapped) unchanged, and every IOMMU
 *     refusal reported against this sandbox's device;
 * (2) every reply delivered carries exactly its request's payload, and none is delivered twice or
 *     without a request (frames lost on the way are not a violation: Ethernet may lose them); a
 *     driver corrupting its own transmit descriptors (`corrupt-work`, `wild-dma`) garbles its own
 *     frames: those are counted in `badReads`, as in the in-process target;
 * (3) liveness: frames flow again within `recovery.liveness` of the first firing, and a fault-free
 *     container passes frames at the end;
 * (4) this process's fds and memory bounded across the trial;
 * (5) attribution, as (1).
 */
import { mixSeed, Rng } from '../../common/prng.js';
import { TapBridge } from '../../linkback/tap/bridge.js';
import type { FrameIo } from '../../linkback/tap/tun.js';
import type { Policy } from '../../policies/types.js';
import { ECHO_PEER_IP, ECHO_PEER_MAC } from '../../sim/net/peer.js';
import { icmpEcho, icmpEchoTo, ipv4 } from '../../sim/net/packets.js';
import { digest } from '../digest.js';
import type { TrialPlan } from '../plan.js';
import type { CampaignSpec } from '../spec.js';
import type { TrialRecord } from '../trial.js';
import {
  FiredLog,
  POLL_MS,
  canary as makeCanary,
  containerInjection,
  containerOutcome,
  containerRecord,
  hostSide as isHostSide,
  managerBounds,
  sleep,
  trialSupervisor,
  until,
  type ContainerTrialOptions,
} from './common.js';

const HOST_IP = ipv4('10.0.2.15');
const PEER_IP = ipv4(ECHO_PEER_IP);
const PAYLOAD = 56;
/** Frames the fault-free container must pass at the end. */
const VERIFY_FRAMES = 4;
/** Driver-side classes that change the driver's own frames on their way out. */
const OWN_FRAMES = new Set(['corrupt-work', 'wild-dma']);

/**
 * The host's end of the TAP device, in memory: frames the host sends wait in `inbound` (the bridge
 * reads them, level-triggered like a TAP fd's poll), frames the bridge writes go to `onFrame`.
 */
export class FrameClient implements FrameIo {
  readonly name = 'campaign-tap';
  lastError: string | undefined;
  carrier = true;
  private readonly inbound: Uint8Array[] = [];
  private cb: (() => void) | null = null;
  private scheduled = false;

  constructor(private readonly onFrame: (frame: Uint8Array) => void) {}

  send(frame: Uint8Array): void {
    this.inbound.push(frame);
    this.kick();
  }

  read(bytes: Uint8Array, offset: number, max: number): number {
    const f = this.inbound.shift();
    if (f === undefined) return 0;
    const n = Math.min(f.length, max);
    bytes.set(f.subarray(0, n), offset);
    return n;
  }

  write(bytes: Uint8Array, offset: number, len: number): boolean {
    this.onFrame(bytes.subarray(offset, offset + len));
    return true;
  }

  watch(onReadable: () => void): void {
    this.cb = onReadable;
    this.kick();
  }

  unwatch(): void {
    this.cb = null;
  }

  setCarrier(up: boolean): void {
    this.carrier = up;
  }

  private kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.cb !== null && this.inbound.length > 0) {
        this.cb();
        this.kick();
      }
    });
  }
}

export async function runNetContainerTrial(spec: CampaignSpec, policy: Policy, plan: TrialPlan, options: ContainerTrialOptions = {}): Promise<TrialRecord> {
  const t0 = performance.now();
  const say = options.log ?? (() => undefined);
  const log = (line: string) => say(`+${Math.round(performance.now() - t0)} ms ${line}`);
  const bounds = managerBounds();
  const hostSide = isHostSide(plan);
  const pol: Policy = { ...policy, name: `${policy.name}-t${plan.index}`.slice(0, 63), linkback: undefined };
  const rec = spec.recovery;
  const w = spec.workload;
  const violations: string[] = [];
  let recoveredAt: number | undefined;
  let lost = 0;
  let badFrames = 0;
  let framesSent = 0;
  let delivered = 0;

  const canary = makeCanary(plan.seed);

  // The shadow: sequence number -> digest of the request's payload; what was delivered.
  const shadow = new Map<number, number>();
  const seen = new Set<number>();
  const outstanding = new Set<number>();
  const id = new Rng(plan.workloadSeed).below(0x10000);
  let checking = false;
  const badFrame = (what: string): void => {
    badFrames++;
    if (checking || !OWN_FRAMES.has(plan.fault)) violations.push(`delivered ${what}`);
  };
  const client = new FrameClient((frame) => {
    const echo = icmpEchoTo(frame, frame.length, HOST_IP, 'reply');
    if (!echo || echo.id !== id) return; // ARP and the like, or not ours
    const want = shadow.get(echo.seq);
    if (want === undefined) return badFrame(`a reply to sequence ${echo.seq}, never sent`);
    if (seen.has(echo.seq)) return badFrame(`the reply to sequence ${echo.seq} twice`);
    if (echo.payload.length !== PAYLOAD || digest(echo.payload) !== want) return badFrame(`the reply to sequence ${echo.seq} corrupted`);
    seen.add(echo.seq);
    outstanding.delete(echo.seq);
    delivered++;
    if (fired.firedAt !== undefined && recoveredAt === undefined && Date.now() >= fired.firedAt) recoveredAt = Date.now();
  });

  const s = trialSupervisor(pol, spec, plan, containerInjection(spec, plan, 'e1000e'));
  const fired = new FiredLog(s);
  const scan = () => fired.scan();
  const poller = setInterval(scan, POLL_MS);
  let seq = 0;
  let mac: Uint8Array | undefined;
  const sendOne = (): number => {
    const sq = seq++ & 0xffff;
    const payload = new Uint8Array(PAYLOAD);
    const data = new Rng(mixSeed(plan.workloadSeed, 1000 + sq));
    for (let i = 0; i < PAYLOAD; i++) payload[i] = data.below(256);
    shadow.set(sq, digest(payload));
    outstanding.add(sq);
    client.send(icmpEcho('request', mac!, ECHO_PEER_MAC, HOST_IP, PEER_IP, id, sq, payload));
    framesSent++;
    return sq;
  };
  /** Wait (bounded) for the outstanding replies; what did not come is lost. */
  const settle = async (ms: number) => {
    await until(() => outstanding.size === 0, ms);
    lost += outstanding.size;
    outstanding.clear();
  };
  let bridge: TapBridge | undefined;
  try {
    try {
      await s.start();
    } catch (e) {
      log(`sandbox did not start: ${(e as Error).message.split('\n')[0]}`);
    }
    log(`sandbox ${s.state}`);
    const port = s.nic;
    if (s.state !== 'failed' && port) {
      mac = Uint8Array.from(port.mac);
      bridge = new TapBridge(client, port);
      port.join(bridge);
      bridge.start();
      const sig = new Rng(plan.injectorSeed);
      // Rounds of `depth` requests; each round waits for its replies up to the hang bound.
      for (let i = 0; i < w.operations;) {
        for (let k = 0; k < w.depth && i < w.operations; k++, i++) {
          if (hostSide && i === plan.first) fired.signal(spec, plan, i, sig);
          sendOne();
        }
        await settle(rec.hangMs);
        scan();
      }
    }
    log(`workload done: ${framesSent} sent, ${delivered} delivered, ${lost} lost`);

    // (3) at the end: a fault-free container (the first one carries the injector) passes frames.
    const settleMs = rec.liveness + rec.startMs * (pol.restart.maxRestarts + 1) + 2000;
    await until(() => s.state === 'running' || s.state === 'failed', settleMs);
    if (s.state === 'running' && s.restarts === 0 && !hostSide) {
      s.kill('campaign: the check runs on a fault-free container');
      await until(() => (s.state === 'running' && s.restarts > 0) || s.state === 'failed', settleMs);
    }
    scan();
    if (s.state === 'running' && bridge) {
      checking = true;
      const got = delivered;
      const end = Date.now() + rec.liveness;
      while (delivered === got && Date.now() < end) {
        for (let k = 0; k < VERIFY_FRAMES; k++) sendOne();
        await until(() => delivered > got, Math.min(500, Math.max(1, end - Date.now())));
      }
      outstanding.clear();
      if (delivered === got) violations.push('recovery: no frame passed through a fault-free container');
    }
  } finally {
    clearInterval(poller);
    await bridge?.stop();
    s.nic?.join(null);
    await s.stop();
    scan();
  }
  await sleep(0);

  // (1) and (5): outside the windows, attribution.
  if (!canary.intact()) violations.push('the canary (memory no device has mapped) changed');
  const foreign = s.faults.filter((f) => f.device !== s.address);
  if (foreign.length) violations.push(`${foreign.length} IOMMU fault(s) reported for ${foreign[0]!.device}, not the sandbox's ${s.address}`);
  // (3) liveness after the fault.
  const firedAt = fired.firedAt;
  const ttr = firedAt !== undefined && recoveredAt !== undefined ? recoveredAt - firedAt : null;
  if (ttr !== null && ttr > rec.liveness) violations.push(`liveness: frames flowed again ${ttr} ms after the first firing, bound ${rec.liveness} ms`);
  // (4) this process bounded.
  violations.push(...bounds.check());

  return containerRecord(plan, s, fired, {
    outcome: containerOutcome(s, violations, lost, log),
    violations,
    clientErrors: lost,
    badReads: badFrames,
    writesAcked: framesSent,
    iommuFaults: s.faultCount,
    timeToRecoverMs: ttr,
    ms: Math.round(performance.now() - t0),
  });
}
