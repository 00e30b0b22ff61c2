import { SD1_PREFIX } from './config.ts';
import type { TextEncoderSpec } from '../family.ts';

/**
 * SD1's one text encoder, OpenAI's CLIP ViT-L/14 text model, as ComfyUI's `SD1ClipModel` runs it:
 * chunks padded with EOS, clip skip read after the final layer norm, pooled output the last layer
 * at the first EOS (no projection).
 */
export const SD1_CLIP_L: TextEncoderSpec = {
  part: 'clip',
  prefix: SD1_PREFIX.clip,
  tokenizer: { vocabulary: 'clip-vit-large-patch14', maxLength: 77, padToken: 'eos' },
  layerNormHiddenState: true,
  pooled: 'eos',
  defaultLayer: -1,
};
