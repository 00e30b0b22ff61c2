import type { Tensor } from './tensor.ts';

export type UpscaleMethod = 'nearest-exact' | 'bilinear' | 'area' | 'bicubic' | 'lanczos';
export const UPSCALE_METHODS: readonly UpscaleMethod[] = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos'];

/** 1-D resampling weights: for each output index, source indices and weights (separable filters). */
interface Taps {
  idx: Int32Array[];
  w: Float32Array[];
}

function clampIdx(i: number, n: number): number {
  return i < 0 ? 0 : i >= n ? n - 1 : i;
}

/** torch.nn.functional.interpolate semantics (align_corners=False, no antialias) per axis. */
function taps(inN: number, outN: number, method: UpscaleMethod): Taps {
  const idx: Int32Array[] = [];
  const w: Float32Array[] = [];
  const scale = inN / outN;
  for (let o = 0; o < outN; o++) {
    if (method === 'nearest-exact') {
      idx.push(Int32Array.of(Math.min(Math.floor((o + 0.5) * scale), inN - 1)));
      w.push(Float32Array.of(1));
    } else if (method === 'bilinear') {
      const src = Math.max((o + 0.5) * scale - 0.5, 0);
      const i0 = Math.min(Math.floor(src), inN - 1);
      const i1 = Math.min(i0 + 1, inN - 1);
      const l = src - i0;
      idx.push(Int32Array.of(i0, i1));
      w.push(Float32Array.of(1 - l, l));
    } else if (method === 'area') {
      // adaptive_avg_pool: [floor(o·in/out), ceil((o+1)·in/out))
      const s = Math.floor((o * inN) / outN);
      const e = Math.ceil(((o + 1) * inN) / outN);
      const ii = new Int32Array(e - s);
      const ww = new Float32Array(e - s).fill(1 / (e - s));
      for (let k = 0; k < e - s; k++) ii[k] = s + k;
      idx.push(ii);
      w.push(ww);
    } else if (method === 'bicubic') {
      const A = -0.75;
      const src = (o + 0.5) * scale - 0.5;
      const f = Math.floor(src);
      const t = src - f;
      const c1 = (x: number): number => ((A + 2) * x - (A + 3)) * x * x + 1;
      const c2 = (x: number): number => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
      idx.push(Int32Array.of(clampIdx(f - 1, inN), clampIdx(f, inN), clampIdx(f + 1, inN), clampIdx(f + 2, inN)));
      w.push(Float32Array.of(c2(t + 1), c1(t), c1(1 - t), c2(2 - t)));
    } else {
      // Lanczos-3 as PIL resamples: support widened by the downscale factor, weights normalised.
      const support = 3 * Math.max(scale, 1);
      const center = (o + 0.5) * scale;
      const s = Math.max(0, Math.floor(center - support + 0.5));
      const e = Math.min(inN, Math.floor(center + support + 0.5));
      const inv = 1 / Math.max(scale, 1);
      const sinc = (x: number): number => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));
      const ii = new Int32Array(Math.max(1, e - s));
      const ww = new Float32Array(ii.length);
      let total = 0;
      for (let k = 0; k < e - s; k++) {
        const x = (s + k + 0.5 - center) * inv;
        const v = Math.abs(x) < 3 ? sinc(x) * sinc(x / 3) : 0;
        ii[k] = s + k;
        ww[k] = v;
        total += v;
      }
      if (e - s <= 0) ii[0] = clampIdx(Math.floor(center), inN);
      for (let k = 0; k < ww.length; k++) ww[k] = total !== 0 ? ww[k] / total : 1 / ww.length;
      idx.push(ii);
      w.push(ww);
    }
  }
  return { idx, w };
}

