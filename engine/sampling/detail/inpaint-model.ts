import { describeShape, type ImageTensor, type Latent, type Tensor } from '../../core/tensor.ts';
import { resizeNCHW } from '../../image/resize.ts';
import type { ModelHandle, VaeHandle } from '../../models/handles.ts';
import type { Conditioning } from '../conditioning.ts';

/**
 * ComfyUI's InpaintModelConditioning (nodes.py), which the Impact Pack's enhance_detail uses when
 * `inpaint_model` is on: the pixels and the mask cut to the VAE's 8-pixel grid, the latent of the
 * pixels with the mask as noise mask, and on both prompts the latent of the pixels greyed under the
 * rounded mask. ComfyUI keeps that latent and the mask on the conditioning and its inpainting models
 * (`concat_keys` mask, masked_image) turn them into `c_concat` at sampling time; here the latent's
 * size is known, so `c_concat` is made at once, the same way (mask resized bilinearly to the latent
 * and rounded, latent × scale factor as process_latent_in), for a UNet with more input channels than
 * the latent has. Other models ignore it in ComfyUI, so they get none.
 */

export interface InpaintModelResult {
  positive: Conditioning;
  negative: Conditioning;
  latent: Latent;
}

/** torch.round: half to even. */
const roundEven = (v: number): number => {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** Channels [y0, y0 + h) × [x0, x0 + w) of the last two axes of an [N, C, H, W] tensor. */
function cropNCHW(t: Tensor, y0: number, x0: number, h: number, w: number): Tensor {
  const [n, c, H, W] = t.shape;
  const out = new Float32Array(n * c * h * w);
  for (let p = 0; p < n * c; p++)
    for (let y = 0; y < h; y++) out.set(t.data.subarray((p * H + y0 + y) * W + x0, (p * H + y0 + y) * W + x0 + w), (p * h + y) * w);
  return { shape: [n, c, h, w], data: out };
}

function cropNHWC(t: ImageTensor, y0: number, x0: number, h: number, w: number): ImageTensor {
  const [n, H, W, c] = t.shape;
  const out = new Float32Array(n * h * w * c);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      out.set(t.data.subarray(((b * H + y0 + y) * W + x0) * c, ((b * H + y0 + y) * W + x0 + w) * c), (b * h + y) * w * c);
  return { shape: [n, h, w, c], data: out };
}

/**
 * InpaintModelConditioning.encode(positive, negative, pixels, vae, mask, noise_mask) for `model`.
 * `mask` is [H, W], [B, H, W] or [B, 1, H, W] at any size (resized bilinearly to the pixels).
 */
export async function inpaintModelConditioning(
  positive: Conditioning,
  negative: Conditioning,
  pixels: ImageTensor,
  vae: VaeHandle,
  mask: Tensor,
  model: ModelHandle,
  noiseMask: boolean,
  signal?: AbortSignal,
): Promise<InpaintModelResult> {
  if (pixels.shape.length !== 4)
    throw new Error(`InpaintModelConditioning: pixels must be [B, H, W, C], got ${describeShape(pixels.shape)}`);
  const [, H, W, C] = pixels.shape;
  const ms = mask.shape;
  if (ms.length < 2 || ms.length > 4)
    throw new Error(`InpaintModelConditioning: mask must be [H, W], [B, H, W] or [B, 1, H, W], got ${describeShape(ms)}`);
  const mh = ms[ms.length - 2];
  const mw = ms[ms.length - 1];
  const mb = mask.data.length / (mh * mw);
  let m = resizeNCHW({ shape: [mb, 1, mh, mw], data: mask.data }, H, W, 'bilinear');
  const h8 = Math.floor(H / 8) * 8;
  const w8 = Math.floor(W / 8) * 8;
  let px = pixels;
  if (h8 !== H || w8 !== W) {
    if (h8 === 0 || w8 === 0) throw new Error(`InpaintModelConditioning: pixels of ${W}x${H} are smaller than the VAE's 8-pixel grid`);
    const y0 = Math.floor((H % 8) / 2);
    const x0 = Math.floor((W % 8) / 2);
    px = cropNHWC(pixels, y0, x0, h8, w8);
    m = cropNCHW(m, y0, x0, h8, w8);
  }
  // (pixels − 0.5)·(1 − round(mask)) + 0.5, channel by channel in float32; a batch-1 mask serves every image.
  const f = Math.fround;
  const greyed = Float32Array.from(px.data);
  const [B] = px.shape;
  const S = h8 * w8;
  for (let b = 0; b < B; b++)
    for (let s = 0; s < S; s++) {
      const keep = 1 - roundEven(m.data[(b % mb) * S + s]);
      for (let k = 0; k < Math.min(3, C); k++) {
        const i = (b * S + s) * C + k;
        greyed[i] = f(f(f(greyed[i] - 0.5) * keep) + 0.5);
      }
    }
  const concatLatent = await vae.encode({ shape: px.shape, data: greyed }, signal);
  const samples = await vae.encode(pixels, signal);
  const latent: Latent = noiseMask ? { samples, noiseMask: m } : { samples };
  const channels = samples.shape[1];
  if (model.unet.inChannels <= channels) return { positive, negative, latent };
  const extra = model.unet.inChannels - channels;
  if (extra !== channels + 1) {
    throw new Error(
      `InpaintModelConditioning: the UNet takes ${model.unet.inChannels} input channels; an inpainting model takes the latent's ${channels}, a mask and the masked latent (${2 * channels + 1})`,
    );
  }
  const cConcat = inpaintConcat(m, concatLatent, model.latentFormat.scaleFactor);
  const withConcat = (c: Conditioning): Conditioning => c.map((e) => ({ ...e, modelConds: { ...e.modelConds, c_concat: cConcat } }));
  return { positive: withConcat(positive), negative: withConcat(negative), latent };
}

/**
 * BaseModel.concat_cond for concat_keys (mask, masked_image): the mask resized bilinearly to the
 * latent (same aspect, so "center" crops nothing) and rounded, then the masked latent × scale factor.
 */
export function inpaintConcat(mask: Tensor, concatLatent: Tensor, scaleFactor: number): Tensor {
  const [B, C, lh, lw] = concatLatent.shape;
  const [mb, , mh, mw] = mask.shape;
  const lm = mh === lh && mw === lw ? mask : resizeNCHW(mask, lh, lw, 'bilinear');
  const S = lh * lw;
  const out = new Float32Array(B * (C + 1) * S);
  for (let b = 0; b < B; b++) {
    const base = b * (C + 1) * S;
    for (let s = 0; s < S; s++) out[base + s] = roundEven(lm.data[(b % mb) * S + s]);
    for (let s = 0; s < C * S; s++) out[base + S + s] = Math.fround(concatLatent.data[b * C * S + s] * scaleFactor);
  }
  return { shape: [B, C + 1, lh, lw], data: out };
}
