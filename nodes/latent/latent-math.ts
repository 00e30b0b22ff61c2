import { describeShape, type Latent, type Tensor } from '../../engine/core/tensor.ts';
import { repeatToBatchSize } from '../../engine/image/layout.ts';
import { commonUpscale } from '../../engine/image/resize.ts';
import { defineNode } from '../../engine/registry/types.ts';

/**
 * ComfyUI's comfy_extras/nodes_latent.py arithmetic: add, subtract, multiply, interpolate, concat,
 * cut, batch and the batch seed behaviour. Like ComfyUI, each result keeps the first input's other
 * keys (noise mask, batch_index) unless the node sets them.
 */

const f = Math.fround;

function expectLatent4(t: Tensor, what: string): void {
  if (t.shape.length !== 4) throw new Error(`${what} must be a LATENT of [B, C, H, W] samples, got shape ${describeShape(t.shape)}`);
}

/** ComfyUI's reshape_latent_to: resized (bilinear, centre crop) when C/H/W differ, then repeated or cut to the batch. */
export function reshapeLatentTo(target: readonly number[], t: Tensor, repeatBatch = true): Tensor {
  let s = t;
  if (t.shape.slice(1).some((d, i) => d !== target[i + 1])) {
    if (t.shape[1] !== target[1]) throw new Error(`latents of ${t.shape[1]} and ${target[1]} channels cannot be combined`);
    s = commonUpscale(t, target[3], target[2], 'bilinear', 'center');
  }
  return repeatBatch ? repeatToBatchSize(s, target[0]) : s;
}

function binary(name: string, op: (a: number, b: number) => number) {
  return defineNode({
    name,
    category: 'latent/advanced',
    inputs: { required: { samples1: { type: 'LATENT' }, samples2: { type: 'LATENT' } } },
    outputs: [{ type: 'LATENT', name: 'LATENT' }],
    run({ samples1, samples2 }) {
      const a = samples1.samples;
      expectLatent4(a, 'samples1');
      expectLatent4(samples2.samples, 'samples2');
      const b = reshapeLatentTo(a.shape, samples2.samples);
      const data = new Float32Array(a.data.length);
      for (let i = 0; i < data.length; i++) data[i] = op(a.data[i], b.data[i]);
      const out: Latent = { ...samples1, samples: { shape: [...a.shape], data } };
      return [out];
    },
  });
}

export const LatentAdd = binary('LatentAdd', (a, b) => a + b);
export const LatentSubtract = binary('LatentSubtract', (a, b) => a - b);

export const LatentMultiply = defineNode({
  name: 'LatentMultiply',
  category: 'latent/advanced',
  inputs: { required: { samples: { type: 'LATENT' }, multiplier: { type: 'FLOAT', default: 1.0, min: -10.0, max: 10.0, step: 0.01 } } },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples, multiplier }) {
    const m = f(multiplier);
    const data = samples.samples.data.map((v) => v * m);
    const out: Latent = { ...samples, samples: { shape: [...samples.samples.shape], data } };
    return [out];
  },
});

/** torch.nan_to_num for float32: NaN → 0, ±∞ → the largest finite float32. */
function nanToNum(v: number): number {
  if (Number.isNaN(v)) return 0;
  if (v === Infinity) return 3.4028234663852886e38;
  if (v === -Infinity) return -3.4028234663852886e38;
  return v;
}

/** ‖x[b, :, y, x]‖₂ over channels: [B, H, W]. */
function channelNorms(t: Tensor): Float64Array {
  const [B, C, H, W] = t.shape;
  const hw = H * W;
  const out = new Float64Array(B * hw);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let p = 0; p < hw; p++) out[b * hw + p] += t.data[(b * C + c) * hw + p] ** 2;
  for (let i = 0; i < out.length; i++) out[i] = f(Math.sqrt(out[i]));
  return out;
}

