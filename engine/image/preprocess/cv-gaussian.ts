import { cvRound } from './cv-resize.ts';
import { fmaf } from './cv-fma.ts';
import type { F32Mat } from './mat.ts';

/**
 * `cv2.GaussianBlur(x, (0, 0), sigma)` on float32 images as OpenCV 4.6's CPU code computes it (its
 * AVX2 build, which x86-64 CPUs of the last decade run): kernel size cvRound(8σ + 1) | 1, the kernel
 * of getGaussianKernelBitExact (double arithmetic, rounded to float32 once), a row pass into a
 * float32 buffer, then a column pass, BORDER_REFLECT_101. Every multiply-add is a fused one (FMA3),
 * and the order of the terms is the one the vector loops and the compiler's contraction of the scalar
 * tails give; both were pinned down term by term against OpenCV (tests/preprocessors/cv-ops.test.ts):
 *
 * - row, kernels of 3 or 5 taps (SymmRowSmallFilter): (x₋₁ + x₁)·k₁ first, then x₀·k₀, then
 *   (x₋₂ + x₂)·k₂; except the row's very last value when the row holds an odd number of values, which
 *   the scalar one-at-a-time loop computes as x₀·k₀, then the pairs outwards;
 * - row, longer kernels (RowFilter): the taps left to right, not paired;
 * - column, any size (SymmColumnFilter): x₀·k₀, then the pairs outwards.
 */

/** getGaussianKernel(n, sigma, CV_32F) for sigma > 0: the bit-exact double kernel, each tap rounded once. */
export function gaussianKernel(n: number, sigma: number): Float32Array {
  if (!(sigma > 0) || n < 1 || n % 2 === 0) throw new Error(`Gaussian kernel needs an odd size and sigma > 0, got ${n} and ${sigma}`);
  const scale2X = -0.125 / (sigma * sigma);
  const half = (n - 1) / 2;
  const values = new Float64Array(half);
  let sum = 0;
  // x runs over twice the tap offsets, hence -0.125 (= -0.5 / 4) above, as OpenCV writes it
  for (let i = 0, x = 1 - n; i < half; i++, x += 2) {
    values[i] = Math.exp(x * x * scale2X);
    sum += values[i];
  }
  sum = sum * 2 + 1;
  const mul = 1 / sum;
  const k = new Float32Array(n);
  for (let i = 0; i < half; i++) k[i] = k[n - 1 - i] = values[i] * mul;
  k[half] = mul;
  return k;
}

/** OpenCV's borderInterpolate for BORDER_REFLECT_101 (reflecting again while out of range). */
function reflect101(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

/** One row of `w` pixels of `cn` interleaved channels filtered into `out`; `ext` is scratch for the bordered row. */
function rowPass(src: Float32Array, off: number, w: number, cn: number, k: Float32Array, ext: Float32Array, out: Float32Array): void {
  const n = k.length;
  const r = (n - 1) / 2;
  const len = w * cn;
  // the row with r reflected pixels on either side, as OpenCV's filter engine builds it
  for (let x = -r; x < w + r; x++) {
    const from = off + reflect101(x, w) * cn;
    for (let ch = 0; ch < cn; ch++) ext[(x + r) * cn + ch] = src[from + ch];
  }
  const f = Math.fround;
  for (let e = 0; e < len; e++) {
    const c0 = e + r * cn;
    let s: number;
    if (n > 5) {
      s = f(ext[e] * k[0]);
      for (let t = 1; t < n; t++) s = fmaf(ext[e + t * cn], k[t], s);
    } else if (e === len - 1 && len % 2 === 1) {
      s = f(ext[c0] * k[r]);
      for (let t = 1; t <= r; t++) s = fmaf(f(ext[c0 + t * cn] + ext[c0 - t * cn]), k[r + t], s);
    } else {
      s = f(f(ext[c0 + cn] + ext[c0 - cn]) * k[r + 1]);
      s = fmaf(ext[c0], k[r], s);
      if (r === 2) s = fmaf(f(ext[c0 + 2 * cn] + ext[c0 - 2 * cn]), k[r + 2], s);
    }
    out[e] = s;
  }
}

export function gaussianBlurF32(src: F32Mat, sigma: number): F32Mat {
  if (!(sigma > 0)) throw new Error(`Gaussian sigma must be positive, got ${sigma}`);
  const size = cvRound(sigma * 8 + 1) | 1;
  const { h, w, c } = src;
  // OpenCV drops the kernel along an axis of length 1 (and copies when both go)
  const kx = gaussianKernel(w === 1 ? 1 : size, sigma);
  const ky = gaussianKernel(h === 1 ? 1 : size, sigma);
  const len = w * c;
  const tmp = new Float32Array(h * len);
  if (kx.length === 1) tmp.set(src.data);
  else {
    const ext = new Float32Array((w + kx.length - 1) * c);
    for (let y = 0; y < h; y++) rowPass(src.data, y * len, w, c, kx, ext, tmp.subarray(y * len, (y + 1) * len));
  }
  if (ky.length === 1) return { h, w, c, data: tmp };
  const out = new Float32Array(h * len);
  const r = (ky.length - 1) / 2;
  for (let y = 0; y < h; y++) {
    const row = (t: number): number => reflect101(y + t, h) * len;
    const r0 = row(0);
    for (let i = 0; i < len; i++) out[y * len + i] = Math.fround(tmp[r0 + i] * ky[r]);
    for (let t = 1; t <= r; t++) {
      const a = row(t);
      const b = row(-t);
      for (let i = 0; i < len; i++) out[y * len + i] = fmaf(Math.fround(tmp[a + i] + tmp[b + i]), ky[r + t], out[y * len + i]);
    }
  }
  return { h, w, c, data: out };
}
