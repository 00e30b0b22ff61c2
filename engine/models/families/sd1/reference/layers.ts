import type { Tensor } from '../../../../core/tensor.ts';
import { describeShape, numel } from '../../../../core/tensor.ts';
import { timestepFrequencies } from '../timestep.ts';

/**
 * Plain-loop float32 implementations of the layers SD1's UNet and VAE are made of. They are the
 * oracles the ONNX graphs are tested against, so they favour obvious correctness over speed:
 * every reduction accumulates in float64, layouts are PyTorch's (NCHW, weights [out, in, kh, kw]).
 */

function fail(what: string, msg: string): never {
  throw new Error(`${what}: ${msg}`);
}

export interface Conv2dOptions {
  stride?: number;
  /** Padding [top, left, bottom, right]; a number pads all sides (PyTorch `padding=`). */
  pad?: number | readonly [number, number, number, number];
}

/** 2-D cross-correlation as torch.nn.Conv2d (groups = 1, dilation = 1). */
export function conv2d(x: Tensor, w: Float32Array, wShape: readonly number[], b: Float32Array | undefined, opts: Conv2dOptions = {}, what = 'conv2d'): Tensor {
  const [N, C, H, W] = x.shape;
  const [O, I, KH, KW] = wShape;
  if (x.shape.length !== 4) fail(what, `input must be NCHW, got ${describeShape(x.shape)}`);
  if (I !== C) fail(what, `weight ${describeShape(wShape)} expects ${I} input channels, input has ${C}`);
  if (w.length !== O * I * KH * KW) fail(what, `weight has ${w.length} values, shape ${describeShape(wShape)} needs ${O * I * KH * KW}`);
  if (b && b.length !== O) fail(what, `bias has ${b.length} values, expected ${O}`);
  const s = opts.stride ?? 1;
  const p = opts.pad ?? 0;
  const [pt, pl, pb, pr] = typeof p === 'number' ? [p, p, p, p] : p;
  const OH = Math.floor((H + pt + pb - KH) / s) + 1;
  const OW = Math.floor((W + pl + pr - KW) / s) + 1;
  if (OH <= 0 || OW <= 0) fail(what, `input ${describeShape(x.shape)} is smaller than the ${KH}x${KW} kernel`);
  const out = new Float32Array(N * O * OH * OW);
  const acc = new Float64Array(OH * OW);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      acc.fill(b ? b[o] : 0);
      for (let i = 0; i < C; i++) {
        const xBase = (n * C + i) * H * W;
        for (let ky = 0; ky < KH; ky++) {
          for (let kx = 0; kx < KW; kx++) {
            const wv = w[((o * I + i) * KH + ky) * KW + kx];
            if (wv === 0) continue;
            for (let oy = 0; oy < OH; oy++) {
              const iy = oy * s + ky - pt;
              if (iy < 0 || iy >= H) continue;
              const row = xBase + iy * W;
              const aRow = oy * OW;
              for (let ox = 0; ox < OW; ox++) {
                const ix = ox * s + kx - pl;
                if (ix < 0 || ix >= W) continue;
                acc[aRow + ox] += wv * x.data[row + ix];
              }
            }
          }
        }
      }
      out.set(acc, (n * O + o) * OH * OW);
    }
  }
  return { shape: [N, O, OH, OW], data: out };
}

/** torch.nn.GroupNorm over NC... (any trailing spatial dims). */
export function groupNorm(x: Tensor, groups: number, gamma: Float32Array, beta: Float32Array, eps: number, what = 'groupNorm'): Tensor {
  const [N, C] = x.shape;
  if (C % groups !== 0) fail(what, `${C} channels do not split into ${groups} groups`);
  if (gamma.length !== C || beta.length !== C) fail(what, `scale/bias have ${gamma.length}/${beta.length} values, expected ${C}`);
  const S = numel(x.shape.slice(2));
  const cpg = C / groups;
  const out = new Float32Array(x.data.length);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      const start = (n * C + g * cpg) * S;
      const len = cpg * S;
      let mean = 0;
      for (let k = 0; k < len; k++) mean += x.data[start + k];
      mean /= len;
      let v = 0;
      for (let k = 0; k < len; k++) {
        const d = x.data[start + k] - mean;
        v += d * d;
      }
      const inv = 1 / Math.sqrt(v / len + eps);
      for (let c = 0; c < cpg; c++) {
        const ch = g * cpg + c;
        const base = start + c * S;
        for (let k = 0; k < S; k++) out[base + k] = (x.data[base + k] - mean) * inv * gamma[ch] + beta[ch];
      }
    }
  }
  return { shape: [...x.shape], data: out };
}

