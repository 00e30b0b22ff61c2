/**
 * Adapter key stems for open_clip text encoders (SD2's OpenCLIP-H, SDXL's bigG), as ComfyUI's
 * model_lora_keys_clip names them. ComfyUI converts open_clip weights to transformers names when it
 * loads them (clip_text_transformers_convert), splitting the fused `attn.in_proj_weight` into q/k/v
 * projections, so adapters address `self_attn_q_proj` & co. Here weights keep the checkpoint's names:
 * a q/k/v stem maps to the fused tensor with a `#q`/`#k`/`#v` mark (its first, second or third row
 * block), which parseAdapter turns into a patch of that slice.
 */

/** transformers module → open_clip tensor (without the prefix), and kohya's spelling of the module. */
const LAYER_MODULES: readonly (readonly [hf: string, openClip: string, kohya: string])[] = [
  ['mlp.fc1', 'mlp.c_fc.weight', 'mlp_fc1'],
  ['mlp.fc2', 'mlp.c_proj.weight', 'mlp_fc2'],
  ['self_attn.k_proj', 'attn.in_proj_weight#k', 'self_attn_k_proj'],
  ['self_attn.q_proj', 'attn.in_proj_weight#q', 'self_attn_q_proj'],
  ['self_attn.v_proj', 'attn.in_proj_weight#v', 'self_attn_v_proj'],
  ['self_attn.out_proj', 'attn.out_proj.weight', 'self_attn_out_proj'],
];
/** Per-layer tensors ComfyUI's generic `text_encoders.<name>` form also reaches (norms). */
const LAYER_NORMS: readonly (readonly [hf: string, openClip: string])[] = [
  ['layer_norm1', 'ln_1.weight'],
  ['layer_norm2', 'ln_2.weight'],
];
/** Whole-model tensors of the generic form (the projection is left out: ComfyUI stores it transposed). */
const MODEL_TENSORS: readonly (readonly [hf: string, openClip: string])[] = [
  ['text_model.embeddings.token_embedding', 'token_embedding.weight'],
  ['text_model.embeddings.position_embedding', 'positional_embedding'],
  ['text_model.final_layer_norm', 'ln_final.weight'],
];

/** A `#q`/`#k`/`#v` slice mark: the target tensor and which third of its rows. */
export function sliceOf(target: string): { target: string; third: 0 | 1 | 2 } | undefined {
  const m = /^(.*)#([qkv])$/.exec(target);
  return m ? { target: m[1], third: 'qkv'.indexOf(m[2]) as 0 | 1 | 2 } : undefined;
}

/** An open_clip encoder of a checkpoint and the names adapters use for it. */
interface OpenClipEncoder {
  prefix: string;
  /** ComfyUI's name of the encoder in its state dict (`clip_h`, `clip_g`). */
  comfy: string;
  /** kohya prefixes (`lora_te`, `lora_te1`, `lora_te2`, `lora_prior_te`). */
  kohya: readonly string[];
  /** diffusers/PEFT module prefixes (`text_encoder.`, `text_encoder_2.`). */
  diffusers: readonly string[];
}

/**
 * The open_clip encoders in a checkpoint's names, with ComfyUI's adapter names for each: SD2's H
 * (`cond_stage_model.model.`, or the sgm layout's embedder 0 on a UNet without `label_emb`) is
 * `lora_te`/`lora_te1`/`text_encoder`; SDXL base's G (embedder 1, beside CLIP-L) is
 * `lora_te2`/`text_encoder_2`; the refiner's lone G (embedder 0, UNet with `label_emb`) is
 * `lora_te`/`text_encoder`/`lora_prior_te`.
 */
function encoders(names: ReadonlySet<string>): OpenClipEncoder[] {
  const at = (prefix: string): boolean => names.has(`${prefix}token_embedding.weight`);
  const out: OpenClipEncoder[] = [];
  const h = { comfy: 'clip_h', kohya: ['lora_te', 'lora_te1'], diffusers: ['text_encoder.'] };
  if (at('cond_stage_model.model.')) out.push({ prefix: 'cond_stage_model.model.', ...h });
  if (at('conditioner.embedders.1.model.')) out.push({ prefix: 'conditioner.embedders.1.model.', comfy: 'clip_g', kohya: ['lora_te2'], diffusers: ['text_encoder_2.'] });
  if (at('conditioner.embedders.0.model.')) {
    const refiner = names.has('model.diffusion_model.label_emb.0.0.weight');
    out.push(
      refiner
        ? { prefix: 'conditioner.embedders.0.model.', comfy: 'clip_g', kohya: ['lora_te', 'lora_prior_te'], diffusers: ['text_encoder.'] }
        : { prefix: 'conditioner.embedders.0.model.', ...h },
    );
  }
  return out;
}

/** Adds every open_clip encoder's adapter stems to `map` (stem → checkpoint tensor, q/k/v marked). */
export function addOpenClipKeys(names: ReadonlySet<string>, map: Map<string, string>): void {
  for (const e of encoders(names)) {
    const generic = (hf: string, target: string): void => {
      map.set(`text_encoders.${e.comfy}.transformer.${hf}`, target);
      map.set(`${e.comfy}.transformer.${hf}`, target);
    };
    for (const [hf, oc] of MODEL_TENSORS) if (names.has(`${e.prefix}${oc}`)) generic(hf, `${e.prefix}${oc}`);
    for (let layer = 0; names.has(`${e.prefix}transformer.resblocks.${layer}.attn.in_proj_weight`); layer++) {
      const block = `${e.prefix}transformer.resblocks.${layer}.`;
      for (const [hf, oc] of LAYER_NORMS) generic(`text_model.encoder.layers.${layer}.${hf}`, `${block}${oc}`);
      for (const [hf, oc, kohya] of LAYER_MODULES) {
        const target = `${block}${oc}`;
        generic(`text_model.encoder.layers.${layer}.${hf}`, target);
        for (const k of e.kohya) map.set(`${k}_text_model_encoder_layers_${layer}_${kohya}`, target);
        for (const d of e.diffusers) map.set(`${d}text_model.encoder.layers.${layer}.${hf}`, target);
      }
    }
  }
}
