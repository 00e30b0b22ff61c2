import type { TextEncoderSpec } from '../family.ts';
import { SD2_PREFIX } from './config.ts';

/**
 * SD2's one text encoder, OpenCLIP ViT-H/14, as ComfyUI's `SD2ClipHModel` runs it: the same BPE
 * vocabulary as CLIP-L, chunks padded with 0 (pad_with_end=False), the penultimate layer (layer_idx −2)
 * read through the final layer norm (layer_norm_hidden_state), pooled output through text_projection.
 */
export const SD2_CLIP_H: TextEncoderSpec = {
  part: 'clip',
  prefix: SD2_PREFIX.clip,
  tokenizer: { vocabulary: 'clip-vit-large-patch14', maxLength: 77, padToken: 0 },
  layerNormHiddenState: true,
  pooled: 'projected',
  defaultLayer: -2,
};
