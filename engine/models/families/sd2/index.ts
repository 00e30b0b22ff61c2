import type { ModelFamily } from '../family.ts';
import { SD1_SAMPLING, sd1LatentFormat } from '../sd1/latent.ts';
import { sd1Weights } from '../sd1/weight-views.ts';
import { assembleSd2 } from './assemble.ts';
import type { Sd2Config } from './config.ts';
import { detectSd2 } from './detect.ts';
import { sd2Parts } from './parts.ts';
import { SD2_CLIP_H } from './text-encoders.ts';

/**
 * Stable Diffusion 2.x (ComfyUI's `SD20`): SD1's LDM UNet with 1024-wide cross-attention, linear
 * transformer projections and 64-wide heads; OpenCLIP ViT-H/14 text; SD1's VAE and latent format;
 * the scaled-linear β schedule with ε (512-base) or v (768-v) prediction as the weights tell.
 */
export const SD2: ModelFamily<Sd2Config> = {
  id: 'sd2',
  name: 'SD2.x',
  detect: (source) => detectSd2(source),
  parts: (config, ctx) => sd2Parts(config, sd1Weights(ctx.source), ctx),
  latentFormat: () => sd1LatentFormat(),
  modelSampling: (config) => ({ ...SD1_SAMPLING, prediction: config.prediction }),
  // ComfyUI's SD20 has no adm input (adm_in_channels None): the UNet takes the text context only.
  extraConds: () => ({}),
  textEncoders: (config) => [{ ...SD2_CLIP_H, prefix: config.clipPrefix }],
  assemble: (config, ctx) => assembleSd2(SD2, config, ctx),
};
