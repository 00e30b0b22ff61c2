import { PrefixedWeightSource, type WeightSource } from '../../../core/weights.ts';
import type { PartSpec } from '../../runtime/part.ts';
import type { PartsContext } from '../family.ts';
import { ldmVaeParts } from '../ldm-vae.ts';
import { openClipPart } from '../openclip/part.ts';
import { buildClipGraph } from '../sd1/graphs/clip-graph.ts';
import { buildUnetGraph } from '../sd1/graphs/unet-graph.ts';
import { SDXL_PREFIX, type SdxlConfig } from './config.ts';

export interface SdxlParts {
  unet: PartSpec;
  clip_l?: PartSpec;
  clip_g: PartSpec;
  vae_decoder: PartSpec;
  vae_encoder: PartSpec;
}

/**
 * An SDXL checkpoint's parts over `weights` (the checkpoint under its own names): the LDM UNet with
 * its `y` input (SD1's builder: the plan carries label_emb, linear projections, per-block depths and
 * 64-wide heads), CLIP-L (SD1's CLIP graph with raw hidden states), OpenCLIP bigG and the LDM VAE.
 */
export function sdxlParts(cfg: SdxlConfig, weights: WeightSource, ctx: Pick<PartsContext, 'file' | 'hash'>): SdxlParts {
  const { hash, file } = ctx;
  const clipL = cfg.clipL;
  return {
    unet: {
      id: 'unet',
      hash,
      source: file,
      prefix: SDXL_PREFIX.unet,
      weights: new PrefixedWeightSource(weights, SDXL_PREFIX.unet),
      build: (w, o) => buildUnetGraph(cfg.unet, w, o, { adapterInputs: true }),
      version: 1,
    },
    clip_l: clipL && {
      id: 'clip_l',
      hash,
      source: file,
      prefix: SDXL_PREFIX.clipL,
      weights: new PrefixedWeightSource(weights, SDXL_PREFIX.clipL),
      build: (w, o) => buildClipGraph(clipL, w, o, { layerNormHidden: false }),
    },
    clip_g: openClipPart({ id: 'clip_g', cfg: cfg.clipG, checkpoint: weights, prefix: cfg.clipGPrefix, hash, file, layerNormHidden: false }),
    ...ldmVaeParts({ cfg: cfg.vae, weights: new PrefixedWeightSource(weights, SDXL_PREFIX.vae), hash, prefix: SDXL_PREFIX.vae, file }),
  };
}
