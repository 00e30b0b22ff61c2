import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Sd1Config } from '../../engine/models/families/sd1/config.ts';
import {
  NotACheckpointError,
  detectCheckpoint,
  detectVae,
  identifyFamily,
  sd1Weights,
  vaeWeights,
} from '../../engine/models/families/sd1/detect.ts';
import { detectOnnxFolder } from '../../engine/models/detect-onnx.ts';
import { UnsupportedModelError } from '../../engine/models/errors.ts';
import {
  SD15_CONFIG,
  clipLayout,
  layoutShapes,
  sd1Layout,
  unetLayout,
  vaeLayout,
  type Layout,
} from '../../engine/models/families/sd1/layout.ts';
import type { WeightSource } from '../../engine/core/weights.ts';

/** Shapes only: detection must never need the data. */
const shapes = layoutShapes;

/** A source whose tensor data spells its own name, to check which tensor a renamed view reads. */
function named(l: Layout): WeightSource {
  return { ...shapes(l), get: (n) => Float32Array.from(n, (c) => c.charCodeAt(0)) };
}
const nameOf = (a: Float32Array): string => String.fromCharCode(...a);

const TINY: Sd1Config = {
  family: 'sd1',
  scaleFactor: 0.18215,
  unet: { ...SD15_CONFIG.unet, modelChannels: 32, contextDim: 64, channelMult: [1, 2, 4, 4] },
  clip: { ...SD15_CONFIG.clip, vocabSize: 1000, hiddenSize: 64, numLayers: 2, intermediateSize: 256, numHeads: 1 },
  vae: { ...SD15_CONFIG.vae, ch: 32, numResBlocks: 1 },
};

const count = (l: Layout, prefix: string): number => [...l.keys()].filter((k) => k.startsWith(prefix)).length;
const params = (l: Layout, prefix: string): number =>
  [...l].filter(([k]) => k.startsWith(prefix)).reduce((s, [, sh]) => s + sh.reduce((a, b) => a * b, 1), 0);

