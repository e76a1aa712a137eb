/**
 * spec/nvme against the NVMe 1.4 specification: register offsets and field bit ranges (§3.1),
 * queue entry layouts (§4.2, §4.6), command dword fields (§5, §6), Identify layouts and their
 * round trips (§5.15.2), status fields and codes (§4.6.1), the PRP rules (§4.3). The expected
 * numbers are typed from the spec's figures, not derived from the declarations.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { getField, getField64, setField, type BitField } from '../../../spec/field.js';
import { cqHeadDoorbell, decodeCap, decodeVs, encodeCap, encodeCc, REG, SHN, SHST, sqTailDoorbell } from '../../../spec/nvme/registers.js';
import { CQE, CQE_DW2, CQE_DW3, CQE_SIZE_LOG2, dword, SQE, SQE_CDW0, SQE_SIZE_LOG2 } from '../../../spec/nvme/queue.js';
import {
  ABORT,
  AdminOpcode,
  Cns,
  CREATE_IO_CQ_CDW11,
  CREATE_IO_QUEUE_CDW10,
  CREATE_IO_SQ_CDW11,
  DSM,
  DSM_MAX_RANGES,
  DSM_RANGE,
  FeatureId,
  MAX_BLOCKS_PER_COMMAND,
  NUMBER_OF_QUEUES,
  NvmOpcode,
  RW_CDW12,
  WRITE_ZEROES_CDW12,
} from '../../../spec/nvme/commands.js';
import {
  encodeIdentifyController,
  encodeIdentifyNamespace,
  encodeNamespaceList,
  FLBAS,
  ID_CTRL,
  ID_NS,
  IDENTIFY_SIZE,
  LBAF,
  ONCS,
  parseIdentifyController,
  parseIdentifyNamespace,
  parseNamespaceList,
} from '../../../spec/nvme/identify.js';
import { CommandSpecificSc, dnrOf, GenericSc, Sct, scOf, sctOf, STATUS, statusName, statusOf } from '../../../spec/nvme/status.js';
import { Prp2, prp2Use, prpEntryChains, prpListEntries, prpMaxTransfer, prpPageCount } from '../../../spec/nvme/prp.js';

/** [hi, lo] of a field, as the spec writes it. */
const range = (f: BitField): [number, number] => [f.lo + f.bits - 1, f.lo];

test('register offsets and widths (§3.1)', () => {
  const r = REG;
  assert.equal(
    [r.CAP, r.VS, r.INTMS, r.INTMC, r.CC, r.CSTS, r.NSSR, r.AQA, r.ASQ, r.ACQ, r.SQ0TDBL].map((x) => [x.offset, x.width]),
    [
      [0x00, 64],
      [0x08, 32],
      [0x0c, 32],
      [0x10, 32],
      [0x14, 32],
      [0x1c, 32],
      [0x20, 32],
      [0x24, 32],
      [0x28, 64],
      [0x30, 64],
      [0x1000, 32],
    ],
  );
  for (const x of [r.CAP, r.VS, r.CC, r.CSTS, r.AQA, r.ASQ, r.SQ0TDBL]) assert.match(x.spec, /^NVMe 1\.4 §3\.1\.\d+$/);
  // §3.1.24/25: 1000h + (2y * (4 << DSTRD)) and 1000h + ((2y + 1) * (4 << DSTRD)).
  assert.is(sqTailDoorbell(0, 0), 0x1000);
  assert.is(cqHeadDoorbell(0, 0), 0x1004);
  assert.is(sqTailDoorbell(3, 0), 0x1018);
  assert.is(cqHeadDoorbell(3, 2), 0x1000 + 7 * 16);
});

