import { describe, expect, it } from 'vitest';
import { murmur3x86_128 } from '../../engine/onnx/murmur3.ts';

describe('murmur3x86_128', () => {
  it('gives SMHasher’s verification value (every length 0–255, each with its own seed)', () => {
    // SMHasher's VerificationTest: hash keys 0..i-1 with seed 256-i, then hash the 256 results with seed 0; the first word.
    const key = new Uint8Array(256).map((_, i) => i);
    const all = new DataView(new ArrayBuffer(16 * 256));
    for (let i = 0; i < 256; i++) murmur3x86_128(key.subarray(0, i), 256 - i).forEach((h, j) => all.setUint32(16 * i + 4 * j, h, true));
    expect(murmur3x86_128(new Uint8Array(all.buffer), 0)[0]).toBe(0xb3ece62a);
  });

  it('hashes nothing with seed 0 to zeros, and reads unaligned input as aligned', () => {
    expect(murmur3x86_128(new Uint8Array(0), 0)).toEqual([0, 0, 0, 0]);
    const bytes = new Uint8Array(1001).map((_, i) => (i * 31 + 7) & 255);
    for (const n of [999, 1000]) expect(murmur3x86_128(bytes.subarray(1, 1 + n), 9)).toEqual(murmur3x86_128(bytes.slice(1, 1 + n), 9));
    expect(murmur3x86_128(bytes, 1)).not.toEqual(murmur3x86_128(bytes, 2));
  });
});