/**
 * LatentInterpolate: per-pixel directions (s / ‖s‖ over channels) interpolated by `ratio` and
 * renormalised, times the interpolated magnitudes. ComfyUI divides a [B, C, H, W] tensor by the
 * [B, H, W] norms without re-adding the channel axis, so torch broadcasts the norms' batch axis
 * against the channels: with B = 1 this is the per-pixel formula; with B = C, channel c of every
 * item is divided by the norms of item c; any other batch size fails in ComfyUI, and here.
 */
export function interpolateLatents(s1: Tensor, s2in: Tensor, ratio: number): Tensor {
  expectLatent4(s1, 'samples1');
  expectLatent4(s2in, 'samples2');
  const s2 = reshapeLatentTo(s1.shape, s2in);
  const [B, C, H, W] = s1.shape;
  if (B !== 1 && B !== C) {
    throw new Error(
      `LatentInterpolate: a batch of ${B} latents of ${C} channels cannot be broadcast against their [B, H, W] norms (ComfyUI fails the same way); use a batch of 1 or ${C}`,
    );
  }
  const hw = H * W;
  const m1 = channelNorms(s1);
  const m2 = channelNorms(s2);
  const r = f(ratio);
  const r1 = f(1 - ratio);
  const normIdx = (c: number, p: number): number => (B === 1 ? 0 : c) * hw + p;
  const t = new Float32Array(s1.data.length);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let p = 0; p < hw; p++) {
        const i = (b * C + c) * hw + p;
        const a = nanToNum(f(s1.data[i] / m1[normIdx(c, p)]));
        const d = nanToNum(f(s2.data[i] / m2[normIdx(c, p)]));
        t[i] = f(f(a * r) + f(d * r1));
      }
  const mt = channelNorms({ shape: s1.shape, data: t });
  const out = new Float32Array(t.length);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let p = 0; p < hw; p++) {
        const i = (b * C + c) * hw + p;
        const k = normIdx(c, p);
        const st = nanToNum(f(t[i] / mt[k]));
        out[i] = f(st * f(f(m1[k] * r) + f(m2[k] * r1)));
      }
  return { shape: [...s1.shape], data: out };
}

