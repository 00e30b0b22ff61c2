import type { GloraPatch, LohaPatch, LokrPatch, LoraPatch, WeightPatch } from './types.ts';
import { gloraLayout, numel } from './shapes.ts';
import { jsMatMul, kron, swap01, transpose2d, tuckerRebuild, type MatMul } from './tensor-ops.ts';

export { jsMatMul, type MatMul } from './tensor-ops.ts';

/**
 * ComfyUI's calculate_weight for one weight: the patches are applied in order to a copy of the base
 * weight, each adding strength·scale·Δ, where scale is alpha / rank (1 without an alpha) and Δ is
 * the kind's reconstruction reshaped to the weight. A patch with a DoRA scale goes through
 * weight_decompose instead, so it sees the weight as the patches before it left it.
 */

interface Delta {
  data: Float32Array;
  /** alpha / rank, or 1. */
  scale: number;
}

const flatCols = (shape: readonly number[]): number => numel(shape) / shape[0];

async function loraDelta(p: LoraPatch, mm: MatMul): Promise<Delta> {
  const up = p.up.read();
  const out = p.up.shape[0];
  const rank = p.down.shape[0];
  let down = p.down.read();
  let downRows = rank;
  if (p.mid) {
    // Fold the Tucker core into down: down'[j, i, y, x] = Σ_s mid[j, s, y, x] · down[s, i].
    const [rj, rs, kh, kw] = p.mid.shape;
    const inCh = flatCols(p.down.shape);
    const midT = swap01(p.mid.read(), rj, rs, kh * kw);
    const prod = await mm(transpose2d(down, rank, inCh), inCh, rank, midT, rj * kh * kw);
    down = swap01(prod, inCh, rj, kh * kw);
    downRows = rj;
  }
  const data = await mm(up, out, downRows, down, down.length / downRows);
  return { data, scale: p.alpha !== undefined ? p.alpha / rank : 1 };
}

async function lohaFactor(a: Float32Array, aShape: readonly number[], b: Float32Array, bShape: readonly number[], t: { data: Float32Array; shape: readonly number[] } | undefined, mm: MatMul): Promise<Float32Array> {
  if (t) return tuckerRebuild(t.data, t.shape, b, bShape, a, aShape, mm);
  return mm(a, aShape[0], flatCols(aShape), b, flatCols(bShape));
}

async function lohaDelta(p: LohaPatch, mm: MatMul): Promise<Delta> {
  const tucker = p.t1 && p.t2;
  const m1 = await lohaFactor(p.w1a.read(), p.w1a.shape, p.w1b.read(), p.w1b.shape, tucker ? { data: p.t1!.read(), shape: p.t1!.shape } : undefined, mm);
  const m2 = await lohaFactor(p.w2a.read(), p.w2a.shape, p.w2b.read(), p.w2b.shape, tucker ? { data: p.t2!.read(), shape: p.t2!.shape } : undefined, mm);
  for (let i = 0; i < m1.length; i++) m1[i] *= m2[i];
  return { data: m1, scale: p.alpha !== undefined ? p.alpha / p.w1b.shape[0] : 1 };
}

async function lokrDelta(p: LokrPatch, mm: MatMul): Promise<Delta> {
  // The rank that alpha divides is the last factor given as a low-rank pair (w2's when both are).
  let dim: number | undefined;
  let w1: Float32Array;
  let w1Shape: number[];
  if (p.w1) {
    w1 = p.w1.read();
    w1Shape = [...p.w1.shape];
  } else {
    dim = p.w1b!.shape[0];
    w1 = await mm(p.w1a!.read(), p.w1a!.shape[0], flatCols(p.w1a!.shape), p.w1b!.read(), flatCols(p.w1b!.shape));
    w1Shape = [p.w1a!.shape[0], flatCols(p.w1b!.shape)];
  }
  let w2: Float32Array;
  let w2Shape: number[];
  if (p.w2) {
    w2 = p.w2.read();
    w2Shape = [...p.w2.shape];
  } else {
    dim = p.w2b!.shape[0];
    if (p.t2) {
      w2 = await tuckerRebuild(p.t2.read(), p.t2.shape, p.w2b!.read(), p.w2b!.shape, p.w2a!.read(), p.w2a!.shape, mm);
      w2Shape = [p.w2a!.shape[1], p.w2b!.shape[1], p.t2.shape[2], p.t2.shape[3]];
    } else {
      w2 = await mm(p.w2a!.read(), p.w2a!.shape[0], flatCols(p.w2a!.shape), p.w2b!.read(), flatCols(p.w2b!.shape));
      w2Shape = [p.w2a!.shape[0], flatCols(p.w2b!.shape)];
    }
  }
  if (w2Shape.length === 4 && w1Shape.length === 2) w1Shape = [...w1Shape, 1, 1];
  return { data: kron(w1, w1Shape, w2, w2Shape).data, scale: p.alpha !== undefined && dim !== undefined ? p.alpha / dim : 1 };
}

