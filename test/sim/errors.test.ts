import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DmaboxError } from '../../common/errors.js';
import { SimError, type SimCode, type SimCoreCode } from '../../sim/errors.js';
import { Msi } from '../../sim/msi.js';
import { Msix } from '../../sim/msix.js';
import { backToBack, endpoint, type WirePort } from '../../sim/wire.js';

const refused =
  (code: SimCode, message: RegExp) =>
  (e: unknown): boolean =>
    e instanceof SimError && e.code === code && message.test(e.message);

test('SimError is a DmaboxError whose code is one of the SimCode set', () => {
  const e = new SimError('ERR_SIM_STATE', 'closed');
  assert.instance(e, DmaboxError);
  assert.is(e.name, 'SimError');
  const core: SimCoreCode = 'ERR_SIM_ARG';
  const code: SimCode = core;
  assert.ok(code);
  // @ts-expect-error: SimCode is closed; a driver's code is not one of it
  assert.ok(new SimError('ERR_NVME_TIMEOUT', 'x'));
});

test('MSI: a vector count that is not a power of two up to 32 is ERR_SIM_ARG', () => {
  const cfg = new DataView(new ArrayBuffer(256));
  assert.throws(() => new Msi(cfg, 0xa0, 3), refused('ERR_SIM_ARG', /MSI vectors 3: must be 1, 2, 4, 8, 16 or 32/));
  assert.throws(() => new Msi(cfg, 0xa0, 64), refused('ERR_SIM_ARG', /MSI vectors 64/));
  assert.is(new Msi(cfg, 0xa0, 4).vectors, 4);
});

test('MSI-X: a vector the function does not have is a dropped message, counted, never an exception', () => {
  const m = new Msix(4);
  m.setControl(0x8000); // MSI-X Enable
  for (const v of [4, 7, -1, 2048, 0.5, Number.NaN]) assert.is(m.raise(v), 'dropped', String(v));
  assert.is(m.dropped, 6);
  assert.is(m.raise(3), 'pending', 'vector 3 exists (masked at reset)');
});

test('wire: one NIC back to back with itself, and a send length outside the frame, are ERR_SIM_ARG', () => {
  const received: number[] = [];
  const nic: WirePort = {
    attachWire: () => {},
    receive: (_f, len) => {
      received.push(len);
      return true;
    },
  };
  assert.throws(() => backToBack(nic, nic), refused('ERR_SIM_ARG', /two different NICs/));
  const ep = endpoint(nic, () => {});
  const frame = new Uint8Array(60);
  assert.throws(() => ep.send(frame, 61), refused('ERR_SIM_ARG', /send length 61 is outside the frame's 60 bytes/));
  assert.throws(() => ep.send(frame, -1), refused('ERR_SIM_ARG', /send length -1/));
  assert.is(ep.send(frame), true);
  assert.equal(received, [60]);
});

test.run();