export const LatentInterpolate = defineNode({
  name: 'LatentInterpolate',
  category: 'latent/advanced',
  inputs: {
    required: {
      samples1: { type: 'LATENT' },
      samples2: { type: 'LATENT' },
      ratio: { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples1, samples2, ratio }) {
    const out: Latent = { ...samples1, samples: interpolateLatents(samples1.samples, samples2.samples, ratio) };
    return [out];
  },
});

/** torch.cat along axis `dim` (non-negative) of tensors that agree elsewhere. */
function catAxis(parts: readonly Tensor[], dim: number): Tensor {
  const shape = [...parts[0].shape];
  for (const p of parts) {
    if (p.shape.length !== shape.length || p.shape.some((d, i) => i !== dim && d !== shape[i]))
      throw new Error(`cannot concatenate shapes ${parts.map((q) => describeShape(q.shape)).join(' and ')} along axis ${dim}`);
  }
  const outer = shape.slice(0, dim).reduce((a, b) => a * b, 1);
  const inner = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
  shape[dim] = parts.reduce((s, p) => s + p.shape[dim], 0);
  const out = new Float32Array(outer * shape[dim] * inner);
  let o = 0;
  for (let i = 0; i < outer; i++) {
    for (const p of parts) {
      const n = p.shape[dim] * inner;
      out.set(p.data.subarray(i * n, (i + 1) * n), o);
      o += n;
    }
  }
  return { shape, data: out };
}

/** torch.narrow(t, dim, start, length). */
function narrow(t: Tensor, dim: number, start: number, length: number): Tensor {
  const shape = [...t.shape];
  const outer = shape.slice(0, dim).reduce((a, b) => a * b, 1);
  const inner = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
  const n = shape[dim];
  const out = new Float32Array(outer * length * inner);
  for (let i = 0; i < outer; i++) out.set(t.data.subarray((i * n + start) * inner, (i * n + start + length) * inner), i * length * inner);
  shape[dim] = length;
  return { shape, data: out };
}

export const LatentConcat = defineNode({
  name: 'LatentConcat',
  category: 'latent/advanced',
  inputs: {
    required: {
      samples1: { type: 'LATENT' },
      samples2: { type: 'LATENT' },
      dim: { type: 'COMBO', options: ['x', '-x', 'y', '-y', 't', '-t'] },
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples1, samples2, dim }) {
    const s1 = samples1.samples;
    const s2 = repeatToBatchSize(samples2.samples, s1.shape[0]);
    const parts = dim.includes('-') ? [s2, s1] : [s1, s2];
    // Counted from the end: x = −1, y = −2, t = −3 (the channel axis of a 4-D image latent, as in ComfyUI).
    const back = dim.includes('x') ? 1 : dim.includes('y') ? 2 : 3;
    const axis = s1.shape.length - back;
    if (axis < 0) throw new Error(`LatentConcat: samples of shape ${describeShape(s1.shape)} have no axis '${dim}'`);
    const out: Latent = { ...samples1, samples: catAxis(parts, axis) };
    return [out];
  },
});

export const LatentCut = defineNode({
  name: 'LatentCut',
  category: 'latent/advanced',
  inputs: {
    required: {
      samples: { type: 'LATENT' },
      dim: { type: 'COMBO', options: ['x', 'y', 't'] },
      index: { type: 'INT', default: 0, min: -16384, max: 16384, step: 1 },
      amount: { type: 'INT', default: 1, min: 1, max: 16384, step: 1 },
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples, dim, index, amount }) {
    const s = samples.samples;
    const axis = s.shape.length - (dim.includes('x') ? 1 : dim.includes('y') ? 2 : 3);
    if (axis < 0) throw new Error(`LatentCut: samples of shape ${describeShape(s.shape)} have no axis '${dim}'`);
    const n = s.shape[axis];
    let start: number;
    let len: number;
    if (index >= 0) {
      start = Math.min(index, n - 1);
      len = Math.min(n - start, amount);
    } else {
      const i = Math.max(index, -n);
      len = Math.min(-i, amount);
      start = n + i;
    }
    const out: Latent = { ...samples, samples: narrow(s, axis, start, len) };
    return [out];
  },
});

export const LatentBatch = defineNode({
  name: 'LatentBatch',
  category: 'latent/batch',
  inputs: { required: { samples1: { type: 'LATENT' }, samples2: { type: 'LATENT' } } },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples1, samples2 }) {
    const s1 = samples1.samples;
    expectLatent4(s1, 'samples1');
    expectLatent4(samples2.samples, 'samples2');
    // samples2 resized to samples1's size (bilinear, centre crop); both batches kept whole.
    const s2 = reshapeLatentTo(s1.shape, samples2.samples, false);
    const data = new Float32Array(s1.data.length + s2.data.length);
    data.set(s1.data);
    data.set(s2.data, s1.data.length);
    const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
    const batchIndex = [...(samples1.batchIndex ?? range(s1.shape[0])), ...(samples2.batchIndex ?? range(s2.shape[0]))];
    const out: Latent = { ...samples1, samples: { shape: [s1.shape[0] + s2.shape[0], ...s1.shape.slice(1)], data }, batchIndex };
    return [out];
  },
});

export const LatentBatchSeedBehavior = defineNode({
  name: 'LatentBatchSeedBehavior',
  category: 'latent/advanced',
  inputs: { required: { samples: { type: 'LATENT' }, seed_behavior: { type: 'COMBO', options: ['random', 'fixed'], default: 'fixed' } } },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples, seed_behavior }) {
    if (seed_behavior === 'random') {
      // Without batch_index every item takes its own noise from the seed.
      const { batchIndex: _drop, ...rest } = samples;
      return [rest as Latent];
    }
    // fixed: every item takes the noise of the first one.
    const first = samples.batchIndex?.[0] ?? 0;
    const out: Latent = { ...samples, batchIndex: new Array<number>(samples.samples.shape[0]).fill(first) };
    return [out];
  },
});

export const nodes = [
  LatentAdd,
  LatentSubtract,
  LatentMultiply,
  LatentInterpolate,
  LatentConcat,
  LatentCut,
  LatentBatch,
  LatentBatchSeedBehavior,
];
