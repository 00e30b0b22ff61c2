import { describe, expect, it } from 'vitest';
import {
  attention,
  conv2d,
  erf,
  gelu,
  groupNorm,
  layerNorm,
  linear,
  resizeNearest,
  timestepEmbedding,
} from '../../engine/models/families/sd1/reference/layers.ts';

const t = (shape: number[], values: number[]) => ({ shape, data: Float32Array.from(values) });

describe('reference layers', () => {
  it('conv2d: a 3×3 box filter with padding sums each neighbourhood (hand-counted)', () => {
    // 1×1×3×3 input of ones, 3×3 kernel of ones, pad 1: corners see 4 ones, edges 6, centre 9.
    const y = conv2d(t([1, 1, 3, 3], Array(9).fill(1)), new Float32Array(9).fill(1), [1, 1, 3, 3], Float32Array.of(0.5), { pad: 1 });
    expect([...y.data]).toEqual([4, 6, 4, 6, 9, 6, 4, 6, 4].map((v) => v + 0.5));
  });

  it('conv2d: stride 2 with LDM asymmetric padding picks the expected taps', () => {
    // Kernel with a single 1 at (0,0) samples x[2i, 2j]; pad (0,0,1,1) keeps output 2×2 for a 4×4 input.
    const x = t(
      [1, 1, 4, 4],
      Array.from({ length: 16 }, (_, i) => i),
    );
    const k = new Float32Array(9);
    k[0] = 1;
    const y = conv2d(x, k, [1, 1, 3, 3], undefined, { stride: 2, pad: [0, 0, 1, 1] });
    expect(y.shape).toEqual([1, 1, 2, 2]);
    expect([...y.data]).toEqual([0, 2, 8, 10]);
    // Tap at (2,2) reads past the bottom-right edge for the last output: zero padding.
    k.fill(0);
    k[8] = 1;
    expect([...conv2d(x, k, [1, 1, 3, 3], undefined, { stride: 2, pad: [0, 0, 1, 1] }).data]).toEqual([10, 0, 0, 0]);
  });

  it('conv2d: channels mix through the weight as out[o] = Σ_i w[o,i]·x[i] for 1×1 kernels', () => {
    const x = t([1, 2, 1, 2], [1, 2, 3, 4]);
    const y = conv2d(x, Float32Array.of(1, 10, -1, 0.5), [2, 2, 1, 1], Float32Array.of(0, 1));
    expect([...y.data]).toEqual([1 + 30, 2 + 40, -1 + 1.5 + 1, -2 + 2 + 1]);
  });

  it('groupNorm normalises each group to mean 0, variance 1 before the affine', () => {
    const x = t([1, 4, 1, 3], [1, 2, 3, 4, 5, 6, 10, 20, 30, 0, 0, 1]);
    const y = groupNorm(x, 2, new Float32Array(4).fill(1), new Float32Array(4), 0);
    for (const g of [0, 1]) {
      const v = [...y.data.slice(g * 6, g * 6 + 6)];
      const m = v.reduce((a, b) => a + b) / 6;
      expect(m).toBeCloseTo(0, 6);
      expect(v.reduce((a, b) => a + (b - m) ** 2, 0) / 6).toBeCloseTo(1, 5);
    }
    // Group 0 is 1..6: (1 − 3.5)/√(35/12).
    expect(y.data[0]).toBeCloseTo(-2.5 / Math.sqrt(35 / 12), 6);
  });

  it('layerNorm and linear agree with hand arithmetic', () => {
    const ln = layerNorm(t([1, 2], [1, 3]), Float32Array.of(2, 2), Float32Array.of(1, 0), 0);
    expect([...ln.data]).toEqual([-1, 2]);
    const y = linear(t([1, 2], [1, 2]), Float32Array.of(1, 1, 2, -1, 0, 3), [3, 2], Float32Array.of(0, 1, 2));
    expect([...y.data]).toEqual([3, 1, 8]);
  });

  it('erf and gelu match tabulated values', () => {
    // Abramowitz & Stegun table 7.1.
    expect(erf(0.5)).toBeCloseTo(0.5204998778, 9);
    expect(erf(1)).toBeCloseTo(0.8427007929, 9);
    expect(erf(2)).toBeCloseTo(0.995322265, 9);
    expect(erf(-3.5)).toBeCloseTo(-0.9999992569, 9);
    expect(erf(5)).toBeCloseTo(1, 10);
    // gelu(1) = Φ(1) = 0.8413447461.
    expect(gelu(t([2], [1, -1])).data[0]).toBeCloseTo(0.8413447461, 6);
    expect(gelu(t([2], [1, -1])).data[1]).toBeCloseTo(-1 * (1 - 0.8413447461), 6);
  });

  it('attention: equal keys average the values; a dominant key selects its value', () => {
    const q = t([1, 1, 2], [1, 1]);
    const k = t([1, 2, 2], [0, 0, 0, 0]);
    const v = t([1, 2, 2], [1, 2, 3, 4]);
    expect([...attention(q, k, v, 1).data]).toEqual([2, 3]);
    const k2 = t([1, 2, 2], [100, 100, -100, -100]);
    const y = attention(q, k2, v, 1);
    expect(y.data[0]).toBeCloseTo(1, 6);
    // Two heads of width 1: head 0 sees logits (1·100, 1·−100)/1, head 1 the same.
    const y2 = attention(q, k2, v, 2);
    expect([...y2.data].map((x) => Math.round(x))).toEqual([1, 2]);
  });

  it('nearest resize repeats pixels for ×2 and floors for uneven sizes', () => {
    const x = t([1, 1, 2, 2], [1, 2, 3, 4]);
    expect([...resizeNearest(x, 4, 4).data]).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    // 2 → 3: src = floor(dst · 2/3) = 0, 0, 1.
    expect([...resizeNearest(x, 1, 3).data]).toEqual([1, 1, 2]);
  });

  it('timestep embedding is [cos(t·f), sin(t·f)] with f_i = 10000^(−i/half)', () => {
    const e = timestepEmbedding(Float32Array.of(0, 10), 8);
    expect([...e.data.slice(0, 8)]).toEqual([1, 1, 1, 1, 0, 0, 0, 0]);
    const freqs = [0, 1, 2, 3].map((i) => Math.pow(10000, -i / 4));
    for (let i = 0; i < 4; i++) {
      expect(e.data[8 + i]).toBeCloseTo(Math.cos(10 * freqs[i]), 5);
      expect(e.data[12 + i]).toBeCloseTo(Math.sin(10 * freqs[i]), 5);
    }
  });
});
