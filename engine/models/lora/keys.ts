import { addOpenClipKeys } from './keys-openclip.ts';

/**
 * Adapter key stems → the checkpoint's original weight names (SD1, SD2, SDXL single-file layouts).
 *
 * ComfyUI builds this map from the loaded model (model_lora_keys_unet + model_lora_keys_clip); its
 * state-dict names are the checkpoint's with `model.` dropped from the UNet (`diffusion_model.…`) and
 * the text encoder renamed `clip_l.transformer.…`. Here the map is built from the checkpoint's own
 * names, so every value is a tensor that really exists in the file.
 */

const UNET = 'model.diffusion_model.';
/** Where CLIP-L lives under transformers names: SD1's text encoder, SDXL base's first embedder. */
const CLIP_L_PREFIXES = ['cond_stage_model.transformer.', 'conditioner.embedders.0.transformer.'];

/** ComfyUI's LORA_CLIP_MAP: the CLIP submodules that kohya and diffusers name per layer. */
const CLIP_LAYER_MODULES: readonly (readonly [string, string])[] = [
  ['mlp.fc1', 'mlp_fc1'],
  ['mlp.fc2', 'mlp_fc2'],
  ['self_attn.k_proj', 'self_attn_k_proj'],
  ['self_attn.q_proj', 'self_attn_q_proj'],
  ['self_attn.v_proj', 'self_attn_v_proj'],
  ['self_attn.out_proj', 'self_attn_out_proj'],
];

const RESNET: readonly (readonly [string, string])[] = [
  ['in_layers.2', 'conv1'],
  ['emb_layers.1', 'time_emb_proj'],
  ['out_layers.3', 'conv2'],
  ['skip_connection', 'conv_shortcut'],
  ['in_layers.0', 'norm1'],
  ['out_layers.0', 'norm2'],
];
const ATTENTION = ['proj_in', 'proj_out', 'norm'];
const TRANSFORMER_BLOCK = ['norm1', 'norm2', 'norm3', 'attn1.to_q', 'attn1.to_k', 'attn1.to_v', 'attn1.to_out.0', 'attn2.to_q', 'attn2.to_k', 'attn2.to_v', 'attn2.to_out.0', 'ff.net.0.proj', 'ff.net.2'];
const BASIC: readonly (readonly [string, string])[] = [
  ['input_blocks.0.0', 'conv_in'],
  ['out.0', 'conv_norm_out'],
  ['out.2', 'conv_out'],
  ['time_embed.0', 'time_embedding.linear_1'],
  ['time_embed.2', 'time_embedding.linear_2'],
  ['label_emb.0.0', 'class_embedding.linear_1'],
  ['label_emb.0.2', 'class_embedding.linear_2'],
  ['label_emb.0.0', 'add_embedding.linear_1'],
  ['label_emb.0.2', 'add_embedding.linear_2'],
];
/** Deeper than any SD-family UNet stacks transformer blocks (SDXL has 10); candidates that do not exist are filtered out. */
const MAX_TRANSFORMER_DEPTH = 16;

/**
 * Diffusers UNet module path (no `.weight`) → LDM module path (no `model.diffusion_model.` and no
 * `.weight`), as comfy.utils.unet_to_diffusers lays it out. The block structure (levels, res blocks
 * per level, which blocks carry attention) is read from the checkpoint's names instead of a config.
 */
