import type { ModelFamily } from '../family.ts';
import { sd1Weights } from '../sd1/weight-views.ts';
import { sdxlAdm } from './adm.ts';
import { assembleSdxl } from './assemble.ts';
import type { SdxlConfig } from './config.ts';
import { detectSdxl } from './detect.ts';
import { sdxlLatentFormat, sdxlSampling } from './latent.ts';
import { sdxlParts } from './parts.ts';
import { sdxlTextEncoders } from './text-encoders.ts';

/**
 * Stable Diffusion XL, base and refiner (ComfyUI's `SDXL`, `SDXLRefiner` and the smaller SDXL-shaped
 * UNets): the LDM UNet with 64-wide heads, linear transformer projections, per-level depths and a
 * `label_emb` fed the adm vector `y`; CLIP-L + OpenCLIP bigG (G alone on the refiner); the KL VAE with
 * SDXL's latent scale (Playground v2.5: its per-channel normalisation); ε, v, EDM (Playground v2.5) or
 * continuous-σ v (CosXL) prediction.
 */
export const SDXL: ModelFamily<SdxlConfig> = {
  id: 'sdxl',
  name: 'SDXL',
  detect: (source) => detectSdxl(source),
  parts: (config, ctx) => {
    const { clip_l, ...rest } = sdxlParts(config, sd1Weights(ctx.source), ctx);
    return clip_l ? { ...rest, clip_l } : rest;
  },
  latentFormat: (config) => sdxlLatentFormat(config),
  modelSampling: (config) => sdxlSampling(config),
  extraConds: (config, entry, info, promptType) => sdxlAdm(config, entry, info, promptType),
  textEncoders: (config) => sdxlTextEncoders(config),
  assemble: (config, ctx) => assembleSdxl(SDXL, config, ctx),
};
