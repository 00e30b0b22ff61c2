import type { Latent, Tensor } from '../../engine/core/tensor.ts';
import {
  commonUpscale,
  CROP_METHODS,
  LATENT_UPSCALE_METHODS,
  resizeNCHW,
  type CropMethod,
  type ResizeMethod,
} from '../../engine/image/resize.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { MAX_RESOLUTION } from './empty-latent.ts';

/** ComfyUI's latent nodes for img2img, inpainting, outpainting and hires fix; semantics as in its nodes.py. */

const slice4 = (t: Tensor, from: number, count: number): Tensor => {
  const per = t.data.length / t.shape[0];
  return { shape: [count, ...t.shape.slice(1)], data: t.data.slice(from * per, (from + count) * per) };
};

const repeatBatch = (t: Tensor, times: number): Tensor => {
  const out = new Float32Array(t.data.length * times);
  for (let i = 0; i < times; i++) out.set(t.data, i * t.data.length);
  return { shape: [t.shape[0] * times, ...t.shape.slice(1)], data: out };
};

export const SetLatentNoiseMask = defineNode({
  name: 'SetLatentNoiseMask',
  displayName: 'Set Latent Noise Mask',
  category: 'latent/inpaint',
  inputs: { required: { samples: { type: 'LATENT' }, mask: { type: 'MASK' } } },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples, mask }) {
    const h = mask.shape[mask.shape.length - 2];
    const w = mask.shape[mask.shape.length - 1];
    const out: Latent = { ...samples, noiseMask: { shape: [mask.data.length / (h * w), 1, h, w], data: mask.data } };
    return [out];
  },
});

