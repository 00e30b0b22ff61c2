import { describeShape, type Tensor } from '../core/tensor.ts';

/**
 * ComfyUI's post-processing convolutions (comfy_extras/nodes_post_processing.py): its Gaussian kernel
 * and a depthwise 2-D convolution over a 'reflect'-padded image, as ImageBlur, ImageSharpen and
 * LatentOperationSharpen run them through torch.
 */

const f = Math.fround;

/** torch.linspace(-1, 1, n) in float32 (the first half counted from the start, the rest from the end). */
function linspace11(n: number): Float32Array {
  const out = new Float32Array(n);
  if (n === 1) {
    out[0] = -1;
    return out;
  }
  const step = f(2 / (n - 1));
  const half = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = i < half ? f(-1 + f(step * i)) : f(1 - f(step * (n - i - 1)));
  return out;
}

/**
 * ComfyUI's `gaussian_kernel(size, sigma)`: exp(−d²/2σ²) over a size×size grid spanning [−1, 1] in
 * both axes (not pixel units: σ is relative to the kernel's half-width), normalised to sum 1. Float32 as torch.
 */
export function comfyGaussianKernel(size: number, sigma: number): Float32Array {
  if (!Number.isInteger(size) || size < 1) throw new Error(`Gaussian kernel size must be a positive integer, got ${size}`);
  if (!(sigma > 0)) throw new Error(`Gaussian sigma must be positive, got ${sigma}`);
  const t = linspace11(size);
  const g = new Float32Array(size * size);
  const denom = 2 * sigma * sigma;
  let sum = 0;
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      const d = f(Math.sqrt(f(f(t[i] * t[i]) + f(t[j] * t[j]))));
      const v = f(Math.exp(f(-f(d * d) / denom)));
      g[i * size + j] = v;
      sum += v;
    }
  }
  const s = f(sum);
  for (let k = 0; k < g.length; k++) g[k] = f(g[k] / s);
  return g;
}

/** torch's 'reflect' padding index: the edge pixel is not repeated. */
export function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0;
  let k = i;
  while (k < 0 || k >= n) k = k < 0 ? -k : 2 * (n - 1) - k;
  return k;
}

/**
 * Every channel of a [B, H, W, C] image (`channelsLast`) or a [B, C, H, W] tensor convolved with the
 * same (2r+1)² kernel over a reflect padding of r: torch's `F.conv2d(F.pad(x, r, 'reflect'), k, groups=C)`
 * cropped back to H×W. torch refuses a reflect padding as wide as the image; so does this.
 */
export function convolveReflect(t: Tensor, kernel: Float32Array, radius: number, channelsLast: boolean): Tensor {
  if (t.shape.length !== 4) throw new Error(`expected a 4-D tensor, got shape ${describeShape(t.shape)}`);
  const size = 2 * radius + 1;
  if (kernel.length !== size * size) throw new Error(`kernel has ${kernel.length} values, expected ${size}×${size}`);
  const [b, d1, d2, d3] = t.shape;
  const [c, h, w] = channelsLast ? [d3, d1, d2] : [d1, d2, d3];
  if (radius >= h || radius >= w) {
    throw new Error(`a radius of ${radius} needs an image larger than ${radius}×${radius} pixels (reflect padding), got ${w}×${h}`);
  }
  // Work on one H×W plane at a time: gather it, convolve with precomputed reflected indices, scatter back.
  const plane = new Float32Array(h * w);
  const res = new Float32Array(h * w);
  const out = new Float32Array(t.data.length);
  const rows = new Int32Array(h * size);
  const cols = new Int32Array(w * size);
  for (let y = 0; y < h; y++) for (let k = 0; k < size; k++) rows[y * size + k] = reflectIndex(y + k - radius, h) * w;
  for (let x = 0; x < w; x++) for (let k = 0; k < size; k++) cols[x * size + k] = reflectIndex(x + k - radius, w);
  const src = t.data;
  for (let n = 0; n < b; n++) {
    for (let ch = 0; ch < c; ch++) {
      if (channelsLast) for (let p = 0; p < h * w; p++) plane[p] = src[(n * h * w + p) * c + ch];
      else plane.set(src.subarray((n * c + ch) * h * w, (n * c + ch + 1) * h * w));
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          let s = 0;
          for (let ky = 0; ky < size; ky++) {
            const row = rows[y * size + ky];
            const kr = ky * size;
            for (let kx = 0; kx < size; kx++) s += kernel[kr + kx] * plane[row + cols[x * size + kx]];
          }
          res[y * w + x] = s;
        }
      }
      if (channelsLast) for (let p = 0; p < h * w; p++) out[(n * h * w + p) * c + ch] = res[p];
      else out.set(res, (n * c + ch) * h * w);
    }
  }
  return { shape: [...t.shape], data: out };
}

/** ComfyUI's sharpen kernel: the Gaussian times −10·alpha, its centre raised so the kernel sums to 1. */
export function comfySharpenKernel(size: number, sigma: number, alpha: number): Float32Array {
  const k = comfyGaussianKernel(size, sigma);
  const scale = -(alpha * 10);
  let sum = 0;
  for (let i = 0; i < k.length; i++) {
    k[i] = f(k[i] * scale);
    sum += k[i];
  }
  const c = Math.floor(size / 2) * size + Math.floor(size / 2);
  k[c] = f(f(k[c] - f(sum)) + 1);
  return k;
}
