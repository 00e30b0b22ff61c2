import { bislerp } from './bislerp.ts';
import { nchwToNhwc, nhwcToNchw } from './layout.ts';
import { pilLanczos } from './pil-lanczos.ts';
import { pyRound } from './python-compat.ts';
import { describeShape, numel, type Tensor } from '../core/tensor.ts';

/**
 * ComfyUI's `common_upscale`: torch `F.interpolate` for nearest-exact, bilinear, area and bicubic
 * (align_corners=False, no antialias), Pillow's Lanczos on 8-bit values for lanczos, and ComfyUI's
 * slerp-based bislerp. Index and weight arithmetic is done in float32 as torch's CPU kernels do, so
 * sample positions agree at exact ties.
 */

export type ResizeMethod = 'nearest-exact' | 'bilinear' | 'area' | 'bicubic' | 'lanczos' | 'bislerp';
export type CropMethod = 'disabled' | 'center';

/** The choices of ImageScale / ImageScaleBy, in ComfyUI's order. */
export const IMAGE_UPSCALE_METHODS = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos'] as const;
/** The choices of LatentUpscale / LatentUpscaleBy, in ComfyUI's order. */
export const LATENT_UPSCALE_METHODS = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'bislerp'] as const;
export const CROP_METHODS = ['disabled', 'center'] as const;

const RESIZE_METHODS: readonly string[] = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos', 'bislerp'];

/** Largest tensor a resize will allocate (elements), so a bad size fails with a message, not a crash. */
export const MAX_RESIZE_ELEMENTS = 2 ** 31 - 1;

const f32 = Math.fround;

/** Per output index, `k` source indices and weights (zero weights pad the shorter rows). */
interface Taps {
  k: number;
  idx: Int32Array;
  w: Float32Array;
}

function clamp(i: number, n: number): number {
  return i < 0 ? 0 : i >= n ? n - 1 : i;
}

/** `area_pixel_compute_scale` without explicit scales: input / output as a float. */
function scaleOf(inN: number, outN: number): number {
  return f32(inN / outN);
}

function nearestExactTaps(inN: number, outN: number): Taps {
  const scale = scaleOf(inN, outN);
  const idx = new Int32Array(outN);
  // torch: min(floorf((dst + 0.5) * scale), in - 1); floorf narrows the product to float first.
  for (let o = 0; o < outN; o++) idx[o] = Math.min(Math.floor(f32((o + 0.5) * scale)), inN - 1);
  return { k: 1, idx, w: new Float32Array(outN).fill(1) };
}

function bilinearTaps(inN: number, outN: number): Taps {
  const scale = scaleOf(inN, outN);
  const idx = new Int32Array(outN * 2);
  const w = new Float32Array(outN * 2);
  for (let o = 0; o < outN; o++) {
    let src = f32(f32(scale * f32(o + 0.5)) - 0.5);
    if (src < 0) src = 0;
    const i0 = Math.trunc(src);
    const i1 = i0 + (i0 < inN - 1 ? 1 : 0);
    const l = Math.min(Math.max(f32(src - i0), 0), 1);
    idx[2 * o] = i0;
    idx[2 * o + 1] = i1;
    w[2 * o] = f32(1 - l);
    w[2 * o + 1] = l;
  }
  return { k: 2, idx, w };
}

const A = -0.75;
const cubic1 = (x: number): number => ((A + 2) * x - (A + 3)) * x * x + 1;
const cubic2 = (x: number): number => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;

function bicubicTaps(inN: number, outN: number): Taps {
  const scale = scaleOf(inN, outN);
  const idx = new Int32Array(outN * 4);
  const w = new Float32Array(outN * 4);
  for (let o = 0; o < outN; o++) {
    // cubic: no clamping of the source position at 0; out-of-range taps read the border pixel.
    const src = f32(f32(scale * f32(o + 0.5)) - 0.5);
    const i = Math.min(Math.floor(src), inN - 1);
    const t = Math.min(Math.max(f32(src - i), 0), 1);
    const x2 = f32(1 - t);
    const coeffs = [cubic2(f32(t + 1)), cubic1(t), cubic1(x2), cubic2(f32(x2 + 1))];
    for (let j = 0; j < 4; j++) {
      idx[4 * o + j] = clamp(i - 1 + j, inN);
      w[4 * o + j] = coeffs[j];
    }
  }
  return { k: 4, idx, w };
}

/** adaptive_avg_pool: output o averages [floor(o·in/out), ceil((o+1)·in/out)). */
function areaTaps(inN: number, outN: number): Taps {
  const start = (o: number): number => Math.floor((o * inN) / outN);
  const end = (o: number): number => Math.floor(((o + 1) * inN + outN - 1) / outN);
  let k = 1;
  for (let o = 0; o < outN; o++) k = Math.max(k, end(o) - start(o));
  const idx = new Int32Array(outN * k);
  const w = new Float32Array(outN * k);
  for (let o = 0; o < outN; o++) {
    const s = start(o);
    const n = end(o) - s;
    for (let j = 0; j < k; j++) {
      idx[o * k + j] = j < n ? s + j : s;
      w[o * k + j] = j < n ? 1 / n : 0;
    }
  }
  return { k, idx, w };
}

function tapsFor(method: 'nearest-exact' | 'bilinear' | 'bicubic' | 'area', inN: number, outN: number): Taps {
  switch (method) {
    case 'nearest-exact':
      return nearestExactTaps(inN, outN);
    case 'bilinear':
      return bilinearTaps(inN, outN);
    case 'bicubic':
      return bicubicTaps(inN, outN);
    case 'area':
      return areaTaps(inN, outN);
  }
}

