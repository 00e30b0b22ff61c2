import type { Sd1Config } from './config.ts';
import { detectCheckpoint, sd1Weights } from './detect.ts';
import type { ModelFamily } from '../family.ts';
import { assembleSd1 } from './assemble.ts';
import { SD1_SAMPLING, sd1LatentFormat } from './latent.ts';
import { sd1Parts } from './parts.ts';
import { SD1_CLIP_L } from './text-encoders.ts';

/**
 * Stable Diffusion 1.x (ComfyUI's `SD15`): LDM UNet with 768-wide cross-attention, CLIP-L, the
 * 4-channel KL VAE, ε prediction. Detection reads every width and depth from the file and refuses
 * other families by name, so SD1 is the registry's fallback: it explains every file no family claimed.
 */
export const SD1: ModelFamily<Sd1Config> = {
  id: 'sd1',
  name: 'SD1.x',
  detect: (source) => detectCheckpoint(source),
  parts: (config, ctx) => sd1Parts(config, sd1Weights(ctx.source), ctx),
  latentFormat: (config) => sd1LatentFormat(config.scaleFactor),
  modelSampling: () => ({ ...SD1_SAMPLING }),
  // SD1's UNet takes the text context only (ComfyUI's BaseModel.extra_conds adds nothing for it).
  extraConds: () => ({}),
  textEncoders: () => [SD1_CLIP_L],
  assemble: (config, ctx) => assembleSd1(SD1, config, ctx),
};
