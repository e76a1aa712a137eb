/**
 * The net target's trial (a policy with `device: { sim: e1000e, peer: echo }` and a `kind: 'net'`
 * driver): a fresh 82574L model at a fresh PCI address on the worker's machine, its echo peer on the
 * simulated wire (sim/net/peer.ts), the driver started through the injector, and a client that
 * sends sequence-numbered ICMP echo requests through the driver's NetDevice and takes the peer's
 * replies back, with a shadow of every frame acknowledged as sent (the driver's `tx` took it) and
 * of every frame delivered. A small supervisor as in trial.ts: an exit (an injected crash) or no
 * frame delivered for `recovery.hangMs` with frames outstanding is a kill, an FLR and a restart, up
 * to the policy's `restart.maxRestarts`.
 *
 * Device-side classes (`e1000e.*`, sim/faults) build the model with the trial's fault plan
 * instead of arming the injector.
 *
 * The oracle: (1) memory outside every window of the trial's device unchanged (the rig's canary
 * and neighbour) and (5) every IOMMU fault attributed to the trial's device, as for NVMe; (2) every
 * delivered reply carries exactly the payload of the request with its sequence number, and none
 * is delivered twice (a driver corrupting its own transmit descriptors may garble its own frames:
 * for corrupt-work and wild-dma those are counted in `badReads`, not a violation, as trial.ts
 * counts a corrupted read); a frame the device flagged bad (a device-side class) delivered to the
 * client is a violation; (3) after the fault, frames flow again within `recovery.liveness`, and
 * with the device behaving again a fault-free incarnation passes frames; (4) fds bounded.
 */
import type { DriverModule } from '../../drivers/contract/driver.js';
import type { NetDevice, NetServiceParams } from '../../drivers/contract/net.js';
import { PacketBatch } from '../../drivers/contract/packet-batch.js';
import { mixSeed, Rng } from '../../common/prng.js';
import type { Policy } from '../../policies/types.js';
import { E1000eModel } from '../../sim/e1000e/model.js';
import { thunderclapReport, type ThunderclapReport } from '../../sim/e1000e/thunderclap.js';
import { makePlan } from '../../sim/faults/plan.js';
import { attachPeer, ECHO_PEER_IP } from '../../sim/net/peer.js';
import { icmpEcho, icmpEchoTo, ipv4, parseMac } from '../../sim/net/packets.js';
import type { SimPlatform } from '../../sim/platform.js';
import { digest } from '../digest.js';
import { Injector, type Incarnation } from '../inject/injector.js';
import type { TrialPlan } from '../plan.js';
import type { Rig } from '../rig.js';
import type { CampaignSpec } from '../spec.js';
import type { Outcome, TrialOptions, TrialRecord } from '../trial.js';
import { fdCount, timeout } from './common.js';

function isDmaboxError(e: unknown): boolean {
  return typeof (e as { code?: unknown }).code === 'string' && (e as { code: string }).code.startsWith('ERR_');
}

export type NetDriverModule = DriverModule<'net', NetServiceParams, NetDevice>;

const HOST_IP = ipv4('10.0.2.15');
const PEER_IP = ipv4(ECHO_PEER_IP);
const PAYLOAD = 56;
const FD_SLACK = 8;
/** Turns of the event loop the client yields before it waits on the driver (`waitRx` polls every millisecond). */
const IMMEDIATE_TURNS = 4;

