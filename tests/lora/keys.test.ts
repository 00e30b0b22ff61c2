import { describe, expect, it } from 'vitest';
import { adapterKeyMap } from '../../engine/models/lora/keys.ts';
import { SD15_CONFIG, sd1Layout } from '../../engine/models/families/sd1/layout.ts';

// The full SD1.5 layout: names only, no file needed.
const names = [...sd1Layout(SD15_CONFIG).keys()];
const map = adapterKeyMap(names);
const U = 'model.diffusion_model.';
const TE = 'cond_stage_model.transformer.text_model.';
const flat = (s: string): string => s.replace(/\./g, '_');

/** Diffusers attention → LDM block, written from the SD1 layout: 2 res blocks per level, 3 per up level. */
function attentionBlocks(): [string, string][] {
  const out: [string, string][] = [];
  for (let x = 0; x < 3; x++) for (let i = 0; i < 2; i++) out.push([`down_blocks.${x}.attentions.${i}`, `input_blocks.${1 + 3 * x + i}.1`]);
  out.push(['mid_block.attentions.0', 'middle_block.1']);
  for (let x = 1; x < 4; x++) for (let i = 0; i < 3; i++) out.push([`up_blocks.${x}.attentions.${i}`, `output_blocks.${3 * x + i}.1`]);
  return out;
}

