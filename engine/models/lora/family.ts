/**
 * Telling which model family an adapter was trained for, so that an SDXL (or SD2, Flux, …) LoRA put
 * on an SD1 checkpoint fails with a sentence a user understands instead of a list of unmatched keys
 * or a shape error deep in a block.
 */

/** An adapter made for another model family than the checkpoint's. */
export class AdapterArchitectureError extends Error {
  constructor(
    readonly file: string,
    readonly family: string,
    evidence: string,
    checkpointFamily: string = 'SD1',
  ) {
    super(`${file}: this adapter is for ${family} (${evidence}), but the checkpoint is an ${checkpointFamily} model; use a LoRA made for ${USE_INSTEAD[checkpointFamily] ?? checkpointFamily}`);
    this.name = 'AdapterArchitectureError';
  }
}

const USE_INSTEAD: Readonly<Record<string, string>> = { SD1: 'SD1/SD1.5', SD2: 'SD2.x', SDXL: 'SDXL' };

/** The family of a checkpoint from its names (the text encoders tell SD1, SD2 and SDXL base/refiner apart). */
export function checkpointFamilyOf(checkpointHas: (name: string) => boolean): 'SD1' | 'SD2' | 'SDXL' {
  if (checkpointHas('conditioner.embedders.1.model.token_embedding.weight')) return 'SDXL';
  const sgmG = checkpointHas('conditioner.embedders.0.model.token_embedding.weight');
  if (sgmG && checkpointHas('model.diffusion_model.label_emb.0.0.weight')) return 'SDXL';
  if (sgmG || checkpointHas('cond_stage_model.model.token_embedding.weight')) return 'SD2';
  return 'SD1';
}

/** A family that shows in the key names alone, with the key that shows it. */
export function familyFromKeys(adapterKeys: readonly string[], checkpointHas: (name: string) => boolean): { family: string; key: string } | undefined {
  // SD1 stacks one transformer block per attention; SDXL stacks up to ten.
  const ckptDepth = (t: number): boolean => {
    for (const block of ['input_blocks.1.1', 'input_blocks.4.1', 'middle_block.1', 'input_blocks.7.1']) {
      if (checkpointHas(`model.diffusion_model.${block}.transformer_blocks.${t}.attn1.to_q.weight`)) return true;
    }
    return false;
  };
  const hasLabelEmb = checkpointHas('model.diffusion_model.label_emb.0.0.weight');
  const sdxl = checkpointFamilyOf(checkpointHas) === 'SDXL';
  for (const key of adapterKeys) {
    if (!sdxl && /^(lora_te2_|text_encoder_2\.|text_encoders\.clip_g\.|clip_g\.)/.test(key)) return { family: 'SDXL', key };
    if (!hasLabelEmb && /(^|[._])(label_emb|add_embedding)[._]/.test(key)) return { family: 'SDXL', key };
    if (/(^|[._])(double_blocks|single_blocks|single_transformer_blocks)[._]/.test(key)) return { family: 'Flux', key };
    if (/(^|[._])joint_blocks[._]/.test(key)) return { family: 'SD3', key };
    const depth = /transformer_blocks[._](\d+)[._]/.exec(key);
    if (depth && Number(depth[1]) > 0 && !ckptDepth(Number(depth[1]))) return { family: 'SDXL', key };
  }
  return undefined;
}

const CONTEXT_WIDTH: Readonly<Record<number, string>> = { 768: 'SD1', 1024: 'SD2', 2048: 'SDXL', 1280: 'SDXL (refiner)' };
const TEXT_WIDTH: Readonly<Record<number, string>> = { 768: 'SD1', 1024: 'SD2', 1280: 'SDXL' };

/**
 * The family a shape mismatch points at: the input width of a cross-attention key/value projection
 * is the text encoder's width (768 SD1, 1024 SD2, 2048 SDXL), and a CLIP layer's width is the text
 * encoder's hidden size. Undefined when the mismatch says nothing about the family.
 */
export function familyFromMismatch(target: string, expected: readonly number[], got: readonly number[]): { family: string; evidence: string } | undefined {
  if (/\.attn2\.to_[kv]\.weight$/.test(target) && got.length >= 2 && got[1] !== expected[1]) {
    const family = CONTEXT_WIDTH[got[1]];
    if (family) return { family, evidence: `its cross-attention takes ${got[1]}-wide text embeddings, the checkpoint's ${expected[1]}` };
  }
  // Text encoder attention: CLIP-L's q/k/v, or open_clip's fused in_proj that q/k/v LoRAs patch in thirds.
  const textAttention = /^(cond_stage_model|conditioner\.embedders\.\d+)\..*\.(self_attn\.[qkv]_proj\.weight|attn\.in_proj_weight)$/;
  if (textAttention.test(target) && got.length >= 2 && got[1] !== expected[1]) {
    const family = TEXT_WIDTH[got[1]];
    if (family) return { family, evidence: `its text encoder is ${got[1]} wide, the checkpoint's ${expected[1]}` };
  }
  return undefined;
}