/** torch.nn.LayerNorm over the last dimension. */
export function layerNorm(x: Tensor, gamma: Float32Array, beta: Float32Array, eps: number, what = 'layerNorm'): Tensor {
  const D = x.shape[x.shape.length - 1];
  if (gamma.length !== D || beta.length !== D) fail(what, `scale/bias have ${gamma.length}/${beta.length} values, expected ${D}`);
  const rows = x.data.length / D;
  const out = new Float32Array(x.data.length);
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let mean = 0;
    for (let k = 0; k < D; k++) mean += x.data[o + k];
    mean /= D;
    let v = 0;
    for (let k = 0; k < D; k++) {
      const d = x.data[o + k] - mean;
      v += d * d;
    }
    const inv = 1 / Math.sqrt(v / D + eps);
    for (let k = 0; k < D; k++) out[o + k] = (x.data[o + k] - mean) * inv * gamma[k] + beta[k];
  }
  return { shape: [...x.shape], data: out };
}

/** torch.nn.Linear on the last dimension: y = x Wᵀ + b with W [out, in]. */
export function linear(x: Tensor, w: Float32Array, wShape: readonly number[], b: Float32Array | undefined, what = 'linear'): Tensor {
  const [O, I] = wShape;
  const D = x.shape[x.shape.length - 1];
  if (D !== I) fail(what, `weight ${describeShape(wShape)} expects ${I} features, input ${describeShape(x.shape)} has ${D}`);
  if (b && b.length !== O) fail(what, `bias has ${b.length} values, expected ${O}`);
  const rows = x.data.length / I;
  const out = new Float32Array(rows * O);
  for (let r = 0; r < rows; r++) {
    const xo = r * I;
    for (let o = 0; o < O; o++) {
      let acc = b ? b[o] : 0;
      const wo = o * I;
      for (let k = 0; k < I; k++) acc += x.data[xo + k] * w[wo + k];
      out[r * O + o] = acc;
    }
  }
  return { shape: [...x.shape.slice(0, -1), O], data: out };
}

function map(x: Tensor, f: (v: number) => number): Tensor {
  const out = new Float32Array(x.data.length);
  for (let i = 0; i < out.length; i++) out[i] = f(x.data[i]);
  return { shape: [...x.shape], data: out };
}

export const silu = (x: Tensor): Tensor => map(x, (v) => v / (1 + Math.exp(-v)));

/**
 * erf in double precision: its Maclaurin series below 4 (cancellation costs < 1e-11 there) and
 * the asymptotic erfc expansion above, where erfc < 2e-8 anyway. JS has no Math.erf.
 */
export function erf(x: number): number {
  const a = Math.abs(x);
  let r: number;
  if (a < 4) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 200; n++) {
      term *= (-a * a) / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    const x2 = a * a;
    const series = 1 - 1 / (2 * x2) + 3 / (4 * x2 * x2) - 15 / (8 * x2 * x2 * x2);
    r = 1 - (Math.exp(-x2) / (a * Math.sqrt(Math.PI))) * series;
  }
  return x < 0 ? -r : r;
}

/** Exact (erf) GELU, torch.nn.functional.gelu's default. */
export const gelu = (x: Tensor): Tensor => map(x, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));

export function add(a: Tensor, b: Tensor, what = 'add'): Tensor {
  if (a.data.length !== b.data.length) fail(what, `shapes ${describeShape(a.shape)} and ${describeShape(b.shape)} differ`);
  const out = new Float32Array(a.data.length);
  for (let i = 0; i < out.length; i++) out[i] = a.data[i] + b.data[i];
  return { shape: [...a.shape], data: out };
}

/** x[n, c, ...] += v[n, c] (a per-channel vector broadcast over the spatial dims). */
export function addChannelBias(x: Tensor, v: Tensor): Tensor {
  const [N, C] = x.shape;
  const S = numel(x.shape.slice(2));
  const out = new Float32Array(x.data);
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) {
    const bv = v.data[n * C + c];
    const base = (n * C + c) * S;
    for (let k = 0; k < S; k++) out[base + k] += bv;
  }
  return { shape: [...x.shape], data: out };
}

/** Concatenate two NCHW tensors along channels. */
export function concatChannels(a: Tensor, b: Tensor): Tensor {
  const [N, CA, H, W] = a.shape;
  const CB = b.shape[1];
  if (b.shape[0] !== N || b.shape[2] !== H || b.shape[3] !== W) {
    fail('concat', `cannot join ${describeShape(a.shape)} and ${describeShape(b.shape)} along channels`);
  }
  const S = H * W;
  const out = new Float32Array(N * (CA + CB) * S);
  for (let n = 0; n < N; n++) {
    out.set(a.data.subarray(n * CA * S, (n + 1) * CA * S), n * (CA + CB) * S);
    out.set(b.data.subarray(n * CB * S, (n + 1) * CB * S), (n * (CA + CB) + CA) * S);
  }
  return { shape: [N, CA + CB, H, W], data: out };
}

