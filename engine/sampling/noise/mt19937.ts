/**
 * MT19937 as torch's CPU generator (CPUGeneratorImpl) drives it.
 *
 * torch.manual_seed(seed) accepts a 64-bit seed but its mt19937 only ever sees the low 32 bits
 * (the state is initialised from `seed & 0xffffffff`), so seeds that differ only above bit 31 give
 * identical noise in torch; we reproduce that rather than "fix" it, since workflows rely on it.
 */

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

export class MT19937 {
  private readonly state = new Uint32Array(N);
  private index = N;

  constructor(seed: bigint | number = 5489) {
    this.seed(seed);
  }

  seed(seed: bigint | number): void {
    const s = typeof seed === 'bigint' ? Number(BigInt.asUintN(32, seed)) : seed >>> 0;
    const st = this.state;
    st[0] = s;
    for (let i = 1; i < N; i++) {
      const prev = st[i - 1] ^ (st[i - 1] >>> 30);
      // 1812433253 * prev overflows 2^53, so split the multiply to keep it exact mod 2^32.
      st[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
    this.index = N;
  }

  private twist(): void {
    const st = this.state;
    for (let i = 0; i < N; i++) {
      const y = (st[i] & UPPER_MASK) | (st[(i + 1) % N] & LOWER_MASK);
      let v = st[(i + M) % N] ^ (y >>> 1);
      if (y & 1) v ^= MATRIX_A;
      st[i] = v >>> 0;
    }
    this.index = 0;
  }

  /** torch's `random()`: one 32-bit draw. */
  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.state[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /**
   * torch's `random64()`: the first 32-bit draw is the high word. Returned as [hi, lo] so callers
   * that only need 53 bits can avoid BigInt in hot loops.
   */
  nextUint64Parts(): [number, number] {
    const hi = this.nextUint32();
    const lo = this.nextUint32();
    return [hi, lo];
  }

  nextUint64(): bigint {
    const [hi, lo] = this.nextUint64Parts();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
}
