import { PrefixedWeightSource, type WeightSource } from '../../../core/weights.ts';
import { SD1_PREFIX, type Sd1Config } from './config.ts';
import { buildClipGraph } from './graphs/clip-graph.ts';
import { buildUnetGraph } from './graphs/unet-graph.ts';
import type { PartSpec } from '../../runtime/part.ts';
import { ldmVaeParts } from '../ldm-vae.ts';
import type { PartsContext } from '../family.ts';

/** An SD1 checkpoint's four parts over `weights` (the checkpoint under SD1 names, see `sd1Weights`). */
export function sd1Parts(config: Sd1Config, weights: WeightSource, ctx: Pick<PartsContext, 'file' | 'hash'>): { unet: PartSpec; clip: PartSpec; vae_decoder: PartSpec; vae_encoder: PartSpec } {
  const { hash, file } = ctx;
  return {
    unet: {
      id: 'unet',
      hash,
      source: file,
      prefix: SD1_PREFIX.unet,
      weights: new PrefixedWeightSource(weights, SD1_PREFIX.unet),
      build: (w, o) => buildUnetGraph(config.unet, w, o, { adapterInputs: true }),
      // 1: the T2I-Adapter inputs `control_after_input_<i>` (only the UNet's builds are redone).
      version: 1,
    },
    clip: { id: 'clip', hash, source: file, prefix: SD1_PREFIX.clip, weights: new PrefixedWeightSource(weights, SD1_PREFIX.clip), build: (w, o) => buildClipGraph(config.clip, w, o) },
    ...ldmVaeParts({ cfg: config.vae, weights: new PrefixedWeightSource(weights, SD1_PREFIX.vae), hash, prefix: SD1_PREFIX.vae, file }),
  };
}