/**
 * Nearest-neighbour resize of NCHW to (outH, outW) as torch's `F.interpolate(mode='nearest')`:
 * source index = floor(dst · in / out), which for ×2 repeats every pixel twice.
 */
export function resizeNearest(x: Tensor, outH: number, outW: number): Tensor {
  const [N, C, H, W] = x.shape;
  const out = new Float32Array(N * C * outH * outW);
  const sy = H / outH;
  const sx = W / outW;
  for (let p = 0; p < N * C; p++) {
    for (let y = 0; y < outH; y++) {
      const iy = Math.min(H - 1, Math.floor(y * sy));
      for (let xo = 0; xo < outW; xo++) {
        const ix = Math.min(W - 1, Math.floor(xo * sx));
        out[(p * outH + y) * outW + xo] = x.data[(p * H + iy) * W + ix];
      }
    }
  }
  return { shape: [N, C, outH, outW], data: out };
}

/** [B, C, H, W] → [B, H·W, C] (tokens for attention). */
export function toTokens(x: Tensor): Tensor {
  const [B, C, H, W] = x.shape;
  const S = H * W;
  const out = new Float32Array(x.data.length);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let s = 0; s < S; s++) out[(b * S + s) * C + c] = x.data[(b * C + c) * S + s];
  return { shape: [B, S, C], data: out };
}

/** [B, H·W, C] → [B, C, H, W]. */
export function fromTokens(t: Tensor, H: number, W: number): Tensor {
  const [B, S, C] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let c = 0; c < C; c++) out[(b * C + c) * S + s] = t.data[(b * S + s) * C + c];
  return { shape: [B, C, H, W], data: out };
}

/**
 * Multi-head scaled dot-product attention on [B, T, heads·D] projections, softmax(q kᵀ / √D) v,
 * heads split from the channel axis in order (as ComfyUI's `b n (h d) -> (b h) n d`).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, heads: number, what = 'attention'): Tensor {
  const [B, Tq, E] = q.shape;
  const Tk = k.shape[1];
  if (E % heads !== 0) fail(what, `width ${E} does not split into ${heads} heads`);
  if (k.shape[2] !== E || v.shape[2] !== E || v.shape[1] !== Tk) {
    fail(what, `q ${describeShape(q.shape)}, k ${describeShape(k.shape)}, v ${describeShape(v.shape)} do not agree`);
  }
  const D = E / heads;
  const scale = 1 / Math.sqrt(D);
  const out = new Float32Array(B * Tq * E);
  const logits = new Float64Array(Tk);
  const acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < Tq; i++) {
        const qo = (b * Tq + i) * E + h * D;
        let max = -Infinity;
        for (let j = 0; j < Tk; j++) {
          const ko = (b * Tk + j) * E + h * D;
          let s = 0;
          for (let d = 0; d < D; d++) s += q.data[qo + d] * k.data[ko + d];
          logits[j] = s * scale;
          if (logits[j] > max) max = logits[j];
        }
        let sum = 0;
        for (let j = 0; j < Tk; j++) {
          logits[j] = Math.exp(logits[j] - max);
          sum += logits[j];
        }
        acc.fill(0);
        for (let j = 0; j < Tk; j++) {
          const p = logits[j] / sum;
          const vo = (b * Tk + j) * E + h * D;
          for (let d = 0; d < D; d++) acc[d] += p * v.data[vo + d];
        }
        for (let d = 0; d < D; d++) out[qo + d] = acc[d];
      }
    }
  }
  return { shape: [B, Tq, E], data: out };
}

/**
 * ComfyUI's (and LDM's) `timestep_embedding`: [cos(t·f), sin(t·f)] with f_i = exp(−ln(10000)·i/half),
 * computed in float32 like torch so a graph doing the same float32 steps agrees to the ulp.
 */

export function timestepEmbedding(timesteps: Float32Array, dim: number, maxPeriod = 10000): Tensor {
  const half = Math.floor(dim / 2);
  const freqs = timestepFrequencies(dim, maxPeriod);
  const B = timesteps.length;
  // An odd width gets a zero last column, as ComfyUI pads.
  const out = new Float32Array(B * dim);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < half; i++) {
      const arg = Math.fround(timesteps[b] * freqs[i]);
      out[b * dim + i] = Math.cos(arg);
      out[b * dim + half + i] = Math.sin(arg);
    }
  }
  return { shape: [B, dim], data: out };
}