export const VAEEncodeForInpaint = defineNode({
  name: 'VAEEncodeForInpaint',
  displayName: 'VAE Encode (for Inpainting)',
  category: 'latent/inpaint',
  inputs: {
    required: {
      pixels: { type: 'IMAGE' },
      vae: { type: 'VAE' },
      mask: { type: 'MASK' },
      grow_mask_by: { type: 'INT', default: 6, min: 0, max: 64, step: 1 },
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  async run({ pixels, vae, mask, grow_mask_by }, ctx) {
    const [B, H, W, C] = pixels.shape;
    const f = vae.downscale;
    const h = Math.floor(H / f) * f;
    const w = Math.floor(W / f) * f;
    const mh = mask.shape[mask.shape.length - 2];
    const mw = mask.shape[mask.shape.length - 1];
    const mb = mask.data.length / (mh * mw);
    let m = resizeNCHW({ shape: [mb, 1, mh, mw], data: mask.data }, H, W, 'bilinear');
    // Centre-crop pixels and mask to the VAE grid, as ComfyUI does.
    const y0 = Math.floor((H % f) / 2);
    const x0 = Math.floor((W % f) / 2);
    const px = new Float32Array(B * h * w * C);
    for (let b = 0; b < B; b++)
      for (let y = 0; y < h; y++)
        px.set(pixels.data.subarray(((b * H + y + y0) * W + x0) * C, ((b * H + y + y0) * W + x0 + w) * C), (b * h + y) * w * C);
    const md = new Float32Array(mb * h * w);
    for (let b = 0; b < mb; b++)
      for (let y = 0; y < h; y++) md.set(m.data.subarray((b * H + y + y0) * W + x0, (b * H + y + y0) * W + x0 + w), (b * h + y) * w);
    m = { shape: [mb, 1, h, w], data: md };
    // Masked pixels become mid-grey so the encoder sees no content there.
    for (let b = 0; b < B; b++)
      for (let s = 0; s < h * w; s++) {
        const keep = 1 - Math.round(md[(b % mb) * h * w + s]);
        for (let c = 0; c < Math.min(3, C); c++) {
          const i = (b * h * w + s) * C + c;
          px[i] = (px[i] - 0.5) * keep + 0.5;
        }
      }
    // Grow: a box sum of the rounded mask over grow_mask_by pixels, clamped (torch conv2d, padding ceil((k−1)/2)).
    let grown = md.map((v) => Math.round(v));
    const k = grow_mask_by;
    if (k > 0) {
      const pad = Math.ceil((k - 1) / 2);
      const out = new Float32Array(grown.length);
      for (let b = 0; b < mb; b++)
        for (let y = 0; y < h; y++)
          for (let x = 0; x < w; x++) {
            let s = 0;
            for (let dy = 0; dy < k; dy++)
              for (let dx = 0; dx < k; dx++) {
                const yy = y + dy - pad;
                const xx = x + dx - pad;
                if (yy >= 0 && yy < h && xx >= 0 && xx < w) s += grown[(b * h + yy) * w + xx];
              }
            out[(b * h + y) * w + x] = Math.round(Math.min(1, Math.max(0, s)));
          }
      grown = out;
    }
    const samples = await vae.encode({ shape: [B, h, w, C], data: px }, ctx.signal);
    const out: Latent = { samples, noiseMask: { shape: [mb, 1, h, w], data: grown } };
    return [out];
  },
});

export const LatentUpscale = defineNode({
  name: 'LatentUpscale',
  displayName: 'Upscale Latent',
  category: 'latent',
  inputs: {
    required: {
      samples: { type: 'LATENT' },
      upscale_method: { type: 'COMBO', options: [...LATENT_UPSCALE_METHODS] },
      width: { type: 'INT', default: 512, min: 0, max: MAX_RESOLUTION, step: 8 },
      height: { type: 'INT', default: 512, min: 0, max: MAX_RESOLUTION, step: 8 },
      crop: { type: 'COMBO', options: [...CROP_METHODS] },
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples, upscale_method, width, height, crop }) {
    if (width === 0 && height === 0) return [samples];
    const [, , h, w] = samples.samples.shape;
    if (width === 0) {
      height = Math.max(64, height);
      width = Math.max(64, Math.round((w * height) / h));
    } else if (height === 0) {
      width = Math.max(64, width);
      height = Math.max(64, Math.round((h * width) / w));
    } else {
      width = Math.max(64, width);
      height = Math.max(64, height);
    }
    const out: Latent = {
      ...samples,
      samples: commonUpscale(
        samples.samples,
        Math.floor(width / 8),
        Math.floor(height / 8),
        upscale_method as ResizeMethod,
        crop as CropMethod,
      ),
    };
    return [out];
  },
});

export const LatentUpscaleBy = defineNode({
  name: 'LatentUpscaleBy',
  displayName: 'Upscale Latent By',
  category: 'latent',
  inputs: {
    required: {
      samples: { type: 'LATENT' },
      upscale_method: { type: 'COMBO', options: [...LATENT_UPSCALE_METHODS] },
      scale_by: { type: 'FLOAT', default: 1.5, min: 0.01, max: 8.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples, upscale_method, scale_by }) {
    const [, , h, w] = samples.samples.shape;
    const out: Latent = {
      ...samples,
      samples: commonUpscale(
        samples.samples,
        Math.round(w * scale_by),
        Math.round(h * scale_by),
        upscale_method as ResizeMethod,
        'disabled',
      ),
    };
    return [out];
  },
});

export const LatentComposite = defineNode({
  name: 'LatentComposite',
  displayName: 'Latent Composite',
  category: 'latent',
  inputs: {
    required: {
      samples_to: { type: 'LATENT' },
      samples_from: { type: 'LATENT' },
      x: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 8 },
      y: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 8 },
      feather: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 8 },
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples_to, samples_from, x, y, feather }) {
    const X = Math.floor(x / 8);
    const Y = Math.floor(y / 8);
    const F = Math.floor(feather / 8);
    const to = samples_to.samples;
    const from = samples_from.samples;
    const [B, C, H, W] = to.shape;
    const [FB, FC, FH, FW] = from.shape;
    if (FC !== C) throw new Error(`LatentComposite: samples_from has ${FC} channels, samples_to ${C}`);
    const h = Math.max(0, Math.min(FH, H - Y));
    const w = Math.max(0, Math.min(FW, W - X));
    const s = to.data.slice();
    const mask = new Float32Array(h * w).fill(1);
    for (let t = 0; t < F; t++) {
      const f = (t + 1) / F;
      for (let xx = 0; xx < w; xx++) {
        if (Y !== 0 && t < h) mask[t * w + xx] *= f;
        if (Y + h < H && h - 1 - t >= 0) mask[(h - 1 - t) * w + xx] *= f;
      }
      for (let yy = 0; yy < h; yy++) {
        if (X !== 0 && t < w) mask[yy * w + t] *= f;
        if (X + w < W && w - 1 - t >= 0) mask[yy * w + w - 1 - t] *= f;
      }
    }
    for (let b = 0; b < B; b++)
      for (let c = 0; c < C; c++)
        for (let yy = 0; yy < h; yy++)
          for (let xx = 0; xx < w; xx++) {
            const m = mask[yy * w + xx];
            const di = ((b * C + c) * H + Y + yy) * W + X + xx;
            const si = (((b % FB) * C + c) * FH + yy) * FW + xx;
            s[di] = from.data[si] * m + s[di] * (1 - m);
          }
    const out: Latent = { ...samples_to, samples: { shape: to.shape, data: s } };
    return [out];
  },
});