test('CAP fields, including those above bit 31 (§3.1.1)', () => {
  const c = REG.CAP;
  assert.equal([c.MQES, c.CQR, c.AMS, c.TO, c.DSTRD, c.NSSRS, c.CSS, c.BPS, c.MPSMIN, c.MPSMAX, c.PMRS, c.CMBS].map(range), [
    [15, 0],
    [16, 16],
    [18, 17],
    [31, 24],
    [35, 32],
    [36, 36],
    [44, 37],
    [45, 45],
    [51, 48],
    [55, 52],
    [56, 56],
    [57, 57],
  ]);
  // The lab's QEMU 7.2 controller: MQES 2047, CQR, TO 15, DSTRD 0, CSS NVM plus bits 6 and 7, MPSMAX 4.
  const lab = 0x004018200f0107ffn;
  const cap = decodeCap(lab);
  assert.equal([cap.MQES, cap.CQR, cap.AMS, cap.TO, cap.DSTRD, cap.NSSRS, cap.CSS, cap.MPSMIN, cap.MPSMAX], [0x7ff, 1, 0, 15, 0, 0, 0xc1, 0, 4]);
  assert.is(getField64(lab, c.DSTRD), 0);
  assert.is(encodeCap(cap), lab, 'round trip');
  assert.is(encodeCap({ DSTRD: 3, MPSMAX: 1 }), (3n << 32n) | (1n << 52n));
});

test('VS, CC, CSTS, AQA fields and values (§3.1.2, §3.1.5, §3.1.6, §3.1.8)', () => {
  assert.equal(decodeVs(0x10400), { MJR: 1, MNR: 4, TER: 0 });
  const cc = REG.CC;
  assert.equal([cc.EN, cc.CSS, cc.MPS, cc.AMS, cc.SHN, cc.IOSQES, cc.IOCQES].map(range), [
    [0, 0],
    [6, 4],
    [10, 7],
    [13, 11],
    [15, 14],
    [19, 16],
    [23, 20],
  ]);
  const cs = REG.CSTS;
  assert.equal([cs.RDY, cs.CFS, cs.SHST, cs.NSSRO, cs.PP].map(range), [
    [0, 0],
    [1, 1],
    [3, 2],
    [4, 4],
    [5, 5],
  ]);
  assert.equal([REG.AQA.ASQS, REG.AQA.ACQS].map(range), [
    [11, 0],
    [27, 16],
  ]);
  assert.equal([SHN.NORMAL, SHN.ABRUPT, SHST.OCCURRING, SHST.COMPLETE], [1, 2, 1, 2]);
  assert.is(encodeCc({ EN: 1, IOSQES: 6, IOCQES: 4, SHN: SHN.NORMAL }), 0x00464001);
  assert.is(getField(0b1101, cs.SHST), 3);
  assert.throws(() => encodeCc({ SHN: 4 }), /does not fit/);
});

test('submission queue entry: 64 bytes of dwords, CDW0 fields (§4.2)', () => {
  assert.is(SQE.size, 64);
  assert.is(2 ** SQE_SIZE_LOG2, 64);
  assert.equal(
    [SQE.CDW0, SQE.NSID, SQE.CDW2, SQE.CDW3, SQE.MPTR, SQE.PRP1, SQE.PRP2, SQE.CDW10, SQE.CDW11, SQE.CDW12, SQE.CDW13, SQE.CDW14, SQE.CDW15].map((m) => [
      m.offset,
      m.size,
    ]),
    [
      [0, 4],
      [4, 4],
      [8, 4],
      [12, 4],
      [16, 8],
      [24, 8],
      [32, 8],
      [40, 4],
      [44, 4],
      [48, 4],
      [52, 4],
      [56, 4],
      [60, 4],
    ],
  );
  assert.equal([dword(SQE.PRP1), dword(SQE.PRP2), dword(SQE.CDW10)], [6, 8, 10]);
  assert.equal([SQE_CDW0.OPC, SQE_CDW0.FUSE, SQE_CDW0.PSDT, SQE_CDW0.CID].map(range), [
    [7, 0],
    [9, 8],
    [15, 14],
    [31, 16],
  ]);
});

