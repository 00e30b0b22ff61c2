import { describe, expect, it } from 'vitest';
import type { Latent, Tensor } from '../../engine/core/tensor.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { ConditioningSetAreaStrength } from '../../nodes/conditioning/conditioning.ts';
import {
  LatentAdd,
  LatentBatch,
  LatentBatchSeedBehavior,
  LatentConcat,
  LatentCut,
  LatentInterpolate,
  LatentMultiply,
  LatentSubtract,
} from '../../nodes/latent/latent-math.ts';
import {
  LatentApplyOperation,
  LatentOperationSharpen,
  LatentOperationTonemapReinhard,
  type LatentOperation,
} from '../../nodes/latent/latent-operations.ts';
import { LatentCompositeMasked, LatentCrop, LatentFlip, LatentRotate } from '../../nodes/latent/latent-transform.ts';

/**
 * ComfyUI's latent nodes (nodes_latent.py, nodes.py's LatentCrop/Rotate/Flip, nodes_mask.py's
 * LatentCompositeMasked) and ConditioningSetAreaStrength against formulas written out here in float64.
 */

const ctx = {} as NodeContext;
type Run = (args: Record<string, unknown>, c: NodeContext) => unknown;
const call = <T = Latent>(node: { run: unknown }, args: Record<string, unknown>): T[] => (node.run as Run)(args, ctx) as T[];

