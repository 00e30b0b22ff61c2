import { GraphBuilder } from '../../../../onnx/graph.ts';
import { Net, type NetOptions } from '../../../../onnx/nn.ts';
import type { UNetConfig } from '../config.ts';
import { timestepFrequencies } from '../timestep.ts';
import { unetPlan, type InputBlockPlan, type ResBlockPlan, type TransformerPlan, type UnetPlan } from '../unet-plan.ts';
import type { WeightSource } from '../../../../core/weights.ts';

/**
 * The LDM UNet (`openaimodel.UNetModel` as ComfyUI runs it, eps or v alike) as an ONNX graph,
 * structured exactly as the reference in `../reference/unet.ts`; both walk `unetPlan(cfg)`. Inputs:
 * `x` [B, C, H, W], `timesteps` [B] (float, fractional allowed), `context` [B, T, contextDim], and
 * `y` [B, admInChannels] for models with a `label_emb` (SDXL); output `out` like x.
 *
 * ControlNet residuals are graph inputs `control_in_<i>` (one per skip connection) and
 * `control_mid`, added where ComfyUI adds a ControlNet's; T2I-Adapter residuals are
 * `control_after_input_<i>`, added to h right after input block i (ComfyUI's `apply_control(h,
 * control, 'input')`, before h becomes skip i and feeds block i + 1). They all broadcast, so a run without a
 * ControlNet feeds a [1, 1, 1, 1] zero (see `OrtUnet`), and a ControlNet later feeds real residuals
 * into the same session: no second UNet. (ONNX's overridable initializers would make them optional,
 * but onnxruntime-node does not let a run feed them.)
 *
 * The blocks are exported so that other graphs built from the same parts (a ControlNet is the input
 * blocks and middle block plus zero convs, as ComfyUI's cldm.py reuses openaimodel's) bind them to
 * their own weights. Each takes the `Net` it adds nodes to; `emb` is always the SiLU'd embedding
 * every ResBlock's `emb_layers` starts from.
 */

export const UNET_IO = { x: 'x', timesteps: 'timesteps', context: 'context', y: 'y', out: 'out', controlMid: 'control_mid' } as const;
export const controlInputName = (i: number): string => `control_in_${i}`;
/** The T2I-Adapter residual added right after input block i (ComfyUI's `control['input']`). */
export const controlAfterInputName = (i: number): string => `control_after_input_${i}`;

export interface UnetGraphOptions {
  /**
   * Declare `control_after_input_<i>` (the model's UNet part does; default off, so a graph built
   * without them is the one from before they existed). Fed a [1, 1, 1, 1] zero they leave every value
   * bit-for-bit as without them (h + 0 = h), which a test checks.
   */
  adapterInputs?: boolean;
}

/** Number of skip connections, i.e. of `control_in_<i>` inputs (12 for SD1). */
export function unetSkipCount(cfg: UNetConfig): number {
  return unetPlan(cfg).input.length;
}

/**
 * `time_embed(timestep_embedding(t))`, before the activation. The sinusoid stays in float32 (cos/sin
 * of arguments up to 1000 need the mantissa), as ComfyUI computes it.
 */
export function timestepEmbedding(n: Net, modelChannels: number, t: string): string {
  const g = n.g;
  const freqs = timestepFrequencies(modelChannels);
  const f = g.floats('timestep_freqs', [1, freqs.length], () => freqs);
  const arg = g.op1('Mul', [g.op1('Unsqueeze', [t, g.ints([1])]), f]);
  let emb = g.op1('Concat', [g.op1('Cos', [arg]), g.op1('Sin', [arg])], { axis: 1 });
  if (n.dtype === 'float16') emb = n.cast(emb, 'float16');
  return n.linear('time_embed.2', n.silu(n.linear('time_embed.0', emb)));
}

/** `label_emb(y)`, ComfyUI's "sequential" adm embedding (SDXL's size and pooled-text vector). */
export function labelEmbedding(n: Net, y: string): string {
  return n.linear('label_emb.0.2', n.silu(n.linear('label_emb.0.0', y)));
}

/** The activated embedding every ResBlock reads: SiLU(time_embed(t) [+ label_emb(y)]). */
export function unetEmbedding(n: Net, plan: UnetPlan, t: string, y?: string, timeAdd?: string): string {
  let emb = timestepEmbedding(n, plan.config.modelChannels, t);
  // A Union ControlNet's control_add_embedding, added before label_emb as cldm.py adds it.
  if (timeAdd) emb = n.g.op1('Add', [emb, timeAdd]);
  if (plan.admInChannels !== undefined) {
    if (!y) throw new Error(`this UNet takes a ${plan.admInChannels}-wide y vector (label_emb)`);
    emb = n.g.op1('Add', [emb, labelEmbedding(n, y)]);
  }
  return n.silu(emb);
}

