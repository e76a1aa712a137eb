/**
 * The 82574L register map (spec/e1000e) against the datasheet's tables, transcribed here on their
 * own: every register's offset (82574 §10.1 register summary, §10.2) and every field's bits as the
 * datasheet writes them ("hi:lo" or "n"). A register or a field the spec declares and the table
 * below lacks fails too, so nothing enters the map unchecked.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { BitField, Register } from '../../../spec/field.js';
import {
  REG,
  GENERAL,
  INTERRUPTS,
  RECEIVE,
  TRANSMIT,
  STAT,
  STAT32,
  STAT64,
  STAT_FIRST,
  STAT_LAST,
  BAR0_SIZE,
  PCI_ID,
  MSIX_LAYOUT,
  CAUSE,
  NVM,
  MTA_DWORDS,
  RAR_ENTRIES,
  TIPG_COPPER,
  mtaOffset,
  ralOffset,
  rahOffset,
  rctlBufferSize,
  statusSpeed,
} from '../../../spec/e1000e/registers.js';
import { sources, importsOf } from '../../drivers/e1000e/source.js';

/** Register offsets in BAR0, from the datasheet's register summary. */
const OFFSETS: Record<string, number> = {
  CTRL: 0x00000,
  STATUS: 0x00008,
  EEC: 0x00010,
  EERD: 0x00014,
  CTRL_EXT: 0x00018,
  MDIC: 0x00020,
  ICR: 0x000c0,
  ITR: 0x000c4,
  ICS: 0x000c8,
  IMS: 0x000d0,
  IMC: 0x000d8,
  EIAC: 0x000dc,
  IAM: 0x000e0,
  IVAR: 0x000e4,
  RCTL: 0x00100,
  TCTL: 0x00400,
  TIPG: 0x00410,
  RDBAL: 0x02800,
  RDBAH: 0x02804,
  RDLEN: 0x02808,
  RDH: 0x02810,
  RDT: 0x02818,
  RDTR: 0x02820,
  RXDCTL: 0x02828,
  TDBAL: 0x03800,
  TDBAH: 0x03804,
  TDLEN: 0x03808,
  TDH: 0x03810,
  TDT: 0x03818,
  TIDV: 0x03820,
  TXDCTL: 0x03828,
  CRCERRS: 0x04000,
  RXERRC: 0x0400c,
  MPC: 0x04010,
  GPRC: 0x04074,
  BPRC: 0x04078,
  MPRC: 0x0407c,
  GPTC: 0x04080,
  GORCL: 0x04088,
  GORCH: 0x0408c,
  GOTCL: 0x04090,
  GOTCH: 0x04094,
  RNBC: 0x040a0,
  RUC: 0x040a4,
  ROC: 0x040ac,
  TORL: 0x040c0,
  TORH: 0x040c4,
  TOTL: 0x040c8,
  TOTH: 0x040cc,
  TPR: 0x040d0,
  TPT: 0x040d4,
  MPTC: 0x040f0,
  BPTC: 0x040f4,
  RXCSUM: 0x05000,
  RFCTL: 0x05008,
  MTA: 0x05200,
  RAL: 0x05400,
  RAH: 0x05404,
};

/** The interrupt cause layout of ICR/ICS/IMS/IMC/IAM (§10.2.4.1). */
const CAUSES = {
  TXDW: '0',
  TXQE: '1',
  LSC: '2',
  RXDMT0: '4',
  RXO: '6',
  RXT0: '7',
  MDAC: '9',
  TXD_LOW: '15',
  SRPD: '16',
  ACK: '17',
  MNG: '18',
  RXQ0: '20',
  RXQ1: '21',
  TXQ0: '22',
  TXQ1: '23',
  OTHER: '24',
};

