import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { resizeNearest } from '../../engine/models/families/sd1/reference/layers.ts';
import { threePassTileCount, tiledScale, tiledScaleThreePass, tilePositions } from '../../engine/core/regions.ts';

function random(shape: number[], seed: number): Tensor {
  let s = seed >>> 0;
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 2 ** 32 - 0.5;
  }
  return { shape, data };
}

describe('ComfyUI tiled_scale', () => {
  it('places tiles like ComfyUI: stride tile−overlap, last tile flush with the end', () => {
    // range(0, 100 − 8, 56) = [0, 56]; 56 + 64 ≥ 100 so nothing is appended.
    expect(tilePositions(100, 64, 8)).toEqual([0, 56]);
    // range(0, 122, 56) = [0, 56, 112].
    expect(tilePositions(130, 64, 8)).toEqual([0, 56, 112]);
    // range(0, 60, 28) = [0, 28, 56].
    expect(tilePositions(64, 32, 4)).toEqual([0, 28, 56]);
    // Overlap ≥ tile: step 1, range(0, 5) and then the flush tile at 10 − 3 = 7.
    expect(tilePositions(10, 3, 5)).toEqual([0, 1, 2, 3, 4, 7]);
    expect(tilePositions(40, 64, 8)).toEqual([0]);
  });

  it('blends overlapping tiles with the linear feather ramp (hand-computed weights)', async () => {
    // 1×12 row, tiles 8 wide with overlap 4: tile 0 covers x 0..7 and returns 1, tile 1 covers 4..11 and returns 2.
    let k = 0;
    const fn = async (t: Tensor): Promise<Tensor> => ({ shape: t.shape, data: new Float32Array(t.data.length).fill(++k) });
    const y = await tiledScale({ shape: [1, 1, 1, 12], data: new Float32Array(12) }, fn, { tileY: 8, tileX: 8, overlap: 4 }, 1, 1);
    // Ramp over 8 pixels with feather 4: .25 .5 .75 1 1 .75 .5 .25. At x = 5: (.75·1 + .5·2)/(.75 + .5) = 1.4.
    expect(y.data[0]).toBeCloseTo(1, 6);
    expect(y.data[5]).toBeCloseTo(1.4, 6);
    // x = 6: (.5·1 + .75·2)/1.25 = 1.6; x = 11 only tile 1.
    expect(y.data[6]).toBeCloseTo(1.6, 6);
    expect(y.data[11]).toBeCloseTo(2, 6);
  });

  it('reproduces a translation-equivariant ×8 function exactly, for any tile layout', async () => {
    const x = random([2, 3, 13, 21], 7);
    const up = async (t: Tensor): Promise<Tensor> => resizeNearest(t, t.shape[2] * 8, t.shape[3] * 8);
    const full = await up(x);
    let calls = 0;
    const tiled = await tiledScaleThreePass(x, up, 8, 2, 8, 3, { onTile: () => calls++ });
    expect(tiled.shape).toEqual([2, 3, 104, 168]);
    let maxErr = 0;
    for (let i = 0; i < full.data.length; i++) maxErr = Math.max(maxErr, Math.abs(full.data[i] - tiled.data[i]));
    expect(maxErr).toBeLessThan(1e-6);
    expect(calls).toBe(threePassTileCount(2, 13, 21, 8, 2));
    expect(calls).toBeGreaterThan(6);
  });

  it('downscales too (encode direction, scale 1/8)', async () => {
    // 2×2 average pooling ×4 = an 8× "encoder" that is equivariant on 8-aligned tiles.
    const pool = async (t: Tensor): Promise<Tensor> => {
      const [, C, H, W] = t.shape;
      const h = H / 8;
      const w = W / 8;
      const out = new Float32Array(C * h * w);
      for (let c = 0; c < C; c++)
        for (let i = 0; i < h; i++)
          for (let j = 0; j < w; j++) {
            let s = 0;
            for (let a = 0; a < 8; a++) for (let b = 0; b < 8; b++) s += t.data[(c * H + i * 8 + a) * W + j * 8 + b];
            out[(c * h + i) * w + j] = s / 64;
          }
      return { shape: [1, C, h, w], data: out };
    };
    const x = random([1, 3, 96, 128], 3);
    const full = await pool(x);
    const tiled = await tiledScaleThreePass(x, pool, 64, 16, 1 / 8, 3);
    expect(tiled.shape).toEqual([1, 3, 12, 16]);
    for (let i = 0; i < full.data.length; i++) expect(tiled.data[i]).toBeCloseTo(full.data[i], 5);
  });
});
