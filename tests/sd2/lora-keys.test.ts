import { describe, expect, it } from 'vitest';
import { openClipLayout } from '../../engine/models/families/openclip/config.ts';
import { layoutShapes, SD15_CONFIG, unetLayout, vaeLayout } from '../../engine/models/families/sd1/layout.ts';
import { SD2_PREFIX } from '../../engine/models/families/sd2/config.ts';
import { SDXL_BASE_CONFIG, sdxlLayout, tinySdxlConfig } from '../../engine/models/families/sdxl/layout.ts';
import type { WeightSource } from '../../engine/core/weights.ts';
import { adapterKeyMap } from '../../engine/models/lora/keys.ts';
import { AdapterArchitectureError, parseAdapter } from '../../engine/models/lora/index.ts';
import { checkpointFamilyOf, familyFromKeys } from '../../engine/models/lora/family.ts';

/*
 * Adapter names for SD2 and SDXL checkpoints as ComfyUI's model_lora_keys_clip / model_lora_keys_unet
 * (with comfy.utils.unet_to_diffusers) give them, on the full-size layouts (names only). Expected
 * targets are written out from the published block layouts, not computed by the code under test.
 */

const SD2_768 = {
  unet: { ...SD15_CONFIG.unet, contextDim: 1024, useLinearInProj: true, numHeadChannels: 64 },
  clip: {
    vocabSize: 49408,
    width: 1024,
    layers: 24,
    heads: 16,
    mlpWidth: 4096,
    contextLength: 77,
    projectionDim: 1024,
    layerNormEps: 1e-5,
  },
};
const sd2Names = [
  ...unetLayout(SD2_768.unet, SD2_PREFIX.unet).keys(),
  ...openClipLayout(SD2_768.clip, SD2_PREFIX.clip).keys(),
  ...vaeLayout(SD15_CONFIG.vae, SD2_PREFIX.vae).keys(),
];
const U = 'model.diffusion_model.';
const H = 'cond_stage_model.model.transformer.resblocks.';
const G = 'conditioner.embedders.1.model.transformer.resblocks.';
const L = 'conditioner.embedders.0.transformer.text_model.encoder.layers.';

describe('SD2 (OpenCLIP-H under cond_stage_model.model.)', () => {
  const map = adapterKeyMap(sd2Names);
  it('kohya lora_te_/lora_te1_, diffusers text_encoder., ComfyUI generic names: q/k/v are thirds of in_proj, fc1/fc2 are c_fc/c_proj', () => {
    for (const te of ['lora_te', 'lora_te1']) {
      expect(map.get(`${te}_text_model_encoder_layers_0_self_attn_q_proj`)).toBe(`${H}0.attn.in_proj_weight#q`);
      expect(map.get(`${te}_text_model_encoder_layers_23_self_attn_k_proj`)).toBe(`${H}23.attn.in_proj_weight#k`);
      expect(map.get(`${te}_text_model_encoder_layers_5_self_attn_v_proj`)).toBe(`${H}5.attn.in_proj_weight#v`);
      expect(map.get(`${te}_text_model_encoder_layers_5_self_attn_out_proj`)).toBe(`${H}5.attn.out_proj.weight`);
      expect(map.get(`${te}_text_model_encoder_layers_7_mlp_fc1`)).toBe(`${H}7.mlp.c_fc.weight`);
      expect(map.get(`${te}_text_model_encoder_layers_7_mlp_fc2`)).toBe(`${H}7.mlp.c_proj.weight`);
    }
    expect(map.get('text_encoder.text_model.encoder.layers.3.self_attn.v_proj')).toBe(`${H}3.attn.in_proj_weight#v`);
    expect(map.get('text_encoders.clip_h.transformer.text_model.encoder.layers.3.mlp.fc1')).toBe(`${H}3.mlp.c_fc.weight`);
    expect(map.get('text_encoders.clip_h.transformer.text_model.encoder.layers.3.layer_norm2')).toBe(`${H}3.ln_2.weight`);
    expect(map.get('text_encoders.clip_h.transformer.text_model.final_layer_norm')).toBe('cond_stage_model.model.ln_final.weight');
    expect(map.get('lora_te_text_model_encoder_layers_24_mlp_fc1')).toBeUndefined();
    expect(map.has('lora_te2_text_model_encoder_layers_0_mlp_fc1')).toBe(false);
  });

  it('UNet: LDM and diffusers names, linear proj_in', () => {
    expect(map.get('lora_unet_input_blocks_1_1_proj_in')).toBe(`${U}input_blocks.1.1.proj_in.weight`);
    expect(map.get('lora_unet_down_blocks_0_attentions_1_proj_out')).toBe(`${U}input_blocks.2.1.proj_out.weight`);
    expect(map.get('unet.up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k')).toBe(
      `${U}output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight`,
    );
    expect(map.get('lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_0_proj')).toBe(
      `${U}middle_block.1.transformer_blocks.0.ff.net.0.proj.weight`,
    );
  });

  it('the sgm layout (conditioner.embedders.0.model.) is named as H too', () => {
    const sgm = sd2Names.map((n) => n.replace('cond_stage_model.model.', 'conditioner.embedders.0.model.'));
    expect(adapterKeyMap(sgm).get('lora_te_text_model_encoder_layers_0_self_attn_q_proj')).toBe(
      'conditioner.embedders.0.model.transformer.resblocks.0.attn.in_proj_weight#q',
    );
    expect(checkpointFamilyOf((n) => sgm.includes(n))).toBe('SD2');
  });
});

