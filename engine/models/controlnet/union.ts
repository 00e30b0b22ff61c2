import type { WeightSource } from '../../core/weights.ts';
import type { Net } from '../../onnx/nn.ts';
import { timestepFrequencies } from '../families/sd1/timestep.ts';
import type { Layout } from '../families/sd1/layout.ts';

/**
 * ControlNet Union (xinsir's controlnet-union-sdxl-1.0, ComfyUI's `union_controlnet_num_control_type`
 * in comfy/cldm/cldm.py): a ControlNet with a task embedding per control type and two extra modules.
 * - `control_add_embedding`: the one-hot vector of the chosen types through `timestep_embedding`
 *   (width 256 per type), flattened, Linear → SiLU → Linear, added to the time embedding before the
 *   label embedding. Added even when no type is set ("auto": all zeros).
 * - With a type set, the encoded hint is fused (`union_controlnet_merge`): its spatial mean plus the
 *   type's `task_embedding` row goes through one transformer layer (`transformer_layes`, CLIP-style,
 *   QuickGELU) and `spatial_ch_projs`; the result is added to the encoded hint at every pixel.
 * ComfyUI fixes the widths (320, 256) and one layer; here they are read from the shapes, so a tiny
 * test model has them too. The sequence the layer sees is one token long (ComfyUI merges at most one
 * type), so its attention is exactly `out_proj(v)`: softmax over one key is 1.
 */

/** ComfyUI's UNION_CONTROLNET_TYPES, in index order (comfy/cldm/control_types.py). */
export const UNION_CONTROLNET_TYPES = ['openpose', 'depth', 'hed/pidi/scribble/ted', 'canny/lineart/anime_lineart/mlsd', 'normal', 'segment', 'tile', 'repaint'] as const;

export interface UnionConfig {
  /** Rows of `task_embedding` (8 for controlnet-union-sdxl-1.0 and its ProMax variant). */
  readonly numControlTypes: number;
  /** The transformer's width (ComfyUI's num_trans_channel, 320): the encoded hint's width. */
  readonly width: number;
  /** Sinusoid width per type (ComfyUI's control_add_embed_dim, 256). */
  readonly embedDim: number;
  /** Transformer layers (ComfyUI's num_trans_layer, 1). */
  readonly layers: number;
}

/** ComfyUI's test for a Union ControlNet. */
export const isUnionControlNet = (names: readonly string[]): boolean => names.some((n) => n.endsWith('control_add_embedding.linear_1.bias'));

/** diffusers/xinsir names → ComfyUI's (`.attn.in_proj_weight` → `.attn.in_proj.weight`); other names as they are. */
export const unionKeyName = (name: string): string => name.replace('.attn.in_proj_', '.attn.in_proj.');

/** Whether a bare name belongs to the union modules. */
export const isUnionKey = (name: string): boolean => /^(task_embedding$|control_add_embedding\.|transformer_layes\.|spatial_ch_projs\.)/.test(name);

/** The union modules' structure from their shapes (ComfyUI-named weights). */
export function readUnionConfig(ws: WeightSource, file: string): UnionConfig {
  for (const k of ['task_embedding', 'control_add_embedding.linear_1.weight']) if (!ws.has(k)) throw new Error(`${file}: a ControlNet Union without ${k}`);
  const [numControlTypes, width] = ws.shape('task_embedding');
  const in1 = ws.shape('control_add_embedding.linear_1.weight')[1];
  if (in1 % numControlTypes !== 0) throw new Error(`${file}: control_add_embedding.linear_1.weight takes ${in1} values, not a multiple of the ${numControlTypes} control types (task_embedding)`);
  let layers = 0;
  while (ws.has(`transformer_layes.${layers}.attn.in_proj.weight`)) layers++;
  if (!layers) throw new Error(`${file}: a ControlNet Union without transformer_layes.0.attn.in_proj.weight (in_proj_weight)`);
  return { numControlTypes, width, embedDim: in1 / numControlTypes, layers };
}