function lat(B: number, C: number, H: number, W: number, f: (b: number, c: number, y: number, x: number) => number): Tensor {
  const d = new Float32Array(B * C * H * W);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) d[((b * C + c) * H + y) * W + x] = f(b, c, y, x);
  return { shape: [B, C, H, W], data: d };
}
const at = (t: Tensor, b: number, c: number, y: number, x: number): number => {
  const [, C, H, W] = t.shape;
  return t.data[((b * C + c) * H + y) * W + x];
};
const v = (b: number, c: number, y: number, x: number): number => Math.sin(1 + b * 3.7 + c * 1.3 + y * 0.7 + x * 0.31) * 2;
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('nodes_latent arithmetic', () => {
  it('LatentAdd/Subtract repeat samples2 to the batch and keep samples1’s other keys; LatentMultiply scales', () => {
    const a: Latent = { samples: lat(2, 4, 3, 3, v), batchIndex: [5, 6] };
    const b: Latent = { samples: lat(1, 4, 3, 3, (_b, c, y, x) => v(9, c, y, x)) };
    const [sum] = call(LatentAdd, { samples1: a, samples2: b });
    const [diff] = call(LatentSubtract, { samples1: a, samples2: b });
    expect(sum.batchIndex).toEqual([5, 6]);
    for (let n = 0; n < 2; n++) {
      expect(at(sum.samples, n, 2, 1, 1)).toBeCloseTo(v(n, 2, 1, 1) + v(9, 2, 1, 1), 5);
      expect(at(diff.samples, n, 3, 2, 0)).toBeCloseTo(v(n, 3, 2, 0) - v(9, 3, 2, 0), 5);
    }
    const [m] = call(LatentMultiply, { samples: a, multiplier: -1.5 });
    expect(
      maxAbs(
        m.samples.data,
        Array.from(a.samples.data, (q) => -1.5 * q),
      ),
    ).toBeLessThan(1e-6);
  });

  /** The per-pixel formula in float64, norms taken of item `nb(b, c)`. */
  function refInterp(s1: Tensor, s2: Tensor, r: number, nb: (b: number, c: number) => number): number[] {
    const [B, C, H, W] = s1.shape;
    const norm = (t: Tensor | number[][][][], b: number, y: number, x: number): number => {
      let s = 0;
      for (let c = 0; c < C; c++) s += (Array.isArray(t) ? t[b][c][y][x] : at(t, b, c, y, x)) ** 2;
      return Math.sqrt(s);
    };
    const safe = (p: number, q: number): number => (q === 0 ? 0 : p / q);
    const t = Array.from({ length: B }, (_, b) =>
      Array.from({ length: C }, (_, c) =>
        Array.from({ length: H }, (_, y) =>
          Array.from({ length: W }, (_, x) => {
            const k = nb(b, c);
            return safe(at(s1, b, c, y, x), norm(s1, k, y, x)) * r + safe(at(s2, b, c, y, x), norm(s2, k, y, x)) * (1 - r);
          }),
        ),
      ),
    );
    const out: number[] = [];
    for (let b = 0; b < B; b++)
      for (let c = 0; c < C; c++)
        for (let y = 0; y < H; y++)
          for (let x = 0; x < W; x++) {
            const k = nb(b, c);
            out.push(safe(t[b][c][y][x], norm(t, k, y, x)) * (norm(s1, k, y, x) * r + norm(s2, k, y, x) * (1 - r)));
          }
    return out;
  }

  it('LatentInterpolate: per-pixel directions and magnitudes interpolated (batch 1)', () => {
    const s1 = lat(1, 4, 3, 5, v);
    const s2 = lat(1, 4, 3, 5, (_b, c, y, x) => v(7, c, y, x));
    for (const r of [0, 0.3, 1]) {
      const [out] = call(LatentInterpolate, { samples1: { samples: s1 }, samples2: { samples: s2 }, ratio: r });
      expect(
        maxAbs(
          out.samples.data,
          refInterp(s1, s2, r, () => 0),
        ),
      ).toBeLessThan(1e-5);
    }
  });

  it('LatentInterpolate keeps ComfyUI’s broadcasting: with a batch of C, channel c uses item c’s norms; other batches fail', () => {
    const s1 = lat(4, 4, 2, 2, v);
    const s2 = lat(4, 4, 2, 2, (b, c, y, x) => v(b + 11, c, y, x));
    const [out] = call(LatentInterpolate, { samples1: { samples: s1 }, samples2: { samples: s2 }, ratio: 0.6 });
    expect(
      maxAbs(
        out.samples.data,
        refInterp(s1, s2, 0.6, (_b, c) => c),
      ),
    ).toBeLessThan(1e-5);
    expect(() =>
      call(LatentInterpolate, { samples1: { samples: lat(2, 4, 2, 2, v) }, samples2: { samples: lat(2, 4, 2, 2, v) }, ratio: 0.5 }),
    ).toThrow(/batch of 2/);
  });

  it('LatentBatch concatenates and chains batch_index; LatentBatchSeedBehavior fixes or drops it', () => {
    const a: Latent = { samples: lat(2, 4, 2, 2, v) };
    const b: Latent = { samples: lat(1, 4, 2, 2, (_b, c, y, x) => v(5, c, y, x)), batchIndex: [7] };
    const [ab] = call(LatentBatch, { samples1: a, samples2: b });
    expect(ab.samples.shape).toEqual([3, 4, 2, 2]);
    expect(ab.batchIndex).toEqual([0, 1, 7]);
    expect(Array.from(ab.samples.data.subarray(32))).toEqual(Array.from(b.samples.data));
    // A different size is resized to samples1's.
    const [big] = call(LatentBatch, { samples1: a, samples2: { samples: lat(1, 4, 4, 4, v) } });
    expect(big.samples.shape).toEqual([3, 4, 2, 2]);
    const [fixed] = call(LatentBatchSeedBehavior, { samples: ab, seed_behavior: 'fixed' });
    expect(fixed.batchIndex).toEqual([0, 0, 0]);
    const [random] = call(LatentBatchSeedBehavior, { samples: ab, seed_behavior: 'random' });
    expect('batchIndex' in random).toBe(false);
  });

  it('LatentConcat (x, −y) and LatentCut (negative index counts from the end)', () => {
    const a = lat(1, 1, 2, 2, (_b, _c, y, x) => 10 * y + x);
    const b = lat(1, 1, 2, 1, (_b, _c, y) => 100 + y);
    const [cx] = call(LatentConcat, { samples1: { samples: a }, samples2: { samples: b }, dim: 'x' });
    expect(Array.from(cx.samples.data)).toEqual([0, 1, 100, 10, 11, 101]);
    const c = lat(1, 1, 1, 2, () => 7);
    const [cy] = call(LatentConcat, { samples1: { samples: a }, samples2: { samples: c }, dim: '-y' });
    expect(Array.from(cy.samples.data)).toEqual([7, 7, 0, 1, 10, 11]);
    const row = lat(1, 1, 1, 5, (_b, _c, _y, x) => x);
    expect(Array.from(call(LatentCut, { samples: { samples: row }, dim: 'x', index: -2, amount: 5 })[0].samples.data)).toEqual([3, 4]);
    expect(Array.from(call(LatentCut, { samples: { samples: row }, dim: 'x', index: 9, amount: 5 })[0].samples.data)).toEqual([4]);
  });
});

