import type { Latent, Tensor } from '../../core/tensor.ts';
import type { ModelHandle, VaeHandle } from '../../models/handles.ts';
import type { Conditioning } from '../conditioning.ts';
import type { PreviewImage } from '../../core/preview.ts';
import type { Box } from '../../image/segs.ts';
import { impactBlurMask } from './impact-blur.ts';
import { randomNoise } from '../noise/index.ts';
import { stackItems } from './batch-rules.ts';
import { impactSample } from './impact-sample.ts';
import { inpaintModelConditioning } from './inpaint-model.ts';
import { lanczosImage } from './resize.ts';

/**
 * The Impact Pack's `enhance_detail` (modules/impact/core.py): one crop upscaled so the detection's
 * (or the crop's) shorter side reaches guide_size, capped by max_size, VAE-encoded with the crop's
 * mask as noise mask, sampled `cycle` times with seeds seed, seed+1, …, decoded and resized back.
 */

export interface DetailSampling {
  model: ModelHandle;
  vae: VaeHandle;
  positive: Conditioning;
  negative: Conditioning;
  steps: number;
  cfg: number;
  samplerName: string;
  scheduler: string;
  denoise: number;
  cycle: number;
  /** noise_mask_feather: blur of the noise mask; > 0 also turns differential diffusion on. */
  noiseMaskFeather: number;
  /** inpaint_model: with a noise mask, encode through InpaintModelConditioning (c_concat for inpainting UNets). */
  inpaintModel?: boolean;
  signal?: AbortSignal;
  onStep?: (step: number, total: number, preview?: PreviewImage) => void;
  log?: (line: string) => void;
}

export interface UpscalePlan {
  /** Why the segment is left alone, or undefined when it is processed. */
  skip?: string;
  upscale: number;
  width: number;
  height: number;
}

/**
 * The size rule of enhance_detail: factor guide_size / shorter side (of the bbox when
 * `guideForBbox`, else of the crop), scaled down to fit max_size, sizes truncated to integers;
 * skipped when the bbox already reaches guide_size or the factor is ≤ 1, unless force_inpaint, which
 * then keeps the crop's own size.
 */
export function detailUpscalePlan(
  crop: { width: number; height: number },
  bbox: Box,
  o: { guideSize: number; guideForBbox: boolean; maxSize: number; forceInpaint: boolean },
): UpscalePlan {
  const { width: w, height: h } = crop;
  const bw = bbox[2] - bbox[0];
  const bh = bbox[3] - bbox[1];
  if (!o.forceInpaint && bh >= o.guideSize && bw >= o.guideSize)
    return { skip: 'segment skip (enough big)', upscale: 1, width: w, height: h };
  let upscale = o.guideForBbox ? o.guideSize / Math.min(bw, bh) : o.guideSize / Math.min(w, h);
  let nw = Math.trunc(w * upscale);
  let nh = Math.trunc(h * upscale);
  if (nw > o.maxSize || nh > o.maxSize) {
    upscale *= o.maxSize / Math.max(nw, nh);
    nw = Math.trunc(w * upscale);
    nh = Math.trunc(h * upscale);
  }
  if (!o.forceInpaint) {
    if (upscale <= 1) return { skip: `segment skip [determined upscale factor=${upscale}]`, upscale, width: nw, height: nh };
    if (nw === 0 || nh === 0) return { skip: `segment skip [zero size=${nw}, ${nh}]`, upscale, width: nw, height: nh };
  } else if (upscale <= 1 || nw === 0 || nh === 0) {
    return { upscale: 1, width: w, height: h };
  }
  return { upscale, width: nw, height: nh };
}

/**
 * One segment's detail pass. `image` is the crop [1, h, w, 3]; `noiseMask` the crop's mask [h, w]
 * (unblurred) or undefined when noise_mask is off. Returns the refined crop at the crop's size, or
 * undefined when the size rule skips the segment.
 */
