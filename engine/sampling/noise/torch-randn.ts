/**
 * `torch.manual_seed(seed); torch.randn(shape)` on CPU, float32, reproduced from torch's kernels.
 *
 * torch picks one of two algorithms by element count, and they consume the generator differently:
 * - numel >= 16 (contiguous float): every element first gets a float uniform from one 32-bit draw
 *   (low 24 bits / 2^24); then each 16-block is Box-Muller'd pairing element j with j+8. If numel is
 *   not a multiple of 16 the last 16 elements get 16 fresh uniforms and are transformed again, so
 *   the tail overlaps the last full block and the generator advances numel + 16 draws.
 * - numel < 16: per element, a double normal_distribution: two 53-bit uniforms from 64-bit draws
 *   (two 32-bit draws each, first one high), r*cos(theta) returned and r*sin(theta) cached in the
 *   generator for the next scalar normal. The cache survives across randn calls and is cleared only
 *   by manual_seed; the vectorised path neither reads nor clears it.
 *
 * The fixtures come from torch's AVX2 kernel, which uses vectorised float log/sin/cos; we evaluate
 * the scalar kernel's formula (float log, double trig), which differs from AVX2 by ~1e-6 on some
 * elements. The short (scalar) path is bit-exact.
 */

import { MT19937 } from './mt19937.ts';

const TWO_POW_M24 = 1 / 16777216;
const TWO_POW_M53 = 1 / 9007199254740992;
const TWO_PI = 2 * Math.PI;
const f32 = Math.fround;

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`torchRandn: invalid shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

/** Box-Muller over one 16-block of uniforms in place, as torch's normal_fill_16. */
function normalFill16(data: Float32Array, off: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = f32(1 - data[off + j]);
    const u2 = data[off + j + 8];
    // torch takes log and sqrt in float but multiplies by a double theta's cos/sin.
    const radius = f32(Math.sqrt(f32(-2 * f32(Math.log(u1)))));
    const theta = TWO_PI * u2;
    data[off + j] = radius * Math.cos(theta);
    data[off + j + 8] = radius * Math.sin(theta);
  }
}

export class TorchGenerator {
  private readonly mt = new MT19937();
  private nextDoubleNormal: number | null = null;
  private seedValue = 0n;

  constructor(seed: bigint = 67280421310721n) {
    this.manualSeed(seed);
  }

  manualSeed(seed: bigint): this {
    this.seedValue = BigInt.asUintN(64, seed);
    this.mt.seed(this.seedValue);
    this.nextDoubleNormal = null;
    return this;
  }

  initialSeed(): bigint {
    return this.seedValue;
  }

  /** torch `uniform_real_distribution<float>(0, 1)`. */
  private uniformFloat(): number {
    return (this.mt.nextUint32() & 0xffffff) * TWO_POW_M24;
  }

  /** torch `uniform_real_distribution<double>(0, 1)`: low 53 bits of random64. */
  private uniformDouble(): number {
    const [hi, lo] = this.mt.nextUint64Parts();
    return ((hi & 0x1fffff) * 4294967296 + lo) * TWO_POW_M53;
  }

  /** torch `normal_distribution<double>(0, 1)` with the generator's cached second sample. */
  private normalDouble(): number {
    if (this.nextDoubleNormal !== null) {
      const v = this.nextDoubleNormal;
      this.nextDoubleNormal = null;
      return v;
    }
    const u1 = this.uniformDouble();
    const u2 = this.uniformDouble();
    const r = Math.sqrt(-2 * Math.log(1 - u2));
    const theta = TWO_PI * u1;
    this.nextDoubleNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** `torch.randn(shape, generator=this)` on CPU, float32, row-major. */
  randn(shape: readonly number[]): Float32Array {
    const n = numelOf(shape);
    const out = new Float32Array(n);
    this.randnInto(out);
    return out;
  }

  /** Fill `out` as `torch.randn` of `out.length` elements would (the shape itself does not matter). */
  randnInto(out: Float32Array): void {
    const n = out.length;
    if (n < 16) {
      for (let i = 0; i < n; i++) out[i] = this.normalDouble();
      return;
    }
    for (let i = 0; i < n; i++) out[i] = this.uniformFloat();
    for (let i = 0; i + 16 <= n; i += 16) normalFill16(out, i);
    if (n % 16 !== 0) {
      const off = n - 16;
      for (let i = 0; i < 16; i++) out[off + i] = this.uniformFloat();
      normalFill16(out, off);
    }
  }
}

/** `torch.manual_seed(seed); torch.randn(shape)` on CPU float32. */
export function torchRandn(seed: bigint, shape: readonly number[]): Float32Array {
  return new TorchGenerator(seed).randn(shape);
}
