import type { Tensor } from '../../core/tensor.ts';
import { reflectIndex } from '../../image/filters.ts';

/**
 * The Impact Pack's `tensor_gaussian_blur_mask(mask, feather)`: torchvision's GaussianBlur with a
 * (2·feather+1) kernel and σ = 10 whatever the kernel size, the kernel shrunk to the largest odd size
 * below half the mask's shorter side (no blur when that is under 3), reflect padding. The feather
 * input therefore sets the blur's reach, not its softness.
 */

/** The kernel size the Impact Pack uses for a feather on an h×w mask, or 0 when it skips blurring. */
export function impactBlurKernelSize(feather: number, h: number, w: number): number {
  if (feather <= 0) return 0;
  let k = feather * 2 + 1;
  const shortest = Math.min(h, w);
  if (shortest <= k) {
    k = Math.trunc(shortest / 2);
    if (k % 2 === 0) k += 1;
    if (k < 3) return 0;
  }
  return k;
}

/** torchvision's `_get_gaussian_kernel1d`: exp(−x²/2σ²) over linspace(−(k−1)/2, (k−1)/2, k), summing to 1, float32. */
export function torchvisionGaussianKernel1d(size: number, sigma: number): Float32Array {
  const half = (size - 1) * 0.5;
  const pdf = new Float32Array(size);
  let sum = 0;
  for (let i = 0; i < size; i++) {
    const x = Math.fround(-half + (size === 1 ? 0 : (2 * half * i) / (size - 1)));
    pdf[i] = Math.exp(-0.5 * Math.fround(x / sigma) ** 2);
    sum += pdf[i];
  }
  for (let i = 0; i < size; i++) pdf[i] = pdf[i] / Math.fround(sum);
  return pdf;
}

/**
 * Blur every [h, w] plane of a mask (shape [..., h, w]) as the Impact Pack does before using it as a
 * paste alpha or a noise mask. Separable passes (torchvision convolves with the outer product, the
 * same sums in another order: ~1e-7 apart).
 */
export function impactBlurMask(mask: Tensor, feather: number, sigma = 10): Tensor {
  const h = mask.shape[mask.shape.length - 2];
  const w = mask.shape[mask.shape.length - 1];
  const k = impactBlurKernelSize(feather, h, w);
  if (k === 0) return { shape: [...mask.shape], data: Float32Array.from(mask.data) };
  const kernel = torchvisionGaussianKernel1d(k, sigma);
  const r = (k - 1) / 2;
  const planes = mask.data.length / (h * w);
  const out = new Float32Array(mask.data.length);
  const tmp = new Float64Array(h * w);
  const cols = Int32Array.from({ length: w * k }, (_, i) => reflectIndex(Math.trunc(i / k) + (i % k) - r, w));
  const rows = Int32Array.from({ length: h * k }, (_, i) => reflectIndex(Math.trunc(i / k) + (i % k) - r, h));
  for (let p = 0; p < planes; p++) {
    const src = mask.data.subarray(p * h * w, (p + 1) * h * w);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let j = 0; j < k; j++) s += kernel[j] * src[y * w + cols[x * k + j]];
        tmp[y * w + x] = s;
      }
    }
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let j = 0; j < k; j++) s += kernel[j] * tmp[rows[y * k + j] * w + x];
        out[p * h * w + y * w + x] = s;
      }
    }
  }
  return { shape: [...mask.shape], data: out };
}
