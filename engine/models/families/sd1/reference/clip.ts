import type { Tensor } from '../../../../core/tensor.ts';
import type { ClipTextConfig } from '../config.ts';
import type { WeightSource } from '../../../../core/weights.ts';
import { add, attention, erf, layerNorm, linear } from './layers.ts';

/**
 * CLIP's text transformer in plain loops (HF `CLIPTextModel` / ComfyUI's `clip_model.py`): the
 * oracle for the CLIP graph. Returns every layer's output after the final layer norm, [L][T·H].
 * `ws` holds bare keys.
 */
export function clipForwardRef(
  cfg: ClipTextConfig,
  ws: WeightSource,
  tokens: readonly number[],
  embeds?: readonly (Float32Array | undefined)[],
  /** false: each layer's raw output (SDXL's CLIP-L), without the final layer norm. */
  layerNormHidden = true,
): Tensor[] {
  const T = tokens.length;
  const H = cfg.hiddenSize;
  const tok = ws.get('embeddings.token_embedding.weight');
  const pos = ws.get('embeddings.position_embedding.weight');
  const e = new Float32Array(T * H);
  for (let t = 0; t < T; t++) {
    const v = embeds?.[t];
    for (let c = 0; c < H; c++) e[t * H + c] = (v ? v[c] : tok[tokens[t] * H + c]) + pos[t * H + c];
  }
  let x: Tensor = { shape: [1, T, H], data: e };
  const lin = (key: string, v: Tensor): Tensor => linear(v, ws.get(`${key}.weight`), ws.shape(`${key}.weight`), ws.get(`${key}.bias`), key);
  const ln = (key: string, v: Tensor): Tensor => layerNorm(v, ws.get(`${key}.weight`), ws.get(`${key}.bias`), cfg.layerNormEps, key);
  const out: Tensor[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `encoder.layers.${i}`;
    const h = ln(`${p}.layer_norm1`, x);
    const a = causalAttention(lin(`${p}.self_attn.q_proj`, h), lin(`${p}.self_attn.k_proj`, h), lin(`${p}.self_attn.v_proj`, h), cfg.numHeads);
    x = add(x, lin(`${p}.self_attn.out_proj`, a));
    const m = lin(`${p}.mlp.fc1`, ln(`${p}.layer_norm2`, x));
    const d = m.data.map((v) => (cfg.activation === 'quick_gelu' ? v / (1 + Math.exp(-1.702 * v)) : 0.5 * v * (1 + erf(v / Math.SQRT2))));
    x = add(x, lin(`${p}.mlp.fc2`, { shape: m.shape, data: d }));
    out.push(layerNormHidden ? ln('final_layer_norm', x) : x);
  }
  return out;
}

/** Causal attention built from the reference attention one query row at a time (tiny T only). */
function causalAttention(q: Tensor, k: Tensor, v: Tensor, heads: number): Tensor {
  const [, T, E] = q.shape;
  const out = new Float32Array(T * E);
  for (let i = 0; i < T; i++) {
    const qi: Tensor = { shape: [1, 1, E], data: q.data.subarray(i * E, (i + 1) * E) };
    const ki: Tensor = { shape: [1, i + 1, E], data: k.data.subarray(0, (i + 1) * E) };
    const vi: Tensor = { shape: [1, i + 1, E], data: v.data.subarray(0, (i + 1) * E) };
    out.set(attention(qi, ki, vi, heads).data, i * E);
  }
  return { shape: [1, T, E], data: out };
}