test('completion queue entry: 16 bytes, DW2 SQHD/SQID, DW3 CID/P/status (§4.6)', () => {
  assert.is(CQE.size, 16);
  assert.is(2 ** CQE_SIZE_LOG2, 16);
  assert.equal(
    [CQE.DW0, CQE.DW1, CQE.DW2, CQE.DW3].map((m) => m.offset),
    [0, 4, 8, 12],
  );
  assert.equal([CQE_DW2.SQHD, CQE_DW2.SQID].map(range), [
    [15, 0],
    [31, 16],
  ]);
  assert.equal([CQE_DW3.CID, CQE_DW3.P, CQE_DW3.STATUS].map(range), [
    [15, 0],
    [16, 16],
    [31, 17],
  ]);
  // A status field with its phase: the 16-bit field at byte 14 is P in bit 0, then the status.
  const dw3 = (statusOf(Sct.GENERIC, GenericSc.LBA_OUT_OF_RANGE, true) << 17) | (1 << 16) | 0x1234;
  assert.is(getField(dw3 >>> 0, CQE_DW3.CID), 0x1234);
  assert.is(getField(dw3 >>> 0, CQE_DW3.P), 1);
  assert.is(scOf(getField(dw3 >>> 0, CQE_DW3.STATUS)), 0x80);
});

test('opcodes and command dword fields (§5, §6)', () => {
  assert.equal(
    [
      AdminOpcode.DELETE_IO_SQ,
      AdminOpcode.CREATE_IO_SQ,
      AdminOpcode.DELETE_IO_CQ,
      AdminOpcode.CREATE_IO_CQ,
      AdminOpcode.IDENTIFY,
      AdminOpcode.ABORT,
      AdminOpcode.SET_FEATURES,
      AdminOpcode.GET_FEATURES,
    ],
    [0x00, 0x01, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0a],
  );
  assert.equal([NvmOpcode.FLUSH, NvmOpcode.WRITE, NvmOpcode.READ, NvmOpcode.WRITE_ZEROES, NvmOpcode.DATASET_MANAGEMENT], [0, 1, 2, 8, 9]);
  assert.equal([Cns.NAMESPACE, Cns.CONTROLLER, Cns.ACTIVE_NAMESPACE_LIST], [0, 1, 2]);
  assert.equal([FeatureId.VOLATILE_WRITE_CACHE, FeatureId.NUMBER_OF_QUEUES], [6, 7]);
  assert.equal([CREATE_IO_QUEUE_CDW10.QID, CREATE_IO_QUEUE_CDW10.QSIZE].map(range), [
    [15, 0],
    [31, 16],
  ]);
  assert.equal([CREATE_IO_CQ_CDW11.PC, CREATE_IO_CQ_CDW11.IEN, CREATE_IO_CQ_CDW11.IV].map(range), [
    [0, 0],
    [1, 1],
    [31, 16],
  ]);
  assert.equal([CREATE_IO_SQ_CDW11.PC, CREATE_IO_SQ_CDW11.QPRIO, CREATE_IO_SQ_CDW11.CQID].map(range), [
    [0, 0],
    [2, 1],
    [31, 16],
  ]);
  assert.equal([ABORT.CDW10.SQID, ABORT.CDW10.CID, ABORT.DW0.NOT_ABORTED].map(range), [
    [15, 0],
    [31, 16],
    [0, 0],
  ]);
  assert.equal([NUMBER_OF_QUEUES.NSQ, NUMBER_OF_QUEUES.NCQ].map(range), [
    [15, 0],
    [31, 16],
  ]);
  assert.equal([RW_CDW12.NLB, RW_CDW12.PRINFO, RW_CDW12.FUA, RW_CDW12.LR].map(range), [
    [15, 0],
    [29, 26],
    [30, 30],
    [31, 31],
  ]);
  assert.equal([WRITE_ZEROES_CDW12.NLB, WRITE_ZEROES_CDW12.DEAC].map(range), [
    [15, 0],
    [25, 25],
  ]);
  assert.is(MAX_BLOCKS_PER_COMMAND, 65536);
  assert.equal([DSM.CDW10.NR, DSM.CDW11.IDR, DSM.CDW11.IDW, DSM.CDW11.AD].map(range), [
    [7, 0],
    [0, 0],
    [1, 1],
    [2, 2],
  ]);
  assert.equal([DSM_RANGE.size, DSM_RANGE.CATTR.offset, DSM_RANGE.NLB.offset, DSM_RANGE.SLBA.offset, DSM_MAX_RANGES], [16, 0, 4, 8, 256]);
});

