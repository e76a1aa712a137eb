/**
 * The one single-producer/single-consumer ring of the container ABI (README.md, "The ring"): the
 * block ring's SQ and CQ, the register mailbox's request ring and the four packet rings are each
 * one of these, over words and entries of their format's shared memory.
 *
 * A ring is three u32 words of its format's header and `entries` fixed-size entries:
 * - TAIL (producer): entries posted, free-running modulo 2^32;
 * - HEAD (consumer): entries taken, free-running;
 * - POLLED (consumer; optional): 1 while the consumer looks at TAIL on every turn anyway.
 * Entry i lives at `offset + (i mod entries) * entryBytes`. Each side keeps its own index in a
 * local and only ever stores it; the other side's index is loaded (Atomics.load: one 32-bit
 * access, never torn) and never trusted.
 *
 * Kicks. The producer writes entries, stores TAIL, runs a full fence (fence.ts), then loads POLLED
 * and HEAD. No kick while POLLED is 1, nor while HEAD is behind the first entry just posted (the
 * consumer has not yet taken the ones before it, so it is awake or about to be, and will find the
 * new ones by the next rule). Otherwise the owner kicks the consumer's eventfd. The consumer, after
 * taking entries, stores HEAD, fences, and loads TAIL again, going on while it moved (bounded per
 * call; the owner schedules the rest for its next turn). Store, fence, load on both sides: of two
 * racing sides at least one sees the other's store, so either the producer kicks or the consumer
 * finds the entry. A HEAD that lies only costs its consumer its kicks.
 *
 * Polling. A consumer that looks at TAIL every turn sets POLLED, and the producer leaves its kicks
 * out. It stops by storing 0, fencing, and looking once more (`setPolled(false)` stores and
 * fences; the owner then drains once more), so again one side always sees the other.
 *
 * Violations. A TAIL more than `entries` ahead of HEAD cannot come from a correct producer: the
 * consumer reports it once to its owner (`onViolation`) and takes nothing from the ring again until
 * it is bound to fresh memory. Nothing here throws on what the other side wrote.
 *
 * Hot paths allocate nothing: the owner gives a sink made once, entries are byte offsets.
 */
import { fence } from './fence.js';

/** Where a ring lives in its format's shared memory. */
export interface RingLayout {
  /** For violation messages: "completion ring", "register ring", ... */
  readonly name: string;
  /** u32 word index of TAIL (producer). */
  readonly tail: number;
  /** u32 word index of HEAD (consumer). */
  readonly head: number;
  /** u32 word index of POLLED (consumer), or -1: this consumer never polls. */
  readonly polled: number;
  /** Byte offset of entry 0 (a multiple of 4). */
  readonly offset: number;
  /** How many entries (at least 1). */
  readonly entries: number;
  /** Bytes per entry (a multiple of 4). */
  readonly entryBytes: number;
}

/** What the consumer hands each entry to. */
export interface RingSink {
  /** Take the entry at byte offset `at`; false leaves it (and those after it) in the ring for later. */
  take(at: number): boolean;
}

const UNBOUND: Uint32Array = new Uint32Array(0);

/** The producer's end: writes entries at `at(k)`, then posts them. */
export class RingProducer {
  private u32 = UNBOUND;
  private tailValue = 0;
  /** Posts that kicked the consumer, and posts whose kick was left out (POLLED, or the consumer behind). */
  kicks = 0;
  kicksSaved = 0;

  constructor(readonly layout: RingLayout) {}

  /** Use the ring in `u32` (its shared memory), posting from `tail` on. */
  bind(u32: Uint32Array, tail: number): void {
    this.u32 = u32;
    this.tailValue = tail >>> 0;
  }

  get tail(): number {
    return this.tailValue;
  }

  /** Byte offset of the k-th entry after those posted (k from 0): write it there, then post. */
  at(k: number): number {
    const L = this.layout;
    return L.offset + (((this.tailValue + k) >>> 0) % L.entries) * L.entryBytes;
  }