describe('SDXL base (CLIP-L at embedder 0, bigG at embedder 1)', () => {
  const names = [...sdxlLayout(SDXL_BASE_CONFIG).keys()];
  const map = adapterKeyMap(names);
  it('lora_te1_/lora_te_/text_encoder. are CLIP-L; lora_te2_/text_encoder_2. are G with fused q/k/v thirds', () => {
    expect(map.get('lora_te1_text_model_encoder_layers_11_self_attn_q_proj')).toBe(`${L}11.self_attn.q_proj.weight`);
    expect(map.get('lora_te_text_model_encoder_layers_0_mlp_fc1')).toBe(`${L}0.mlp.fc1.weight`);
    expect(map.get('text_encoder.text_model.encoder.layers.2.self_attn.out_proj')).toBe(`${L}2.self_attn.out_proj.weight`);
    expect(map.get('lora_te2_text_model_encoder_layers_31_self_attn_k_proj')).toBe(`${G}31.attn.in_proj_weight#k`);
    expect(map.get('lora_te2_text_model_encoder_layers_0_mlp_fc2')).toBe(`${G}0.mlp.c_proj.weight`);
    expect(map.get('text_encoder_2.text_model.encoder.layers.4.self_attn.q_proj')).toBe(`${G}4.attn.in_proj_weight#q`);
    expect(map.get('text_encoders.clip_g.transformer.text_model.encoder.layers.4.self_attn.v_proj')).toBe(`${G}4.attn.in_proj_weight#v`);
    expect(map.get('text_encoders.clip_l.transformer.text_model.encoder.layers.4.self_attn.v_proj')).toBe(`${L}4.self_attn.v_proj.weight`);
  });

  it("UNet diffusers names through unet_to_diffusers' SDXL layout (3 levels, no attention at level 0, depths 2/10)", () => {
    const expectMap: [string, string][] = [
      ['down_blocks.1.attentions.0.transformer_blocks.1.attn1.to_q', 'input_blocks.4.1.transformer_blocks.1.attn1.to_q'],
      ['down_blocks.2.attentions.1.transformer_blocks.9.ff.net.2', 'input_blocks.8.1.transformer_blocks.9.ff.net.2'],
      ['down_blocks.0.resnets.1.conv2', 'input_blocks.2.0.out_layers.3'],
      ['down_blocks.1.resnets.0.conv_shortcut', 'input_blocks.4.0.skip_connection'],
      ['down_blocks.0.downsamplers.0.conv', 'input_blocks.3.0.op'],
      ['down_blocks.1.downsamplers.0.conv', 'input_blocks.6.0.op'],
      ['mid_block.attentions.0.transformer_blocks.9.attn2.to_k', 'middle_block.1.transformer_blocks.9.attn2.to_k'],
      ['up_blocks.0.attentions.2.proj_out', 'output_blocks.2.1.proj_out'],
      ['up_blocks.0.upsamplers.0.conv', 'output_blocks.2.2.conv'],
      ['up_blocks.1.attentions.0.transformer_blocks.1.attn2.to_out.0', 'output_blocks.3.1.transformer_blocks.1.attn2.to_out.0'],
      ['up_blocks.1.upsamplers.0.conv', 'output_blocks.5.2.conv'],
      ['up_blocks.2.resnets.2.conv1', 'output_blocks.8.0.in_layers.2'],
      ['add_embedding.linear_1', 'label_emb.0.0'],
      ['add_embedding.linear_2', 'label_emb.0.2'],
    ];
    for (const [d, ldm] of expectMap) {
      expect(map.get(`lora_unet_${d.replace(/\./g, '_')}`), d).toBe(`${U}${ldm}.weight`);
      expect(map.get(`unet.${d}`), d).toBe(`${U}${ldm}.weight`);
    }
    expect(map.get('lora_unet_input_blocks_7_1_transformer_blocks_9_attn1_to_v')).toBe(
      `${U}input_blocks.7.1.transformer_blocks.9.attn1.to_v.weight`,
    );
    expect(map.has('lora_unet_down_blocks_0_attentions_0_proj_in')).toBe(false);
  });

  it('SDXL adapters are not refused on an SDXL checkpoint, but are on SD1 and SD2 ones', () => {
    const keys = [
      'lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight',
      'lora_unet_label_emb_0_0.lora_up.weight',
      'lora_unet_input_blocks_7_1_transformer_blocks_9_attn1_to_q.lora_up.weight',
    ];
    const has = (n: string): boolean => map.has(n) || names.includes(n);
    expect(checkpointFamilyOf(has)).toBe('SDXL');
    expect(familyFromKeys(keys, has)).toBeUndefined();
    const sd2Has = (n: string): boolean => sd2Names.includes(n);
    expect(familyFromKeys(keys, sd2Has)).toEqual({ family: 'SDXL', key: keys[0] });
  });
});