export function resBlock(n: Net, cfg: UNetConfig, b: ResBlockPlan, h: string, emb: string): string {
  const g = n.g;
  const key = b.key;
  let y = n.conv(`${key}.in_layers.2`, n.silu(n.groupNorm(`${key}.in_layers.0`, h, cfg.normGroups, 1e-5)));
  const e = g.op1('Unsqueeze', [n.linear(`${key}.emb_layers.1`, emb), g.ints([2, 3])]);
  y = g.op1('Add', [y, e]);
  y = n.conv(`${key}.out_layers.3`, n.silu(n.groupNorm(`${key}.out_layers.0`, y, cfg.normGroups, 1e-5)));
  const skip = b.inChannels !== b.outChannels ? n.conv(`${key}.skip_connection`, h) : h;
  return g.op1('Add', [skip, y]);
}

/** CrossAttention: to_out(attention(to_q(x), to_k(kv), to_v(kv))). */
export function crossAttention(n: Net, key: string, x: string, kv: string, heads: number, width: number): string {
  return n.linear(`${key}.to_out.0`, n.attention(n.linear(`${key}.to_q`, x), n.linear(`${key}.to_k`, kv), n.linear(`${key}.to_v`, kv), heads, width));
}

/** BasicTransformerBlock on tokens [B, T, width]: self-attention, cross-attention, GEGLU feed-forward. */
export function basicTransformerBlock(n: Net, key: string, tok: string, context: string, heads: number, width: number): string {
  const g = n.g;
  const n1 = n.layerNorm(`${key}.norm1`, tok, 1e-5);
  tok = g.op1('Add', [tok, crossAttention(n, `${key}.attn1`, n1, n1, heads, width)]);
  const n2 = n.layerNorm(`${key}.norm2`, tok, 1e-5);
  tok = g.op1('Add', [tok, crossAttention(n, `${key}.attn2`, n2, context, heads, width)]);
  const n3 = n.layerNorm(`${key}.norm3`, tok, 1e-5);
  const proj = n.linear(`${key}.ff.net.0.proj`, n3);
  const inner = n.shape(`${key}.ff.net.0.proj.weight`)[0] / 2;
  const [a, gate] = g.op('Split', [proj, g.ints([inner, inner])], { axis: -1 }, 2);
  return g.op1('Add', [tok, n.linear(`${key}.ff.net.2`, g.op1('Mul', [a, n.gelu(gate)]))]);
}

/** SpatialTransformer: GroupNorm, proj_in (1×1 conv or linear), the transformer blocks, proj_out, residual. */
export function spatialTransformer(n: Net, cfg: UNetConfig, t: TransformerPlan, h: string, context: string): string {
  const key = t.key;
  const ch = t.channels;
  const normed = n.groupNorm(`${key}.norm`, h, cfg.normGroups, 1e-6);
  let tok = cfg.useLinearInProj ? n.linear(`${key}.proj_in`, n.toTokens(normed, ch)) : n.toTokens(n.conv(`${key}.proj_in`, normed), ch);
  for (let d = 0; d < t.depth; d++) tok = basicTransformerBlock(n, `${key}.transformer_blocks.${d}`, tok, context, t.heads, ch);
  const out = cfg.useLinearInProj ? n.fromTokens(n.linear(`${key}.proj_out`, tok), h) : n.conv(`${key}.proj_out`, n.fromTokens(tok, h));
  return n.g.op1('Add', [h, out]);
}

/** Downsample: a 3×3 stride-2 conv (`conv_resample`). */
export function downsample(n: Net, conv: string, h: string): string {
  return n.conv(conv, h, { stride: 2 });
}

/** Upsample to the size of `like` (the next skip, not a blind 2×, so odd latent sizes line up as in ComfyUI), then a 3×3 conv. */
export function upsample(n: Net, conv: string, h: string, like: string): string {
  return n.conv(conv, n.resizeNearestLike(h, like));
}

/** One input block: the input conv, a downsample, or a ResBlock with its optional transformer. */
export function inputBlock(n: Net, cfg: UNetConfig, b: InputBlockPlan, h: string, emb: string, context: string): string {
  if (b.kind === 'conv_in') return n.conv(b.conv!, h);
  if (b.kind === 'downsample') return downsample(n, b.conv!, h);
  h = resBlock(n, cfg, b.res!, h, emb);
  return b.transformer ? spatialTransformer(n, cfg, b.transformer, h, context) : h;
}

