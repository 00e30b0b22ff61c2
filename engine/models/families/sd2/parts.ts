import { PrefixedWeightSource, type WeightSource } from '../../../core/weights.ts';
import type { PartSpec } from '../../runtime/part.ts';
import type { PartsContext } from '../family.ts';
import { ldmVaeParts } from '../ldm-vae.ts';
import { openClipPart } from '../openclip/part.ts';
import { ldmUnetPart } from '../sd1/parts.ts';
import { SD2_PREFIX, type Sd2Config } from './config.ts';

/**
 * An SD2 checkpoint's four parts over `weights` (the checkpoint under SD1's VAE view, see `sd1Weights`):
 * SD1's UNet graph on SD2's config (linear projections and 64-wide heads are config, not code), the
 * open_clip graph with hidden states final-normed, SD1's VAE.
 */
export function sd2Parts(config: Sd2Config, weights: WeightSource, ctx: Pick<PartsContext, 'file' | 'hash'>): { unet: PartSpec; clip: PartSpec; vae_decoder: PartSpec; vae_encoder: PartSpec } {
  const { hash, file } = ctx;
  return {
    unet: ldmUnetPart(config.unet, weights, ctx),
    clip: openClipPart({ id: 'clip', cfg: config.clip, checkpoint: weights, prefix: config.clipPrefix, hash, file, layerNormHidden: true }),
    ...ldmVaeParts({ cfg: config.vae, weights: new PrefixedWeightSource(weights, SD2_PREFIX.vae), hash, prefix: SD2_PREFIX.vae, file }),
  };
}