/** Fields by register, bits as the datasheet's field tables give them. */
const FIELDS: Record<string, Record<string, string>> = {
  CTRL: {
    FD: '0',
    GIO_MASTER_DISABLE: '2',
    ASDE: '5',
    SLU: '6',
    SPEED: '9:8',
    FRCSPD: '11',
    FRCDPX: '12',
    RST: '26',
    RFCE: '27',
    TFCE: '28',
    VME: '30',
    PHY_RST: '31',
  },
  STATUS: { FD: '0', LU: '1', TXOFF: '4', SPEED: '7:6', ASDV: '9:8', PHYRA: '10', GIO_MASTER_ENABLE: '19' },
  EEC: { EE_SK: '0', EE_CS: '1', EE_DI: '2', EE_DO: '3', EE_REQ: '6', EE_GNT: '7', EE_PRES: '8', AUTO_RD: '9' },
  EERD: { START: '0', DONE: '1', ADDR: '15:2', DATA: '31:16' },
  CTRL_EXT: { SPD_BYPS: '15', RO_DIS: '17', EIAME: '24', IAME: '27', DRV_LOAD: '28', INT_TIMERS_CLEAR_ENA: '29', PBA_CLR: '31' },
  MDIC: { DATA: '15:0', REGADD: '20:16', PHYADD: '25:21', OP: '27:26', R: '28', I: '29', E: '30' },
  ICR: { ...CAUSES, INT_ASSERTED: '31' },
  ITR: { INTERVAL: '15:0' },
  ICS: CAUSES,
  IMS: CAUSES,
  IMC: CAUSES,
  IAM: CAUSES,
  EIAC: { RXQ0: '20', RXQ1: '21', TXQ0: '22', TXQ1: '23', OTHER: '24' },
  IVAR: {
    RXQ0_VECTOR: '2:0',
    RXQ0_VALID: '3',
    RXQ1_VECTOR: '6:4',
    RXQ1_VALID: '7',
    TXQ0_VECTOR: '10:8',
    TXQ0_VALID: '11',
    TXQ1_VECTOR: '14:12',
    TXQ1_VALID: '15',
    OTHER_VECTOR: '18:16',
    OTHER_VALID: '19',
  },
  RCTL: {
    EN: '1',
    SBP: '2',
    UPE: '3',
    MPE: '4',
    LPE: '5',
    LBM: '7:6',
    RDMTS: '9:8',
    DTYP: '11:10',
    MO: '13:12',
    BAM: '15',
    BSIZE: '17:16',
    VFE: '18',
    CFIEN: '19',
    CFI: '20',
    DPF: '22',
    PMCF: '23',
    BSEX: '25',
    SECRC: '26',
    FLXBUF: '30:27',
  },
  RDBAL: { RDBAL: '31:4' },
  RDBAH: { RDBAH: '31:0' },
  RDLEN: { LEN: '19:7' },
  RDH: { RDH: '15:0' },
  RDT: { RDT: '15:0' },
  RDTR: { DELAY: '15:0', FPD: '31' },
  RXDCTL: { PTHRESH: '5:0', HTHRESH: '13:8', WTHRESH: '21:16', GRAN: '24' },
  RXCSUM: { PCSS: '7:0', IPOFL: '8', TUOFL: '9', IPPCSE: '12', PCSD: '13' },
  RFCTL: {
    ISCSI_DIS: '0',
    NFSW_DIS: '6',
    NFSR_DIS: '7',
    IPV6_DIS: '10',
    IPV6_XSUM_DIS: '11',
    ACK_DIS: '12',
    IPFRSP_DIS: '14',
    EXSTEN: '15',
    IPV6_EX_DIS: '16',
    NEW_IPV6_EXT_DIS: '17',
  },
  RAL: { RAL: '31:0' },
  RAH: { RAH: '15:0', ASEL: '17:16', AV: '31' },
  TCTL: { EN: '1', PSP: '3', CT: '11:4', COLD: '21:12', SWXOFF: '22', RTLC: '24' },
  TIPG: { IPGT: '9:0', IPGR1: '19:10', IPGR2: '29:20' },
  TDBAL: { TDBAL: '31:4' },
  TDBAH: { TDBAH: '31:0' },
  TDLEN: { LEN: '19:7' },
  TDH: { TDH: '15:0' },
  TDT: { TDT: '15:0' },
  TIDV: { IDV: '15:0', FPD: '31' },
  TXDCTL: { PTHRESH: '5:0', HTHRESH: '13:8', WTHRESH: '21:16', MUST_BE_ONE: '22', GRAN: '24', LWTHRESH: '31:25' },
};

const META = new Set(['offset', 'width', 'spec']);

function fieldsOf(r: Register): [string, BitField][] {
  return Object.entries(r).filter(([k]) => !META.has(k)) as [string, BitField][];
}

function bitsOf(f: BitField): string {
  return f.bits === 1 ? `${f.lo}` : `${f.lo + f.bits - 1}:${f.lo}`;
}

test("every register at the datasheet's offset, 32 bits wide, with a section; no register outside the table", () => {
  const names = Object.keys(REG);
  assert.equal(names.slice().sort(), Object.keys(OFFSETS).sort(), 'the spec declares exactly the registers of the table');
  for (const [name, r] of Object.entries(REG) as [string, Register][]) {
    assert.is(r.offset, OFFSETS[name], `${name} at 0x${OFFSETS[name]!.toString(16)}`);
    assert.is(r.width, 32, `${name} is a 32-bit register`);
    assert.match(r.spec, /^82574 §(7|10)\./, `${name} cites its datasheet section`);
    assert.ok(r.offset + 4 <= BAR0_SIZE, `${name} inside BAR0`);
  }
});

test('no two registers share a name across the groups, nor an offset', () => {
  const groups = [GENERAL, INTERRUPTS, RECEIVE, TRANSMIT, STAT];
  assert.is(
    groups.reduce((n, g) => n + Object.keys(g).length, 0),
    Object.keys(REG).length,
    'REG merged no name twice',
  );
  const seen = new Map<number, string>();
  for (const [name, r] of Object.entries(REG) as [string, Register][]) {
    assert.not.ok(seen.has(r.offset), `${name} and ${seen.get(r.offset)} share 0x${r.offset.toString(16)}`);
    seen.set(r.offset, name);
  }
});

