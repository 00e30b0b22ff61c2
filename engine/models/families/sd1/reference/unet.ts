import type { Tensor } from '../../../../core/tensor.ts';
import { describeShape } from '../../../../core/tensor.ts';
import type { UNetConfig } from '../config.ts';
import { SD1_PREFIX } from '../config.ts';
import { unetPlan, type ResBlockPlan, type TransformerPlan, type UnetPlan } from '../unet-plan.ts';
import type { ControlResiduals } from '../../../handles.ts';
import type { WeightSource } from '../../../../core/weights.ts';
import {
  add,
  addChannelBias,
  attention,
  concatChannels,
  conv2d,
  fromTokens,
  gelu,
  groupNorm,
  layerNorm,
  linear,
  resizeNearest,
  silu,
  timestepEmbedding,
  toTokens,
} from './layers.ts';

/**
 * The LDM UNet (`openaimodel.UNetModel` as ComfyUI runs it) in plain loops, walking the same
 * `unetPlan` as the graph: the oracle for the ONNX graph. Constants follow ComfyUI: ResBlock norms
 * eps 1e-5, transformer GroupNorm eps 1e-6, LayerNorm eps 1e-5, GEGLU feed-forward, nearest
 * upsampling to the skip's size.
 */

/** UNet weights are read under `model.diffusion_model.` when the source has it, else bare. */
export function unetPrefix(ws: WeightSource): string {
  return ws.has(`${SD1_PREFIX.unet}time_embed.0.weight`) ? SD1_PREFIX.unet : '';
}

/** Edits a layer's output in the reference as a `LayerHook` does in the graph (for testing hooks against it); `input` is what the layer read. */
export type RefLayerHook = (key: string, kind: 'linear' | 'conv', output: Tensor, input: Tensor) => Tensor | undefined;

/** Weights under the UNet prefix, and the layers that read them (with the optional layer hook). */
class RefNet {
  constructor(
    private readonly ws: WeightSource,
    private readonly prefix: string,
    readonly cfg: UNetConfig,
    private readonly hook?: RefLayerHook,
  ) {}
  has(name: string): boolean {
    return this.ws.has(this.prefix + name);
  }
  get(name: string): Float32Array {
    return this.ws.get(this.prefix + name);
  }
  shape(name: string): readonly number[] {
    return this.ws.shape(this.prefix + name);
  }
  conv(key: string, x: Tensor, stride = 1): Tensor {
    const shape = this.shape(`${key}.weight`);
    const y = conv2d(x, this.get(`${key}.weight`), shape, this.has(`${key}.bias`) ? this.get(`${key}.bias`) : undefined, { stride, pad: Math.floor(shape[2] / 2) }, key);
    return this.hook?.(key, 'conv', y, x) ?? y;
  }
  lin(key: string, x: Tensor): Tensor {
    const y = linear(x, this.get(`${key}.weight`), this.shape(`${key}.weight`), this.has(`${key}.bias`) ? this.get(`${key}.bias`) : undefined, key);
    return this.hook?.(key, 'linear', y, x) ?? y;
  }
  gn(key: string, x: Tensor, eps: number): Tensor {
    return groupNorm(x, this.cfg.normGroups, this.get(`${key}.weight`), this.get(`${key}.bias`), eps, key);
  }
  ln(key: string, x: Tensor): Tensor {
    return layerNorm(x, this.get(`${key}.weight`), this.get(`${key}.bias`), 1e-5, key);
  }
}

function resBlock(w: RefNet, b: ResBlockPlan, x: Tensor, emb: Tensor): Tensor {
  const key = b.key;
  let h = w.conv(`${key}.in_layers.2`, silu(w.gn(`${key}.in_layers.0`, x, 1e-5)));
  h = addChannelBias(h, w.lin(`${key}.emb_layers.1`, silu(emb)));
  h = w.conv(`${key}.out_layers.3`, silu(w.gn(`${key}.out_layers.0`, h, 1e-5)));
  const skip = b.inChannels !== b.outChannels ? w.conv(`${key}.skip_connection`, x) : x;
  return add(skip, h, key);
}

