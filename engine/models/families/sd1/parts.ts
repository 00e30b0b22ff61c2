import { PrefixedWeightSource, type WeightSource } from '../../../core/weights.ts';
import { SD1_PREFIX, type Sd1Config, type UNetConfig } from './config.ts';
import { buildClipGraph } from './graphs/clip-graph.ts';
import { buildUnetGraph } from './graphs/unet-graph.ts';
import type { PartSpec } from '../../runtime/part.ts';
import { ldmVaeParts } from '../ldm-vae.ts';
import type { PartsContext } from '../family.ts';

/** An SD1 checkpoint's four parts over `weights` (the checkpoint under SD1 names, see `sd1Weights`). */
export function sd1Parts(config: Sd1Config, weights: WeightSource, ctx: Pick<PartsContext, 'file' | 'hash'>): { unet: PartSpec; clip: PartSpec; vae_decoder: PartSpec; vae_encoder: PartSpec } {
  const { hash, file } = ctx;
  return {
    unet: ldmUnetPart(config.unet, weights, ctx),
    clip: { id: 'clip', hash, source: file, prefix: SD1_PREFIX.clip, weights: new PrefixedWeightSource(weights, SD1_PREFIX.clip), build: (w, o) => buildClipGraph(config.clip, w, o) },
    ...ldmVaeParts({ cfg: config.vae, weights: new PrefixedWeightSource(weights, SD1_PREFIX.vae), hash, prefix: SD1_PREFIX.vae, file }),
  };
}

/** The LDM UNet part under `model.diffusion_model.` (SD1 and SD2: their differences are config, not graph code). */
export function ldmUnetPart(unet: UNetConfig, weights: WeightSource, ctx: Pick<PartsContext, 'file' | 'hash'>): PartSpec {
  return {
    id: 'unet',
    hash: ctx.hash,
    source: ctx.file,
    prefix: SD1_PREFIX.unet,
    weights: new PrefixedWeightSource(weights, SD1_PREFIX.unet),
    build: (w, o) => buildUnetGraph(unet, w, o, { adapterInputs: true }),
    // 1: the T2I-Adapter inputs `control_after_input_<i>` (only the UNet's builds are redone).
    version: 1,
  };
}