describe('SD1 checkpoint layout', () => {
  it('has the published SD1.5 sizes: UNet 859,520,964 parameters in 686 tensors, VAE 83,653,863 in 248, CLIP-L text 123,060,480 in 196', () => {
    const l = sd1Layout(SD15_CONFIG);
    expect(params(l, 'model.diffusion_model.')).toBe(859_520_964);
    expect(count(l, 'model.diffusion_model.')).toBe(686);
    expect(params(l, 'first_stage_model.')).toBe(83_653_863);
    expect(count(l, 'first_stage_model.')).toBe(248);
    expect(params(l, 'cond_stage_model.')).toBe(123_060_480);
    expect(count(l, 'cond_stage_model.')).toBe(196);
  });

  it('uses the original LDM names and shapes of real SD1.5 files (spot checks written from the LDM/CLIP module structure)', () => {
    const l = sd1Layout(SD15_CONFIG);
    const u = 'model.diffusion_model.';
    const v = 'first_stage_model.';
    const c = 'cond_stage_model.transformer.text_model.';
    const want: [string, number[]][] = [
      [`${u}time_embed.0.weight`, [1280, 320]],
      [`${u}time_embed.2.weight`, [1280, 1280]],
      [`${u}input_blocks.0.0.weight`, [320, 4, 3, 3]],
      [`${u}input_blocks.1.1.proj_in.weight`, [320, 320, 1, 1]],
      [`${u}input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight`, [320, 320]],
      [`${u}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight`, [320, 768]],
      [`${u}input_blocks.1.1.transformer_blocks.0.attn2.to_out.0.bias`, [320]],
      [`${u}input_blocks.1.1.transformer_blocks.0.ff.net.0.proj.weight`, [2560, 320]],
      [`${u}input_blocks.1.1.transformer_blocks.0.ff.net.2.weight`, [320, 1280]],
      [`${u}input_blocks.1.1.transformer_blocks.0.norm3.weight`, [320]],
      [`${u}input_blocks.3.0.op.weight`, [320, 320, 3, 3]],
      [`${u}input_blocks.4.0.skip_connection.weight`, [640, 320, 1, 1]],
      [`${u}input_blocks.4.0.emb_layers.1.weight`, [640, 1280]],
      [`${u}input_blocks.9.0.op.weight`, [1280, 1280, 3, 3]],
      [`${u}input_blocks.11.0.out_layers.3.weight`, [1280, 1280, 3, 3]],
      [`${u}middle_block.1.proj_out.weight`, [1280, 1280, 1, 1]],
      [`${u}middle_block.2.in_layers.0.weight`, [1280]],
      [`${u}output_blocks.0.0.skip_connection.weight`, [1280, 2560, 1, 1]],
      [`${u}output_blocks.2.1.conv.weight`, [1280, 1280, 3, 3]], // level 3 has no attention: upsample is sub-block 1
      [`${u}output_blocks.3.1.proj_in.weight`, [1280, 1280, 1, 1]],
      [`${u}output_blocks.5.2.conv.weight`, [1280, 1280, 3, 3]],
      [`${u}output_blocks.6.0.skip_connection.weight`, [640, 1920, 1, 1]],
      [`${u}output_blocks.8.2.conv.weight`, [640, 640, 3, 3]],
      [`${u}output_blocks.9.0.in_layers.0.weight`, [960]],
      [`${u}output_blocks.11.1.transformer_blocks.0.attn2.to_v.weight`, [320, 768]],
      [`${u}out.0.weight`, [320]],
      [`${u}out.2.weight`, [4, 320, 3, 3]],
      [`${v}encoder.conv_in.weight`, [128, 3, 3, 3]],
      [`${v}encoder.down.1.block.0.nin_shortcut.weight`, [256, 128, 1, 1]],
      [`${v}encoder.down.3.block.1.conv2.weight`, [512, 512, 3, 3]],
      [`${v}encoder.mid.attn_1.q.weight`, [512, 512, 1, 1]],
      [`${v}encoder.mid.attn_1.proj_out.bias`, [512]],
      [`${v}encoder.conv_out.weight`, [8, 512, 3, 3]],
      [`${v}quant_conv.weight`, [8, 8, 1, 1]],
      [`${v}post_quant_conv.weight`, [4, 4, 1, 1]],
      [`${v}decoder.conv_in.weight`, [512, 4, 3, 3]],
      [`${v}decoder.up.3.upsample.conv.weight`, [512, 512, 3, 3]],
      [`${v}decoder.up.1.block.0.nin_shortcut.weight`, [256, 512, 1, 1]],
      [`${v}decoder.up.0.block.2.conv2.weight`, [128, 128, 3, 3]],
      [`${v}decoder.conv_out.weight`, [3, 128, 3, 3]],
      [`${c}embeddings.token_embedding.weight`, [49408, 768]],
      [`${c}embeddings.position_embedding.weight`, [77, 768]],
      [`${c}encoder.layers.11.self_attn.out_proj.weight`, [768, 768]],
      [`${c}encoder.layers.0.mlp.fc1.weight`, [3072, 768]],
      [`${c}encoder.layers.0.layer_norm2.bias`, [768]],
      [`${c}final_layer_norm.weight`, [768]],
    ];
    for (const [k, s] of want) expect(l.get(k), k).toEqual(s);
    for (const absent of [
      `${u}output_blocks.11.2.conv.weight`,
      `${v}decoder.up.0.upsample.conv.weight`,
      `${v}encoder.down.3.downsample.conv.weight`,
      `${u}input_blocks.12.0.op.weight`,
    ]) {
      expect(l.has(absent), absent).toBe(false);
    }
  });
});

