import { describe, expect, it } from 'vitest';
import { DroppedMemory } from '../../engine/core/dropped-memory.ts';
import { TileArrays } from '../../engine/models/tiled-vae/tile-arrays.ts';

/* Recycled tile arrays: what is handed back is handed out again for the same length, never twice, within a byte limit. */

class CountingDrops extends DroppedMemory {
  dropped = 0;
  override drop(bytes: number): void {
    this.dropped += bytes;
  }
}

describe('TileArrays', () => {
  it('hands a given array back out for the same length only, once', () => {
    const drops = new CountingDrops();
    const t = new TileArrays(drops, 1024);
    const a = t.take(16);
    const b = t.take(16);
    expect(a).not.toBe(b);
    t.give(a);
    t.give(a); // given twice (a tile parked with x and its residual the same array): held once
    expect(t.take(8)).not.toBe(a);
    expect(t.take(16)).toBe(a);
    expect(t.take(16)).not.toBe(a);
    expect(t.reused).toBe(1);
  });

  it('keeps at most its limit, dropping the oldest; views and arrays over the limit are only counted as dropped', () => {
    const drops = new CountingDrops();
    const t = new TileArrays(drops, 200);
    const a = new Float32Array(20); // 80 bytes
    const b = new Float32Array(20);
    const c = new Float32Array(20);
    t.give(a);
    t.give(b);
    t.give(c); // 240 > 200: a goes
    expect(drops.dropped).toBe(80);
    expect(t.take(20)).toBe(b);
    expect(t.take(20)).toBe(c);
    expect(t.take(20)).not.toBe(a);
    const whole = new Float32Array(40);
    t.give(whole.subarray(0, 20));
    t.give(new Float32Array(60)); // 240 bytes alone: over the limit
    expect(drops.dropped).toBe(80 + 80 + 240);
    expect(t.take(20)).not.toBe(whole.subarray(0, 20));
    t.give(b);
    t.clear();
    expect(drops.dropped).toBe(80 + 80 + 240 + 80);
    expect(t.take(20)).not.toBe(b);
  });
});
