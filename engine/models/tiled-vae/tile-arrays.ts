import type { DroppedMemory } from '../../core/dropped-memory.ts';

/** Bytes of finished tiles' arrays kept for reuse (see TileArrays). */
export const TILE_ARRAYS_LIMIT = 768 * 2 ** 20;

/**
 * Whole-tile arrays handed back for the next layer of the same size instead of left to V8. Each new
 * array is fresh memory the kernel must fault in and zero, which on the 2-core dev VM costs ~10 µs per
 * 4 KiB page: a 576² tile of 128 channels is 170 MB, 41k faults, ~0.4 s, at every layer of every tile.
 * At most `limit` bytes wait here; beyond that the oldest go to `dropped` (garbage V8 is asked to collect).
 */
export class TileArrays {
  private readonly free: Float32Array[] = [];
  private held = 0;
  /** Arrays handed out again (tests). */
  reused = 0;

  constructor(
    private readonly dropped: DroppedMemory,
    private readonly limit = TILE_ARRAYS_LIMIT,
  ) {}

  /** An array of `length` values, recycled when one is free (its old values are still in it). */
  take(length: number): Float32Array {
    const i = this.free.findIndex((a) => a.length === length);
    if (i < 0) return new Float32Array(length);
    const [a] = this.free.splice(i, 1);
    this.held -= a.byteLength;
    this.reused++;
    return a;
  }

  /** `a`, which nothing reads or writes any more; a view into a larger buffer only counts as dropped. */
  give(a: Float32Array): void {
    if (this.free.includes(a)) return;
    if (a.byteOffset !== 0 || a.buffer.byteLength !== a.byteLength || a.byteLength > this.limit) {
      this.dropped.drop(a.byteLength);
      return;
    }
    while (this.held + a.byteLength > this.limit) {
      const old = this.free.shift()!;
      this.held -= old.byteLength;
      this.dropped.drop(old.byteLength);
    }
    this.free.push(a);
    this.held += a.byteLength;
  }

  /** Lets every waiting array go (the end of a pass). */
  clear(): void {
    for (const a of this.free.splice(0)) this.dropped.drop(a.byteLength);
    this.held = 0;
  }
}