describe('architecture detection', () => {
  it.each([
    ['full-size SD1.5', SD15_CONFIG],
    ['the tiny test model', TINY],
    ['an SD1 inpainting model (9 input channels)', { ...SD15_CONFIG, unet: { ...SD15_CONFIG.unet, inChannels: 9 } }],
    [
      'a two-level model without attention at level 1, depth 2',
      { ...TINY, unet: { ...TINY.unet, channelMult: [1, 2], attentionLevels: [0], numResBlocks: 1, transformerDepth: 2 } },
    ],
    [
      'a reduced-width model with 3 CLIP layers and a 3-level VAE',
      {
        ...TINY,
        clip: { ...TINY.clip, numLayers: 3, hiddenSize: 128, numHeads: 2 },
        unet: { ...TINY.unet, contextDim: 128 },
        vae: { ...TINY.vae, chMult: [1, 2, 2], numResBlocks: 2 },
      },
    ],
  ])('reads every width and depth of %s from shapes alone', (_name, cfg) => {
    expect(detectCheckpoint(shapes(sd1Layout(cfg as Sd1Config)))).toEqual(cfg);
  });

  it('ignores extra tensors (EMA copies, schedule buffers, position_ids)', () => {
    const l = sd1Layout(SD15_CONFIG);
    l.set('model_ema.decay', []);
    l.set('alphas_cumprod', [1000]);
    l.set('cond_stage_model.transformer.text_model.embeddings.position_ids', [1, 77]);
    expect(detectCheckpoint(shapes(l))).toEqual(SD15_CONFIG);
  });

  it('names the missing or mis-shaped tensor of a broken checkpoint', () => {
    const missing = sd1Layout(SD15_CONFIG);
    missing.delete('model.diffusion_model.output_blocks.7.1.transformer_blocks.0.norm2.bias');
    expect(() => detectCheckpoint(shapes(missing))).toThrow(
      'not a consistent SD1 UNet: missing model.diffusion_model.output_blocks.7.1.transformer_blocks.0.norm2.bias',
    );
    const bad = sd1Layout(SD15_CONFIG);
    bad.set('first_stage_model.decoder.mid.block_1.conv1.weight', [512, 512, 1, 1]);
    expect(() => detectCheckpoint(shapes(bad))).toThrow(
      'not a consistent SD1 VAE: first_stage_model.decoder.mid.block_1.conv1.weight has shape [512, 512, 1, 1], expected [512, 512, 3, 3]',
    );
    const clip = sd1Layout(SD15_CONFIG);
    clip.set('cond_stage_model.transformer.text_model.embeddings.token_embedding.weight', [49408, 1024]);
    expect(() => detectCheckpoint(shapes(clip))).toThrow(/CLIP text encoder|CLIP hidden size 1024/);
    expect(() => detectCheckpoint(shapes(new Map([['foo', [1]]])))).toThrow(/missing model\.diffusion_model\.input_blocks\.0\.0\.weight/);
    const noVae = new Map([...sd1Layout(SD15_CONFIG)].filter(([k]) => !k.startsWith('first_stage_model.')));
    expect(() => detectCheckpoint(shapes(noVae))).toThrow(/no VAE \(first_stage_model\.\*\)/);
  });

  it('names the family of SDXL, SD2, SD3, Flux and other checkpoints instead of misloading them', () => {
    const sdxl = new Map(sd1Layout(SD15_CONFIG));
    sdxl.set('conditioner.embedders.0.transformer.text_model.final_layer_norm.weight', [768]);
    expect(() => detectCheckpoint(shapes(sdxl))).toThrow(UnsupportedModelError);
    expect(() => detectCheckpoint(shapes(sdxl))).toThrow('not supported yet: detected SDXL');
    // SD2 as released: OpenCLIP text encoder keys.
    const sd2 = new Map(sd1Layout(SD15_CONFIG));
    sd2.set('cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight', [3072, 1024]);
    expect(() => detectCheckpoint(shapes(sd2))).toThrow('not supported yet: detected SD2.x');
    // SD2-shaped UNet (1024-wide cross-attention, linear projections) even under SD1 CLIP names.
    const sd2Shapes = sd1Layout({
      ...SD15_CONFIG,
      unet: { ...SD15_CONFIG.unet, contextDim: 1024, useLinearInProj: true },
      clip: { ...SD15_CONFIG.clip, hiddenSize: 1024 },
    });
    expect(() => detectCheckpoint(shapes(sd2Shapes))).toThrow('detected SD2.x (cross-attention width 1024)');
    const cases: [string, string][] = [
      ['model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight', 'SD3'],
      ['model.diffusion_model.double_blocks.0.img_attn.qkv.weight', 'Flux'],
      ['double_blocks.0.img_attn.norm.key_norm.scale', 'Flux'],
      ['model.diffusion_model.double_layers.0.attn.w1q.weight', 'AuraFlow'],
      ['model.diffusion_model.input_blocks.1.0.time_stack.in_layers.0.weight', 'Stable Video Diffusion'],
      ['model.diffusion_model.mlp_t5.0.weight', 'HunyuanDiT'],
    ];
    for (const [key, family] of cases) {
      expect(identifyFamily([key])).toBe(family);
      expect(() => detectCheckpoint(shapes(new Map([[key, [1, 1]]])))).toThrow(`not supported yet: detected ${family}`);
    }
  });

  it('tells a LoRA, an embedding, a VAE or a UNet-only file apart from a checkpoint', () => {
    const lora = new Map([
      ['lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight', [4, 320, 1, 1]],
      ['lora_unet_down_blocks_0_attentions_0_proj_in.alpha', []],
    ]);
    expect(() => detectCheckpoint(shapes(lora))).toThrow(NotACheckpointError);
    expect(() => detectCheckpoint(shapes(lora))).toThrow('this is a LoRA/LyCORIS file, not a full checkpoint');
    const peft = new Map([['unet.down_blocks.0.attentions.0.proj_in.lora_A.weight', [4, 320]]]);
    expect(() => detectCheckpoint(shapes(peft))).toThrow('LoRA/LyCORIS');
    expect(() => detectCheckpoint(shapes(new Map([['emb_params', [2, 768]]])))).toThrow('textual-inversion embedding');
    expect(() => detectCheckpoint(shapes(vaeLayout(SD15_CONFIG.vae, '')))).toThrow('this is a standalone VAE');
    expect(() => detectCheckpoint(shapes(unetLayout(SD15_CONFIG.unet, '')))).toThrow('UNet-only file');
  });

  it('accepts CLIP keys saved by old transformers versions (no text_model.) through the sd1Weights view', () => {
    const l = new Map<string, number[]>();
    for (const [k, s] of sd1Layout(SD15_CONFIG))
      l.set(k.replace('cond_stage_model.transformer.text_model.', 'cond_stage_model.transformer.'), s);
    const src = named(l);
    expect(detectCheckpoint(src)).toEqual(SD15_CONFIG);
    const view = sd1Weights(src);
    const k = 'cond_stage_model.transformer.text_model.encoder.layers.3.mlp.fc2.weight';
    expect(view.shape(k)).toEqual([768, 3072]);
    expect(nameOf(view.get(k))).toBe('cond_stage_model.transformer.encoder.layers.3.mlp.fc2.weight');
    // Nothing to rename: the source itself comes back.
    const plain = shapes(sd1Layout(TINY));
    expect(sd1Weights(plain)).toBe(plain);
  });

  it('reports VAE attention projections stored as linear [C, C] as 1×1 convolutions', () => {
    const l = sd1Layout(SD15_CONFIG);
    for (const part of ['encoder', 'decoder'])
      for (const p of ['q', 'k', 'v', 'proj_out']) l.set(`first_stage_model.${part}.mid.attn_1.${p}.weight`, [512, 512]);
    expect(detectCheckpoint(shapes(l))).toEqual(SD15_CONFIG);
    expect(sd1Weights(shapes(l)).shape('first_stage_model.decoder.mid.attn_1.v.weight')).toEqual([512, 512, 1, 1]);
  });
});