async function gloraDelta(p: GloraPatch, weight: Float32Array, shape: readonly number[], mm: MatMul): Promise<Delta> {
  const layout = gloraLayout(p, shape);
  if ('why' in layout) throw new Error(`'${p.stem}': ${layout.why}`);
  const [a1, a2, b1, b2] = [p.a1, p.a2, p.b1, p.b2].map((t) => ({ data: t.read(), rows: t.shape[0], cols: flatCols(t.shape) }));
  const out = shape[0];
  const rest = flatCols(shape);
  let data: Float32Array;
  if (layout.old) {
    const wa = await mm(await mm(weight, out, rest, a2.data, a2.cols), out, a2.cols, a1.data, a1.cols);
    data = await mm(b2.data, b2.rows, b2.cols, b1.data, b1.cols);
    for (let i = 0; i < data.length; i++) data[i] += wa[i];
  } else {
    // W·a1·a2 contracts the input axis of a possibly conv-shaped W: move it last, multiply, move it back.
    const inCh = shape[1];
    const spatial = rest / inCh;
    const wLast = spatial === 1 ? weight : swap12(weight, out, inCh, spatial);
    const prod = await mm(await mm(wLast, out * spatial, inCh, a1.data, a1.cols), out * spatial, a1.cols, a2.data, a2.cols);
    data = spatial === 1 ? prod : swap12(prod, out, spatial, a2.cols);
    const bb = await mm(b1.data, b1.rows, b1.cols, b2.data, b2.cols);
    for (let i = 0; i < data.length; i++) data[i] += bb[i];
  }
  return { data, scale: p.alpha !== undefined ? p.alpha / layout.rank : 1 };
}

function deltaOf(p: LoraPatch | LohaPatch | LokrPatch | GloraPatch, weight: Float32Array, shape: readonly number[], mm: MatMul): Promise<Delta> {
  switch (p.kind) {
    case 'lora':
      return loraDelta(p, mm);
    case 'loha':
      return lohaDelta(p, mm);
    case 'lokr':
      return lokrDelta(p, mm);
    case 'glora':
      return gloraDelta(p, weight, shape, mm);
  }
}

/** [d0, d1, d2] → [d0, d2, d1]. */
function swap12(x: Float32Array, d0: number, d1: number, d2: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let a = 0; a < d0; a++) out.set(transpose2d(x.subarray(a * d1 * d2, (a + 1) * d1 * d2), d1, d2), a * d1 * d2);
  return out;
}

/**
 * ComfyUI's weight_decompose (comfy/weight_adapter/base.py): W' = (W + scale·Δ) · dora_scale / (‖·‖ + ε),
 * blended with W by strength. Which norm depends on the scale's layout, as ComfyUI decides it:
 * when dora_scale.shape[0] equals the weight's output count (LyCORIS `wd_on_out`, [out, 1, …]) the
 * norm is per output row, and ComfyUI takes it of W itself, the weight as the patches before this one
 * left it, not of W + scale·Δ; otherwise ([1, in, …]) per input channel of W + scale·Δ (over outputs
 * and kernel positions). ε is float32's machine epsilon, added to the norm. Strength 1 assigns the
 * decomposed weight; any other adds strength·(W' − W) to W, each step rounded to float32 as torch does.
 */
function weightDecompose(weight: Float32Array, shape: readonly number[], delta: Delta, doraScale: Float32Array, doraShape: readonly number[], strength: number): Float32Array {
  const out = shape[0];
  const inCh = shape[1];
  const spatial = numel(shape) / (out * inCh);
  const calc = new Float32Array(weight.length);
  const alpha = Math.fround(delta.scale);
  for (let i = 0; i < calc.length; i++) calc[i] = weight[i] + Math.fround(alpha * delta.data[i]);
  const onOutput = doraShape[0] === out;
  // Norm index of flat element f: its output row, or its input channel.
  const normOf = onOutput ? (f: number): number => Math.floor(f / (inCh * spatial)) : (f: number): number => Math.floor(f / spatial) % inCh;
  const src = onOutput ? weight : calc;
  const sq = new Float64Array(onOutput ? out : inCh);
  for (let f = 0; f < src.length; f++) sq[normOf(f)] += src[f] * src[f];
  const norm = Float32Array.from(sq, (s) => Math.fround(Math.fround(Math.sqrt(s)) + FLOAT32_EPS));
  const scale = broadcastTo(doraScale, doraShape, shape);
  const result = new Float32Array(weight.length);
  const s32 = Math.fround(strength);
  for (let f = 0; f < calc.length; f++) {
    const v = Math.fround(calc[f] * Math.fround(scale[f] / norm[normOf(f)]));
    result[f] = strength === 1 ? v : weight[f] + Math.fround(s32 * Math.fround(v - weight[f]));
  }
  return result;
}

