/** Layouts against the spec: register offsets and fields, command/completion offsets, Identify offsets, status codes. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CC, CSTS, cqHeadDoorbell, decodeCap, encodeCap, encodeCc, getField, REG, setField, sqTailDoorbell, decodeVs } from '../../../spec/nvme/registers.js';
import { AdminOpcode, CQE, CQE_SIZE, NvmOpcode, SQE, SQE_DW, SQE_SIZE } from '../../../spec/nvme/commands.js';
import {
  encodeIdentifyController,
  encodeIdentifyNamespace,
  IDENTIFY_SIZE,
  IdCtrl,
  IdNs,
  parseIdentifyController,
  parseIdentifyNamespace,
  parseNamespaceList,
} from '../../../spec/nvme/identify.js';
import { GenericSc, NvmeStatusError, statusName, statusOf, sctOf, scOf, dnrOf, CommandSpecificSc, Sct } from '../../../drivers/nvme/status.js';

test('register offsets (NVMe 1.4 §3.1, Figure 78)', () => {
  assert.equal([REG.CAP, REG.VS, REG.INTMS, REG.INTMC, REG.CC, REG.CSTS, REG.NSSR, REG.AQA, REG.ASQ, REG.ACQ], [0, 8, 0x0c, 0x10, 0x14, 0x1c, 0x20, 0x24, 0x28, 0x30]);
  // §3.1.24/25: 1000h + (2y * (4 << DSTRD)) and 1000h + ((2y + 1) * (4 << DSTRD)).
  assert.is(sqTailDoorbell(0, 0), 0x1000);
  assert.is(cqHeadDoorbell(0, 0), 0x1004);
  assert.is(sqTailDoorbell(3, 0), 0x1018);
  assert.is(cqHeadDoorbell(3, 2), 0x1000 + 7 * 16);
});

test('CAP decodes the lab controller (QEMU 7.2: 0x004018200f0107ff) and round-trips', () => {
  const cap = decodeCap(0x004018200f0107ffn);
  assert.is(cap.MQES, 0x7ff);
  assert.is(cap.CQR, true);
  assert.is(cap.AMS, 0);
  assert.is(cap.TO, 15);
  assert.is(cap.DSTRD, 0);
  assert.is(cap.CSS, 0xc1, 'NVM (bit 0), plus the 2.0 bits QEMU sets: I/O command sets (6) and admin only (7)');
  assert.is(cap.MPSMIN, 0);
  assert.is(cap.MPSMAX, 4);
  assert.is(encodeCap(cap), 0x004018200f0107ffn);
  assert.equal(decodeVs(0x10400), { MJR: 1, MNR: 4, TER: 0 });
});

test('CC and CSTS fields (§3.1.5, §3.1.6)', () => {
  const cc = encodeCc({ EN: 1, IOSQES: 6, IOCQES: 4, SHN: 1 });
  assert.is(cc, 0x00464001);
  assert.is(getField(cc, CC.IOSQES), 6);
  assert.is(getField(0b1101, CSTS.SHST), 3);
  assert.is(getField(0b1101, CSTS.RDY), 1);
  assert.throws(() => setField(0, CC.SHN, 4), /does not fit/);
});

test('command and completion layouts (§4.2 Figure 105, §4.6 Figure 121)', () => {
  assert.is(SQE_SIZE, 64);
  assert.is(CQE_SIZE, 16);
  assert.equal([SQE.CDW0, SQE.NSID, SQE.MPTR, SQE.PRP1, SQE.PRP2, SQE.CDW10, SQE.CDW15], [0, 4, 16, 24, 32, 40, 60]);
  assert.is(SQE_DW.PRP1_LO * 4, SQE.PRP1);
  assert.is(SQE_DW.PRP2_LO * 4, SQE.PRP2);
  assert.is(SQE_DW.CDW12 * 4, SQE.CDW12);
  assert.equal([CQE.DW0, CQE.SQHD, CQE.SQID, CQE.CID, CQE.STATUS], [0, 8, 10, 12, 14]);
  assert.equal([AdminOpcode.CREATE_IO_SQ, AdminOpcode.CREATE_IO_CQ, AdminOpcode.IDENTIFY, AdminOpcode.ABORT, AdminOpcode.SET_FEATURES], [1, 5, 6, 8, 9]);
  assert.equal([NvmOpcode.FLUSH, NvmOpcode.WRITE, NvmOpcode.READ, NvmOpcode.WRITE_ZEROES, NvmOpcode.DATASET_MANAGEMENT], [0, 1, 2, 8, 9]);
});

test('Identify offsets (§5.15.2.1 Figure 245, §5.15.2.2 Figure 247) and round trip', () => {
  assert.equal([IdCtrl.SN, IdCtrl.MN, IdCtrl.FR, IdCtrl.MDTS, IdCtrl.CNTLID, IdCtrl.VER, IdCtrl.SQES, IdCtrl.CQES, IdCtrl.NN, IdCtrl.ONCS], [4, 24, 64, 77, 78, 80, 512, 513, 516, 520]);
  assert.equal([IdNs.NSZE, IdNs.NCAP, IdNs.NUSE, IdNs.NLBAF, IdNs.FLBAS, IdNs.LBAF0], [0, 8, 16, 25, 26, 128]);
  const b = new Uint8Array(IDENTIFY_SIZE);
  const ctrl = { vid: 0x1b36, ssvid: 0x1af4, serial: 'lab0', model: 'QEMU NVMe Ctrl', firmware: '7.2.0', mdts: 7, cntlid: 0, version: 0x10400, abortLimit: 4, sqes: 0x66, cqes: 0x44, nn: 256, oncs: 0x5f, vwc: 7 };
  encodeIdentifyController(ctrl, b);
  assert.equal(parseIdentifyController(b), ctrl);
  // Serial is space padded ASCII at bytes 4..23.
  assert.is(String.fromCharCode(...b.subarray(4, 24)), 'lab0                ');
  encodeIdentifyNamespace({ nsze: 1000n, ncap: 1000n, nuse: 10n, nlbaf: 1, flbas: 1, lbaf: [{ ms: 0, lbads: 9, rp: 0 }, { ms: 8, lbads: 12, rp: 2 }] }, b);
  const ns = parseIdentifyNamespace(b);
  assert.is(ns.blockSize, 4096);
  assert.is(ns.nsze, 1000n);
  assert.equal(ns.lbaf[1], { ms: 8, lbads: 12, rp: 2 });
  b.fill(0);
  new DataView(b.buffer).setUint32(0, 1, true);
  new DataView(b.buffer).setUint32(4, 7, true);
  assert.equal(parseNamespaceList(b), [1, 7]);
});

test('status codes as data (§4.6.1.2)', () => {
  const s = statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_IDENTIFIER, true);
  assert.is(sctOf(s), 1);
  assert.is(scOf(s), 1);
  assert.is(dnrOf(s), true);
  assert.is(statusName(s), 'INVALID_QUEUE_IDENTIFIER');
  assert.is(statusName(statusOf(0, GenericSc.LBA_OUT_OF_RANGE)), 'LBA_OUT_OF_RANGE');
  assert.is(statusName(statusOf(3, 0x99)), 'SCT 3 SC 0x99');
  const e = new NvmeStatusError('read', statusOf(0, GenericSc.DATA_TRANSFER_ERROR));
  assert.is(e.code, 'ERR_NVME_STATUS');
  assert.is(e.sc, 4);
  assert.match(e.message, /DATA_TRANSFER_ERROR/);
});

test.run();
