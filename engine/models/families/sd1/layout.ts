import type { ClipTextConfig, Sd1Config, UNetConfig, VaeConfig } from './config.ts';
import { SD1_PREFIX } from './config.ts';
import type { WeightSource } from '../../../core/weights.ts';
import { unetPlan, type ResBlockPlan, type TransformerPlan } from './unet-plan.ts';

/**
 * Every tensor of an SD1 single-file checkpoint (original LDM key names) with its shape, for a given
 * architecture. One description serves the model generator (what to write) and the tests of
 * detection (what a file of that architecture looks like).
 */
export type Layout = Map<string, number[]>;

/** A layout as weights with shapes and no data (reading data throws): what detection and graph-structure checks need. */
export function layoutShapes(l: Layout): WeightSource {
  return {
    has: (n) => l.has(n),
    names: () => [...l.keys()],
    shape: (n) => {
      const s = l.get(n);
      if (!s) throw new Error(`no ${n}`);
      return s;
    },
    get: () => {
      throw new Error('detection read tensor data');
    },
  };
}

function norm(l: Layout, key: string, c: number): void {
  l.set(`${key}.weight`, [c]);
  l.set(`${key}.bias`, [c]);
}

function conv(l: Layout, key: string, out: number, inp: number, k: number, bias = true): void {
  l.set(`${key}.weight`, [out, inp, k, k]);
  if (bias) l.set(`${key}.bias`, [out]);
}

function linear(l: Layout, key: string, out: number, inp: number, bias = true): void {
  l.set(`${key}.weight`, [out, inp]);
  if (bias) l.set(`${key}.bias`, [out]);
}

function resBlock(l: Layout, p: string, b: ResBlockPlan, embDim: number): void {
  norm(l, `${p}${b.key}.in_layers.0`, b.inChannels);
  conv(l, `${p}${b.key}.in_layers.2`, b.outChannels, b.inChannels, 3);
  linear(l, `${p}${b.key}.emb_layers.1`, b.outChannels, embDim);
  norm(l, `${p}${b.key}.out_layers.0`, b.outChannels);
  conv(l, `${p}${b.key}.out_layers.3`, b.outChannels, b.outChannels, 3);
  if (b.inChannels !== b.outChannels) conv(l, `${p}${b.key}.skip_connection`, b.outChannels, b.inChannels, 1);
}

function transformer(l: Layout, prefix: string, t: TransformerPlan, cfg: UNetConfig): void {
  const p = `${prefix}${t.key}`;
  const ch = t.channels;
  norm(l, `${p}.norm`, ch);
  if (cfg.useLinearInProj) linear(l, `${p}.proj_in`, ch, ch);
  else conv(l, `${p}.proj_in`, ch, ch, 1);
  for (let d = 0; d < t.depth; d++) {
    const b = `${p}.transformer_blocks.${d}`;
    for (const a of ['attn1', 'attn2']) {
      const kv = a === 'attn1' ? ch : cfg.contextDim;
      linear(l, `${b}.${a}.to_q`, ch, ch, false);
      linear(l, `${b}.${a}.to_k`, ch, kv, false);
      linear(l, `${b}.${a}.to_v`, ch, kv, false);
      linear(l, `${b}.${a}.to_out.0`, ch, ch);
    }
    linear(l, `${b}.ff.net.0.proj`, ch * 8, ch);
    linear(l, `${b}.ff.net.2`, ch, ch * 4);
    for (const n of ['norm1', 'norm2', 'norm3']) norm(l, `${b}.${n}`, ch);
  }
  if (cfg.useLinearInProj) linear(l, `${p}.proj_out`, ch, ch);
  else conv(l, `${p}.proj_out`, ch, ch, 1);
}

export function unetLayout(cfg: UNetConfig, prefix: string = SD1_PREFIX.unet): Layout {
  const l: Layout = new Map();
  const plan = unetPlan(cfg);
  const C = cfg.modelChannels;
  const emb = plan.embDim;
  linear(l, `${prefix}time_embed.0`, emb, C);
  linear(l, `${prefix}time_embed.2`, emb, emb);
  if (plan.admInChannels !== undefined) {
    linear(l, `${prefix}label_emb.0.0`, emb, plan.admInChannels);
    linear(l, `${prefix}label_emb.0.2`, emb, emb);
  }
  for (const b of plan.input) {
    if (b.kind === 'conv_in') conv(l, `${prefix}${b.conv}`, C, cfg.inChannels, 3);
    else if (b.kind === 'downsample') conv(l, `${prefix}${b.conv}`, b.channels, b.channels, 3);
    else {
      resBlock(l, prefix, b.res!, emb);
      if (b.transformer) transformer(l, prefix, b.transformer, cfg);
    }
  }
  resBlock(l, prefix, plan.middle.res[0], emb);
  if (plan.middle.transformer) transformer(l, prefix, plan.middle.transformer, cfg);
  for (const r of plan.middle.res.slice(1)) resBlock(l, prefix, r, emb);
  for (const b of plan.output) {
    resBlock(l, prefix, b.res, emb);
    if (b.transformer) transformer(l, prefix, b.transformer, cfg);
    if (b.upsample) conv(l, `${prefix}${b.upsample}`, b.res.outChannels, b.res.outChannels, 3);
  }
  norm(l, `${prefix}out.0`, C);
  conv(l, `${prefix}out.2`, cfg.outChannels, C, 3);
  return l;
}