  /**
   * Entries posted and not yet taken, by the consumer's HEAD: only a hint (for waiting while the
   * ring is full); a producer that owns what it posts (tags, slots) never needs it.
   */
  unconsumed(): number {
    return (this.tailValue - Atomics.load(this.u32, this.layout.head)) >>> 0;
  }

  /** Post the `n` entries written at `at(0..n-1)`; true when the owner must kick the consumer. */
  post(n: number): boolean {
    if (n === 0) return false;
    const L = this.layout,
      u32 = this.u32;
    const base = this.tailValue;
    this.tailValue = (base + n) >>> 0;
    Atomics.store(u32, L.tail, this.tailValue);
    fence();
    if (L.polled >= 0 && Atomics.load(u32, L.polled) === 1) {
      this.kicksSaved++;
      return false;
    }
    const behind = (base - Atomics.load(u32, L.head)) >>> 0;
    if (behind !== 0 && behind <= L.entries) {
      this.kicksSaved++;
      return false;
    }
    this.kicks++;
    return true;
  }
}

/** The consumer's end: takes entries in order through a sink. */
export class RingConsumer {
  private u32 = UNBOUND;
  private headValue = 0;
  private broken = false;

  /** `onViolation` hears, once per binding, of a TAIL no correct producer could have written. */
  constructor(
    readonly layout: RingLayout,
    private readonly onViolation: (reason: string) => void,
  ) {}

  /** Use the ring in `u32`, taking from `head` on; a past violation is forgotten (fresh memory). */
  bind(u32: Uint32Array, head: number): void {
    this.u32 = u32;
    this.headValue = head >>> 0;
    this.broken = false;
  }

  get head(): number {
    return this.headValue;
  }

  /** True once a violation was reported (nothing more is taken until the next bind). */
  get violated(): boolean {
    return this.broken;
  }

  /** Entries posted and not yet taken; 0 after a violation (reported here the first time). */
  available(): number {
    if (this.broken) return 0;
    const L = this.layout;
    const tail = Atomics.load(this.u32, L.tail);
    const n = (tail - this.headValue) >>> 0;
    if (n <= L.entries) return n;
    this.broken = true;
    this.onViolation(`${L.name} tail ${tail} is ${n} entries ahead of head ${this.headValue} (the ring holds ${L.entries})`);
    return 0;
  }

  /**
   * TAIL minus HEAD as the producer claims it, unchecked: for an owner's own, stricter bound (the
   * slots the producer holds) and for accounting what a dead producer left; never to read entries by.
   */
  claimed(): number {
    return (Atomics.load(this.u32, this.layout.tail) - this.headValue) >>> 0;
  }

  /**
   * Take entries in order while `sink` accepts them, at most `budget`: after each run, store HEAD,
   * fence, and look at TAIL again. Returns how many were taken; the owner calls again on its next
   * turn when `available()` still says more.
   */
  drain(sink: RingSink, budget: number): number {
    const L = this.layout,
      u32 = this.u32,
      entries = L.entries,
      offset = L.offset,
      size = L.entryBytes;
    let taken = 0;
    let n = this.available();
    while (n > 0 && taken < budget) {
      const max = n < budget - taken ? n : budget - taken;
      let k = 0;
      // headValue moves entry by entry: a sink may read `head` (the index of the entry it takes).
      while (k < max && sink.take(offset + (this.headValue % entries) * size)) {
        this.headValue = (this.headValue + 1) >>> 0;
        k++;
      }
      taken += k;
      if (k === 0) break;
      Atomics.store(u32, L.head, this.headValue);
      fence();
      if (k < max) break;
      n = this.available();
    }
    return taken;
  }

  /**
   * Tell the producer whether this consumer polls. Clearing stores 0 and fences: the owner must
   * then drain once more, to take what was posted without a kick while the word was still 1.
   */
  setPolled(on: boolean): void {
    const w = this.layout.polled;
    if (w < 0) return;
    Atomics.store(this.u32, w, on ? 1 : 0);
    if (!on) fence();
  }
}