export function diffusersUnetModules(has: (ldmWeight: string) => boolean): Map<string, string> {
  const exists = (ldmModule: string): boolean => has(`${UNET}${ldmModule}.weight`);
  const out = new Map<string, string>();
  const add = (diffusers: string, ldm: string): void => {
    if (exists(ldm)) out.set(diffusers, ldm);
  };
  const downOps: number[] = [];
  for (let n = 1; exists(`input_blocks.${n}.0.in_layers.2`) || exists(`input_blocks.${n}.0.op`); n++) if (exists(`input_blocks.${n}.0.op`)) downOps.push(n);
  // SD1 puts the first downsample right after the first level's res blocks, so its index gives the count.
  let resPerLevel = downOps.length ? downOps[0] - 1 : 0;
  if (!resPerLevel) for (let n = 1; exists(`input_blocks.${n}.0.in_layers.2`); n++) resPerLevel = n;
  const levels = downOps.length + 1;
  const attention = (diffusersPrefix: string, ldmPrefix: string): void => {
    for (const a of ATTENTION) add(`${diffusersPrefix}.${a}`, `${ldmPrefix}.${a}`);
    for (let t = 0; t < MAX_TRANSFORMER_DEPTH; t++) {
      for (const b of TRANSFORMER_BLOCK) add(`${diffusersPrefix}.transformer_blocks.${t}.${b}`, `${ldmPrefix}.transformer_blocks.${t}.${b}`);
    }
  };
  const resnet = (diffusersPrefix: string, ldmPrefix: string): void => {
    for (const [ldm, diffusers] of RESNET) add(`${diffusersPrefix}.${diffusers}`, `${ldmPrefix}.${ldm}`);
  };
  for (let x = 0; x < levels; x++) {
    let n = 1 + (resPerLevel + 1) * x;
    for (let i = 0; i < resPerLevel; i++, n++) {
      resnet(`down_blocks.${x}.resnets.${i}`, `input_blocks.${n}.0`);
      attention(`down_blocks.${x}.attentions.${i}`, `input_blocks.${n}.1`);
    }
    add(`down_blocks.${x}.downsamplers.0.conv`, `input_blocks.${n}.0.op`);
  }
  attention('mid_block.attentions.0', 'middle_block.1');
  resnet('mid_block.resnets.0', 'middle_block.0');
  resnet('mid_block.resnets.1', 'middle_block.2');
  for (let x = 0; x < levels; x++) {
    let n = (resPerLevel + 1) * x;
    for (let i = 0; i <= resPerLevel; i++, n++) {
      resnet(`up_blocks.${x}.resnets.${i}`, `output_blocks.${n}.0`);
      attention(`up_blocks.${x}.attentions.${i}`, `output_blocks.${n}.1`);
      // The upsampler follows the attention when the block has one, else the res block.
      if (i === resPerLevel) for (const c of [1, 2]) add(`up_blocks.${x}.upsamplers.0.conv`, `output_blocks.${n}.${c}.conv`);
    }
  }
  for (const [ldm, diffusers] of BASIC) add(diffusers, ldm);
  return out;
}

/**
 * Every spelling of an adapter key stem (the adapter key without `.lora_up.weight`, `.hada_w1_a`,
 * `.alpha`, …) → the checkpoint weight it patches. Besides ComfyUI's own entries for SD1, it accepts
 * the spellings ComfyUI misses but users have: diffusers/PEFT UNet stems without `.processor`
 * (`unet.…attn1.to_q`, `…to_out.0`), PEFT's `base_model.model.` prefix, and `clip_l.transformer.…`.
 */
export function adapterKeyMap(checkpointNames: readonly string[]): Map<string, string> {
  const names = new Set(checkpointNames);
  const map = new Map<string, string>();
  // model_lora_keys_unet: kohya over LDM names, and ComfyUI's generic `diffusion_model.` form.
  for (const name of checkpointNames) {
    if (!name.startsWith(UNET)) continue;
    const rest = name.slice(UNET.length);
    if (rest.endsWith('.weight')) {
      const stem = rest.slice(0, -'.weight'.length);
      map.set(`lora_unet_${stem.replace(/\./g, '_')}`, name);
      map.set(`diffusion_model.${stem}`, name);
    } else {
      map.set(`diffusion_model.${rest}`, name);
    }
  }
  for (const [diffusers, ldm] of diffusersUnetModules((n) => names.has(n))) {
    const target = `${UNET}${ldm}.weight`;
    const flat = diffusers.replace(/\./g, '_');
    map.set(`lora_unet_${flat}`, target);
    map.set(`lycoris_${flat}`, target);
    // The attention-processor era of diffusers LoRAs: `attn1.processor.to_q`, `processor.to_out`.
    let processor = diffusers.replace(/\.to_/g, '.processor.to_');
    if (processor.endsWith('.to_out.0')) processor = processor.slice(0, -2);
    for (const prefix of ['', 'unet.']) map.set(`${prefix}${processor}`, target);
    for (const prefix of ['', 'unet.', 'base_model.model.']) map.set(`${prefix}${diffusers}`, target);
  }
  // model_lora_keys_clip: CLIP-L (SD1's one encoder, SDXL base's first), then open_clip H/G (SD2, SDXL).
  for (const CLIP of CLIP_L_PREFIXES) {
    for (const name of checkpointNames) {
      if (!name.startsWith(CLIP) || !name.endsWith('.weight')) continue;
      const stem = name.slice(CLIP.length, -'.weight'.length);
      map.set(`text_encoders.clip_l.transformer.${stem}`, name);
      map.set(`clip_l.transformer.${stem}`, name);
    }
    for (let layer = 0; ; layer++) {
      let any = false;
      for (const [module, kohya] of CLIP_LAYER_MODULES) {
        const target = `${CLIP}text_model.encoder.layers.${layer}.${module}.weight`;
        if (!names.has(target)) continue;
        any = true;
        map.set(`lora_te_text_model_encoder_layers_${layer}_${kohya}`, target);
        map.set(`lora_te1_text_model_encoder_layers_${layer}_${kohya}`, target);
        map.set(`text_encoder.text_model.encoder.layers.${layer}.${module}`, target);
        map.set(`base_model.model.text_model.encoder.layers.${layer}.${module}`, target);
      }
      if (!any) break;
    }
  }
  addOpenClipKeys(names, map);
  return map;
}