describe('SDXL refiner (bigG alone at embedder 0)', () => {
  const names = [...sdxlLayout({ ...tinySdxlConfig(49408, 'refiner') }).keys()];
  const map = adapterKeyMap(names);
  it('lora_te_ / text_encoder. / lora_prior_te_ are G', () => {
    const R = 'conditioner.embedders.0.model.transformer.resblocks.';
    expect(map.get('lora_te_text_model_encoder_layers_1_self_attn_q_proj')).toBe(`${R}1.attn.in_proj_weight#q`);
    expect(map.get('text_encoder.text_model.encoder.layers.2.mlp.fc1')).toBe(`${R}2.mlp.c_fc.weight`);
    expect(map.get('lora_prior_te_text_model_encoder_layers_0_self_attn_out_proj')).toBe(`${R}0.attn.out_proj.weight`);
    expect(map.get('text_encoders.clip_g.transformer.text_model.encoder.layers.0.self_attn.out_proj')).toBe(`${R}0.attn.out_proj.weight`);
    expect(map.has('lora_te1_text_model_encoder_layers_0_mlp_fc1')).toBe(false);
    expect(checkpointFamilyOf((n) => names.includes(n))).toBe('SDXL');
  });
});

describe('adapters of another family on SD2 are refused naming both families', () => {
  const adapter = (entries: [string, number[]][]): WeightSource => layoutShapes(new Map(entries));
  const ckpt = layoutShapes(
    new Map([
      ...unetLayout(SD2_768.unet, SD2_PREFIX.unet),
      ...openClipLayout(SD2_768.clip, SD2_PREFIX.clip),
      ...vaeLayout(SD15_CONFIG.vae, SD2_PREFIX.vae),
    ]),
  );
  it('an SD1 LoRA (768-wide text) on SD2: by its text encoder q/k/v and by its cross-attention', () => {
    const te = adapter([
      ['lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight', [768, 4]],
      ['lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight', [4, 768]],
    ]);
    expect(() => parseAdapter('sd1.safetensors', te, ckpt)).toThrow(AdapterArchitectureError);
    expect(() => parseAdapter('sd1.safetensors', te, ckpt)).toThrow(
      /this adapter is for SD1 \(its text encoder is 768 wide, the checkpoint's 1024.*but the checkpoint is an SD2 model; use a LoRA made for SD2\.x/,
    );
    const unet = adapter([
      ['lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_up.weight', [320, 4]],
      ['lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_down.weight', [4, 768]],
    ]);
    expect(() => parseAdapter('sd1.safetensors', unet, ckpt)).toThrow(
      /for SD1 \(its cross-attention takes 768-wide text embeddings, the checkpoint's 1024.*checkpoint is an SD2 model/,
    );
  });
});
