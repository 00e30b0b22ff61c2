import type { Tensor } from '../../../../core/tensor.ts';
import type { WeightSource } from '../../../../core/weights.ts';
import { erf, layerNorm, linear } from '../../sd1/reference/layers.ts';
import type { OpenClipConfig } from '../config.ts';

export interface OpenClipRefOutput {
  /** Each block's output, raw ([layers][T·W]). */
  raw: Float32Array[];
  /** ln_final of each block's output. */
  normed: Float32Array[];
  /** ln_final(last block)·text_projection at every position ([T·proj]), when the file has a projection. */
  projected?: Float32Array;
}

/**
 * open_clip's TextTransformer in plain loops with float64 sums (`open_clip/transformer.py`): the
 * oracle for the open_clip graph. Reads the open_clip key names directly: q, k and v are rows 0..W,
 * W..2W, 2W..3W of the fused in_proj; attention is causal; the MLP uses exact GELU; the projection is
 * x·P with P [W, proj]. `embeds[t]`, where given, replaces the token embedding at position t.
 */
export function openClipForwardRef(cfg: OpenClipConfig, ws: WeightSource, tokens: readonly number[], embeds?: readonly (Float32Array | undefined)[]): OpenClipRefOutput {
  const T = tokens.length;
  const W = cfg.width;
  const tok = ws.get('token_embedding.weight');
  const pos = ws.get('positional_embedding');
  let x = new Float32Array(T * W);
  for (let t = 0; t < T; t++) {
    const v = embeds?.[t];
    for (let c = 0; c < W; c++) x[t * W + c] = (v ? v[c] : tok[tokens[t] * W + c]) + pos[t * W + c];
  }
  const ln = (key: string, v: Float32Array): Float32Array => layerNorm({ shape: [1, T, W], data: v }, ws.get(`${key}.weight`), ws.get(`${key}.bias`), cfg.layerNormEps, key).data;
  const lin = (key: string, v: Float32Array, inW: number): Tensor =>
    linear({ shape: [1, T, inW], data: v }, ws.get(`${key}.weight`), ws.shape(`${key}.weight`), ws.get(`${key}.bias`), key);
  const raw: Float32Array[] = [];
  const normed: Float32Array[] = [];
  const d = W / cfg.heads;
  for (let i = 0; i < cfg.layers; i++) {
    const p = `transformer.resblocks.${i}`;
    const h = ln(`${p}.ln_1`, x);
    const inW = ws.get(`${p}.attn.in_proj_weight`);
    const inB = ws.get(`${p}.attn.in_proj_bias`);
    // qkv[t][r] = Σ_c h[t][c]·in_proj_weight[r][c] + in_proj_bias[r], r over all 3W rows.
    const qkv = new Float64Array(T * 3 * W);
    for (let t = 0; t < T; t++) {
      for (let r = 0; r < 3 * W; r++) {
        let s = inB[r];
        for (let c = 0; c < W; c++) s += h[t * W + c] * inW[r * W + c];
        qkv[t * 3 * W + r] = s;
      }
    }
    const att = new Float32Array(T * W);
    for (let hd = 0; hd < cfg.heads; hd++) {
      for (let t = 0; t < T; t++) {
        const logits = new Float64Array(t + 1);
        let max = -Infinity;
        for (let u = 0; u <= t; u++) {
          let s = 0;
          for (let j = 0; j < d; j++) s += qkv[t * 3 * W + hd * d + j] * qkv[u * 3 * W + W + hd * d + j];
          logits[u] = s / Math.sqrt(d);
          max = Math.max(max, logits[u]);
        }
        let z = 0;
        for (let u = 0; u <= t; u++) z += logits[u] = Math.exp(logits[u] - max);
        for (let j = 0; j < d; j++) {
          let s = 0;
          for (let u = 0; u <= t; u++) s += (logits[u] / z) * qkv[u * 3 * W + 2 * W + hd * d + j];
          att[t * W + hd * d + j] = s;
        }
      }
    }
    const o = lin(`${p}.attn.out_proj`, att, W).data;
    x = x.map((v, k) => v + o[k]);
    const fc = lin(`${p}.mlp.c_fc`, ln(`${p}.ln_2`, x), W);
    const act = fc.data.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
    const m = lin(`${p}.mlp.c_proj`, act, cfg.mlpWidth).data;
    x = x.map((v, k) => v + m[k]);
    raw.push(x.slice());
    normed.push(ln('ln_final', x));
  }
  let projected: Float32Array | undefined;
  if (cfg.projectionDim !== undefined) {
    const P = cfg.projectionDim;
    const proj = ws.get('text_projection');
    const last = normed[normed.length - 1];
    projected = new Float32Array(T * P);
    for (let t = 0; t < T; t++) {
      for (let q = 0; q < P; q++) {
        let s = 0;
        for (let c = 0; c < W; c++) s += last[t * W + c] * proj[c * P + q];
        projected[t * P + q] = s;
      }
    }
  }
  return { raw, normed, projected };
}