function vaeRes(l: Layout, p: string, inCh: number, outCh: number): void {
  norm(l, `${p}.norm1`, inCh);
  conv(l, `${p}.conv1`, outCh, inCh, 3);
  norm(l, `${p}.norm2`, outCh);
  conv(l, `${p}.conv2`, outCh, outCh, 3);
  if (inCh !== outCh) conv(l, `${p}.nin_shortcut`, outCh, inCh, 1);
}

function vaeAttn(l: Layout, p: string, c: number): void {
  norm(l, `${p}.norm`, c);
  for (const k of ['q', 'k', 'v', 'proj_out']) conv(l, `${p}.${k}`, c, c, 1);
}

export function vaeLayout(cfg: VaeConfig, prefix: string = SD1_PREFIX.vae): Layout {
  const l: Layout = new Map();
  const e = `${prefix}encoder`;
  conv(l, `${e}.conv_in`, cfg.ch, cfg.inChannels, 3);
  const inMult = [1, ...cfg.chMult];
  let blockIn = cfg.ch;
  cfg.chMult.forEach((mult, i) => {
    blockIn = cfg.ch * inMult[i];
    const blockOut = cfg.ch * mult;
    for (let j = 0; j < cfg.numResBlocks; j++) {
      vaeRes(l, `${e}.down.${i}.block.${j}`, blockIn, blockOut);
      blockIn = blockOut;
    }
    if (i < cfg.chMult.length - 1) conv(l, `${e}.down.${i}.downsample.conv`, blockIn, blockIn, 3);
  });
  vaeRes(l, `${e}.mid.block_1`, blockIn, blockIn);
  vaeAttn(l, `${e}.mid.attn_1`, blockIn);
  vaeRes(l, `${e}.mid.block_2`, blockIn, blockIn);
  norm(l, `${e}.norm_out`, blockIn);
  conv(l, `${e}.conv_out`, 2 * cfg.zChannels, blockIn, 3);
  conv(l, `${prefix}quant_conv`, 2 * cfg.embedDim, 2 * cfg.zChannels, 1);
  conv(l, `${prefix}post_quant_conv`, cfg.zChannels, cfg.embedDim, 1);
  const d = `${prefix}decoder`;
  blockIn = cfg.ch * cfg.chMult[cfg.chMult.length - 1];
  conv(l, `${d}.conv_in`, blockIn, cfg.zChannels, 3);
  vaeRes(l, `${d}.mid.block_1`, blockIn, blockIn);
  vaeAttn(l, `${d}.mid.attn_1`, blockIn);
  vaeRes(l, `${d}.mid.block_2`, blockIn, blockIn);
  for (let i = cfg.chMult.length - 1; i >= 0; i--) {
    const blockOut = cfg.ch * cfg.chMult[i];
    for (let j = 0; j <= cfg.numResBlocks; j++) {
      vaeRes(l, `${d}.up.${i}.block.${j}`, blockIn, blockOut);
      blockIn = blockOut;
    }
    if (i > 0) conv(l, `${d}.up.${i}.upsample.conv`, blockIn, blockIn, 3);
  }
  norm(l, `${d}.norm_out`, blockIn);
  conv(l, `${d}.conv_out`, cfg.outChannels, blockIn, 3);
  return l;
}

export function clipLayout(cfg: ClipTextConfig, prefix: string = SD1_PREFIX.clip): Layout {
  const l: Layout = new Map();
  const H = cfg.hiddenSize;
  l.set(`${prefix}embeddings.token_embedding.weight`, [cfg.vocabSize, H]);
  l.set(`${prefix}embeddings.position_embedding.weight`, [cfg.maxPositions, H]);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `${prefix}encoder.layers.${i}`;
    for (const k of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) linear(l, `${p}.self_attn.${k}`, H, H);
    norm(l, `${p}.layer_norm1`, H);
    linear(l, `${p}.mlp.fc1`, cfg.intermediateSize, H);
    linear(l, `${p}.mlp.fc2`, H, cfg.intermediateSize);
    norm(l, `${p}.layer_norm2`, H);
  }
  norm(l, `${prefix}final_layer_norm`, H);
  return l;
}