describe('latent transforms (nodes.py)', () => {
  const s = lat(1, 2, 2, 3, (_b, c, y, x) => (c === 0 ? 10 * y + x : -(10 * y + x)));
  const grid = (t: Tensor, c = 0): number[][] =>
    Array.from({ length: t.shape[2] }, (_, y) => Array.from({ length: t.shape[3] }, (_, x) => at(t, 0, c, y, x)));

  it('LatentRotate turns clockwise (torch.rot90 over dims [3, 2]), channels alike', () => {
    const [r] = call(LatentRotate, { samples: { samples: s }, rotation: '90 degrees' });
    expect(grid(r.samples)).toEqual([
      [10, 0],
      [11, 1],
      [12, 2],
    ]);
    expect(grid(r.samples, 1)[2]).toEqual([-12, -2]);
    expect(grid(call(LatentRotate, { samples: { samples: s }, rotation: '270 degrees' })[0].samples)).toEqual([
      [2, 12],
      [1, 11],
      [0, 10],
    ]);
  });

  it('LatentFlip: x-axis vertically, y-axis horizontally; the noise mask stays as it was', () => {
    const mask = { shape: [1, 1, 2, 3], data: new Float32Array(6) };
    const [fx] = call(LatentFlip, { samples: { samples: s, noiseMask: mask }, flip_method: 'x-axis: vertically' });
    expect(grid(fx.samples)).toEqual([
      [10, 11, 12],
      [0, 1, 2],
    ]);
    expect(fx.noiseMask).toBe(mask);
    expect(grid(call(LatentFlip, { samples: { samples: s }, flip_method: 'y-axis: horizontally' })[0].samples)[0]).toEqual([2, 1, 0]);
  });

  it('LatentCrop: pixels // 8, the corner pulled back to leave 8 cells', () => {
    const big = lat(1, 1, 10, 12, (_b, _c, y, x) => 100 * y + x);
    const [c1] = call(LatentCrop, { samples: { samples: big }, width: 16, height: 24, x: 8, y: 16 });
    expect(c1.samples.shape).toEqual([1, 1, 3, 2]);
    expect(grid(c1.samples)[0]).toEqual([201, 202]);
    // x = 80 → 10 cells, more than 12 − 8: pulled back to 4; the width is then cut at the border.
    const [c2] = call(LatentCrop, { samples: { samples: big }, width: 512, height: 64, x: 80, y: 0 });
    expect(c2.samples.shape).toEqual([1, 1, 8, 8]);
    expect(at(c2.samples, 0, 0, 0, 0)).toBe(4);
  });

  it('LatentCompositeMasked pastes at (x/8, y/8) through the mask, destination’s other keys kept', () => {
    const dst: Latent = { samples: lat(1, 2, 4, 4, () => 1), batchIndex: [3] };
    const src: Latent = { samples: lat(1, 2, 2, 2, () => 5) };
    const mask: Tensor = { shape: [1, 2, 2], data: Float32Array.of(1, 0, 0.5, 1) };
    const [out] = call(LatentCompositeMasked, { destination: dst, source: src, x: 8, y: 16, resize_source: false, mask });
    expect(out.batchIndex).toEqual([3]);
    expect(grid(out.samples, 1)).toEqual([
      [1, 1, 1, 1],
      [1, 1, 1, 1],
      [1, 5, 1, 1],
      [1, 3, 5, 1],
    ]);
  });
});