export async function enhanceDetail(
  image: Tensor,
  bbox: Box,
  noiseMask: Tensor | undefined,
  seed: bigint,
  plan: UpscalePlan,
  s: DetailSampling,
): Promise<Tensor> {
  const [, h, w] = image.shape;
  const upscaled = lanczosImage(image, plan.width, plan.height);
  let latent: Latent;
  let { positive, negative } = s;
  if (noiseMask) {
    const m = noiseMask.shape;
    const blurred = impactBlurMask({ shape: [1, m[m.length - 2], m[m.length - 1]], data: noiseMask.data }, s.noiseMaskFeather);
    if (s.inpaintModel)
      ({ positive, negative, latent } = await inpaintModelConditioning(
        positive,
        negative,
        upscaled,
        s.vae,
        blurred,
        s.model,
        true,
        s.signal,
      ));
    else latent = { samples: await s.vae.encode(upscaled, s.signal), noiseMask: blurred };
  } else latent = { samples: await s.vae.encode(upscaled, s.signal) };
  s.log?.(
    `Detailer: segment upscale for (${bbox[2] - bbox[0]}, ${bbox[3] - bbox[1]}) | crop region (${w}, ${h}) x ${plan.upscale} -> (${plan.width}, ${plan.height})`,
  );
  let refined = latent;
  for (let i = 0; i < s.cycle; i++) {
    refined = await impactSample({
      model: s.model,
      seed: seed + BigInt(i),
      steps: s.steps,
      cfg: s.cfg,
      samplerName: s.samplerName,
      scheduler: s.scheduler,
      positive,
      negative,
      latent: refined,
      denoise: s.denoise,
      differential: noiseMask !== undefined && s.noiseMaskFeather > 0,
      signal: s.signal,
      onStep: s.onStep,
    });
  }
  const decoded = await s.vae.decode(refined.samples, s.signal);
  return lanczosImage(decoded, w, h);
}

/**
 * Several crops of one upscaled size through one sampling run (a batch of n): each crop's latent,
 * noise mask and starting noise (from its own seed) are stacked, so with a sampler that draws no
 * step noise the result is each crop's own run up to the UNet's batch arithmetic. Returns the
 * refined crops at their crop sizes.
 */
export async function enhanceDetailBatch(
  items: readonly { image: Tensor; bbox: Box; noiseMask: Tensor | undefined; seed: bigint }[],
  plan: UpscalePlan,
  s: DetailSampling,
): Promise<Tensor[]> {
  const latents: Latent[] = [];
  for (const it of items) {
    const samples = await s.vae.encode(lanczosImage(it.image, plan.width, plan.height), s.signal);
    const m = it.noiseMask?.shape;
    const noiseMask =
      it.noiseMask && m
        ? impactBlurMask({ shape: [1, m[m.length - 2], m[m.length - 1]], data: it.noiseMask.data }, s.noiseMaskFeather)
        : undefined;
    latents.push({ samples, noiseMask });
  }
  const one = latents[0].samples.shape;
  const masked = latents.every((l) => l.noiseMask);
  const mshape = latents[0].noiseMask?.shape ?? [];
  let refined: Latent = {
    samples: { shape: [items.length, ...one.slice(1)], data: stackItems(latents.map((l) => l.samples.data)) },
    noiseMask: masked ? { shape: [items.length, ...mshape.slice(1)], data: stackItems(latents.map((l) => l.noiseMask!.data)) } : undefined,
  };
  for (let c = 0; c < s.cycle; c++) {
    const noise = stackItems(items.map((it, i) => randomNoise(it.seed + BigInt(c)).generate(latents[i])));
    refined = await impactSample({
      model: s.model,
      seed: items[0].seed + BigInt(c),
      noise,
      steps: s.steps,
      cfg: s.cfg,
      samplerName: s.samplerName,
      scheduler: s.scheduler,
      positive: s.positive,
      negative: s.negative,
      latent: refined,
      denoise: s.denoise,
      differential: masked && s.noiseMaskFeather > 0,
      signal: s.signal,
      onStep: s.onStep,
    });
  }
  const decoded = await s.vae.decode(refined.samples, s.signal);
  const [, dh, dw, dc] = decoded.shape;
  return items.map((it, i) => {
    const [, h, w] = it.image.shape;
    const one: Tensor = { shape: [1, dh, dw, dc], data: decoded.data.subarray(i * dh * dw * dc, (i + 1) * dh * dw * dc) };
    return lanczosImage(one, w, h);
  });
}
