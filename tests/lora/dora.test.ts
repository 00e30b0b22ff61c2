import { describe, expect, it } from 'vitest';
import { patchedWeight } from '../../engine/models/lora/apply.ts';
import type { AdapterTensor, LoraPatch, WeightPatch } from '../../engine/models/lora/types.ts';

/**
 * DoRA as ComfyUI's weight_decompose computes it, against a float64 formula written here from the
 * definition: W' = (W + (α/r)·up·down) · m / (‖·‖ + ε), with the norm per output row of the weight
 * before the patch when the magnitude m is laid out [out, 1, …], per input channel of W + (α/r)·Δ when
 * it is [1, in, …]; strength s gives W + s·(W' − W).
 */

const EPS = 2 ** -23;
const TOL = 2e-6;

function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * scale;
  });
}

const tensor = (key: string, shape: number[], data: Float32Array): AdapterTensor => ({ key, shape, read: () => data.slice() });
const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

interface Case {
  shape: number[];
  rank: number;
  alpha: number;
  dora: number[];
}

function lora(c: Case, seed: number): { patch: LoraPatch; up: Float32Array; down: Float32Array; m: Float32Array } {
  const [out, ...rest] = c.shape;
  const inner = prod(rest);
  const up = rand(out * c.rank, seed, 0.5);
  const down = rand(c.rank * inner, seed + 1, 0.5);
  const m = rand(prod(c.dora), seed + 2).map((v) => 0.5 + Math.abs(v));
  const upShape = c.shape.length === 4 ? [out, c.rank, 1, 1] : [out, c.rank];
  const downShape = c.shape.length === 4 ? [c.rank, ...rest] : [c.rank, inner];
  const patch: LoraPatch = {
    kind: 'lora',
    target: 'w',
    stem: 's',
    alpha: c.alpha,
    up: tensor('s.lora_up.weight', upShape, up),
    down: tensor('s.lora_down.weight', downShape, down),
    doraScale: tensor('s.dora_scale', c.dora, m),
  };
  return { patch, up, down, m };
}

/** The definition in float64, index by index. */
function doraReference(w: Float32Array, c: Case, up: Float32Array, down: Float32Array, m: Float32Array, strength: number): Float64Array {
  const [out, inCh] = c.shape;
  const inner = prod(c.shape.slice(1));
  const k = inner / inCh;
  const calc = new Float64Array(w.length);
  for (let o = 0; o < out; o++) {
    for (let j = 0; j < inner; j++) {
      let d = 0;
      for (let r = 0; r < c.rank; r++) d += up[o * c.rank + r] * down[r * inner + j];
      calc[o * inner + j] = w[o * inner + j] + (c.alpha / c.rank) * d;
    }
  }
  const perOutput = c.dora[0] === out;
  const norms = new Float64Array(perOutput ? out : inCh);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inCh; i++) {
      for (let p = 0; p < k; p++) {
        const f = (o * inCh + i) * k + p;
        if (perOutput) norms[o] += w[f] ** 2;
        else norms[i] += calc[f] ** 2;
      }
    }
  }
  const res = new Float64Array(w.length);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inCh; i++) {
      for (let p = 0; p < k; p++) {
        const f = (o * inCh + i) * k + p;
        const v = perOutput ? (calc[f] * m[o]) / (Math.sqrt(norms[o]) + EPS) : (calc[f] * m[i]) / (Math.sqrt(norms[i]) + EPS);
        res[f] = w[f] + strength * (v - w[f]);
      }
    }
  }
  return res;
}

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let d = 0;
  let mx = 0;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i] - want[i]));
    mx = Math.max(mx, Math.abs(want[i]));
  }
  return d / mx;
}

const CASES: Record<string, Case> = {
  'linear, per output row ([out, 1])': { shape: [24, 16], rank: 4, alpha: 2, dora: [24, 1] },
  'linear, per input channel ([1, in])': { shape: [24, 16], rank: 4, alpha: 2, dora: [1, 16] },
  'conv 3×3, per output row ([out, 1, 1, 1])': { shape: [12, 8, 3, 3], rank: 3, alpha: 1, dora: [12, 1, 1, 1] },
  'conv 3×3, per input channel ([1, in, 1, 1])': { shape: [12, 8, 3, 3], rank: 3, alpha: 1, dora: [1, 8, 1, 1] },
  'square linear, per input channel': { shape: [16, 16], rank: 2, alpha: 0.5, dora: [1, 16] },
};

describe('DoRA (ComfyUI weight_decompose)', () => {
  let seed = 1;
  for (const [name, c] of Object.entries(CASES)) {
    it(`${name}: strength 1, 0.6 and -0.3 match the definition`, async () => {
      const w = rand(prod(c.shape), seed++);
      const { patch, up, down, m } = lora(c, seed++);
      for (const strength of [1, 0.6, -0.3]) {
        const got = await patchedWeight('w', w, c.shape, [{ patch, strength }]);
        expect(relErr(got, doraReference(w, c, up, down, m, strength)), `strength ${strength}`).toBeLessThan(TOL);
      }
    });
  }

  it('per output row, the norm is of the weight as earlier patches left it (not of W + Δ), as ComfyUI takes it', async () => {
    const c = CASES['linear, per output row ([out, 1])'];
    const w = rand(prod(c.shape), 77);
    const { patch, up, down, m } = lora(c, 78);
    // A plain diff before the DoRA patch: the norm must be of W + diff.
    const diff = rand(prod(c.shape), 79, 0.3);
    const first: WeightPatch = { kind: 'diff', target: 'w', stem: 'd', diff: tensor('d.diff', c.shape, diff) };
    const got = await patchedWeight('w', w, c.shape, [
      { patch: first, strength: 1 },
      { patch, strength: 0.8 },
    ]);
    const w1 = Float32Array.from(w, (v, i) => v + diff[i]);
    expect(relErr(got, doraReference(w1, c, up, down, m, 0.8))).toBeLessThan(TOL);
    // The other reading (norm of W + Δ) differs clearly, so the test can tell them apart.
    const [out, inner] = c.shape;
    const alt = new Float64Array(w1.length);
    const plain = Float64Array.from(w1, (v, i) => {
      let d = 0;
      const o = Math.floor(i / inner);
      for (let r = 0; r < c.rank; r++) d += up[o * c.rank + r] * down[r * inner + (i % inner)];
      return v + (c.alpha / c.rank) * d;
    });
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let j = 0; j < inner; j++) s += plain[o * inner + j] ** 2;
      for (let j = 0; j < inner; j++) {
        const f = o * inner + j;
        alt[f] = w1[f] + 0.8 * ((plain[f] * m[o]) / (Math.sqrt(s) + EPS) - w1[f]);
      }
    }
    expect(relErr(got, alt)).toBeGreaterThan(1e-3);
  });

  it('strength 0 leaves the weight bit for bit', async () => {
    const c = CASES['conv 3×3, per output row ([out, 1, 1, 1])'];
    const w = rand(prod(c.shape), 5);
    const got = await patchedWeight('w', w, c.shape, [{ patch: lora(c, 6).patch, strength: 0 }]);
    expect(Buffer.from(got.buffer).equals(Buffer.from(w.buffer))).toBe(true);
  });
});