/** Resize the two last axes of an [N, C, H, W] tensor. */
export function resizeNCHW(t: Tensor, outH: number, outW: number, method: UpscaleMethod): Tensor {
  const [n, c, h, w] = t.shape;
  if (outH < 1 || outW < 1) throw new Error(`cannot resize to ${outW}×${outH}`);
  if (outH === h && outW === w) return { shape: [...t.shape], data: new Float32Array(t.data) };
  const tx = taps(w, outW, method);
  const ty = taps(h, outH, method);
  const tmp = new Float32Array(h * outW);
  const out = new Float32Array(n * c * outH * outW);
  for (let p = 0; p < n * c; p++) {
    const src = t.data.subarray(p * h * w, (p + 1) * h * w);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < outW; x++) {
        const ii = tx.idx[x];
        const ww = tx.w[x];
        let s = 0;
        for (let k = 0; k < ii.length; k++) s += src[y * w + ii[k]] * ww[k];
        tmp[y * outW + x] = s;
      }
    }
    const dst = out.subarray(p * outH * outW, (p + 1) * outH * outW);
    for (let y = 0; y < outH; y++) {
      const ii = ty.idx[y];
      const ww = ty.w[y];
      for (let x = 0; x < outW; x++) {
        let s = 0;
        for (let k = 0; k < ii.length; k++) s += tmp[ii[k] * outW + x] * ww[k];
        dst[y * outW + x] = s;
      }
    }
  }
  return { shape: [n, c, outH, outW], data: out };
}

/** Crop [N, C, H, W] to the target aspect ratio around the centre (ComfyUI's crop="center"). */
export function centerCropToAspect(t: Tensor, outW: number, outH: number): Tensor {
  const [n, c, h, w] = t.shape;
  const oldAspect = w / h;
  const newAspect = outW / outH;
  let x = 0;
  let y = 0;
  if (oldAspect > newAspect) x = Math.round((w - w * (newAspect / oldAspect)) / 2);
  else if (oldAspect < newAspect) y = Math.round((h - h * (oldAspect / newAspect)) / 2);
  if (x === 0 && y === 0) return t;
  const cw = w - 2 * x;
  const ch = h - 2 * y;
  const out = new Float32Array(n * c * ch * cw);
  for (let p = 0; p < n * c; p++) {
    for (let r = 0; r < ch; r++) {
      out.set(t.data.subarray(p * h * w + (r + y) * w + x, p * h * w + (r + y) * w + x + cw), (p * ch + r) * cw);
    }
  }
  return { shape: [n, c, ch, cw], data: out };
}

export function nhwcToNchw(t: Tensor): Tensor {
  const [n, h, w, c] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++) out[((b * c + k) * h + y) * w + x] = t.data[((b * h + y) * w + x) * c + k];
  return { shape: [n, c, h, w], data: out };
}

export function nchwToNhwc(t: Tensor): Tensor {
  const [n, c, h, w] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let b = 0; b < n; b++)
    for (let k = 0; k < c; k++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) out[((b * h + y) * w + x) * c + k] = t.data[((b * c + k) * h + y) * w + x];
  return { shape: [n, h, w, c], data: out };
}

/**
 * ComfyUI's common_upscale for IMAGE tensors (NHWC): optional centre crop to the target aspect, then
 * the method. Lanczos runs on 8-bit values as ComfyUI does through PIL.
 */
export function upscaleImage(image: Tensor, width: number, height: number, method: UpscaleMethod, crop: 'disabled' | 'center'): Tensor {
  let t = nhwcToNchw(image);
  if (crop === 'center') t = centerCropToAspect(t, width, height);
  if (method === 'lanczos') {
    const q = new Float32Array(t.data.length);
    for (let i = 0; i < q.length; i++) q[i] = Math.round(Math.min(1, Math.max(0, t.data[i])) * 255);
    const r = resizeNCHW({ shape: t.shape, data: q }, height, width, 'lanczos');
    for (let i = 0; i < r.data.length; i++) r.data[i] = Math.min(255, Math.max(0, Math.round(r.data[i]))) / 255;
    return nchwToNhwc(r);
  }
  return nchwToNhwc(resizeNCHW(t, height, width, method));
}