/** torch.finfo(torch.float32).eps. */
const FLOAT32_EPS = 2 ** -23;

/** `data` of `from` (right-aligned, unit dims repeating) expanded to `to`. */
function broadcastTo(data: Float32Array, from: readonly number[], to: readonly number[]): Float32Array {
  const n = to.length;
  const aligned = [...Array<number>(n - from.length).fill(1), ...from];
  const srcStride = new Array<number>(n).fill(0);
  for (let d = n - 1, s = 1; d >= 0; d--) {
    srcStride[d] = aligned[d] === 1 ? 0 : s;
    s *= aligned[d];
  }
  const total = numel(to);
  const out = new Float32Array(total);
  const idx = new Array<number>(n).fill(0);
  let src = 0;
  for (let f = 0; f < total; f++) {
    out[f] = data[src];
    for (let d = n - 1; d >= 0; d--) {
      idx[d]++;
      src += srcStride[d];
      if (idx[d] < to[d]) break;
      src -= srcStride[d] * to[d];
      idx[d] = 0;
    }
  }
  return out;
}

/**
 * A new array holding `base` with the patches applied in order (ComfyUI's calculate_weight). A patch
 * at strength 0 is skipped, so strength 0 everywhere gives the base bit for bit. `base` is not changed.
 */
export async function patchedWeight(
  target: string,
  base: Float32Array,
  shape: readonly number[],
  patches: readonly { patch: WeightPatch; strength: number }[],
  mm: MatMul = jsMatMul,
): Promise<Float32Array> {
  const n = numel(shape);
  if (base.length !== n) throw new Error(`${target}: base weight has ${base.length} values, shape [${shape.join(', ')}] needs ${n}`);
  let w: Float32Array = base.slice();
  for (const { patch, strength } of patches) {
    if (patch.target !== target) throw new Error(`a patch for '${patch.target}' (from '${patch.stem}') was given for '${target}'`);
    if (strength === 0) continue;
    const where = `${target} (from '${patch.stem}')`;
    if (patch.kind === 'slices') {
      // Each part is applied to its row block as to a weight of that shape (ComfyUI's separate q/k/v weights).
      const inner = n / shape[0];
      for (const part of patch.parts) {
        const block = w.subarray(part.start * inner, (part.start + part.rows) * inner);
        w.set(await patchedWeight(target, block, [part.rows, ...shape.slice(1)], [{ patch: part.patch, strength }], mm), part.start * inner);
      }
      continue;
    }
    if (patch.kind === 'set') {
      const v = patch.value.read();
      if (v.length !== n) throw new Error(`${where}: set_weight has ${v.length} values, needs ${n}`);
      w.set(v);
      continue;
    }
    if (patch.kind === 'diff') {
      const d = patch.diff.read();
      if (d.length !== n) throw new Error(`${where}: diff has ${d.length} values, needs ${n}`);
      for (let i = 0; i < n; i++) w[i] += strength * d[i];
      continue;
    }
    if (patch.kind === 'ia3') {
      // LyCORIS scales the original weight (not one already patched by others), as its merge does.
      const s = patch.weight.read();
      const inner = n / shape[0];
      const spatial = inner / shape[1];
      for (let i = 0; i < n; i++) {
        const ch = patch.onInput ? Math.floor(i / spatial) % shape[1] : Math.floor(i / inner);
        w[i] += strength * base[i] * s[ch];
      }
      continue;
    }
    const delta = await deltaOf(patch, w, shape, mm);
    if (delta.data.length !== n) throw new Error(`${where}: the ${patch.kind} difference has ${delta.data.length} values, the weight ${n}`);
    if (patch.doraScale) {
      if (shape.length < 2) throw new Error(`${where}: DoRA needs a matrix or conv kernel, the weight has shape [${shape.join(', ')}]`);
      w = weightDecompose(w, shape, delta, patch.doraScale.read(), patch.doraScale.shape, strength);
    } else {
      const f = strength * delta.scale;
      for (let i = 0; i < n; i++) w[i] += f * delta.data[i];
    }
  }
  return w;
}