export function middleBlock(n: Net, plan: UnetPlan, h: string, emb: string, context: string): string {
  const [first, ...rest] = plan.middle.res;
  h = resBlock(n, plan.config, first, h, emb);
  if (plan.middle.transformer) h = spatialTransformer(n, plan.config, plan.middle.transformer, h, context);
  for (const r of rest) h = resBlock(n, plan.config, r, h, emb);
  return h;
}

/**
 * The UNet's encoder half: every input block then the middle block, returning the skip values (one
 * per input block, in order) and the middle block's output. `afterInputBlock` may replace a block's
 * output before it becomes a skip and feeds the next block (a ControlNet adds its hint after block 0).
 */
export function inputAndMiddle(
  n: Net,
  plan: UnetPlan,
  x: string,
  emb: string,
  context: string,
  afterInputBlock?: (b: InputBlockPlan, h: string) => string,
): { skips: string[]; middle: string } {
  const skips: string[] = [];
  let h = x;
  for (const b of plan.input) {
    h = inputBlock(n, plan.config, b, h, emb, context);
    if (afterInputBlock) h = afterInputBlock(b, h);
    skips.push(h);
  }
  return { skips, middle: middleBlock(n, plan, h, emb, context) };
}

/**
 * The decoder half: each output block concatenates its skip (through `skipValue`, where control
 * residuals join) to h. Upsampling targets the next block's raw skip.
 */
export function outputBlocks(n: Net, plan: UnetPlan, h: string, skips: readonly string[], emb: string, context: string, skipValue: (i: number, skip: string) => string = (_i, s) => s): string {
  const cfg = plan.config;
  plan.output.forEach((b, o) => {
    const skip = skipValue(b.skip, skips[b.skip]);
    h = resBlock(n, cfg, b.res, n.g.op1('Concat', [h, skip], { axis: 1 }), emb);
    if (b.transformer) h = spatialTransformer(n, cfg, b.transformer, h, context);
    if (b.upsample) h = upsample(n, b.upsample, h, skips[plan.output[o + 1].skip]);
  });
  return h;
}

/** `ws` holds bare UNet keys (`input_blocks.0.0.weight`, ...). */
export function buildUnetGraph(cfg: UNetConfig, ws: WeightSource, opts: NetOptions, graphOpts: UnetGraphOptions = {}): GraphBuilder {
  const plan = unetPlan(cfg);
  const g = new GraphBuilder('weft_sd1_unet');
  const n = new Net(g, ws, opts);
  const dt = opts.dtype;
  let x = g.input(UNET_IO.x, 'float32', ['batch', cfg.inChannels, 'height', 'width']);
  const t = g.input(UNET_IO.timesteps, 'float32', ['batch']);
  let context = g.input(UNET_IO.context, 'float32', ['batch', 'tokens', cfg.contextDim]);
  let y = plan.admInChannels !== undefined ? g.input(UNET_IO.y, 'float32', ['batch', plan.admInChannels]) : undefined;
  if (dt === 'float16') {
    x = n.cast(x, 'float16');
    context = n.cast(context, 'float16');
    if (y) y = n.cast(y, 'float16');
  }
  const emb = unetEmbedding(n, plan, t, y);

  const control = (name: string): string => {
    const v = g.input(name, 'float32', [`${name}_b`, `${name}_c`, `${name}_h`, `${name}_w`]);
    return dt === 'float16' ? n.cast(v, 'float16') : v;
  };

  const afterInput = !graphOpts.adapterInputs ? undefined : (b: InputBlockPlan, h: string): string => g.op1('Add', [h, control(controlAfterInputName(b.index))]);
  const { skips, middle } = inputAndMiddle(n, plan, x, emb, context, afterInput);
  let h = g.op1('Add', [middle, control(UNET_IO.controlMid)]);
  h = outputBlocks(n, plan, h, skips, emb, context, (i, skip) => g.op1('Add', [skip, control(controlInputName(i))]));
  let out = n.conv('out.2', n.silu(n.groupNorm('out.0', h, cfg.normGroups, 1e-5)));
  if (dt === 'float16') out = n.cast(out, 'float32');
  g.output(out, UNET_IO.out, 'float32', ['batch', cfg.outChannels, 'height', 'width']);
  return g;
}