/** diffusers' AutoencoderKL names, written from its module structure (down_blocks/resnets, mid_block, up_blocks reversed). */
function diffusersVae(ch: number, mult: number[], blocks: number, z: number): Layout {
  const l: Layout = new Map();
  const conv = (k: string, o: number, i: number, s = 3): void => {
    l.set(`${k}.weight`, [o, i, s, s]);
    l.set(`${k}.bias`, [o]);
  };
  const norm = (k: string, c: number): void => {
    l.set(`${k}.weight`, [c]);
    l.set(`${k}.bias`, [c]);
  };
  const res = (k: string, i: number, o: number): void => {
    norm(`${k}.norm1`, i);
    conv(`${k}.conv1`, o, i);
    norm(`${k}.norm2`, o);
    conv(`${k}.conv2`, o, o);
    if (i !== o) conv(`${k}.conv_shortcut`, o, i, 1);
  };
  const mid = (k: string, c: number): void => {
    res(`${k}.mid_block.resnets.0`, c, c);
    norm(`${k}.mid_block.attentions.0.group_norm`, c);
    for (const p of ['to_q', 'to_k', 'to_v', 'to_out.0']) {
      l.set(`${k}.mid_block.attentions.0.${p}.weight`, [c, c]);
      l.set(`${k}.mid_block.attentions.0.${p}.bias`, [c]);
    }
    res(`${k}.mid_block.resnets.1`, c, c);
  };
  conv('encoder.conv_in', ch, 3);
  let c = ch;
  mult.forEach((m, i) => {
    for (let j = 0; j < blocks; j++) {
      res(`encoder.down_blocks.${i}.resnets.${j}`, c, ch * m);
      c = ch * m;
    }
    if (i < mult.length - 1) conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, c, c);
  });
  mid('encoder', c);
  norm('encoder.conv_norm_out', c);
  conv('encoder.conv_out', 2 * z, c);
  conv('quant_conv', 2 * z, 2 * z, 1);
  conv('post_quant_conv', z, z, 1);
  conv('decoder.conv_in', c, z);
  mid('decoder', c);
  [...mult].reverse().forEach((m, i) => {
    for (let j = 0; j <= blocks; j++) {
      res(`decoder.up_blocks.${i}.resnets.${j}`, c, ch * m);
      c = ch * m;
    }
    if (i < mult.length - 1) conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, c, c);
  });
  norm('decoder.conv_norm_out', c);
  conv('decoder.conv_out', 3, c);
  return l;
}

