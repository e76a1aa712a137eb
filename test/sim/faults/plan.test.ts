/** Fault plans: the text form both ways, every refusal with its code, the registry's listing, per-trial choice. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FaultError } from '../../../sim/faults/errors.js';
import { formatPlan, makePlan, paramsOf, parsePlan, trialPlan } from '../../../sim/faults/plan.js';
import { describeFaultClasses, faultClass, faultClasses } from '../../../sim/faults/registry.js';
import { SimNvme } from '../../../sim/nvme/controller.js';
import { E1000eModel } from '../../../sim/e1000e/model.js';

function codeOf(f: () => unknown): string {
  try {
    f();
    return 'none';
  } catch (e) {
    assert.instance(e, FaultError);
    assert.match((e as Error).message, /fix:/);
    return (e as FaultError).code;
  }
}

test('a class with its defaults, seed 1', () => {
  const p = parsePlan('nvme.wrong-phase');
  assert.is(p.cls.name, 'nvme.wrong-phase');
  assert.is(p.seed, 1);
  assert.equal(p.params, { probability: 1, interval: 1, times: 1, after: 0, on: 'any' });
  assert.is(formatPlan(p), 'nvme.wrong-phase@1');
});

test('parameters and seed are parsed, typed and written back without the defaults', () => {
  const p = parsePlan(' nvme.status:type=media,on=read,probability=0.1,times=3,dnr=1@0x2a ');
  assert.equal(p.params, { probability: 0.1, interval: 1, times: 3, after: 0, on: 'read', type: 'media', dnr: 1 });
  assert.is(p.seed, 42);
  const text = formatPlan(p);
  assert.is(text, 'nvme.status:probability=0.1,times=3,on=read,type=media,dnr=1@42');
  assert.equal(parsePlan(text), p);
});

test('every class round-trips through its text form with every parameter set off its default', () => {
  for (const cls of faultClasses()) {
    const values: Record<string, number | string> = {};
    for (const s of paramsOf(cls)) {
      if (s.kind === 'enum') values[s.name] = s.values[s.values.length - 1]!;
      else values[s.name] = s.kind === 'float' ? 0.5 : s.min === s.default ? s.min + 1 : s.min;
    }
    const p = makePlan(cls.name, values, 7);
    assert.equal(parsePlan(formatPlan(p)), p, cls.name);
  }
});

test('refusals: syntax, unknown classes and parameters, values out of range, bad seeds', () => {
  assert.is(
    codeOf(() => parsePlan('')),
    'ERR_FAULT_SYNTAX',
  );
  assert.is(
    codeOf(() => parsePlan('wrong-phase')),
    'ERR_FAULT_SYNTAX',
  );
  assert.is(
    codeOf(() => parsePlan('nvme.status:type')),
    'ERR_FAULT_SYNTAX',
  );
  assert.is(
    codeOf(() => parsePlan('nvme.status:times=1,times=2')),
    'ERR_FAULT_SYNTAX',
  );
  assert.is(
    codeOf(() => parsePlan('nvme.status@-1')),
    'ERR_FAULT_SYNTAX',
  );
  assert.is(
    codeOf(() => parsePlan('nvme.status@4294967296')),
    'ERR_FAULT_SYNTAX',
  );
  assert.is(
    codeOf(() => parsePlan('nvme.status@x')),
    'ERR_FAULT_SYNTAX',
  );
  assert.is(
    codeOf(() => parsePlan('nvme.nonesuch')),
    'ERR_FAULT_CLASS',
  );
  assert.is(
    codeOf(() => parsePlan('nvme.status:colour=red')),
    'ERR_FAULT_PARAM',
  );
  assert.is(
    codeOf(() => parsePlan('nvme.status:type=cosmic')),
    'ERR_FAULT_PARAM',
  );
  assert.is(
    codeOf(() => parsePlan('nvme.status:probability=1.5')),
    'ERR_FAULT_PARAM',
  );
  assert.is(
    codeOf(() => parsePlan('nvme.status:probability=')),
    'ERR_FAULT_PARAM',
  );
  assert.is(
    codeOf(() => parsePlan('nvme.status:times=1.5')),
    'ERR_FAULT_PARAM',
  );
  assert.is(
    codeOf(() => parsePlan('nvme.status:interval=0')),
    'ERR_FAULT_PARAM',
  );
  assert.is(
    codeOf(() => makePlan('nvme.status', { times: 'many' })),
    'ERR_FAULT_PARAM',
  );
  assert.is(
    codeOf(() => makePlan('nvme.status', { type: 3 })),
    'ERR_FAULT_PARAM',
  );
  assert.is(
    codeOf(() => makePlan('nvme.status', { nope: 1 })),
    'ERR_FAULT_PARAM',
  );
  assert.is(
    codeOf(() => makePlan('nvme.status', {}, 1.5)),
    'ERR_FAULT_SYNTAX',
  );
  assert.is(
    codeOf(() => trialPlan([], 1, 0)),
    'ERR_FAULT_CLASS',
  );
  assert.equal(makePlan('nvme.status', { times: '4', probability: 0.25 }).params['times'], 4);
});

test('the registry: unique names, each class on its device, every parameter declared with a default in range, a listing naming all', () => {
  const names = faultClasses().map((c) => c.name);
  assert.is(new Set(names).size, names.length);
  for (const c of faultClasses()) {
    assert.ok(c.name.startsWith(`${c.device}.`), c.name);
    assert.is(faultClass(c.name), c);
    assert.ok(c.doc.length > 20 && c.event.length > 5, c.name);
    for (const s of paramsOf(c)) {
      if (s.kind === 'enum') assert.ok(s.values.includes(s.default), `${c.name}.${s.name}`);
      else assert.ok(s.default >= s.min && s.default <= s.max, `${c.name}.${s.name}`);
    }
  }
  assert.ok(faultClasses('nvme').length >= 15);
  const listing = describeFaultClasses();
  for (const n of names) assert.ok(listing.includes(`${n}: `), n);
  assert.match(listing, /probability=float 0\.\.1/);
  assert.not.match(describeFaultClasses('nvme'), /e1000e\./);
});

test('trialPlan: a pure function of (seed, trial), every plan chosen over many trials, seeds differ per trial', () => {
  const plans = [parsePlan('nvme.status'), parsePlan('nvme.wrong-cid'), parsePlan('nvme.irq-lost')];
  const a = Array.from({ length: 300 }, (_, t) => trialPlan(plans, 99, t));
  const b = Array.from({ length: 300 }, (_, t) => trialPlan(plans, 99, t));
  assert.equal(a, b);
  assert.is(new Set(a.map((p) => p.cls.name)).size, 3);
  assert.ok(new Set(a.map((p) => p.seed)).size > 290);
  assert.not.equal(
    a.map((p) => p.cls.name),
    Array.from({ length: 300 }, (_, t) => trialPlan(plans, 100, t).cls.name),
  );
});

test('a model refuses a plan for the other model; takes its own', () => {
  assert.is(
    codeOf(() => new SimNvme({ faultPlan: parsePlan('e1000e.link-flap') })),
    'ERR_FAULT_CLASS',
  );
  assert.is(
    codeOf(() => new E1000eModel({ faultPlan: parsePlan('nvme.status') })),
    'ERR_FAULT_CLASS',
  );
  assert.is(new SimNvme({ faultPlan: parsePlan('nvme.status') }).faultPlan!.injector.events, 0);
  assert.is(new E1000eModel({ faultPlan: parsePlan('e1000e.link-flap') }).faultPlan!.injector.events, 0);
  assert.is(new SimNvme().faultPlan, undefined);
  assert.is(new E1000eModel().faultPlan, null);
});

test.run();