function immediate(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
/** Frames the verifying incarnation sends once the device behaves again. */
const VERIFY_FRAMES = 4;
/** Driver-side classes that change the driver's own frames on their way out (their garbled replies are its own). */
const OWN_FRAMES = new Set(['corrupt-work', 'wild-dma']);

interface Inc {
  inc: Incarnation;
  raw: SimPlatform;
  device: NetDevice | undefined;
  killed: Promise<'dead'>;
  kill: () => void;
}

export async function runNetTrial(
  spec: CampaignSpec,
  policy: Policy,
  driver: NetDriverModule,
  rig: Rig,
  plan: TrialPlan,
  options: TrialOptions = {},
): Promise<TrialRecord> {
  const t0 = performance.now();
  const log = options.log ?? (() => undefined);
  const fds0 = fdCount();
  const dev = policy.device as Extract<Policy['device'], { sim: 'e1000e' }>;
  const w = spec.workload;
  const params = spec.faults[plan.fault]!;
  const deviceSide = plan.fault.startsWith('e1000e.');
  const address = rig.nextAddress();
  const model = new E1000eModel({
    mac: parseMac(dev.mac),
    faultPlan: deviceSide
      ? makePlan(
          plan.fault,
          { ...params.own, probability: params.probability / 100, interval: params.interval, times: params.times, after: plan.first },
          plan.injectorSeed,
        )
      : undefined,
  });
  rig.machine.attach(model, { address });
  // Oracle (b) for device classes: which replies the device flagged bad (an RX write-back with an
  // error, or a length the buffer cannot hold) as it stored them; none of them may reach the client.
  const flagged = new Set<number>();
  const devicePlan0 = model.faultPlan;
  if (devicePlan0 && plan.fault === 'e1000e.rx-writeback' && params.own?.['kind'] !== 'reserved-bits') {
    const receive = model.receive.bind(model);
    model.receive = (frame: Uint8Array, len: number): boolean => {
      const before = devicePlan0.injector.fired;
      const stored = receive(frame, len);
      if (devicePlan0.injector.fired > before) {
        const e = icmpEchoTo(frame, len, HOST_IP, 'reply');
        if (e) flagged.add(e.seq);
      }
      return stored;
    };
  }
  const peer = attachPeer(model, 'echo');
  const iommuFaults0 = rig.machine.iommu.faultCount;
  const injector = new Injector(
    {
      fault: deviceSide ? 'none' : plan.fault,
      seed: plan.injectorSeed,
      first: plan.first,
      probability: params.probability,
      interval: params.interval,
      times: params.times,
      variants: params.variants,
      canary: rig.canary.base,
      neighbour: rig.neighbourPhys,
      device: 'e1000e',
    },
    () => performance.now(),
  );
  const devicePlan = model.faultPlan;
  /** When the fault first fired (driver side: the injector's; device side: seen at the client's next look). */
  const firedAt = (): number | undefined => (devicePlan ? deviceFiredAt : injector.firedAt);
  let deviceFiredAt: number | undefined;
  const noteDevice = () => {
    if (devicePlan && deviceFiredAt === undefined && devicePlan.injector.fired > 0) deviceFiredAt = performance.now();
  };
  const maxRestarts = policy.restart.maxRestarts;
  const violations: string[] = [];
  let restarts = 0;
  let failed = false;
  let lost = 0;
  let badFrames = 0;
  let framesAcked = 0;
  let delivered = 0;
  let duplicates = 0;
  let finding: string | undefined;
  let recoveredAt: number | undefined;
  let lastProgress = performance.now();
  let windows: { label: string; iova: bigint; size: number }[] = [];

  async function start(inj: Injector): Promise<Inc | undefined> {
    const raw = rig.machine.platform(address);
    let kill!: () => void;
    const killed = new Promise<'dead'>((r) => (kill = () => r('dead')));
    const me: Inc = { inc: undefined as unknown as Incarnation, raw, device: undefined, killed, kill: () => undefined };
    const alloc = raw.dma.alloc.bind(raw.dma);
    const mine: { label: string; iova: bigint; size: number }[] = [];
    raw.dma.alloc = (size, perm, o) => {
      const win = alloc(size, perm, o);
      mine.push({ label: o?.label ?? 'window', iova: win.iova, size: win.size });
      return win;
    };
    me.inc = inj.wrap(raw, (why) => {
      log(`driver exited: ${why}`);
      stop(me);
    });
    me.kill = kill;
    const ctx = {
      platform: me.inc.platform,
      // MSI-X only where the class is about its messages (e1000e.msix-unconfigured); polling otherwise, as trial.ts.
      options: {
        queues: policy.driver.queues,
        depth: policy.driver.depth,
        interrupts: plan.fault === 'e1000e.msix-unconfigured' ? ('msix' as const) : ('polling' as const),
      },
      service: {} as NetServiceParams,
      log: (_l: string, t: string) => log(`driver: ${t}`),
    };
    const bound = timeout(spec.recovery.startMs);
    const started = driver.start(ctx).then(
      (d) => d,
      (e: unknown) => {
        const m = (e as Error).message.split('\n')[0]!;
        log(`driver start failed: ${m}`);
        if (deviceSide && !isDmaboxError(e)) finding ??= `start threw: ${m}`;
        return undefined;
      },
    );
    const r = await Promise.race([started, bound.promise, killed]);
    bound.cancel();
    if (r === 'timeout' || r === 'dead' || r === undefined) {
      if (r === 'timeout') log('driver start timed out');
      stop(me);
      return undefined;
    }
    me.device = r;
    windows = mine;
    return me;
  }

  function stop(x: Inc): void {
    x.inc.kill();
    x.kill();
    try {
      x.raw.reset();
    } catch {
      /* closed already */
    }
    x.raw.close();
  }

  let cur: Inc | undefined;
  let ready: Promise<Inc | undefined>;
  let recovering = false;

  async function bringUp(): Promise<Inc | undefined> {
    for (;;) {
      const x = await start(injector);
      if (x) {
        cur = x;
        lastProgress = performance.now();
        return x;
      }
      restarts++;
      if (restarts > maxRestarts) {
        failed = true;
        log(`restart limit ${maxRestarts} reached: failed, as the policy says`);
        return undefined;
      }
    }
  }

  function restart(from: Inc, why: string): void {
    if (cur !== from || recovering) return;
    recovering = true;
    log(`supervisor: ${why}; restarting`);
    stop(from);
    cur = undefined;
    restarts++;
    if (restarts > maxRestarts) {
      failed = true;
      log(`restart limit ${maxRestarts} reached: failed, as the policy says`);
      ready = Promise.resolve(undefined);
      recovering = false;
      return;
    }
    ready = bringUp().finally(() => (recovering = false));
  }

  // The shadow: sequence number -> digest of the payload of a request the driver took; and what was delivered.
  const shadow = new Map<number, number>();
  const seen = new Set<number>();
  const outstanding = new Set<number>();
  const rng = new Rng(plan.workloadSeed);
  const id = rng.below(0x10000);
  let seq = 0;
  const batch = new PacketBatch(Math.max(1, w.depth));
  const rxBatch = new PacketBatch(64);
  const payload = new Uint8Array(PAYLOAD);

  /** Harvest replies; true when any request of ours was answered. */
  function harvest(x: Inc, checking: boolean): boolean {
    const d = x.device!;
    let any = false;
    rxBatch.clear();
    let n: number;
    try {
      n = d.rx(rxBatch);
    } catch (e) {
      if (x.inc.state === 'running') driverThrew(x, 'rx', e);
      return false;
    }
    const bytes = d.rxPool.window.bytes;
    for (let i = 0; i < n; i++) {
      const buf = rxBatch.buf[i]!;
      const len = rxBatch.len[i]!;
      const off = d.rxPool.offset(buf);
      const frame = bytes.subarray(off, off + Math.min(len, 2048));
      const echo = icmpEchoTo(frame, frame.length, HOST_IP, 'reply');
      d.rxPool.free(buf);
      if (!echo || echo.id !== id) {
        if (frame.length >= 14) badFrame(checking, `a frame of ${len} bytes that is no reply of ours`);
        continue;
      }
      const want = shadow.get(echo.seq);
      if (want === undefined) {
        badFrame(checking, `a reply to sequence ${echo.seq}, never acknowledged as sent`);
        continue;
      }
      if (seen.has(echo.seq)) {
        duplicates++;
        badFrame(checking, `the reply to sequence ${echo.seq} delivered twice`);
        continue;
      }
      if (echo.payload.length !== PAYLOAD || digest(echo.payload) !== want) {
        badFrame(checking, `the reply to sequence ${echo.seq} corrupted`);
        continue;
      }
      if (flagged.has(echo.seq)) violations.push(`delivered the reply to sequence ${echo.seq}, which the device flagged bad`);
      seen.add(echo.seq);
      outstanding.delete(echo.seq);
      delivered++;
      any = true;
    }
    if (any) {
      lastProgress = performance.now();
      noteDevice();
      const f = firedAt();
      if (f !== undefined && recoveredAt === undefined && lastProgress >= f) recoveredAt = lastProgress;
    }
    return any;
  }

  /** A delivered frame that does not match the shadow: the driver's own doing for classes that garble its frames, else a violation. */
  function badFrame(checking: boolean, what: string): void {
    badFrames++;
    // A device that lies about data without flagging it cannot be caught by a driver: counted, not a violation.
    if (checking || !(OWN_FRAMES.has(plan.fault) || deviceSide)) violations.push(`delivered ${what}`);
  }

  function driverThrew(x: Inc, where: string, e: unknown): void {
    const m = (e as Error).message.split('\n')[0]!;
    // A typed error (ERR_...) is the driver reporting the device's fault (a net driver has no other
    // channel: its container dies and is restarted); anything else escaping it is a finding.
    if (deviceSide && !isDmaboxError(e)) finding ??= `${where} threw an unexpected ${m}`;
    log(`driver ${where} threw: ${m}`);
    restart(x, `the driver threw in ${where}`);
  }

  /** The driver's bounded wait for frames; an error from it (a device it found gone) is handled as any throw of the driver. */
  function waitRx(x: Inc, ms: number): Promise<boolean> {
    return x.device!.waitRx(ms).catch((e: unknown) => {
      if (x.inc.state === 'running' && cur === x) driverThrew(x, 'waitRx', e);
      return false;
    });
  }

  /** Send up to `count` requests; returns how many the driver took. */
  function send(x: Inc, count: number): number {
    const d = x.device!;
    batch.clear();
    const seqs: number[] = [];
    for (let k = 0; k < count; k++) {
      let b: number;
      try {
        b = d.txAlloc();
      } catch (e) {
        if (x.inc.state === 'running') driverThrew(x, 'txAlloc', e);
        break;
      }
      if (b < 0) break;
      const s = seq++ & 0xffff;
      const data = new Rng(mixSeed(plan.workloadSeed, 1000 + s));
      for (let i = 0; i < PAYLOAD; i++) payload[i] = data.below(256);
      const frame = icmpEcho('request', d.mac, peerMac, HOST_IP, PEER_IP, id, s, payload);
      d.txPool.window.bytes.set(frame, d.txPool.offset(b));
      batch.push(b, frame.length);
      seqs.push(s);
      shadow.set(s, digest(payload));
    }
    let taken = 0;
    try {
      taken = batch.count ? d.tx(batch) : 0;
    } catch (e) {
      if (x.inc.state === 'running') driverThrew(x, 'tx', e);
    }
    for (let k = 0; k < seqs.length; k++) {
      if (k < taken) outstanding.add(seqs[k]!);
      else shadow.delete(seqs[k]!);
    }
    for (let k = 0; k < batch.count; k++) d.txPool.free(batch.buf[k]!);
    batch.clear();
    framesAcked += taken;
    return taken;
  }

  const peerMac = new Uint8Array([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
  const watchdog = setInterval(
    () => {
      if (cur && working && performance.now() - lastProgress > spec.recovery.hangMs) {
        // A device fault the driver neither reported nor survived: frames stopped and nothing said why.
        if (deviceSide && cur.inc.state === 'running') finding ??= `no frame for ${spec.recovery.hangMs} ms and no error from the driver (stalled undetected)`;
        restart(cur, `no frame for ${spec.recovery.hangMs} ms`);
      }
    },
    Math.max(2, spec.recovery.hangMs / 4),
  );
  let working = true;
  // A reply not back after a quarter of the hang bound is lost (the simulated peer answers within a few turns of the event loop).
  const wait = Math.max(2, Math.floor(spec.recovery.hangMs / 4));
  try {
    ready = bringUp();
    await ready;
    let sent = 0;
    while (sent < w.operations && !failed) {
      const x = cur ?? (await ready);
      if (!x || failed) break;
      if (x.inc.state !== 'running') {
        if (x.inc.state === 'crashed') restart(x, 'the driver died');
        else await x.killed;
        continue;
      }
      const before = outstanding.size;
      sent += send(x, Math.min(w.depth, w.operations - sent));
      if (cur !== x) continue;
      if (outstanding.size === before && outstanding.size === 0) {
        // The ring took nothing and nothing is outstanding: give the device a moment.
        await Promise.race([waitRx(x, 1), x.killed]);
        if (performance.now() - lastProgress > spec.recovery.hangMs) restart(x, 'the driver takes no frame');
        continue;
      }
      const until = performance.now() + wait;
      let turns = 0;
      while (outstanding.size > 0 && cur === x && x.inc.state === 'running' && performance.now() < until) {
        // First a few turns of the event loop (the device's transmit run and the peer's reply), then the driver's bounded wait.
        const r = await Promise.race([turns++ < IMMEDIATE_TURNS ? immediate() : waitRx(x, 2), x.killed]);
        if (r === 'dead' || cur !== x || x.inc.state !== 'running') break;
        harvest(x, false);
      }
      if (cur === x && x.inc.state === 'running') {
        lost += outstanding.size;
        outstanding.clear();
      }
    }
  } finally {
    working = false;
    clearInterval(watchdog);
  }
  // A restart still under way owns the device: let it finish, then close what it started.
  if (recovering) await ready;
  if (cur) {
    const x = cur;
    await Promise.race([x.device?.close().catch(() => undefined), timeout(200).promise]);
    stop(x);
    cur = undefined;
  }
  noteDevice();

  // What the hostile device saw (e1000e.thunderclap), against the windows of the last incarnation.
  let thunderclap: ThunderclapReport | undefined;
  if (devicePlan?.thunderclap)
    thunderclap = thunderclapReport(
      devicePlan.thunderclap,
      address,
      windows.map((x) => ({ label: x.label, iova: x.iova, size: x.size, holds: /desc/.test(x.label) ? 'descriptors' : 'packets' })),
    );

  // Oracle (3), second half: with the device behaving, a fault-free incarnation passes frames.
  devicePlan?.behave();
  const verifier = new Injector(
    { fault: 'none', seed: 1, first: 0, probability: 100, interval: 1, times: 0, variants: [], canary: 0, neighbour: 0, device: 'e1000e' },
    () => performance.now(),
  );
  const v = await start(verifier);
  if (!v) violations.push('recovery: a fault-free driver could not start on the reset device');
  else {
    cur = v;
    const got = delivered;
    const until = performance.now() + spec.recovery.liveness;
    send(v, VERIFY_FRAMES);
    for (let turns = 0; delivered === got && performance.now() < until; turns++) {
      await (turns < IMMEDIATE_TURNS ? immediate() : waitRx(v, 2));
      harvest(v, true);
    }
    if (delivered === got) violations.push('recovery: no frame passed through a fault-free driver once the device behaved');
    outstanding.clear();
    await Promise.race([v.device!.close().catch(() => undefined), timeout(200).promise]);
    stop(v);
    cur = undefined;
  }
  peer.unplug();
  // Oracle (1): nothing outside the windows changed.
  violations.push(...rig.damageOutsideWindows());
  // Oracle (5): every IOMMU fault is this device's.
  const faults = rig.machine.iommu.faults().filter((f) => f.seq > iommuFaults0);
  const foreign = faults.filter((f) => f.device !== address);
  if (foreign.length) violations.push(`${foreign.length} IOMMU fault(s) attributed to ${foreign[0]!.device}, not the trial's ${address}`);
  if (thunderclap) {
    if (thunderclap.refusedUnlogged > 0)
      violations.push(`thunderclap: ${thunderclap.refusedUnlogged} refused access(es) left no IOMMU fault naming ${address}`);
    if (thunderclap.outsideWindowsAllowed > 0)
      violations.push(`thunderclap: ${thunderclap.outsideWindowsAllowed} page(s) outside the sandbox's windows reached`);
  }
  // Oracle (3): liveness.
  const fired = firedAt();
  const ttr = fired !== undefined && recoveredAt !== undefined ? recoveredAt - fired : null;
  if (ttr !== null && ttr > spec.recovery.liveness && !failed)
    violations.push(`liveness: frames flowed again after ${ttr.toFixed(0)} ms, bound ${spec.recovery.liveness} ms`);
  // Oracle (4): no fd left behind.
  const fds = fdCount();
  if (fds > fds0 + FD_SLACK) violations.push(`fds: ${fds0} before the trial, ${fds} after`);
  const outcome: Outcome = violations.length ? 'violation' : failed ? 'failed-as-policy-says' : lost ? 'client-saw-error' : 'recovered';
  for (const f of injector.firings) log(`fired at point ${f.point}: ${f.variant}: ${f.detail}`);
  if (devicePlan) log(devicePlan.injector.summary());
  if (thunderclap) log(thunderclap.text);
  for (const x of violations) log(`VIOLATION: ${x}`);
  const firings = devicePlan
    ? devicePlan.injector.fired > 0
      ? [{ point: plan.first, variant: plan.fault, detail: devicePlan.injector.summary() }]
      : []
    : injector.firings;
  const record: TrialRecord = {
    index: plan.index,
    seed: plan.seed,
    fault: plan.fault,
    iommu: !rig.iommuOff,
    outcome,
    violations,
    firings,
    restarts,
    clientErrors: lost,
    badReads: badFrames,
    writesAcked: framesAcked,
    iommuFaults: faults.length,
    timeToRecoverMs: ttr === null ? null : Math.round(ttr * 100) / 100,
    ms: Math.round((performance.now() - t0) * 100) / 100,
  };
  if (duplicates) log(`${duplicates} duplicate deliveries`);
  if (finding) record.finding = { symptom: finding };
  if (thunderclap) record.thunderclap = thunderclapSummary(thunderclap);
  return record;
}

/** The per-trial part of the Thunderclap report kept in the record (summed over a campaign by summary.ts). */
export function thunderclapSummary(t: ThunderclapReport): NonNullable<TrialRecord['thunderclap']> {
  return {
    accesses: t.accesses,
    refused: t.refused,
    refusedUnlogged: t.refusedUnlogged,
    outsideWindowsAllowed: t.outsideWindowsAllowed,
    reuseHits: t.reuseHits,
    inside: t.inside
      .filter((s) => s.bytesRead > 0 || s.bytesWritten > 0)
      .map((s) => ({ window: s.window, holds: s.holds, bytesRead: s.bytesRead, bytesWritten: s.bytesWritten, nonZeroBytesSeen: s.nonZeroBytesSeen })),
  };
}
