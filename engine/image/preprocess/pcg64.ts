/**
 * numpy's PCG64 bit generator (128-bit LCG, XSL-RR output) and `Generator.uniform` / `random` on it,
 * as `np.random.default_rng(seed)` gives them. The four 64-bit seed words are what numpy's
 * `SeedSequence(seed).generate_state(4, np.uint64)` returns (the caller computes them).
 */

const M128 = (1n << 128n) - 1n;
const M64 = (1n << 64n) - 1n;
const MULT = 0x2360ed051fc65da44385df649fcc_f645n;

export class Pcg64 {
  private state = 0n;
  private readonly inc: bigint;

  constructor(words: readonly [bigint, bigint, bigint, bigint]) {
    const initState = (words[0] << 64n) | words[1];
    const initSeq = (words[2] << 64n) | words[3];
    this.inc = ((initSeq << 1n) | 1n) & M128;
    this.step();
    this.state = (this.state + initState) & M128;
    this.step();
  }

  private step(): void {
    this.state = (this.state * MULT + this.inc) & M128;
  }

  nextU64(): bigint {
    this.step();
    const s = this.state;
    const x = ((s >> 64n) ^ s) & M64;
    const rot = Number(s >> 122n);
    return ((x >> BigInt(rot)) | (x << BigInt((64 - rot) & 63))) & M64;
  }

  /** `Generator.random()`: 53 high bits over 2^53. */
  nextDouble(): number {
    return Number(this.nextU64() >> 11n) * (1 / 9007199254740992);
  }

  /** `Generator.uniform(low, high, size=n)`, flattened in C order. */
  uniform(low: number, high: number, n: number): Float64Array {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = low + (high - low) * this.nextDouble();
    return out;
  }
}

/** uint32 words of SeedSequence.generate_state(8) → the four uint64 words numpy passes to PCG64. */
export function pcgSeedWords(u32: Uint32Array): [bigint, bigint, bigint, bigint] {
  const w = (i: number): bigint => BigInt(u32[2 * i]) | (BigInt(u32[2 * i + 1]) << 32n);
  return [w(0), w(1), w(2), w(3)];
}