/** Rows first (into a float32 buffer, as torch's float arithmetic rounds), then columns. */
function separable(t: Tensor, outH: number, outW: number, tx: Taps, ty: Taps): Tensor {
  const [n, c, h, w] = t.shape;
  const tmp = new Float32Array(h * outW);
  const out = new Float32Array(n * c * outH * outW);
  for (let p = 0; p < n * c; p++) {
    const src = t.data.subarray(p * h * w, (p + 1) * h * w);
    for (let y = 0; y < h; y++) {
      const row = y * w;
      for (let x = 0; x < outW; x++) {
        let s = 0;
        for (let j = 0; j < tx.k; j++) s += src[row + tx.idx[x * tx.k + j]] * tx.w[x * tx.k + j];
        tmp[y * outW + x] = s;
      }
    }
    const dst = out.subarray(p * outH * outW, (p + 1) * outH * outW);
    for (let y = 0; y < outH; y++) {
      for (let x = 0; x < outW; x++) {
        let s = 0;
        for (let j = 0; j < ty.k; j++) s += tmp[ty.idx[y * ty.k + j] * outW + x] * ty.w[y * ty.k + j];
        dst[y * outW + x] = s;
      }
    }
  }
  return { shape: [n, c, outH, outW], data: out };
}

function checkTarget(t: Tensor, outH: number, outW: number, method: string): void {
  if (t.shape.length !== 4) throw new Error(`resize expects an [N, C, H, W] tensor, got shape ${describeShape(t.shape)}`);
  if (!RESIZE_METHODS.includes(method)) {
    throw new Error(`unknown resize method '${method}' (expected one of ${RESIZE_METHODS.join(', ')})`);
  }
  for (const [name, v] of [
    ['height', outH],
    ['width', outW],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`cannot resize to ${name} ${v}: sizes must be whole numbers of at least 1`);
  }
  const [n, c, h, w] = t.shape;
  if (h < 1 || w < 1) throw new Error(`cannot resize an empty tensor of shape ${describeShape(t.shape)}`);
  if (n * c * outH * outW > MAX_RESIZE_ELEMENTS) {
    throw new Error(
      `resizing ${describeShape(t.shape)} to ${outW}×${outH} needs ${n * c * outH * outW} values, more than the ${MAX_RESIZE_ELEMENTS} allowed`,
    );
  }
}

/**
 * Resize the last two axes of an [N, C, H, W] tensor with one of ComfyUI's methods (no crop).
 * Lanczos quantises to 8 bits as ComfyUI does by going through PIL, whatever the tensor holds.
 */
export function resizeNCHW(t: Tensor, outH: number, outW: number, method: ResizeMethod): Tensor {
  checkTarget(t, outH, outW, method);
  if (method === 'lanczos') return pilLanczos(t, outH, outW);
  if (method === 'bislerp') return bislerp(t, outH, outW);
  const [, , h, w] = t.shape;
  return separable(t, outH, outW, tapsFor(method, w, outW), tapsFor(method, h, outH));
}

/** ComfyUI's crop="center": trim [N, C, H, W] around its centre to the aspect ratio of width×height. */
export function centerCrop(t: Tensor, width: number, height: number): Tensor {
  const [n, c, h, w] = t.shape;
  const oldAspect = w / h;
  const newAspect = width / height;
  let x = 0;
  let y = 0;
  if (oldAspect > newAspect) x = pyRound((w - w * (newAspect / oldAspect)) / 2);
  else if (oldAspect < newAspect) y = pyRound((h - h * (oldAspect / newAspect)) / 2);
  if (x === 0 && y === 0) return t;
  const cw = w - 2 * x;
  const ch = h - 2 * y;
  const out = new Float32Array(n * c * ch * cw);
  for (let p = 0; p < n * c; p++) {
    for (let r = 0; r < ch; r++) {
      const from = p * h * w + (r + y) * w + x;
      out.set(t.data.subarray(from, from + cw), (p * ch + r) * cw);
    }
  }
  return { shape: [n, c, ch, cw], data: out };
}

/** `comfy.utils.common_upscale` on [N, C, H, W]: optional centre crop, then the method. */
export function commonUpscale(t: Tensor, width: number, height: number, method: ResizeMethod, crop: CropMethod): Tensor {
  if (t.shape.length !== 4) throw new Error(`common_upscale expects an [N, C, H, W] tensor, got shape ${describeShape(t.shape)}`);
  if (crop !== 'disabled' && crop !== 'center') throw new Error(`unknown crop '${String(crop)}' (expected disabled or center)`);
  if (numel(t.shape) === 0) throw new Error(`cannot resize an empty tensor of shape ${describeShape(t.shape)}`);
  const s = crop === 'center' ? centerCrop(t, width, height) : t;
  return resizeNCHW(s, height, width, method);
}

/** common_upscale for an IMAGE ([N, H, W, C]), as ImageScale does with `movedim`. */
export function upscaleImage(image: Tensor, width: number, height: number, method: ResizeMethod, crop: CropMethod): Tensor {
  if (image.shape.length !== 4) throw new Error(`IMAGE must be [N, H, W, C], got shape ${describeShape(image.shape)}`);
  return nchwToNhwc(commonUpscale(nhwcToNchw(image), width, height, method, crop));
}

export { nchwToNhwc, nhwcToNchw };