function crossAttention(w: RefNet, key: string, x: Tensor, context: Tensor, heads: number): Tensor {
  const q = w.lin(`${key}.to_q`, x);
  const k = w.lin(`${key}.to_k`, context);
  const v = w.lin(`${key}.to_v`, context);
  return w.lin(`${key}.to_out.0`, attention(q, k, v, heads, key));
}

function geglu(w: RefNet, key: string, x: Tensor): Tensor {
  const p = w.lin(`${key}.proj`, x);
  const inner = p.shape[p.shape.length - 1] / 2;
  const rows = p.data.length / (2 * inner);
  const a = new Float32Array(rows * inner);
  const g = new Float32Array(rows * inner);
  for (let r = 0; r < rows; r++) {
    a.set(p.data.subarray(r * 2 * inner, r * 2 * inner + inner), r * inner);
    g.set(p.data.subarray(r * 2 * inner + inner, (r + 1) * 2 * inner), r * inner);
  }
  const gate = gelu({ shape: [rows, inner], data: g });
  for (let i = 0; i < a.length; i++) a[i] *= gate.data[i];
  return { shape: [...p.shape.slice(0, -1), inner], data: a };
}

function spatialTransformer(w: RefNet, tp: TransformerPlan, x: Tensor, context: Tensor): Tensor {
  const [, , H, W] = x.shape;
  const key = tp.key;
  const linearProj = w.cfg.useLinearInProj;
  const normed = w.gn(`${key}.norm`, x, 1e-6);
  let t = linearProj ? w.lin(`${key}.proj_in`, toTokens(normed)) : toTokens(w.conv(`${key}.proj_in`, normed));
  for (let d = 0; d < tp.depth; d++) {
    const b = `${key}.transformer_blocks.${d}`;
    const n1 = w.ln(`${b}.norm1`, t);
    t = add(t, crossAttention(w, `${b}.attn1`, n1, n1, tp.heads));
    const n2 = w.ln(`${b}.norm2`, t);
    t = add(t, crossAttention(w, `${b}.attn2`, n2, context, tp.heads));
    const n3 = w.ln(`${b}.norm3`, t);
    t = add(t, w.lin(`${b}.ff.net.2`, geglu(w, `${b}.ff.net.0`, n3)));
  }
  const out = linearProj ? fromTokens(w.lin(`${key}.proj_out`, t), H, W) : w.conv(`${key}.proj_out`, fromTokens(t, H, W));
  return add(x, out, key);
}

/** Adds a control residual when present, checking its shape against the tensor it joins. */
function addControl(h: Tensor, c: Tensor | undefined, what: string): Tensor {
  if (!c) return h;
  if (c.shape.length !== h.shape.length || c.shape.some((d, i) => d !== h.shape[i])) {
    throw new Error(`${what} has shape ${describeShape(c.shape)} but the UNet tensor there is ${describeShape(h.shape)}`);
  }
  return add(h, c, what);
}

/** What a UNet evaluation may take besides x, t and context. */
export interface UnetRefExtras {
  /** [B, admInChannels], for a model with `label_emb`. */
  y?: Tensor;
  layerHook?: RefLayerHook;
  /** [1, time embedding width] added to every row of time_embed(t) before label_emb (a Union ControlNet's control_add_embedding). */
  timeEmbAdd?: Tensor;
}

/** time_embed(t) [+ label_emb(y)], before the SiLU each ResBlock's emb_layers applies. */
function embedding(w: RefNet, cfg: UNetConfig, timesteps: Float32Array, y?: Tensor, timeEmbAdd?: Tensor): Tensor {
  let emb = timestepEmbedding(timesteps, cfg.modelChannels);
  emb = w.lin('time_embed.2', silu(w.lin('time_embed.0', emb)));
  if (timeEmbAdd) {
    const d = timeEmbAdd.data;
    emb = { shape: emb.shape, data: emb.data.map((v, i) => v + d[i % d.length]) };
  }
  if (cfg.admInChannels !== undefined) {
    if (!y) throw new Error(`this UNet takes a ${cfg.admInChannels}-wide y vector (label_emb)`);
    emb = add(emb, w.lin('label_emb.0.2', silu(w.lin('label_emb.0.0', y))), 'label_emb');
  }
  return emb;
}

