/**
 * A small, fast, seedable generator for random model weights: xoshiro128** (32-bit state words, so
 * it runs on Math.imul without BigInt in the hot loop), seeded through SplitMix64 so nearby seeds give
 * unrelated streams. Normal values come from Box–Muller over pairs of uniforms: two values per
 * log/sqrt/sin/cos, fast enough to fill the 1.07 G values of a full SD1.5 in tens of seconds, and
 * exact Gaussians (a scaled uniform would do for random weights, but the tests check the spread).
 * V8's Math functions are fdlibm ports, so a seed gives the same bytes on every platform.
 */
export class Rng {
  private readonly s = new Uint32Array(4);

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed must be a non-negative safe integer, got ${seed}`);
    let x = BigInt.asUintN(64, BigInt(seed));
    for (let i = 0; i < 4; i++) {
      x = BigInt.asUintN(64, x + 0x9e3779b97f4a7c15n);
      let z = x;
      z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
      z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
      this.s[i] = Number((z ^ (z >> 31n)) & 0xffffffffn);
    }
    // xoshiro's one forbidden state (all zeros) cannot come out of SplitMix64 in practice; guard anyway.
    if (this.s.every((w) => w === 0)) this.s[0] = 1;
  }

  /** Next 32-bit output as an unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const m = Math.imul(s[1], 5);
    const r = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 11) | (s[3] >>> 21);
    return r;
  }

  /** Uniform in the open interval (0, 1), never 0 so log() is safe. */
  uniform(): number {
    return (this.nextU32() + 0.5) / 4294967296;
  }

  /** Fill `out` with N(0, std²). */
  normal(out: Float32Array, std: number): Float32Array {
    const n = out.length;
    for (let i = 0; i < n; i += 2) {
      const r = Math.sqrt(-2 * Math.log(this.uniform())) * std;
      const th = 2 * Math.PI * this.uniform();
      out[i] = r * Math.cos(th);
      if (i + 1 < n) out[i + 1] = r * Math.sin(th);
    }
    return out;
  }
}
