import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ceildiv, gaussianWeights, tileGrid } from '../../engine/sampling/tiled-diffusion/grid.ts';
import { fibonacciSpacing, roll, spotShifts, stepIndex, torchRandint } from '../../engine/sampling/tiled-diffusion/spot-shifts.ts';

/*
 * ComfyUI-TiledDiffusion's tile grid and Gaussian weights against numpy fixtures
 * (scripts/fixtures/tiled-diffusion-grid.py: Python's integer rules, float64 Gaussians cast to
 * float32, float32 weight sums), and SpotDiffusion's shift draws against torch's known randint output.
 */

interface GridCase {
  w: number;
  h: number;
  tileW: number;
  tileH: number;
  overlap: number;
  batchSize: number;
  mixture: boolean;
  batches: [number, number, number, number][][];
  weightStride: number;
  weights: number[];
  tileWeights?: number[];
}

const cases = JSON.parse(readFileSync(new URL('../fixtures/tiled-diffusion/grid.json', import.meta.url), 'utf8')) as GridCase[];

describe('tile grid against the numpy reference', () => {
  for (const c of cases) {
    it(`${c.w}x${c.h} latent, tile ${c.tileW}x${c.tileH}, overlap ${c.overlap}, batch ${c.batchSize}${c.mixture ? ', Gaussian' : ''}`, () => {
      const g = tileGrid({
        w: c.w,
        h: c.h,
        tileW: c.tileW,
        tileH: c.tileH,
        overlap: c.overlap,
        tileBatchSize: c.batchSize,
        method: c.mixture ? 'Mixture of Diffusers' : 'MultiDiffusion',
      });
      expect(g.batches.map((b) => b.map((t) => [t.x, t.y, t.w, t.h]))).toEqual(c.batches);
      // Bit-exact float32: the same float32 sums in the same tile order.
      const sampled = Array.from(g.weights).filter((_, i) => i % c.weightStride === 0);
      expect(sampled).toEqual(c.weights.map(Math.fround));
      if (c.tileWeights) {
        const tw = g.tileWeights!;
        expect(tw.length).toBe(c.tileWeights.length);
        // numpy's exp and V8's may differ in the last float64 bit: at most one float32 ulp after the cast.
        for (let i = 0; i < tw.length; i++)
          expect(Math.abs(tw[i] - c.tileWeights[i])).toBeLessThanOrEqual(Math.abs(c.tileWeights[i]) * 1.2e-7);
      }
    });
  }

  it('every latent pixel is covered; tiles clamp to the latent; the overlap is clamped to the unclamped tile less 4', () => {
    const g = tileGrid({ w: 30, h: 20, tileW: 8, tileH: 8, overlap: 100, tileBatchSize: 1, method: 'MultiDiffusion' });
    // overlap 100 → min(8, 8) − 4 = 4: columns ceil((30 − 4)/(8 − 4)) = 7, rows ceil(16/4) = 4.
    expect(g.batches.length).toBe(28);
    expect(g.weights.every((v) => v >= 1)).toBe(true);
    const big = tileGrid({ w: 5, h: 3, tileW: 96, tileH: 96, overlap: 8, tileBatchSize: 4, method: 'MultiDiffusion' });
    expect([big.tileW, big.tileH, big.batches.flat()]).toEqual([5, 3, [{ x: 0, y: 0, w: 5, h: 3 }]]);
  });

  it('a latent exactly as wide as the overlap gives one tile where the package divides 0 by 0', () => {
    expect(ceildiv(0, 0)).toBe(1);
    const g = tileGrid({ w: 8, h: 8, tileW: 96, tileH: 96, overlap: 8, tileBatchSize: 4, method: 'MultiDiffusion' });
    expect(g.batches.flat()).toEqual([{ x: 0, y: 0, w: 8, h: 8 }]);
  });

  it('bad sizes are named', () => {
    expect(() => tileGrid({ w: 0, h: 8, tileW: 8, tileH: 8, overlap: 0, tileBatchSize: 1, method: 'MultiDiffusion' })).toThrow(
      /latent is 0x8/,
    );
    expect(() => tileGrid({ w: 8, h: 8, tileW: 8, tileH: 8, overlap: 0, tileBatchSize: 0, method: 'MultiDiffusion' })).toThrow(
      /tile_batch_size/,
    );
    expect(() => tileGrid({ w: 8, h: 8, tileW: 0, tileH: 8, overlap: 0, tileBatchSize: 1, method: 'MultiDiffusion' })).toThrow(
      /tile of 0x8/,
    );
  });

  it('Gaussian weights keep the package’s asymmetry: x centred at (w − 1)/2, y at h/2, both scaled by w²', () => {
    const g = gaussianWeights(6, 6);
    const at = (x: number, y: number) => g[y * 6 + x];
    // Symmetric in x about 2.5; in y about 3 (so row 0 is lower than row 5, row 2 equals row 4).
    expect(at(0, 3)).toBe(at(5, 3));
    expect(at(2, 2)).toBe(at(2, 4));
    expect(at(2, 0)).toBeLessThan(at(2, 5));
    const tall = gaussianWeights(4, 12);
    const f = (d: number) => Math.exp(-(d * d) / 16 / 0.02) / Math.sqrt(2 * Math.PI * 0.01);
    expect(tall[11 * 4 + 0]).toBe(Math.fround(f(5) * f(1.5)));
  });
});

describe('SpotDiffusion shifts', () => {
  it('torch.randint on CPU: torch.manual_seed(0); torch.randint(0, 10, (5,)) is [4, 9, 3, 0, 3]', () => {
    expect(Array.from(torchRandint(0n, 10, 5))).toEqual([4, 9, 3, 0, 3]);
    // Only the low 32 bits of the seed reach mt19937, as in torch.
    expect(torchRandint(2n ** 32n + 5n, 1000, 8)).toEqual(torchRandint(5n, 1000, 8));
  });

  it('rows and columns come from two generators with the same seed; sorted and Fibonacci orders', () => {
    const { h, w } = spotShifts(7n, 6, 12, 12, 'random');
    expect(h).toEqual(w);
    const sorted = spotShifts(7n, 6, 12, 9, 'sorted');
    expect(Array.from(sorted.h)).toEqual(Array.from(h).sort((a, b) => a - b));
    // fib = 0 1 1 2 3 5 8 13: value 6 goes to slot 8, value 7 to 13 mod 10 = 3 → first free 6, value 8 to 0 → 7.
    expect(Array.from(fibonacciSpacing(Int32Array.from({ length: 10 }, (_, i) => i)))).toEqual([0, 1, 2, 3, 4, 5, 7, 8, 6, 9]);
  });

  it('step index: the nearest schedule entry in float32', () => {
    const s = [14.6, 7.1, 3.2, 1.0, 0];
    expect(stepIndex(s, 14.6)).toBe(0);
    expect(stepIndex(s, 3.0)).toBe(2);
    expect(stepIndex(s, 5.2)).toBe(1);
  });

  it('roll is torch.roll on the last two axes', () => {
    const d = Float32Array.from({ length: 12 }, (_, i) => i);
    expect(Array.from(roll(d, [1, 1, 3, 4], 1, 0))).toEqual([8, 9, 10, 11, 0, 1, 2, 3, 4, 5, 6, 7]);
    expect(Array.from(roll(d, [1, 1, 3, 4], 0, -1))).toEqual([1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8]);
  });
});