describe('standalone VAE detection', () => {
  it('detects an LDM VAE with or without the first_stage_model prefix', () => {
    expect(detectVae(shapes(vaeLayout(SD15_CONFIG.vae)))).toEqual(SD15_CONFIG.vae);
    expect(detectVae(shapes(vaeLayout(SD15_CONFIG.vae, '')))).toEqual(SD15_CONFIG.vae);
    const { config, weights } = vaeWeights(named(vaeLayout(SD15_CONFIG.vae)));
    expect(config).toEqual(SD15_CONFIG.vae);
    expect(nameOf(weights.get('decoder.up.2.block.1.norm1.weight'))).toBe('first_stage_model.decoder.up.2.block.1.norm1.weight');
  });

  it('maps a diffusers-format VAE to LDM names (up blocks reversed, attention as 1×1 convs)', () => {
    const l = diffusersVae(128, [1, 2, 4, 4], 2, 4);
    expect(l.size).toBe(248);
    expect(() => detectVae(shapes(l))).toThrow(/diffusers-format VAE/);
    const { config, weights } = vaeWeights(named(l));
    expect(config).toEqual(SD15_CONFIG.vae);
    const pairs: [string, string][] = [
      ['decoder.up.3.block.0.conv1.weight', 'decoder.up_blocks.0.resnets.0.conv1.weight'],
      ['decoder.up.0.block.2.conv2.bias', 'decoder.up_blocks.3.resnets.2.conv2.bias'],
      ['decoder.up.1.block.0.nin_shortcut.weight', 'decoder.up_blocks.2.resnets.0.conv_shortcut.weight'],
      ['decoder.up.3.upsample.conv.weight', 'decoder.up_blocks.0.upsamplers.0.conv.weight'],
      ['encoder.down.2.downsample.conv.weight', 'encoder.down_blocks.2.downsamplers.0.conv.weight'],
      ['encoder.mid.block_2.norm2.bias', 'encoder.mid_block.resnets.1.norm2.bias'],
      ['encoder.mid.attn_1.norm.weight', 'encoder.mid_block.attentions.0.group_norm.weight'],
      ['decoder.mid.attn_1.proj_out.weight', 'decoder.mid_block.attentions.0.to_out.0.weight'],
      ['encoder.norm_out.weight', 'encoder.conv_norm_out.weight'],
      ['post_quant_conv.weight', 'post_quant_conv.weight'],
    ];
    for (const [ldm, diff] of pairs) expect(nameOf(weights.get(ldm)), ldm).toBe(diff);
    expect(weights.shape('decoder.mid.attn_1.q.weight')).toEqual([512, 512, 1, 1]);
    expect(weights.names().length).toBe(248);
  });
});

