/** The 82574L model's fault classes (implemented by sim/e1000e/fault-plan.ts and its hooks). */
import type { FaultClass } from './classes.js';

const RX = 'a received frame written back to the RX ring';
const TX = 'a transmit run that processed at least one TX descriptor';

export const E1000E_CLASSES: readonly FaultClass[] = [
  {
    name: 'e1000e.rx-writeback',
    device: 'e1000e',
    event: RX,
    doc: "the frame's RX descriptor write-back is garbage: a length over the 2048-byte buffer or of 0, error bits (CE) on good data, or reserved bits (ERRORS bit 3, STATUS VP/PIF) set",
    params: [
      {
        name: 'kind',
        kind: 'enum',
        values: ['length-over', 'length-zero', 'error-bits', 'reserved-bits'],
        default: 'length-over',
        doc: 'what is wrong in the write-back',
      },
    ],
  },
  {
    name: 'e1000e.rx-dd-unowned',
    device: 'e1000e',
    event: RX,
    doc: 'besides the frame, the device writes DD and EOP with a 60-byte length into the descriptor at RDT, which software never handed over',
    params: [],
  },
  {
    name: 'e1000e.tx-dd-unowned',
    device: 'e1000e',
    event: TX,
    doc: 'the device writes STA.DD into the TX descriptor at TDT, which software never handed over (the driver maps its TX ring read-only: an IOMMU fault)',
    params: [],
  },
  {
    name: 'e1000e.head-range',
    device: 'e1000e',
    event: 'a read of TDH',
    doc: 'TDH reads a value outside the ring (the ring size plus 0..15)',
    params: [],
  },
  {
    name: 'e1000e.rx-freed',
    device: 'e1000e',
    event: RX,
    doc: "the frame's data goes into the buffer of the frame before it (an address the driver reclaimed and handed on), its own descriptor is written back as if it held it",
    params: [],
  },
  {
    name: 'e1000e.eeprom',
    device: 'e1000e',
    event: 'an EERD read of a station address word (EEPROM words 0..2)',
    doc: 'the EEPROM answers garbage: a multicast station address (word 0 bit 0 set), all zeros, all ones, or never sets EERD.DONE',
    params: [{ name: 'kind', kind: 'enum', values: ['multicast', 'zeros', 'ones', 'no-done'], default: 'multicast', doc: 'what the word reads' }],
  },
  {
    name: 'e1000e.link-flap',
    device: 'e1000e',
    event: TX,
    doc: 'the link goes down (STATUS.LU clear, ICR.LSC) for the next `runs` transmit runs, then up again (ICR.LSC); frames sent meanwhile are lost',
    params: [{ name: 'runs', kind: 'int', min: 1, max: 1000, default: 2, doc: 'transmit runs the link stays down' }],
  },
  {
    name: 'e1000e.msix-unconfigured',
    device: 'e1000e',
    event: 'an MSI-X message the device sends',
    doc: 'the message goes to an MSI-X vector the driver never configured (the last of the five), where it stays pending behind its mask',
    params: [],
  },
  {
    name: 'e1000e.thunderclap',
    device: 'e1000e',
    event: 'a TX descriptor with a buffer',
    doc: 'a hostile device (sim/e1000e/thunderclap.ts): reads every page from `span` pages before the buffer to `span` after it, with write=1 writes into the neighbouring pages, and reads (and writes) the last `reuse` buffer addresses again after the driver reclaimed them; each access is checked against the IOMMU fault log',
    params: [
      { name: 'span', kind: 'int', min: 0, max: 16, default: 1, doc: 'pages read on each side of the buffer' },
      { name: 'write', kind: 'int', min: 0, max: 1, default: 1, doc: 'write into neighbouring pages and reclaimed buffers' },
      { name: 'reuse', kind: 'int', min: 0, max: 64, default: 8, doc: 'reclaimed buffer addresses remembered and used again' },
    ],
  },
  {
    name: 'e1000e.removal',
    device: 'e1000e',
    event: TX,
    doc: 'surprise removal: from this run on every BAR0 read returns all ones, writes are lost, nothing is sent or received',
    params: [],
  },
];
