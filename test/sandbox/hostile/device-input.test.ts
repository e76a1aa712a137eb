/**
 * Hostile containers and device-model input: a confined driver, after READY, feeds its own
 * device what no device should have to take. The manager runs in a process of its own
 * (fixtures/manager-pair.ts) with the attacked sandbox and a bystander of the other kind, so a
 * hang or a crash there is a failed test here, not a hung or dead test run.
 *
 * - prp-loop: NVMe READs whose PRP list chains to itself end with the status NVMe 1.4 §4.3 gives
 *   (Invalid PRP Offset for a chain pointer with an offset, Invalid Field for a list page walked
 *   twice), the manager answers status within a bound, and the bystander NIC answers ARP.
 * - msix-vector: an e1000e IVAR entry naming MSI-X vector 7 of 5, with MSI-X enabled through
 *   config space and a TX kick: the message is dropped and counted by the device, the manager
 *   stays up and answers, the bystander disk reads.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fork, type ChildProcess } from 'node:child_process';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(import.meta.url);
const MANAGER_PAIR = fileURLToPath(new URL(`./fixtures/manager-pair${extname(here)}`, import.meta.url));
/** How long the manager may take to answer `status` while (and after) it is attacked. */
const ANSWER_MS = 2000;

interface Reply {
  id: number;
  ok: boolean;
  value: unknown;
}

interface Status {
  attacked: { state: string };
  bystander: { state: string };
  reports: string[];
  model?: { faultCount: number; fatal: boolean; msixDropped: number; nvme?: { badPrpLists: number }; nic?: { irqBadVector: number; deviceFaults: number } };
}

/** The manager process, and a bounded question to it. */
class ManagerProcess {
  readonly child: ChildProcess;
  private next = 1;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  exit: string | undefined;
  stderr = '';

  constructor(attack: string, kind: 'nvme' | 'e1000e') {
    this.child = fork(MANAGER_PAIR, [attack, kind], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    this.child.on('message', (m: Reply | { ready: true }) => {
      if ('id' in m) this.waiting.get(m.id)?.(m);
    });
    this.child.on('exit', (code, signal) => {
      this.exit = `exited (code ${code}, signal ${signal})`;
    });
  }

  ready(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the manager did not get both sandboxes serving within ${ms} ms: ${this.stderr}`)), ms);
      this.child.on('message', (m: { ready?: boolean }) => {
        if (m.ready) {
          clearTimeout(t);
          resolve();
        }
      });
      this.child.on('exit', () => {
        clearTimeout(t);
        reject(new Error(`the manager ${this.exit} before serving: ${this.stderr}`));
      });
    });
  }

  ask<T>(op: string, ms = ANSWER_MS): Promise<T> {
    if (this.exit !== undefined) return Promise.reject(new Error(`the manager ${this.exit}: ${this.stderr}`));
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`the manager did not answer '${op}' within ${ms} ms (${this.exit ?? 'still running: hung'})`));
      }, ms);
      const onExit = (): void => {
        clearTimeout(t);
        reject(new Error(`the manager ${this.exit} while asked '${op}': ${this.stderr}`));
      };
      this.child.once('exit', onExit);
      this.waiting.set(id, (r) => {
        clearTimeout(t);
        this.child.off('exit', onExit);
        this.waiting.delete(id);
        if (r.ok) resolve(r.value as T);
        else reject(new Error(`${op}: ${String(r.value)}`));
      });
      this.child.send({ id, op });
    });
  }

  /** Status, asked every 100 ms (each answer bounded) until the attack has said `done`. */
  async attackDone(ms = 20_000): Promise<Status> {
    const end = Date.now() + ms;
    for (;;) {
      const s = await this.ask<Status>('status');
      if (s.reports.some((l) => l === 'done' || l.startsWith('threw '))) return s;
      if (Date.now() > end) throw new Error(`the attack did not finish within ${ms} ms: ${s.reports.join(' | ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async close(): Promise<void> {
    if (this.exit === undefined) {
      await this.ask('stop', 10_000).catch(() => undefined);
      if (this.exit === undefined) this.child.kill('SIGKILL');
    }
  }
}

/**
 * The attacked model's counters once `settled` holds for them: the device process reports them in
 * its heartbeats (every 250 ms), so the first answers after the attack may predate it.
 */
async function modelWhen(m: ManagerProcess, settled: (x: NonNullable<Status['model']>) => boolean, ms = 5000): Promise<NonNullable<Status['model']>> {
  const end = Date.now() + ms;
  for (;;) {
    const s = await m.ask<Status>('status');
    if (s.model !== undefined && settled(s.model)) return s.model;
    if (Date.now() > end) throw new Error(`the device process's counters did not show the attack within ${ms} ms: ${JSON.stringify(s.model)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Three status questions in a row, each answered within ANSWER_MS. */
async function responsive(m: ManagerProcess): Promise<Status> {
  let s: Status | undefined;
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    s = await m.ask<Status>('status');
    assert.ok(Date.now() - t0 < ANSWER_MS, `status answered in ${Date.now() - t0} ms`);
  }
  return s!;
}

test('prp-loop: NVMe READs whose PRP list chains to itself end with an NVMe status; the manager answers, the bystander NIC serves', async () => {
  const m = new ManagerProcess('prp-loop', 'nvme');
  try {
    await m.ready(60_000);
    const s = await m.attackDone();
    const lines = s.reports.join('\n');
    assert.ok(!lines.includes('threw'), lines);
    assert.ok(s.reports.includes('read 1 -> ERR_NVME_STATUS SC 0x13'), `Invalid PRP Offset for a chain pointer holding its own address:\n${lines}`);
    assert.ok(s.reports.includes('read 2 -> ERR_NVME_STATUS SC 0x02'), `Invalid Field for a list page walked twice:\n${lines}`);
    const after = await responsive(m);
    assert.is(after.attacked.state, 'running', 'the attacked sandbox still serves');
    assert.is(after.bystander.state, 'running');
    const model = await modelWhen(m, (x) => (x.nvme?.badPrpLists ?? 0) >= 1);
    assert.is(model.nvme?.badPrpLists, 1);
    assert.is(model.faultCount, 0, 'a bad list is a command status, not a device fault');
    assert.match(await m.ask<string>('probe', 10_000), /^ARP reply from 52:55:0a:00:02:02$/);
  } finally {
    await m.close();
  }
});

test('msix-vector: IVAR naming MSI-X vector 7 of 5, then a TX kick: dropped and counted; the manager stays up and answers, the bystander disk reads', async () => {
  const m = new ManagerProcess('msix-vector', 'e1000e');
  try {
    await m.ready(60_000);
    const s = await m.attackDone();
    const lines = s.reports.join('\n');
    assert.ok(!lines.includes('threw'), lines);
    assert.ok(
      s.reports.some((l) => l.startsWith('kicked')),
      lines,
    );
    const after = await responsive(m);
    assert.is(after.attacked.state, 'running', 'the attacked sandbox still serves');
    assert.is(after.bystander.state, 'running');
    const model = await modelWhen(m, (x) => (x.nic?.irqBadVector ?? 0) >= 1);
    assert.is(model.faultCount, 0, 'a dropped message is not a device fault');
    assert.match(await m.ask<string>('probe', 10_000), /^read 4096 bytes$/);
  } finally {
    await m.close();
  }
});

test.run();