test('Identify Controller and Namespace layouts (§5.15.2.2, §5.15.2.1) and round trips', () => {
  const c = ID_CTRL;
  assert.equal(
    [c.VID, c.SSVID, c.SN, c.MN, c.FR, c.MDTS, c.CNTLID, c.VER, c.ACL, c.SQES, c.CQES, c.NN, c.ONCS, c.VWC].map((m) => [m.offset, m.size]),
    [
      [0, 2],
      [2, 2],
      [4, 20],
      [24, 40],
      [64, 8],
      [77, 1],
      [78, 2],
      [80, 4],
      [258, 1],
      [512, 1],
      [513, 1],
      [516, 4],
      [520, 2],
      [525, 1],
    ],
  );
  assert.equal([ONCS.COMPARE, ONCS.DSM, ONCS.WRITE_ZEROES, ONCS.VERIFY].map(range), [
    [0, 0],
    [2, 2],
    [3, 3],
    [7, 7],
  ]);
  const n = ID_NS;
  assert.equal(
    [n.NSZE, n.NCAP, n.NUSE, n.NSFEAT, n.NLBAF, n.FLBAS, n.LBAF].map((m) => [m.offset, m.size]),
    [
      [0, 8],
      [8, 8],
      [16, 8],
      [24, 1],
      [25, 1],
      [26, 1],
      [128, 64],
    ],
  );
  assert.equal([FLBAS.FORMAT, FLBAS.EXTENDED, LBAF.MS, LBAF.LBADS, LBAF.RP].map(range), [
    [3, 0],
    [4, 4],
    [15, 0],
    [23, 16],
    [25, 24],
  ]);
  assert.equal([c.size, n.size, IDENTIFY_SIZE], [4096, 4096, 4096]);

  const b = new Uint8Array(IDENTIFY_SIZE);
  const ctrl = {
    vid: 0x1b36,
    ssvid: 0x1af4,
    serial: 'lab0',
    model: 'QEMU NVMe Ctrl',
    firmware: '7.2.0',
    mdts: 7,
    cntlid: 0,
    version: 0x10400,
    abortLimit: 4,
    sqes: 0x66,
    cqes: 0x44,
    nn: 256,
    oncs: 0x5f,
    vwc: 7,
  };
  encodeIdentifyController(ctrl, b);
  assert.equal(parseIdentifyController(b), ctrl);
  assert.is(String.fromCharCode(...b.subarray(4, 24)), 'lab0                ', 'serial: space padded ASCII at bytes 4..23');
  assert.is(b[77], 7);
  assert.is(b[258], 3, "ACL is 0's based");
  encodeIdentifyNamespace(
    {
      nsze: 1000n,
      ncap: 1000n,
      nuse: 10n,
      nlbaf: 1,
      flbas: 1,
      lbaf: [
        { ms: 0, lbads: 9, rp: 0 },
        { ms: 8, lbads: 12, rp: 2 },
      ],
    },
    b,
  );
  assert.is(new DataView(b.buffer).getUint32(132, true), 0x020c0008, 'LBAF1: MS 8, LBADS 12, RP 2');
  const ns = parseIdentifyNamespace(b);
  assert.is(ns.blockSize, 4096);
  assert.is(ns.nsze, 1000n);
  assert.equal(ns.lbaf[1], { ms: 8, lbads: 12, rp: 2 });
  b[26] = 0;
  b[130] = 8; // LBAF0 LBADS 8: below 512 bytes, unusable
  assert.is(parseIdentifyNamespace(b).blockSize, 0);
  assert.throws(() => encodeIdentifyNamespace({ nsze: 1n, ncap: 1n, nuse: 1n, nlbaf: 0, flbas: 0, lbaf: [{ ms: 0, lbads: 9, rp: 4 }] }, b), /does not fit/);
});

