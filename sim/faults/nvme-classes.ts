/** The NVMe model's fault classes (implemented by sim/nvme/fault-plan.ts and its hooks). */
import { ON_PARAM, type FaultClass } from './classes.js';

const IO = 'an I/O command (Read, Write, ...) matching `on`';

export const NVME_CLASSES: readonly FaultClass[] = [
  {
    name: 'nvme.status',
    device: 'nvme',
    event: IO,
    doc: 'the command is not executed and completes with an error status: generic (Internal Error, SCT 0 SC 06h), media (Unrecovered Read Error / Write Fault, SCT 2) or path (Internal Path Error, SCT 3 SC 00h)',
    params: [
      ON_PARAM,
      { name: 'type', kind: 'enum', values: ['generic', 'media', 'path'], default: 'generic', doc: 'the status code type' },
      { name: 'dnr', kind: 'int', min: 0, max: 1, default: 0, doc: 'set Do Not Retry' },
    ],
  },
  {
    name: 'nvme.drop-completion',
    device: 'nvme',
    event: IO,
    doc: 'the command is executed but its completion is never posted (the driver must time out)',
    params: [ON_PARAM],
  },
  { name: 'nvme.duplicate-completion', device: 'nvme', event: IO, doc: 'the completion is posted twice', params: [ON_PARAM] },
  {
    name: 'nvme.reorder-completions',
    device: 'nvme',
    event: 'a batch of two or more completions written together',
    doc: 'the first two completions of the batch swap places (legal: NVMe completes out of order)',
    params: [],
  },
  {
    name: 'nvme.wrong-cid',
    device: 'nvme',
    event: IO,
    doc: 'the completion carries a CID no command has (the real one is never completed)',
    params: [ON_PARAM],
  },
  {
    name: 'nvme.wrong-phase',
    device: 'nvme',
    event: IO,
    doc: 'the completion is written with the stale phase tag, so it looks unposted and hides the ones behind it',
    params: [ON_PARAM],
  },
  {
    name: 'nvme.sq-head',
    device: 'nvme',
    event: IO,
    doc: 'the completion reports an SQ head (SQHD) that went backwards or past the tail',
    params: [ON_PARAM, { name: 'mode', kind: 'enum', values: ['backwards', 'past-tail'], default: 'backwards', doc: 'which way SQHD is wrong' }],
  },
  {
    name: 'nvme.identify',
    device: 'nvme',
    event: 'an Identify Controller (mdts-*) or Identify Namespace (the others) command',
    doc: 'the Identify data is garbage in one field: MDTS 0 (no limit) or 255, a namespace of 0 or 2^64-1 blocks, an LBA data size of 2^0 or 2^63, FLBAS naming a format past NLBAF',
    params: [
      {
        name: 'field',
        kind: 'enum',
        values: ['mdts-zero', 'mdts-huge', 'nsze-zero', 'nsze-huge', 'lbads-zero', 'lbads-huge', 'flbas-past'],
        default: 'nsze-huge',
        doc: 'which field is garbage',
      },
    ],
  },
  {
    name: 'nvme.fatal',
    device: 'nvme',
    event: IO,
    doc: 'the controller sets CSTS.CFS (Controller Fatal Status) instead of executing the command',
    params: [ON_PARAM],
  },
  { name: 'nvme.never-ready', device: 'nvme', event: 'CC.EN written 0 -> 1', doc: 'the controller never sets CSTS.RDY', params: [] },
  {
    name: 'nvme.reset-fails',
    device: 'nvme',
    event: 'CC.EN written 1 -> 0',
    doc: 'the controller ignores the reset: CSTS.RDY stays set and its queues stay as they were',
    params: [],
  },
  {
    name: 'nvme.removal',
    device: 'nvme',
    event: IO,
    doc: 'surprise removal: from this command on every BAR read returns all ones, writes are lost and nothing completes',
    params: [ON_PARAM],
  },
  {
    name: 'nvme.irq-storm',
    device: 'nvme',
    event: 'an interrupt the controller raises for a completion queue',
    doc: 'the controller sends `count` extra messages on every MSI-X vector',
    params: [{ name: 'count', kind: 'int', min: 1, max: 10000, default: 64, doc: 'extra messages per vector' }],
  },
  { name: 'nvme.irq-lost', device: 'nvme', event: 'an interrupt the controller raises for a completion queue', doc: 'the interrupt is never sent', params: [] },
  {
    name: 'nvme.corrupt-read',
    device: 'nvme',
    event: 'a Read command',
    doc: 'the first 8 bytes of the read data are overwritten with garbage on their way into memory; with report=error the command completes with Data Transfer Error, with report=silent with success',
    params: [{ name: 'report', kind: 'enum', values: ['error', 'silent'], default: 'error', doc: 'whether the device admits the corruption' }],
  },
];
