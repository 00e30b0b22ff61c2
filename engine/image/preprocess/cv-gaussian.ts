import type { F32Mat } from './mat.ts';

/**
 * `cv2.GaussianBlur(x, (0, 0), sigma)` on float32 images: kernel size round(8σ + 1) | 1, the kernel
 * from getGaussianKernel (float32 taps normalised by their float32 sum), a row pass then a column pass
 * with BORDER_REFLECT_101. OpenCV's vectorised passes may fuse multiply-adds, so sums can differ from
 * OpenCV's in the last bits of float32 (tests hold them to 1e-4 of the 0..255 range).
 */

const f = Math.fround;

export function gaussianKernel(ksize: number, sigma: number): Float32Array {
  const s = sigma > 0 ? sigma : ((ksize - 1) * 0.5 - 1) * 0.3 + 0.8;
  const scale2X = -0.5 / (s * s);
  const k = new Float32Array(ksize);
  let sum = 0;
  for (let i = 0; i < ksize; i++) {
    const x = i - (ksize - 1) * 0.5;
    k[i] = f(Math.exp(scale2X * x * x));
    sum += k[i];
  }
  const inv = 1 / sum;
  for (let i = 0; i < ksize; i++) k[i] = f(k[i] * inv);
  return k;
}

function reflect101(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

export function gaussianBlurF32(src: F32Mat, sigma: number): F32Mat {
  if (!(sigma > 0)) throw new Error(`Gaussian sigma must be positive, got ${sigma}`);
  const ksize = Math.round(sigma * 8 + 1) | 1;
  const k = gaussianKernel(ksize, sigma);
  const r = (ksize - 1) / 2;
  const { h, w, c } = src;
  const tmp = new Float32Array(h * w * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let ch = 0; ch < c; ch++) {
        let s = 0;
        for (let t = 0; t < ksize; t++) s = f(s + f(k[t] * src.data[(y * w + reflect101(x + t - r, w)) * c + ch]));
        tmp[(y * w + x) * c + ch] = s;
      }
    }
  }
  const out = new Float32Array(h * w * c);
  const row = w * c;
  for (let y = 0; y < h; y++) {
    for (let i = 0; i < row; i++) {
      let s = 0;
      for (let t = 0; t < ksize; t++) s = f(s + f(k[t] * tmp[reflect101(y + t - r, h) * row + i]));
      out[y * row + i] = s;
    }
  }
  return { h, w, c, data: out };
}