/** Every union tensor with its shape, for a ControlNet whose hint features are `modelChannels` wide. */
export function unionLayout(u: UnionConfig, modelChannels: number): Layout {
  const l: Layout = new Map();
  const lin = (key: string, out: number, inp: number): void => {
    l.set(`${key}.weight`, [out, inp]);
    l.set(`${key}.bias`, [out]);
  };
  const time = modelChannels * 4;
  l.set('task_embedding', [u.numControlTypes, u.width]);
  lin('control_add_embedding.linear_1', time, u.numControlTypes * u.embedDim);
  lin('control_add_embedding.linear_2', time, time);
  for (let i = 0; i < u.layers; i++) {
    const k = `transformer_layes.${i}`;
    lin(`${k}.attn.in_proj`, 3 * u.width, u.width);
    lin(`${k}.attn.out_proj`, u.width, u.width);
    for (const ln of ['ln_1', 'ln_2']) {
      l.set(`${k}.${ln}.weight`, [u.width]);
      l.set(`${k}.${ln}.bias`, [u.width]);
    }
    lin(`${k}.mlp.c_fc`, 4 * u.width, u.width);
    lin(`${k}.mlp.c_proj`, u.width, 4 * u.width);
  }
  lin('spatial_ch_projs', modelChannels, u.width);
  return l;
}

/** The one-hot vector of the chosen types (ComfyUI's `c_type`), refusing a type the model does not have. */
export function controlTypeOneHot(u: UnionConfig, types: readonly number[]): Float32Array {
  // ComfyUI's merge takes one token (min(1, len)) but then indexes it per type, so more than one type fails there too.
  if (types.length > 1) throw new Error(`a ControlNet Union takes one control type at a time (SetUnionControlNetType), got ${types.length}`);
  const v = new Float32Array(u.numControlTypes);
  for (const t of types) {
    if (!Number.isInteger(t) || t < 0 || t >= u.numControlTypes) {
      const name = UNION_CONTROLNET_TYPES[t] ?? String(t);
      throw new Error(`control type ${name} (${t}) is out of range for this ControlNet Union, which has ${u.numControlTypes} control types`);
    }
    v[t] = 1;
  }
  return v;
}

/** `control_add_embedding(control_type)`: [numTypes] one-hot → [1, time embedding width]. */
export function controlAddEmbedding(n: Net, u: UnionConfig, oneHot: string): string {
  const g = n.g;
  const half = Math.floor(u.embedDim / 2);
  const freqs = timestepFrequencies(u.embedDim);
  const f = g.floats('control_type_freqs', [1, half], () => freqs);
  const arg = g.op1('Mul', [g.op1('Unsqueeze', [oneHot, g.ints([1])]), f]);
  let e = g.op1('Concat', [g.op1('Cos', [arg]), g.op1('Sin', [arg])], { axis: 1 });
  if (u.embedDim % 2) throw new Error(`ControlNet Union: control_add_embedding width ${u.embedDim} is odd`);
  e = g.op1('Reshape', [e, g.ints([1, u.numControlTypes * u.embedDim])]);
  if (n.dtype === 'float16') e = n.cast(e, 'float16');
  return n.linear('control_add_embedding.linear_2', n.silu(n.linear('control_add_embedding.linear_1', e)));
}

/** One `ResBlockUnionControlnet` on [B, 1, width] tokens. */
function unionLayer(n: Net, u: UnionConfig, key: string, x: string): string {
  const g = n.g;
  const qkv = n.linear(`${key}.attn.in_proj`, n.layerNorm(`${key}.ln_1`, x, 1e-5));
  // One token: the attention's softmax is exactly 1, so the attended value is v itself (the last third of in_proj).
  const v = g.op1('Slice', [qkv, g.ints([2 * u.width]), g.ints([3 * u.width]), g.ints([-1])]);
  x = g.op1('Add', [x, n.linear(`${key}.attn.out_proj`, v)]);
  const h = n.linear(`${key}.mlp.c_proj`, n.quickGelu(n.linear(`${key}.mlp.c_fc`, n.layerNorm(`${key}.ln_2`, x, 1e-5))));
  return g.op1('Add', [x, h]);
}

/** `union_controlnet_merge` for one type: `cond` [B, C, h, w] encoded hint, `oneHot` [numTypes] → the fused hint, same shape. */
export function unionHintMerge(n: Net, u: UnionConfig, cond: string, oneHot: string): string {
  const g = n.g;
  const mean = n.fromCompute32(g.op1('ReduceMean', [n.toCompute32(cond)], { axes: [2, 3], keepdims: 0 }));
  const task = g.op1('MatMul', [g.op1('Unsqueeze', [oneHot, g.ints([0])]), n.weight('task_embedding')]);
  let x = g.op1('Unsqueeze', [g.op1('Add', [mean, task]), g.ints([1])]);
  for (let i = 0; i < u.layers; i++) x = unionLayer(n, u, `transformer_layes.${i}`, x);
  const alpha = n.linear('spatial_ch_projs', g.op1('Squeeze', [x, g.ints([1])]));
  return g.op1('Add', [cond, g.op1('Unsqueeze', [alpha, g.ints([2, 3])])]);
}