describe('latent operations', () => {
  const t = lat(2, 4, 3, 4, v);
  const mags = (b: number, y: number, x: number, eps: number): number => {
    let s = 0;
    for (let c = 0; c < 4; c++) s += at(t, b, c, y, x) ** 2;
    return Math.sqrt(s) + eps;
  };

  it('TonemapReinhard: magnitudes m ↦ top·(m/top)/(m/top + 1), top = (5·std + mean)·multiplier per item', () => {
    const [op] = call<LatentOperation>(LatentOperationTonemapReinhard, { multiplier: 0.8 });
    const [out] = call(LatentApplyOperation, { samples: { samples: t }, operation: op });
    const want: number[] = [];
    for (let b = 0; b < 2; b++) {
      const m: number[] = [];
      for (let y = 0; y < 3; y++) for (let x = 0; x < 4; x++) m.push(mags(b, y, x, 1e-10));
      const mean = m.reduce((p, q) => p + q, 0) / m.length;
      const std = Math.sqrt(m.reduce((p, q) => p + (q - mean) ** 2, 0) / (m.length - 1));
      const top = (std * 5 + mean) * 0.8;
      for (let c = 0; c < 4; c++)
        for (let y = 0; y < 3; y++)
          for (let x = 0; x < 4; x++) {
            const mm = mags(b, y, x, 1e-10);
            want.push((at(t, b, c, y, x) / mm) * ((mm / top / (mm / top + 1)) * top));
          }
    }
    expect(maxAbs(out.samples.data, want)).toBeLessThan(1e-5);
  });

  it('Sharpen: directions sharpened as (1 + 10α)·d − 10α·blur(d), magnitudes restored', () => {
    const [op] = call<LatentOperation>(LatentOperationSharpen, { sharpen_radius: 1, sigma: 1.0, alpha: 0.1 });
    const out = op(t);
    const k = [-1, 0, 1].map((a) => [-1, 0, 1].map((b) => Math.exp(-(a * a + b * b) / 2)));
    const ks = k.flat().reduce((p, q) => p + q, 0);
    const refl = (i: number, n: number): number => (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);
    const dir = (b: number, c: number, y: number, x: number): number => at(t, b, c, y, x) / mags(b, y, x, 1e-6);
    let worst = 0;
    for (let b = 0; b < 2; b++)
      for (let c = 0; c < 4; c++)
        for (let y = 0; y < 3; y++)
          for (let x = 0; x < 4; x++) {
            let blur = 0;
            for (let i = 0; i < 3; i++)
              for (let j = 0; j < 3; j++) blur += (k[i][j] / ks) * dir(b, c, refl(y + i - 1, 3), refl(x + j - 1, 4));
            const want = mags(b, y, x, 1e-6) * ((1 + 1) * dir(b, c, y, x) - 1 * blur);
            worst = Math.max(worst, Math.abs(at(out, b, c, y, x) - want));
          }
    expect(worst).toBeLessThan(1e-5);
  });
});

describe('ConditioningSetAreaStrength', () => {
  it('sets strength on every entry, nothing else', () => {
    const cond: Conditioning = [
      { cond: { shape: [1, 1, 2], data: Float32Array.of(1, 2) }, area: { height: 1, width: 1, y: 0, x: 0 } },
      { cond: { shape: [1, 1, 2], data: Float32Array.of(3, 4) } },
    ] as unknown as Conditioning;
    const [out] = call<Conditioning>(ConditioningSetAreaStrength, { conditioning: cond, strength: 2.5 });
    expect(out.map((e) => e.strength)).toEqual([2.5, 2.5]);
    expect(out[0].area).toEqual(cond[0].area);
    expect(out[1].cond).toBe(cond[1].cond);
  });
});
