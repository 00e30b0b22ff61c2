import type { TextEncoderSpec } from '../family.ts';
import { SDXL_PREFIX, type SdxlConfig } from './config.ts';

const VOCABULARY = 'clip-vit-large-patch14';

/** ComfyUI's SDXL `clip_l`: OpenAI CLIP-L, penultimate layer read raw (layer_norm_hidden_state=False), padded with EOS. */
export const SDXL_CLIP_L: TextEncoderSpec = {
  part: 'clip_l',
  prefix: SDXL_PREFIX.clipL,
  tokenizer: { vocabulary: VOCABULARY, maxLength: 77, padToken: 'eos' },
  layerNormHiddenState: false,
  pooled: 'eos',
  defaultLayer: -2,
};

/**
 * ComfyUI's `SDXLClipG`: OpenCLIP bigG with CLIP-L's vocabulary, padded with token 0, penultimate layer
 * raw, pooled output the final-normed last layer at EOS through text_projection.
 */
export function sdxlClipG(prefix: string): TextEncoderSpec {
  return { part: 'clip_g', prefix, tokenizer: { vocabulary: VOCABULARY, maxLength: 77, padToken: 0 }, layerNormHiddenState: false, pooled: 'projected', defaultLayer: -2 };
}

/** In the order their outputs are joined on the channel axis (L then G); the refiner has G alone. */
export function sdxlTextEncoders(cfg: SdxlConfig): TextEncoderSpec[] {
  const g = sdxlClipG(cfg.clipGPrefix);
  return cfg.kind === 'base' ? [SDXL_CLIP_L, g] : [g];
}
