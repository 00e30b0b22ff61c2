import type { Tensor } from '../../../../core/tensor.ts';
import type { WeightSource } from '../../../../core/weights.ts';
import { HINT_CONVS, MIDDLE_OUT_KEY, zeroConvKey, type ControlNetConfig } from '../../../controlnet/layout.ts';
import type { UnionConfig } from '../../../controlnet/union.ts';
import { add, addChannelBias, attention, conv2d, layerNorm, linear, silu, timestepEmbedding } from './layers.ts';
import { unetEncodeRef } from './unet.ts';

/**
 * ComfyUI's `cldm.ControlNet` in plain loops, over bare cldm weights: the oracle for the ControlNet
 * graphs. The UNet's encoder half is `unetEncodeRef` with the encoded hint added after input block 0.
 */

function conv(ws: WeightSource, key: string, x: Tensor, stride = 1): Tensor {
  const shape = ws.shape(`${key}.weight`);
  return conv2d(x, ws.get(`${key}.weight`), shape, ws.get(`${key}.bias`), { stride, pad: Math.floor(shape[2] / 2) }, key);
}

/** `input_hint_block(hint)`. */
export function hintEncodeRef(ws: WeightSource, hint: Tensor): Tensor {
  let h = hint;
  HINT_CONVS.forEach((c, i) => {
    h = conv(ws, `input_hint_block.${c.index}`, h, c.stride);
    if (i < HINT_CONVS.length - 1) h = silu(h);
  });
  return h;
}

/** Rows of `t` repeated to `batch` (a batch-1 tensor broadcast, as torch's add does). */
function repeatRows(t: Tensor, batch: number): Tensor {
  if (t.shape[0] === batch) return t;
  const per = t.data.length / t.shape[0];
  const data = new Float32Array(batch * per);
  for (let b = 0; b < batch; b++) data.set(t.data.subarray((b % t.shape[0]) * per, ((b % t.shape[0]) + 1) * per), b * per);
  return { shape: [batch, ...t.shape.slice(1)], data };
}

function lin(ws: WeightSource, key: string, x: Tensor): Tensor {
  return linear(x, ws.get(`${key}.weight`), ws.shape(`${key}.weight`), ws.get(`${key}.bias`), key);
}

/** cldm.py's ControlAddEmbedding: one-hot of the types → timestep_embedding per type (width embedDim) → flattened → Linear, SiLU, Linear. */
export function controlAddEmbeddingRef(ws: WeightSource, u: UnionConfig, types: readonly number[]): Tensor {
  const cType = new Float32Array(u.numControlTypes);
  for (const t of types) cType[t] = 1;
  const e = timestepEmbedding(cType, u.embedDim);
  return lin(ws, 'control_add_embedding.linear_2', silu(lin(ws, 'control_add_embedding.linear_1', { shape: [1, u.numControlTypes * u.embedDim], data: e.data })));
}

/** cldm.py's union_controlnet_merge for one type: the encoded hint plus spatial_ch_projs(transformer(mean(hint) + task_embedding[type])). */
export function unionMergeRef(ws: WeightSource, u: UnionConfig, cond: Tensor, type: number): Tensor {
  const [B, C, H, W] = cond.shape;
  const task = ws.get('task_embedding').subarray(type * u.width, (type + 1) * u.width);
  const feat = new Float32Array(B * C);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let i = 0; i < H * W; i++) s += cond.data[(b * C + c) * H * W + i];
      feat[b * C + c] = s / (H * W) + task[c];
    }
  let x: Tensor = { shape: [B, 1, C], data: feat };
  for (let l = 0; l < u.layers; l++) {
    const k = `transformer_layes.${l}`;
    const n1 = layerNorm(x, ws.get(`${k}.ln_1.weight`), ws.get(`${k}.ln_1.bias`), 1e-5);
    const qkv = lin(ws, `${k}.attn.in_proj`, n1);
    const part = (j: number): Tensor => {
      const d = new Float32Array(B * C);
      for (let b = 0; b < B; b++) d.set(qkv.data.subarray(b * 3 * C + j * C, b * 3 * C + (j + 1) * C), b * C);
      return { shape: [B, 1, C], data: d };
    };
    x = add(x, lin(ws, `${k}.attn.out_proj`, attention(part(0), part(1), part(2), 8)));
    const h = lin(ws, `${k}.mlp.c_fc`, layerNorm(x, ws.get(`${k}.ln_2.weight`), ws.get(`${k}.ln_2.bias`), 1e-5));
    const g = { shape: h.shape, data: h.data.map((v) => v / (1 + Math.exp(-1.702 * v))) };
    x = add(x, lin(ws, `${k}.mlp.c_proj`, g));
  }
  const alpha = lin(ws, 'spatial_ch_projs', { shape: [B, C], data: x.data });
  return addChannelBias(cond, alpha);
}

/**
 * The ControlNet's residuals before strength: `x` is the UNet input (after calculate_input), `hint`
 * the image at 8× the latent size (batch 1 or x's). A Union ControlNet takes `controlType` (empty: auto).
 */
export function controlNetRef(
  cfg: ControlNetConfig,
  ws: WeightSource,
  x: Tensor,
  timesteps: Float32Array,
  context: Tensor,
  hint: Tensor,
  y?: Tensor,
  controlType: readonly number[] = [],
): { input: Tensor[]; middle: Tensor } {
  let cond = hintEncodeRef(ws, hint);
  const u = cfg.union;
  if (u && controlType.length) cond = unionMergeRef(ws, u, cond, controlType[0]);
  const guided = repeatRows(cond, x.shape[0]);
  const timeEmbAdd = u ? controlAddEmbeddingRef(ws, u, controlType) : undefined;
  const { skips, middle } = unetEncodeRef(cfg.unet, ws, x, timesteps, context, { y, timeEmbAdd, afterInputBlock: (i, h) => (i === 0 ? add(h, guided, 'hint') : h) });
  return { input: skips.map((s, i) => conv(ws, zeroConvKey(i), s)), middle: conv(ws, MIDDLE_OUT_KEY, middle) };
}