export function sd1Layout(cfg: Sd1Config): Layout {
  return new Map([...unetLayout(cfg.unet), ...vaeLayout(cfg.vae), ...clipLayout(cfg.clip)]);
}

/** SD1.5's published architecture. */
export const SD15_CONFIG: Sd1Config = {
  family: 'sd1',
  scaleFactor: 0.18215,
  unet: {
    inChannels: 4,
    outChannels: 4,
    modelChannels: 320,
    channelMult: [1, 2, 4, 4],
    numResBlocks: 2,
    attentionLevels: [0, 1, 2],
    transformerDepth: 1,
    contextDim: 768,
    numHeads: 8,
    useLinearInProj: false,
    normGroups: 32,
  },
  clip: { vocabSize: 49408, hiddenSize: 768, numLayers: 12, intermediateSize: 3072, numHeads: 12, maxPositions: 77, activation: 'quick_gelu', layerNormEps: 1e-5 },
  vae: { inChannels: 3, outChannels: 3, ch: 128, chMult: [1, 2, 4, 4], numResBlocks: 2, zChannels: 4, embedDim: 4, normGroups: 32 },
};

/** A non-parameter tensor that real SD1 checkpoints carry (with its stored dtype and values). */
export interface BufferTensor {
  name: string;
  dtype: 'F32' | 'I64';
  shape: number[];
  data: Float32Array | BigInt64Array;
}

/**
 * The buffers of an original SD1 checkpoint besides the weights: CLIP's `position_ids` (int64
 * [1, 77]) and LDM's DDPM schedule (`betas`, `alphas_cumprod`, … as float32 [1000]), computed as
 * ldm's register_schedule does in float64: betas = linspace(√0.00085, √0.012, 1000)².
 * Samplers do not read them (the schedule comes from the model config) but tools that inspect
 * checkpoints expect them, so generated files have them too.
 */
export function sd1Buffers(cfg: Sd1Config, opts: { linearStart?: number; linearEnd?: number; timesteps?: number } = {}): BufferTensor[] {
  const T = opts.timesteps ?? 1000;
  const a = Math.sqrt(opts.linearStart ?? 0.00085);
  const b = Math.sqrt(opts.linearEnd ?? 0.012);
  const betas = Array.from({ length: T }, (_, i) => (a + ((b - a) * i) / (T - 1)) ** 2);
  const alphas = betas.map((x) => 1 - x);
  const cum: number[] = [];
  alphas.reduce((p, x, i) => (cum[i] = p * x), 1);
  const prev = [1, ...cum.slice(0, -1)];
  const post = betas.map((x, i) => (x * (1 - prev[i])) / (1 - cum[i]));
  const f32 = (name: string, v: number[]): BufferTensor => ({ name, dtype: 'F32', shape: [T], data: Float32Array.from(v) });
  return [
    {
      name: `${SD1_PREFIX.clip}embeddings.position_ids`,
      dtype: 'I64',
      shape: [1, cfg.clip.maxPositions],
      data: BigInt64Array.from({ length: cfg.clip.maxPositions }, (_, i) => BigInt(i)),
    },
    f32('betas', betas),
    f32('alphas_cumprod', cum),
    f32('alphas_cumprod_prev', prev),
    f32('sqrt_alphas_cumprod', cum.map(Math.sqrt)),
    f32('sqrt_one_minus_alphas_cumprod', cum.map((x) => Math.sqrt(1 - x))),
    f32('log_one_minus_alphas_cumprod', cum.map((x) => Math.log(1 - x))),
    f32('sqrt_recip_alphas_cumprod', cum.map((x) => Math.sqrt(1 / x))),
    f32('sqrt_recipm1_alphas_cumprod', cum.map((x) => Math.sqrt(1 / x - 1))),
    f32('posterior_variance', post),
    f32('posterior_log_variance_clipped', post.map((x) => Math.log(Math.max(x, 1e-20)))),
    f32('posterior_mean_coef1', betas.map((x, i) => (x * Math.sqrt(prev[i])) / (1 - cum[i]))),
    f32('posterior_mean_coef2', alphas.map((x, i) => ((1 - prev[i]) * Math.sqrt(x)) / (1 - cum[i]))),
  ];
}
