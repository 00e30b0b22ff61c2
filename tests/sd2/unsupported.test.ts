import { describe, expect, it } from 'vitest';
import type { WeightSource } from '../../engine/core/weights.ts';
import { UnsupportedModelError } from '../../engine/models/errors.ts';
import { builtinFamilies } from '../../engine/models/families/index.ts';
import { openClipLayout } from '../../engine/models/families/openclip/config.ts';
import { SD15_CONFIG, sd1Layout, unetLayout, vaeLayout } from '../../engine/models/families/sd1/layout.ts';
import { SD2_PREFIX } from '../../engine/models/families/sd2/config.ts';
import { SDXL_BASE_CONFIG, sdxlLayout, tinySdxlConfig } from '../../engine/models/families/sdxl/layout.ts';
import { identifyUnsupported } from '../../engine/models/families/unsupported.ts';

/*
 * Checkpoints of families Weft cannot run are refused with the family named. Each case is a short
 * list of keys such a file holds (the ones ComfyUI's model_detection keys on plus a few neighbours),
 * whole-checkpoint (`model.diffusion_model.` prefixed) or bare diffusion-model files.
 */

const P = 'model.diffusion_model.';
const pre = (keys: string[]): string[] => keys.map((k) => P + k);
const CASES: [family: string, keys: string[]][] = [
  [
    'SD3',
    [
      ...pre([
        'joint_blocks.0.context_block.attn.qkv.weight',
        'joint_blocks.0.x_block.attn.qkv.weight',
        'x_embedder.proj.weight',
        'context_embedder.weight',
      ]),
      'text_encoders.clip_g.transformer.text_model.final_layer_norm.weight',
      'first_stage_model.decoder.conv_in.weight',
    ],
  ],
  [
    'SD3.5',
    pre(['joint_blocks.0.context_block.attn.qkv.weight', 'joint_blocks.0.context_block.attn.ln_q.weight', 'x_embedder.proj.weight']),
  ],
  [
    'SD3.5 Medium (MMDiT-X)',
    pre([
      'joint_blocks.0.context_block.attn.qkv.weight',
      'joint_blocks.0.context_block.attn.ln_q.weight',
      'joint_blocks.3.x_block.attn2.qkv.weight',
    ]),
  ],
  [
    'Flux',
    [
      'double_blocks.0.img_attn.norm.key_norm.scale',
      'double_blocks.0.img_attn.qkv.weight',
      'single_blocks.0.linear1.weight',
      'img_in.weight',
      'guidance_in.in_layer.weight',
      'vector_in.in_layer.weight',
    ],
  ],
  [
    'Flux',
    [
      ...pre(['double_blocks.0.img_attn.qkv.weight', 'single_blocks.37.linear2.weight', 'time_in.in_layer.weight']),
      'text_encoders.t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q.weight',
    ],
  ],
  [
    'Chroma',
    [
      'double_blocks.0.img_attn.qkv.weight',
      'double_blocks.0.img_attn.norm.key_norm.scale',
      'distilled_guidance_layer.in_proj.weight',
      'single_blocks.0.linear1.weight',
    ],
  ],
  [
    'Hunyuan Video',
    [
      'double_blocks.0.img_attn_qkv.weight',
      'double_blocks.0.img_attn_q_norm.weight',
      'txt_in.individual_token_refiner.blocks.0.norm1.weight',
      'single_blocks.0.linear1.weight',
    ],
  ],
  [
    'HiDream',
    [
      'double_stream_blocks.0.block.attn1.to_q.weight',
      'single_stream_blocks.0.block.attn1.to_q.weight',
      'caption_projection.0.linear.weight',
    ],
  ],
  [
    'AuraFlow',
    pre(['double_layers.0.attn.w1q.weight', 'single_layers.0.attn.w1q.weight', 'positional_encoding', 'cond_seq_linear.weight']),
  ],
  ['HunyuanDiT', pre(['mlp_t5.0.weight', 'blocks.0.attn1.qkv.weight', 'x_embedder.proj.weight', 'extra_embedder.0.weight'])],
  ['Stable Cascade', ['clf.1.weight', 'clip_txt_mapper.weight', 'down_blocks.0.0.channelwise.0.weight']],
  ['Stable Cascade', ['clf.1.weight', 'clip_mapper.weight', 'down_blocks.1.0.channelwise.0.weight']],
  ['Stable Audio', ['model.model.transformer.rotary_pos_emb.inv_freq', 'model.model.transformer.layers.0.self_attn.to_qkv.weight']],
  ['Mochi', ['t5_yproj.weight', 'blocks.0.attn.qkv_x.weight']],
  [
    'LTX-Video',
    [
      ...pre([
        'adaln_single.emb.timestep_embedder.linear_1.bias',
        'transformer_blocks.0.scale_shift_table',
        'caption_projection.linear_1.weight',
      ]),
      'vae.decoder.conv_in.conv.weight',
    ],
  ],
  ['PixArt', ['t_block.1.weight', 'y_embedder.y_embedding', 'blocks.0.attn.qkv.weight', 'x_embedder.proj.weight']],
  ['Cosmos', ['blocks.block0.blocks.0.block.attn.to_q.0.weight', 'x_embedder.proj.1.weight']],
  ['Wan', pre(['head.modulation', 'blocks.0.self_attn.q.weight', 'patch_embedding.weight', 'text_embedding.0.weight'])],
  ['Lumina 2', ['cap_embedder.1.weight', 'layers.0.attention.qkv.weight', 'x_embedder.weight']],
  ['Qwen-Image', ['transformer_blocks.0.img_mod.1.weight', 'txt_norm.weight', 'img_in.weight']],
  ['OmniGen2', ['time_caption_embed.timestep_embedder.linear_1.bias', 'noise_refiner.0.attn.to_q.weight']],
  ['ACE-Step', ['genre_embedder.weight', 'transformer_blocks.0.attn.to_q.weight']],
  [
    'Stable Video Diffusion',
    [
      ...pre([
        'input_blocks.0.0.weight',
        'input_blocks.1.0.time_stack.in_layers.0.weight',
        'input_blocks.1.1.time_stack.0.attn1.to_q.weight',
      ]),
      'conditioner.embedders.0.open_clip.model.visual.conv1.weight',
    ],
  ],
  [
    'Stable Zero123',
    [
      ...pre(['input_blocks.0.0.weight', 'middle_block.1.proj_in.weight']),
      'cc_projection.weight',
      'cond_stage_model.model.visual.conv1.weight',
    ],
  ],
];

