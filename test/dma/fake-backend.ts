/** An IommuBackend that records calls, for allocator tests independent of the simulator. */
import type { DmaPerm } from '../../drivers/contract/platform.js';
import type { IommuBackend, IommuInfo, IovaRange } from '../../dma/backend.js';
import type { DmaMemory } from '../../dma/memory.js';

export class RecordingBackend implements IommuBackend {
  readonly name = 'recording';
  readonly maps = new Map<bigint, { size: number; perm: DmaPerm; memory: DmaMemory }>();
  failNextMap = false;
  constructor(
    private readonly ranges: IovaRange[] = [{ start: 0n, end: (1n << 39n) - 1n }],
    private readonly avail: number | undefined = 65535,
  ) {}
  info(): IommuInfo {
    return { pageSizes: 0x40201000n, ranges: this.ranges, mappingsAvailable: this.avail };
  }
  map(memory: DmaMemory, _offset: number, iova: bigint, size: number, perm: DmaPerm): void {
    if (this.failNextMap) {
      this.failNextMap = false;
      throw new Error('EFAULT (injected)');
    }
    if (this.maps.has(iova)) throw new Error('EEXIST');
    this.maps.set(iova, { size, perm, memory });
  }
  unmap(iova: bigint, size: number): void {
    const m = this.maps.get(iova);
    if (!m || m.size !== size) throw new Error(`unmap of a range not mapped: 0x${iova.toString(16)}`);
    this.maps.delete(iova);
  }
}
