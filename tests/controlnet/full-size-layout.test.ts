import { describe, expect, it } from 'vitest';
import { controlNetToDiffusers } from '../../engine/models/controlnet/generate.ts';
import { controlNetLayout, type ControlNetConfig } from '../../engine/models/controlnet/layout.ts';
import { controlNetFromSource } from '../../engine/models/controlnet/load.ts';
import { layoutShapes, SD15_CONFIG, type Layout } from '../../engine/models/families/sd1/layout.ts';

/*
 * Detection and key maps on the full SD1.5 ControlNet structure, from shapes alone (no data): the
 * layout lllyasviel's ControlNet 1.x files have, and the diffusers names of lllyasviel/sd-controlnet-*.
 */

const SD15_CN: ControlNetConfig = { unet: SD15_CONFIG.unet, hintChannels: 3 };
const f32 = (): 'F32' => 'F32';

describe('the full-size SD1.5 ControlNet structure', () => {
  it("has ControlNet 1.x's tensors: 12 zero convs, the middle block out, the 8-conv hint encoder, no output blocks", () => {
    const l = controlNetLayout(SD15_CN);
    expect(l.get('input_hint_block.0.weight')).toEqual([16, 3, 3, 3]);
    expect(l.get('input_hint_block.14.weight')).toEqual([320, 256, 3, 3]);
    expect(l.get('zero_convs.11.0.weight')).toEqual([1280, 1280, 1, 1]);
    expect(l.get('zero_convs.0.0.weight')).toEqual([320, 320, 1, 1]);
    expect(l.get('middle_block_out.0.weight')).toEqual([1280, 1280, 1, 1]);
    expect(l.has('zero_convs.12.0.weight')).toBe(false);
    expect([...l.keys()].some((k) => k.startsWith('output_blocks.') || k.startsWith('out.'))).toBe(false);
  });

  it('is detected from the shapes of a single file (control_model. prefix, beside a full SD checkpoint as ControlNet 1.0 files ship)', () => {
    const l: Layout = new Map([...controlNetLayout(SD15_CN, 'control_model.')]);
    l.set('model.diffusion_model.out.2.weight', [4, 320, 3, 3]);
    l.set('first_stage_model.encoder.conv_in.weight', [128, 3, 3, 3]);
    const cn = controlNetFromSource('control_sd15_canny.safetensors', layoutShapes(l), f32);
    expect(cn.kind).toBe('single-file');
    expect(cn.config).toEqual(SD15_CN);
  });

  it('maps the diffusers ControlNetModel names (as lllyasviel/sd-controlnet-* use them) back to the cldm names', () => {
    const toDiffusers = controlNetToDiffusers(SD15_CN);
    const names = new Set(toDiffusers.values());
    for (const n of [
      'conv_in.weight',
      'time_embedding.linear_1.weight',
      'time_embedding.linear_2.bias',
      'down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight',
      'down_blocks.0.downsamplers.0.conv.weight',
      'down_blocks.3.resnets.1.time_emb_proj.weight',
      'down_blocks.1.resnets.0.conv_shortcut.weight',
      'mid_block.attentions.0.proj_out.weight',
      'mid_block.resnets.1.conv2.weight',
      'controlnet_cond_embedding.conv_in.weight',
      'controlnet_cond_embedding.blocks.5.weight',
      'controlnet_cond_embedding.conv_out.bias',
      'controlnet_down_blocks.11.weight',
      'controlnet_mid_block.bias',
    ]) {
      expect(names.has(n), n).toBe(true);
    }
    expect(names.size).toBe(controlNetLayout(SD15_CN).size);
    const diffusers: Layout = new Map([...controlNetLayout(SD15_CN)].map(([k, s]) => [toDiffusers.get(k)!, s]));
    const cn = controlNetFromSource('diffusion_pytorch_model.safetensors', layoutShapes(diffusers), f32);
    expect(cn.kind).toBe('diffusers');
    expect(cn.config).toEqual(SD15_CN);
    expect(cn.weights.names().sort()).toEqual([...controlNetLayout(SD15_CN).keys()].sort());
  });
});