describe('adapterKeyMap on an SD1.5 checkpoint', () => {
  it('maps the 192 UNet and 72 text-encoder modules of a kohya SD1.5 LoRA to distinct checkpoint weights', () => {
    const seen = new Set<string>();
    const modules = [
      'attn1.to_q',
      'attn1.to_k',
      'attn1.to_v',
      'attn1.to_out.0',
      'attn2.to_q',
      'attn2.to_k',
      'attn2.to_v',
      'attn2.to_out.0',
      'ff.net.0.proj',
      'ff.net.2',
    ];
    for (const [d, l] of attentionBlocks()) {
      for (const p of ['proj_in', 'proj_out']) {
        expect(map.get(`lora_unet_${flat(`${d}.${p}`)}`)).toBe(`${U}${l}.${p}.weight`);
        seen.add(`${U}${l}.${p}.weight`);
      }
      for (const m of modules) {
        const target = `${U}${l}.transformer_blocks.0.${m}.weight`;
        expect(map.get(`lora_unet_${flat(`${d}.transformer_blocks.0.${m}`)}`)).toBe(target);
        seen.add(target);
      }
    }
    for (let layer = 0; layer < 12; layer++) {
      for (const m of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.out_proj', 'mlp.fc1', 'mlp.fc2']) {
        const target = `${TE}encoder.layers.${layer}.${m}.weight`;
        expect(map.get(`lora_te_text_model_encoder_layers_${layer}_${flat(m)}`)).toBe(target);
        expect(map.get(`lora_te1_text_model_encoder_layers_${layer}_${flat(m)}`)).toBe(target);
        expect(map.get(`text_encoder.text_model.encoder.layers.${layer}.${m}`)).toBe(target);
        seen.add(target);
      }
    }
    expect(seen.size).toBe(192 + 72);
  });

  it('maps LoCon conv modules: resnets, samplers, conv_in/out, time embedding', () => {
    const res = (d: string, l: string): void => {
      for (const [dn, ln] of [
        ['conv1', 'in_layers.2'],
        ['conv2', 'out_layers.3'],
        ['time_emb_proj', 'emb_layers.1'],
        ['norm1', 'in_layers.0'],
        ['norm2', 'out_layers.0'],
      ]) {
        expect(map.get(`lora_unet_${flat(`${d}.${dn}`)}`)).toBe(`${U}${l}.${ln}.weight`);
      }
    };
    for (let x = 0; x < 4; x++) for (let i = 0; i < 2; i++) res(`down_blocks.${x}.resnets.${i}`, `input_blocks.${1 + 3 * x + i}.0`);
    for (let x = 0; x < 4; x++) for (let i = 0; i < 3; i++) res(`up_blocks.${x}.resnets.${i}`, `output_blocks.${3 * x + i}.0`);
    res('mid_block.resnets.0', 'middle_block.0');
    res('mid_block.resnets.1', 'middle_block.2');
    expect(map.get('lora_unet_down_blocks_1_resnets_0_conv_shortcut')).toBe(`${U}input_blocks.4.0.skip_connection.weight`);
    expect(map.get('lora_unet_up_blocks_3_resnets_2_conv_shortcut')).toBe(`${U}output_blocks.11.0.skip_connection.weight`);
    for (let x = 0; x < 3; x++)
      expect(map.get(`lora_unet_down_blocks_${x}_downsamplers_0_conv`)).toBe(`${U}input_blocks.${3 + 3 * x}.0.op.weight`);
    expect(map.get('lora_unet_up_blocks_0_upsamplers_0_conv')).toBe(`${U}output_blocks.2.1.conv.weight`);
    expect(map.get('lora_unet_up_blocks_1_upsamplers_0_conv')).toBe(`${U}output_blocks.5.2.conv.weight`);
    expect(map.get('lora_unet_up_blocks_2_upsamplers_0_conv')).toBe(`${U}output_blocks.8.2.conv.weight`);
    expect(map.has('lora_unet_up_blocks_3_upsamplers_0_conv')).toBe(false);
    expect(map.get('lora_unet_conv_in')).toBe(`${U}input_blocks.0.0.weight`);
    expect(map.get('lora_unet_conv_out')).toBe(`${U}out.2.weight`);
    expect(map.get('lora_unet_time_embedding_linear_2')).toBe(`${U}time_embed.2.weight`);
  });

  it('reaches every UNet weight through diffusers names, and every weight through the LDM and ComfyUI spellings', () => {
    const unetWeights = names.filter((n) => n.startsWith(U) && n.endsWith('.weight'));
    const viaDiffusers = new Set([...map].filter(([k]) => k.startsWith('unet.')).map(([, v]) => v));
    expect(viaDiffusers.size).toBe(unetWeights.length);
    for (const n of unetWeights) {
      const ldm = n.slice(U.length, -'.weight'.length);
      expect(map.get(`lora_unet_${flat(ldm)}`)).toBe(n);
      expect(map.get(`diffusion_model.${ldm}`)).toBe(n);
    }
    for (const n of names.filter((x) => x.startsWith(TE) && x.endsWith('.weight'))) {
      expect(map.get(`text_encoders.clip_l.transformer.text_model.${n.slice(TE.length, -'.weight'.length)}`)).toBe(n);
    }
    expect(map.get(`diffusion_model.out.2.bias`)).toBe(`${U}out.2.bias`);
  });

  it("accepts diffusers' attention-processor spellings and PEFT prefixes", () => {
    const b = 'down_blocks.0.attentions.0.transformer_blocks.0';
    const l = `${U}input_blocks.1.1.transformer_blocks.0`;
    expect(map.get(`unet.${b}.attn1.processor.to_q`)).toBe(`${l}.attn1.to_q.weight`);
    expect(map.get(`${b}.attn2.processor.to_out`)).toBe(`${l}.attn2.to_out.0.weight`);
    expect(map.get(`unet.${b}.attn2.to_out.0`)).toBe(`${l}.attn2.to_out.0.weight`);
    expect(map.get(`base_model.model.${b}.ff.net.2`)).toBe(`${l}.ff.net.2.weight`);
    expect(map.get(`lycoris_${flat(`${b}.attn1.to_v`)}`)).toBe(`${l}.attn1.to_v.weight`);
    expect(map.get('base_model.model.text_model.encoder.layers.3.mlp.fc1')).toBe(`${TE}encoder.layers.3.mlp.fc1.weight`);
  });

  it('names only weights that exist, and never the VAE', () => {
    const all = new Set(names);
    for (const v of map.values()) {
      expect(all.has(v)).toBe(true);
      expect(v.startsWith('first_stage_model.')).toBe(false);
    }
  });
});
