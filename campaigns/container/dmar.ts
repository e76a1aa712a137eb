/**
 * Blocked DMA in the lab, as QEMU's VT-d model traced it (`vtd_dmar_fault`, appliance/lab/dmar.ts):
 * the trace file, read from where the last look ended. The lab suite always enables the trace and
 * names the file in DMABOX_LAB_DMAR_TRACE; unlike the guest kernel's DMAR lines it is not
 * rate-limited, so every blocked access of a trial is seen, with its source-id (the requester's
 * PCI address) for attribution.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { parseDmarTrace, type DmarFault } from '../../appliance/lab/dmar.js';

/** At most this much of the trace is read in one look (one blocked 4 KiB write traces ~60 bytes a line). */
const CHUNK = 1 << 20;

export class DmarTraceTail {
  private offset = 0;
  private partial = '';
  private readonly buf = Buffer.alloc(CHUNK);

  constructor(readonly file: string) {}

  /** Skip everything traced so far. */
  skip(): void {
    this.next();
  }

  /** The faults traced since the last look. */
  next(): DmarFault[] {
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch {
      return [];
    }
    let text = '';
    try {
      for (let rounds = 0; rounds < 64; rounds++) {
        const n = readSync(fd, this.buf, 0, CHUNK, this.offset);
        if (n <= 0) break;
        this.offset += n;
        text += this.buf.toString('latin1', 0, n);
      }
    } finally {
      closeSync(fd);
    }
    text = this.partial + text;
    const end = text.lastIndexOf('\n');
    this.partial = end < 0 ? text : text.slice(end + 1);
    return end < 0 ? [] : parseDmarTrace(text.slice(0, end + 1));
  }
}
