import { UnsupportedModelError } from '../errors.ts';

/**
 * Model families Weft recognises but cannot run, each told by the keys ComfyUI's
 * model_detection.detect_unet_config (and supported_models) look for, so a checkpoint of one is
 * refused with its family named instead of failing as a malformed SD file. Patterns match with or
 * without a `model.diffusion_model.` (or any other) prefix, so whole checkpoints and bare diffusion
 * model files are both named. Ordered from the most specific test to the least: several DiTs share
 * block names (Flux, Chroma and Hunyuan Video all have `double_blocks`).
 */
export interface UnsupportedFamily {
  readonly family: string;
  /** The keys that identify it (for the message). */
  readonly evidence: string;
  test(has: (re: RegExp) => boolean): boolean;
}

/** A key pattern after any prefix: `N` stands for a block index. */
const k = (key: string): RegExp => new RegExp(`(^|\\.)${key
  .split('.')
  .map((part) => (part === 'N' ? '\\d+' : part.replace(/[\\^$*+?()[\]{}|]/g, '\\$&')))
  .join('\\.')}`);

export const UNSUPPORTED_FAMILIES: readonly UnsupportedFamily[] = [
  {
    family: 'SD3.5 Medium (MMDiT-X)',
    evidence: 'joint_blocks.N.x_block.attn2',
    test: (has) => has(k('joint_blocks.N.x_block.attn2.qkv.weight')),
  },
  { family: 'SD3.5', evidence: 'joint_blocks with RMS q/k norms (ln_q)', test: (has) => has(k('joint_blocks.N.context_block.attn.ln_q.weight')) },
  { family: 'SD3', evidence: 'joint_blocks (MMDiT)', test: (has) => has(k('joint_blocks.N.')) },
  { family: 'Stable Cascade', evidence: 'clf.1 / clip_txt_mapper / clip_mapper / channelwise blocks', test: (has) => has(k('clip_txt_mapper.')) || has(k('clip_mapper.weight')) || has(k('down_blocks.N.N.channelwise.')) },
  { family: 'Stable Audio', evidence: 'transformer.rotary_pos_emb.inv_freq', test: (has) => has(k('transformer.rotary_pos_emb.inv_freq')) },
  { family: 'AuraFlow', evidence: 'double_layers.N.attn.w1q', test: (has) => has(k('double_layers.N.attn.w1q.')) },
  { family: 'HunyuanDiT', evidence: 'mlp_t5', test: (has) => has(k('mlp_t5.')) },
  { family: 'Hunyuan Video', evidence: 'txt_in.individual_token_refiner', test: (has) => has(k('txt_in.individual_token_refiner.')) },
  { family: 'Chroma', evidence: 'distilled_guidance_layer with Flux blocks', test: (has) => has(k('distilled_guidance_layer.')) && has(k('double_blocks.N.')) },
  { family: 'HiDream', evidence: 'double_stream_blocks / caption_projection', test: (has) => has(k('double_stream_blocks.N.')) },
  { family: 'Flux', evidence: 'double_blocks.N.img_attn / single_blocks', test: (has) => has(k('double_blocks.N.img_attn.')) },
  { family: 'Mochi', evidence: 't5_yproj', test: (has) => has(k('t5_yproj.weight')) },
  { family: 'LTX-Video', evidence: 'adaln_single with transformer_blocks.N.scale_shift_table', test: (has) => has(k('adaln_single.')) && has(k('transformer_blocks.N.scale_shift_table')) },
  { family: 'PixArt', evidence: 't_block and y_embedder', test: (has) => has(/(^|\.)t_block\.1\.weight$/) && has(k('y_embedder.')) },
  { family: 'Cosmos', evidence: 'blocks.blockN / x_embedder.proj.1', test: (has) => has(/(^|\.)blocks\.block\d+\.blocks\./) },
  { family: 'Wan', evidence: 'head.modulation with blocks.N.self_attn', test: (has) => has(/(^|\.)head\.modulation$/) && has(k('blocks.N.self_attn.')) },
  { family: 'Lumina 2', evidence: 'cap_embedder', test: (has) => has(k('cap_embedder.')) },
  { family: 'Qwen-Image', evidence: 'txt_norm with transformer_blocks.N.img_mod', test: (has) => has(k('transformer_blocks.N.img_mod.')) },
  { family: 'OmniGen2', evidence: 'time_caption_embed', test: (has) => has(k('time_caption_embed.')) },
  { family: 'ACE-Step', evidence: 'genre_embedder', test: (has) => has(k('genre_embedder.weight')) },
  { family: 'Stable Video Diffusion', evidence: 'time_stack in the UNet', test: (has) => has(/^model\.diffusion_model\.input_blocks\.\d+\.0\.time_stack\./) || has(/(^|\.)input_blocks\.\d+\.1\.time_stack\./) },
  { family: 'Stable Zero123', evidence: 'cc_projection', test: (has) => has(/^cc_projection\.weight$/) },
];

/** The unsupported family a file's names show, with the keys that show it; undefined when none does. */
export function identifyUnsupported(names: readonly string[]): UnsupportedFamily | undefined {
  const has = (re: RegExp): boolean => names.some((n) => re.test(n));
  return UNSUPPORTED_FAMILIES.find((f) => f.test(has));
}

/** Throws UnsupportedModelError naming the family when the names show one Weft cannot run. */
export function refuseUnsupported(names: readonly string[]): void {
  const f = identifyUnsupported(names);
  if (f) throw new UnsupportedModelError(f.family, f.evidence);
}