function encode(w: RefNet, plan: UnetPlan, x: Tensor, emb: Tensor, context: Tensor, afterInputBlock?: (index: number, h: Tensor) => Tensor): { skips: Tensor[]; middle: Tensor } {
  const skips: Tensor[] = [];
  let h = x;
  for (const b of plan.input) {
    if (b.kind === 'conv_in') h = w.conv(b.conv!, h);
    else if (b.kind === 'downsample') h = w.conv(b.conv!, h, 2);
    else {
      h = resBlock(w, b.res!, h, emb);
      if (b.transformer) h = spatialTransformer(w, b.transformer, h, context);
    }
    if (afterInputBlock) h = afterInputBlock(b.index, h);
    skips.push(h);
  }
  h = resBlock(w, plan.middle.res[0], h, emb);
  if (plan.middle.transformer) h = spatialTransformer(w, plan.middle.transformer, h, context);
  for (const r of plan.middle.res.slice(1)) h = resBlock(w, r, h, emb);
  return { skips, middle: h };
}

/**
 * The input blocks and middle block alone (what a ControlNet runs), as the graph's `inputAndMiddle`:
 * the skip values in input block order and the middle block's output.
 */
export function unetEncodeRef(
  cfg: UNetConfig,
  ws: WeightSource,
  x: Tensor,
  timesteps: Float32Array,
  context: Tensor,
  extras: UnetRefExtras & { afterInputBlock?: (index: number, h: Tensor) => Tensor } = {},
): { skips: Tensor[]; middle: Tensor } {
  const w = new RefNet(ws, unetPrefix(ws), cfg, extras.layerHook);
  return encode(w, unetPlan(cfg), x, embedding(w, cfg, timesteps, extras.y, extras.timeEmbAdd), context, extras.afterInputBlock);
}

/**
 * One UNet evaluation. `x` [B, C, H, W], `timesteps` [B], `context` [B, T, contextDim].
 * Control residuals are added as ComfyUI adds a ControlNet's: `middle` to the middle block's
 * output, `input[i]` to skip connection i when the output blocks take it; a T2I-Adapter's
 * `afterInput[i]` to h right after input block i.
 */
export function unetForwardRef(cfg: UNetConfig, ws: WeightSource, x: Tensor, timesteps: Float32Array, context: Tensor, control?: ControlResiduals, extras: UnetRefExtras = {}): Tensor {
  const plan = unetPlan(cfg);
  const w = new RefNet(ws, unetPrefix(ws), cfg, extras.layerHook);
  const emb = embedding(w, cfg, timesteps, extras.y);
  const after = control?.afterInput;
  const { skips, middle } = encode(w, plan, x, emb, context, after ? (i, h) => addControl(h, after[i], `control residual after input block ${i}`) : undefined);
  let h = addControl(middle, control?.middle, 'control middle residual');
  plan.output.forEach((b, o) => {
    const skip = addControl(skips[b.skip], control?.input[b.skip], `control input residual ${b.skip}`);
    h = resBlock(w, b.res, concatChannels(h, skip), emb);
    if (b.transformer) h = spatialTransformer(w, b.transformer, h, context);
    if (b.upsample) {
      // ComfyUI upsamples to the next skip's size, so odd latent sizes line up.
      const next = skips[plan.output[o + 1].skip];
      h = w.conv(b.upsample, resizeNearest(h, next.shape[2], next.shape[3]));
    }
  });
  h = silu(w.gn('out.0', h, 1e-5));
  return w.conv('out.2', h);
}