test('Active Namespace ID list (CNS 02h): ascending NSIDs above the one asked, zero terminated', () => {
  const b = new Uint8Array(IDENTIFY_SIZE).fill(0xff);
  encodeNamespaceList([7, 1, 3], 0, b);
  assert.equal(parseNamespaceList(b), [1, 3, 7]);
  assert.is(new DataView(b.buffer).getUint32(12, true), 0);
  encodeNamespaceList([7, 1, 3], 1, b);
  assert.equal(parseNamespaceList(b), [3, 7]);
});

test('status field and codes (§4.6.1)', () => {
  assert.equal([STATUS.SC, STATUS.SCT, STATUS.CRD, STATUS.M, STATUS.DNR].map(range), [
    [7, 0],
    [10, 8],
    [12, 11],
    [13, 13],
    [14, 14],
  ]);
  const s = statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_IDENTIFIER, true);
  assert.is(s, 0x4101);
  assert.equal([sctOf(s), scOf(s), dnrOf(s)], [1, 1, true]);
  assert.is(statusName(s), 'INVALID_QUEUE_IDENTIFIER');
  assert.is(statusName(statusOf(0, GenericSc.LBA_OUT_OF_RANGE)), 'LBA_OUT_OF_RANGE');
  assert.is(statusName(statusOf(0, GenericSc.COMMAND_SEQUENCE_ERROR)), 'COMMAND_SEQUENCE_ERROR');
  assert.is(statusName(statusOf(3, 0x99)), 'SCT 3 SC 0x99');
  assert.is(statusName(setField(statusOf(0, GenericSc.INVALID_FIELD), STATUS.CRD, 2)), 'INVALID_FIELD', 'CRD and M do not change the name');
  assert.equal(
    [GenericSc.DATA_TRANSFER_ERROR, GenericSc.ABORTED_BY_REQUEST, GenericSc.INVALID_PRP_OFFSET, GenericSc.LBA_OUT_OF_RANGE],
    [0x04, 0x07, 0x13, 0x80],
  );
});

test('PRP rules (§4.3): pages, what PRP2 holds, chain entries, list lengths', () => {
  const P = 4096;
  assert.is(prpPageCount(0, P, P), 1);
  assert.is(prpPageCount(4092, 8, P), 2);
  assert.is(prpPageCount(100, 8192, P), 3);
  assert.equal(
    [prp2Use(0, P, P), prp2Use(8, P - 8, P), prp2Use(8, P, P), prp2Use(0, 2 * P, P), prp2Use(4, 2 * P, P)],
    [Prp2.UNUSED, Prp2.UNUSED, Prp2.PAGE, Prp2.PAGE, Prp2.LIST],
  );
  assert.ok(prpEntryChains(P - 8, 2, P), 'last entry of a list page, two pages to go: a chain pointer');
  assert.not.ok(prpEntryChains(P - 8, 1, P), 'the last data page fits in the last entry');
  assert.not.ok(prpEntryChains(P - 16, 5, P));
  assert.equal([prpListEntries(2, P), prpListEntries(3, P), prpListEntries(513, P), prpListEntries(514, P), prpListEntries(768, P)], [0, 2, 512, 514, 768]);
  assert.equal([prpMaxTransfer(1, P), prpMaxTransfer(2, P)], [513 * P, 1024 * P]);
});

test.run();