describe('ONNX folder detection', () => {
  const make = (parts: string[], extra: Record<string, string> = {}): string => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-onnx-'));
    for (const p of parts) {
      fs.mkdirSync(path.join(d, p), { recursive: true });
      fs.writeFileSync(path.join(d, p, 'model.onnx'), '');
    }
    for (const [f, text] of Object.entries(extra)) {
      fs.mkdirSync(path.dirname(path.join(d, f)), { recursive: true });
      fs.writeFileSync(path.join(d, f), text);
    }
    return d;
  };

  it('finds the parts of a diffusers/Optimum export and its tokenizer and scheduler', () => {
    const d = make(['text_encoder', 'unet', 'vae_decoder', 'vae_encoder'], {
      'model_index.json': JSON.stringify({ _class_name: 'OnnxStableDiffusionPipeline' }),
      'tokenizer/vocab.json': '{}',
      'tokenizer/merges.txt': '',
      'scheduler/scheduler_config.json': JSON.stringify({
        prediction_type: 'epsilon',
        beta_schedule: 'scaled_linear',
        beta_start: 0.00085,
        beta_end: 0.012,
        num_train_timesteps: 1000,
      }),
    });
    try {
      expect(detectOnnxFolder(d)).toEqual({
        dir: d,
        textEncoder: path.join(d, 'text_encoder/model.onnx'),
        unet: path.join(d, 'unet/model.onnx'),
        vaeDecoder: path.join(d, 'vae_decoder/model.onnx'),
        vaeEncoder: path.join(d, 'vae_encoder/model.onnx'),
        tokenizerDir: path.join(d, 'tokenizer'),
        pipelineClass: 'OnnxStableDiffusionPipeline',
        scheduler: { predictionType: 'epsilon', betaSchedule: 'scaled_linear', betaStart: 0.00085, betaEnd: 0.012, trainTimesteps: 1000 },
      });
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });

  it('lists missing parts, and names SDXL and SD2 exports', () => {
    const partial = make(['text_encoder']);
    const xl = make(['text_encoder', 'text_encoder_2', 'unet', 'vae_decoder']);
    const sd2 = make(['text_encoder', 'unet', 'vae_decoder'], { 'text_encoder/config.json': JSON.stringify({ hidden_size: 1024 }) });
    try {
      expect(() => detectOnnxFolder(partial)).toThrow(
        `${partial}: not a diffusers ONNX folder: missing unet/model.onnx, vae_decoder/model.onnx`,
      );
      expect(() => detectOnnxFolder(xl)).toThrow('not supported yet: detected SDXL (ONNX folder)');
      expect(() => detectOnnxFolder(sd2)).toThrow('not supported yet: detected SD2.x (ONNX folder)');
      expect(() => detectOnnxFolder(path.join(partial, 'nope'))).toThrow(/not a folder/);
    } finally {
      for (const d of [partial, xl, sd2]) fs.rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('layout helpers', () => {
  it('clipLayout matches detectClip for any width', () => {
    const cfg = { ...SD15_CONFIG.clip, hiddenSize: 192, numHeads: 3, numLayers: 4, intermediateSize: 768, vocabSize: 900 };
    const l = clipLayout(cfg);
    expect(l.get('cond_stage_model.transformer.text_model.encoder.layers.3.self_attn.k_proj.weight')).toEqual([192, 192]);
    expect(
      detectCheckpoint(shapes(new Map([...sd1Layout({ ...TINY, clip: cfg, unet: { ...TINY.unet, contextDim: 192 } })]))),
    ).toMatchObject({ clip: cfg });
  });
});