const namesOnly = (names: readonly string[]): WeightSource => ({
  has: (n) => names.includes(n),
  names: () => [...names],
  shape: () => [1, 1],
  get: () => {
    throw new Error('detection read tensor data');
  },
});

describe('families Weft cannot run are refused by name', () => {
  it.each(CASES)('%s', (family, keys) => {
    expect(identifyUnsupported(keys)?.family).toBe(family);
    const detect = (): unknown => builtinFamilies().detect(namesOnly(keys));
    expect(detect).toThrow(UnsupportedModelError);
    expect(detect).toThrow(`not supported yet: detected ${family} (`);
  });

  it('the families Weft runs are not mistaken for any of them (full SD1.5, SD2 768-v, SDXL base and refiner layouts)', () => {
    const sd2 = [
      ...unetLayout({ ...SD15_CONFIG.unet, contextDim: 1024, useLinearInProj: true, numHeadChannels: 64 }, SD2_PREFIX.unet).keys(),
      ...openClipLayout(
        {
          vocabSize: 49408,
          width: 1024,
          layers: 24,
          heads: 16,
          mlpWidth: 4096,
          contextLength: 77,
          projectionDim: 1024,
          layerNormEps: 1e-5,
        },
        SD2_PREFIX.clip,
      ).keys(),
      ...vaeLayout(SD15_CONFIG.vae, SD2_PREFIX.vae).keys(),
    ];
    for (const names of [
      [...sd1Layout(SD15_CONFIG).keys()],
      sd2,
      [...sdxlLayout(SDXL_BASE_CONFIG).keys()],
      [...sdxlLayout(tinySdxlConfig(49408, 'refiner')).keys()],
    ]) {
      expect(identifyUnsupported(names)).toBeUndefined();
    }
  });
});