export const LatentFromBatch = defineNode({
  name: 'LatentFromBatch',
  displayName: 'Latent From Batch',
  category: 'latent/batch',
  inputs: {
    required: {
      samples: { type: 'LATENT' },
      batch_index: { type: 'INT', default: 0, min: 0, max: 63 },
      length: { type: 'INT', default: 1, min: 1, max: 64 },
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples, batch_index, length }) {
    const B = samples.samples.shape[0];
    const start = Math.min(B - 1, batch_index);
    const len = Math.min(B - start, length);
    let noiseMask = samples.noiseMask;
    if (noiseMask && noiseMask.shape[0] > 1) {
      let m = noiseMask;
      if (m.shape[0] < B) m = repeatBatch(m, Math.ceil(B / m.shape[0]));
      noiseMask = slice4(m, start, len);
    }
    const batchIndex = samples.batchIndex ? samples.batchIndex.slice(start, start + len) : Array.from({ length: len }, (_, i) => start + i);
    const out: Latent = { samples: slice4(samples.samples, start, len), noiseMask, batchIndex };
    return [out];
  },
});

export const RepeatLatentBatch = defineNode({
  name: 'RepeatLatentBatch',
  displayName: 'Repeat Latent Batch',
  category: 'latent/batch',
  inputs: { required: { samples: { type: 'LATENT' }, amount: { type: 'INT', default: 1, min: 1, max: 64 } } },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples, amount }) {
    const B = samples.samples.shape[0];
    let noiseMask = samples.noiseMask;
    if (noiseMask && noiseMask.shape[0] > 1) {
      if (noiseMask.shape[0] < B) noiseMask = slice4(repeatBatch(noiseMask, Math.ceil(B / noiseMask.shape[0])), 0, B);
      noiseMask = repeatBatch(noiseMask, amount);
    }
    let batchIndex = samples.batchIndex;
    if (batchIndex && batchIndex.length) {
      const base = batchIndex;
      const offset = Math.max(...base) - Math.min(...base) + 1;
      const all = [...base];
      for (let i = 1; i < amount; i++) for (const v of base) all.push(v + i * offset);
      batchIndex = all;
    }
    const out: Latent = { samples: repeatBatch(samples.samples, amount), noiseMask, batchIndex };
    return [out];
  },
});

export const LatentBlend = defineNode({
  name: 'LatentBlend',
  displayName: 'Latent Blend',
  category: '_for_testing',
  inputs: {
    required: {
      samples1: { type: 'LATENT' },
      samples2: { type: 'LATENT' },
      blend_factor: { type: 'FLOAT', default: 0.5, min: 0, max: 1, step: 0.01 },
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples1, samples2, blend_factor }) {
    const a = samples1.samples;
    let b = samples2.samples;
    if (a.shape.some((d, i) => d !== b.shape[i])) b = commonUpscale(b, a.shape[3], a.shape[2], 'bicubic', 'center');
    const data = new Float32Array(a.data.length);
    const per = a.data.length / a.shape[0];
    for (let i = 0; i < data.length; i++)
      data[i] = a.data[i] * blend_factor + b.data[(i % per) + (Math.floor(i / per) % b.shape[0]) * per] * (1 - blend_factor);
    const out: Latent = { ...samples1, samples: { shape: a.shape, data } };
    return [out];
  },
});

export const nodes = [
  SetLatentNoiseMask,
  VAEEncodeForInpaint,
  LatentUpscale,
  LatentUpscaleBy,
  LatentComposite,
  LatentFromBatch,
  RepeatLatentBatch,
  LatentBlend,
];
