import type { Tensor } from '../../core/tensor.ts';
import { describeShape } from '../../core/tensor.ts';
import type { UNetConfig } from '../config.ts';
import { SD1_PREFIX } from '../config.ts';
import type { ControlResiduals } from '../handles.ts';
import type { WeightSource } from '../../core/weights.ts';
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
 * The SD1 UNet (LDM `openaimodel.UNetModel` as ComfyUI runs it) in plain loops: the oracle for
 * the ONNX graph. Structure and constants follow ComfyUI: ResBlock norms eps 1e-5, transformer
 * GroupNorm eps 1e-6, LayerNorm eps 1e-5, GEGLU feed-forward, nearest upsampling to the skip's size.
 */

/** UNet weights are read under `model.diffusion_model.` when the source has it, else bare. */
export function unetPrefix(ws: WeightSource): string {
  return ws.has(`${SD1_PREFIX.unet}time_embed.0.weight`) ? SD1_PREFIX.unet : '';
}

class Weights {
  constructor(
    private readonly ws: WeightSource,
    private readonly prefix: string,
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
}

function conv(w: Weights, key: string, x: Tensor, stride = 1): Tensor {
  const shape = w.shape(`${key}.weight`);
  return conv2d(x, w.get(`${key}.weight`), shape, w.has(`${key}.bias`) ? w.get(`${key}.bias`) : undefined, { stride, pad: Math.floor(shape[2] / 2) }, key);
}

function lin(w: Weights, key: string, x: Tensor): Tensor {
  return linear(x, w.get(`${key}.weight`), w.shape(`${key}.weight`), w.has(`${key}.bias`) ? w.get(`${key}.bias`) : undefined, key);
}

function gn(w: Weights, key: string, x: Tensor, groups: number, eps: number): Tensor {
  return groupNorm(x, groups, w.get(`${key}.weight`), w.get(`${key}.bias`), eps, key);
}

function resBlock(w: Weights, key: string, x: Tensor, emb: Tensor, groups: number): Tensor {
  let h = conv(w, `${key}.in_layers.2`, silu(gn(w, `${key}.in_layers.0`, x, groups, 1e-5)));
  h = addChannelBias(h, lin(w, `${key}.emb_layers.1`, silu(emb)));
  h = conv(w, `${key}.out_layers.3`, silu(gn(w, `${key}.out_layers.0`, h, groups, 1e-5)));
  const skip = w.has(`${key}.skip_connection.weight`) ? conv(w, `${key}.skip_connection`, x) : x;
  return add(skip, h, key);
}

function crossAttention(w: Weights, key: string, x: Tensor, context: Tensor, heads: number): Tensor {
  const q = lin(w, `${key}.to_q`, x);
  const k = lin(w, `${key}.to_k`, context);
  const v = lin(w, `${key}.to_v`, context);
  return lin(w, `${key}.to_out.0`, attention(q, k, v, heads, key));
}

function geglu(w: Weights, key: string, x: Tensor): Tensor {
  const p = lin(w, `${key}.proj`, x);
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

function spatialTransformer(w: Weights, key: string, x: Tensor, context: Tensor, cfg: UNetConfig): Tensor {
  const [, , H, W] = x.shape;
  const normed = gn(w, `${key}.norm`, x, cfg.normGroups, 1e-6);
  let t = cfg.useLinearInProj ? lin(w, `${key}.proj_in`, toTokens(normed)) : toTokens(conv(w, `${key}.proj_in`, normed));
  for (let d = 0; w.has(`${key}.transformer_blocks.${d}.attn1.to_q.weight`); d++) {
    const b = `${key}.transformer_blocks.${d}`;
    const n1 = layerNorm(t, w.get(`${b}.norm1.weight`), w.get(`${b}.norm1.bias`), 1e-5, `${b}.norm1`);
    t = add(t, crossAttention(w, `${b}.attn1`, n1, n1, cfg.numHeads));
    const n2 = layerNorm(t, w.get(`${b}.norm2.weight`), w.get(`${b}.norm2.bias`), 1e-5, `${b}.norm2`);
    t = add(t, crossAttention(w, `${b}.attn2`, n2, context, cfg.numHeads));
    const n3 = layerNorm(t, w.get(`${b}.norm3.weight`), w.get(`${b}.norm3.bias`), 1e-5, `${b}.norm3`);
    t = add(t, lin(w, `${b}.ff.net.2`, geglu(w, `${b}.ff.net.0`, n3)));
  }
  const out = cfg.useLinearInProj ? fromTokens(lin(w, `${key}.proj_out`, t), H, W) : conv(w, `${key}.proj_out`, fromTokens(t, H, W));
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

/**
 * One UNet evaluation. `x` [B, C, H, W], `timesteps` [B], `context` [B, T, contextDim].
 * Control residuals are added as ComfyUI adds a ControlNet's: `middle` to the middle block's
 * output, `input[i]` to skip connection i when the output blocks take it.
 */
export function unetForwardRef(cfg: UNetConfig, ws: WeightSource, x: Tensor, timesteps: Float32Array, context: Tensor, control?: ControlResiduals): Tensor {
  const w = new Weights(ws, unetPrefix(ws));
  const C = cfg.modelChannels;
  let emb = timestepEmbedding(timesteps, C);
  emb = lin(w, 'time_embed.2', silu(lin(w, 'time_embed.0', emb)));

  const skips: Tensor[] = [];
  let h = conv(w, 'input_blocks.0.0', x);
  skips.push(h);
  let idx = 1;
  cfg.channelMult.forEach((_mult, level) => {
    for (let r = 0; r < cfg.numResBlocks; r++) {
      h = resBlock(w, `input_blocks.${idx}.0`, h, emb, cfg.normGroups);
      if (w.has(`input_blocks.${idx}.1.norm.weight`)) h = spatialTransformer(w, `input_blocks.${idx}.1`, h, context, cfg);
      skips.push(h);
      idx++;
    }
    if (level < cfg.channelMult.length - 1) {
      h = conv(w, `input_blocks.${idx}.0.op`, h, 2);
      skips.push(h);
      idx++;
    }
  });

  h = resBlock(w, 'middle_block.0', h, emb, cfg.normGroups);
  h = spatialTransformer(w, 'middle_block.1', h, context, cfg);
  h = resBlock(w, 'middle_block.2', h, emb, cfg.normGroups);
  h = addControl(h, control?.middle, 'control middle residual');

  const nOut = cfg.channelMult.length * (cfg.numResBlocks + 1);
  for (let o = 0; o < nOut; o++) {
    const i = skips.length - 1;
    const skip = addControl(skips.pop()!, control?.input[i], `control input residual ${i}`);
    h = resBlock(w, `output_blocks.${o}.0`, concatChannels(h, skip), emb, cfg.normGroups);
    let sub = 1;
    if (w.has(`output_blocks.${o}.1.norm.weight`)) h = spatialTransformer(w, `output_blocks.${o}.${sub++}`, h, context, cfg);
    if (w.has(`output_blocks.${o}.${sub}.conv.weight`)) {
      // ComfyUI upsamples to the next skip's size, so odd latent sizes line up.
      const next = skips[skips.length - 1];
      h = conv(w, `output_blocks.${o}.${sub}.conv`, resizeNearest(h, next.shape[2], next.shape[3]));
    }
  }
  h = silu(gn(w, 'out.0', h, cfg.normGroups, 1e-5));
  return conv(w, 'out.2', h);
}
