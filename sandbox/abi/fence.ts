/**
 * A full memory barrier between a store to shared memory and a later load, for the "publish my
 * index, then look at yours" step of the ring's kick and polling rules (ring.ts, its only user):
 * on x86 a plain store may still sit in the store buffer when a later load of another word is
 * served, and then both sides can miss each other and nobody kicks (seen: the block ring stalled
 * within seconds under fio without it). The ring memory is an mmapped memfd, not a
 * SharedArrayBuffer, so the Atomics calls on it give no ordering V8 promises; a locked
 * read-modify-write on a SharedArrayBuffer is a full barrier for all memory on x86 and arm64.
 */
const cell = new Int32Array(new SharedArrayBuffer(4));

export function fence(): void {
  Atomics.add(cell, 0, 1);
}