test('every field where the datasheet puts it; no field outside the table; no two fields of a register overlap', () => {
  for (const [name, r] of Object.entries(REG) as [string, Register][]) {
    const want = FIELDS[name] ?? {};
    const got = fieldsOf(r);
    assert.equal(got.map(([k]) => k).sort(), Object.keys(want).sort(), `${name}: the fields of the datasheet's table`);
    let used = 0;
    for (const [k, f] of got) {
      assert.is(bitsOf(f), want[k], `${name}.${k} is bits ${want[k]}`);
      assert.is(used & f.mask, 0, `${name}.${k} overlaps another field`);
      used = (used | f.mask) >>> 0;
      assert.ok(f.mask >= 0, `${name}.${k}'s mask is an unsigned number`);
    }
  }
  assert.is(REG.CTRL.RST.mask, 0x0400_0000);
  assert.is(REG.RAH.AV.mask, 0x8000_0000, 'bit 31 is a positive number');
  assert.is(REG.ICR.INT_ASSERTED.mask, 0x8000_0000);
});

test('ICR, ICS, IMS, IMC and IAM share one cause layout (one declaration)', () => {
  for (const r of [REG.ICS, REG.IMS, REG.IMC, REG.IAM]) {
    for (const [k, f] of Object.entries(CAUSE)) assert.is((r as unknown as Record<string, BitField>)[k], f, `${k} is the same declaration`);
  }
  assert.is(REG.ICR.RXT0, CAUSE.RXT0);
  assert.is(REG.EIAC.RXQ0, CAUSE.RXQ0);
});

test('the statistics: inside their block, 64-bit counters as low/high pairs, every counter reported once', () => {
  for (const [name, r] of Object.entries(STAT)) assert.ok(r.offset >= STAT_FIRST && r.offset <= STAT_LAST, `${name} inside 0x4000..0x40fc`);
  for (const [lo, hi] of STAT64) assert.is(STAT[hi].offset - STAT[lo].offset, 4, `${lo}/${hi} are a low/high pair`);
  const reported = [...STAT32, ...STAT64.flat()];
  assert.is(new Set(reported).size, reported.length);
  assert.equal(reported.slice().sort(), Object.keys(STAT).sort(), 'every declared statistic is read by the driver');
});

test('register arrays: 128 MTA dwords, 16 RAL/RAH pairs 8 bytes apart', () => {
  assert.is(MTA_DWORDS, 128);
  assert.is(RAR_ENTRIES, 16);
  assert.equal([mtaOffset(0), mtaOffset(127)], [0x5200, 0x53fc]);
  assert.equal([ralOffset(0), rahOffset(0), ralOffset(15), rahOffset(15)], [0x5400, 0x5404, 0x5478, 0x547c]);
  assert.ok(mtaOffset(MTA_DWORDS) <= ralOffset(0), 'the MTA ends before the receive addresses');
});

test('RCTL buffer sizes (§10.2.5.1), STATUS speeds (§10.2.2.2), TIPG for copper (§10.2.6.2)', () => {
  const bsex = REG.RCTL.BSEX.mask;
  assert.equal(
    [0, 1, 2, 3].map((b) => rctlBufferSize(b << 16)),
    [2048, 1024, 512, 256],
  );
  assert.equal(
    [1, 2, 3].map((b) => rctlBufferSize((b << 16) | bsex)),
    [16384, 8192, 4096],
  );
  assert.is(rctlBufferSize(bsex), 0, 'BSIZE 00b with BSEX is reserved');
  assert.equal(
    [0, 1, 2, 3].map((s) => statusSpeed(s << 6)),
    [10, 100, 1000, 1000],
  );
  assert.is(TIPG_COPPER, 8 | (8 << 10) | (6 << 20));
});

test('PCI identity, BARs and the NVM map', () => {
  assert.equal([PCI_ID.VENDOR, PCI_ID.DEVICE_82574L, PCI_ID.CLASS], [0x8086, 0x10d3, 0x020000]);
  assert.is(BAR0_SIZE, 128 * 1024);
  assert.equal([MSIX_LAYOUT.VECTORS, MSIX_LAYOUT.BAR, MSIX_LAYOUT.BAR_SIZE], [5, 3, 0x4000]);
  assert.ok(MSIX_LAYOUT.TABLE_OFFSET + 16 * MSIX_LAYOUT.VECTORS <= MSIX_LAYOUT.PBA_OFFSET, 'the table ends before the PBA');
  assert.equal([NVM.MAC0, NVM.MAC1, NVM.MAC2, NVM.CHECKSUM, NVM.CHECKSUM_SUM], [0, 1, 2, 0x3f, 0xbaba]);
});

test('spec/e1000e imports spec/field.ts and itself only', () => {
  const files = sources('spec/e1000e');
  assert.ok(files.length >= 8);
  for (const f of files) for (const dep of importsOf(f)) assert.ok(dep === 'spec/field.ts' || dep.startsWith('spec/e1000e/'), `${f} imports ${dep}`);
});

test.run();
