import type { Tensor } from '../core/tensor.ts';
import { resizeNCHW } from '../image/resize.ts';
import type { ModelSamplingObject } from './model-sampling.ts';
import type { Denoise } from './samplers/types.ts';

/** ComfyUI's prepare_mask: the noise mask resized (bilinear) to the latent and repeated over channels and batch. */
export function prepareMask(mask: Tensor, shape: readonly number[]): Float32Array {
  const [B, C, H, W] = shape;
  const mh = mask.shape[mask.shape.length - 2];
  const mw = mask.shape[mask.shape.length - 1];
  const mb = mask.data.length / (mh * mw);
  const resized = mh === H && mw === W ? mask.data : resizeNCHW({ shape: [mb, 1, mh, mw], data: mask.data }, H, W, 'bilinear').data;
  const out = new Float32Array(B * C * H * W);
  const S = H * W;
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) out.set(resized.subarray((b % mb) * S, ((b % mb) + 1) * S), (b * C + c) * S);
  return out;
}

export interface InpaintOptions {
  modelSampling: ModelSamplingObject;
  /** prepareMask's output: 1 where the latent is resampled. */
  mask: Float32Array;
  /** The run's starting noise and the latent in model space (× scale factor). */
  noise: Float32Array;
  latent: Float32Array;
}

/**
 * ComfyUI's KSamplerX0Inpaint: the unmasked part is held at the (re-noised) original on the way in
 * and replaced by the original x0 on the way out.
 */
export function inpaintDenoiser(inner: Denoise, o: InpaintOptions): Denoise {
  const { mask, noise, latent, modelSampling: ms } = o;
  const n = latent.length;
  return async (x, sigma, request) => {
    const renoised = ms.noiseScaling(sigma, noise, latent, false);
    const xin = new Float32Array(n);
    for (let i = 0; i < n; i++) xin[i] = x.data[i] * mask[i] + renoised[i] * (1 - mask[i]);
    const out = await inner({ shape: x.shape, data: xin }, sigma, request);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = out.data[i] * mask[i] + latent[i] * (1 - mask[i]);
    // CFG++'s uncond is taken inside the model call (post_cfg_function), before this blend.
    return out.uncond ? { shape: x.shape, data, uncond: out.uncond } : { shape: x.shape, data };
  };
}
