import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { gridCoords, ImageCropV2, ImageMergeTileList, PrimitiveBoundingBox, SplitImageToTileList } from '../../nodes/image/tiles.ts';

/** ImageCropV2 / PrimitiveBoundingBox and the tile list split/merge of ComfyUI's nodes_images.py. */

type Run = (args: Record<string, unknown>, c: NodeContext) => unknown;
const call = (node: { run: unknown }, args: Record<string, unknown>): unknown[] => (node.run as Run)(args, {} as NodeContext) as unknown[];

const B = 2;
const H = 5;
const W = 7;
const C = 3;
const image: Tensor = { shape: [B, H, W, C], data: Float32Array.from({ length: B * H * W * C }, (_, i) => (i % 17) / 17) };
const px = (t: Tensor, b: number, y: number, x: number, c: number): number =>
  t.data[((b * t.shape[1] + y) * t.shape[2] + x) * t.shape[3] + c];

describe('tiles', () => {
  it('grid: strides of max(¼ tile, tile − overlap), the last tile pushed back to the edge', () => {
    expect(gridCoords(7, 5, 4, 4, 2)).toEqual([
      [0, 0, 4, 4],
      [2, 0, 6, 4],
      [3, 0, 7, 4],
      [0, 1, 4, 5],
      [2, 1, 6, 5],
      [3, 1, 7, 5],
    ]);
    // An overlap beyond ¾ of the tile is limited to a quarter-tile stride.
    expect(gridCoords(8, 4, 4, 4, 4).map((c) => c[0])).toEqual([0, 1, 2, 3, 4]);
  });

  it('SplitImageToTileList cuts the tiles; ImageMergeTileList puts them back (a weighted mean of equal values)', () => {
    const [tiles] = call(SplitImageToTileList, { image, tile_width: 4, tile_height: 4, overlap: 2 }) as [Tensor[]];
    expect(tiles).toHaveLength(6);
    const coords = gridCoords(W, H, 4, 4, 2);
    tiles.forEach((t, i) => {
      const [x0, y0] = coords[i];
      expect(t.shape).toEqual([B, 4, 4, C]);
      expect(px(t, 1, 2, 3, 2)).toBe(px(image, 1, y0 + 2, x0 + 3, 2));
    });
    const [merged] = call(ImageMergeTileList, { image_list: tiles, final_width: [W], final_height: [H], overlap: [2] }) as [Tensor];
    expect(merged.shape).toEqual(image.shape);
    let worst = 0;
    for (let i = 0; i < image.data.length; i++) worst = Math.max(worst, Math.abs(merged.data[i] - image.data[i]));
    expect(worst).toBeLessThan(1e-6);
  });

  it('ImageMergeTileList weighs overlapping tiles by sin(π·t) per axis (floored at 1e-5)', () => {
    // Two 1×4 tiles of constant 0 and 1 on a 1×6 canvas with overlap 2: x = 2, 3 are shared.
    const zero: Tensor = { shape: [1, 1, 4, 1], data: new Float32Array(4) };
    const one: Tensor = { shape: [1, 1, 4, 1], data: new Float32Array(4).fill(1) };
    const [m] = call(ImageMergeTileList, { image_list: [zero, one], final_width: [6], final_height: [1], overlap: [2] }) as [Tensor];
    const s = (t: number): number => Math.max(1e-5, Math.sin(Math.PI * t));
    const wy = s(0); // a single row: t = 0, weight 1e-5 on both tiles, which cancels out
    const w = [0, 1 / 3, 2 / 3, 1].map((t) => s(t) * wy);
    // x = 2: tile A's third column (w[2]) vs tile B's first (w[0]); x = 3: w[3] vs w[1].
    expect(m.data[2]).toBeCloseTo(w[0] / (w[2] + w[0]), 5);
    expect(m.data[3]).toBeCloseTo(w[1] / (w[3] + w[1]), 5);
    expect(m.data[0]).toBe(0);
    expect(m.data[5]).toBe(1);
  });

  it('ImageCropV2 crops to a PrimitiveBoundingBox like ImageCrop', () => {
    const [box] = call(PrimitiveBoundingBox, { x: 5, y: 1, width: 10, height: 2 });
    const [out] = call(ImageCropV2, { image, crop_region: box }) as [Tensor];
    expect(out.shape).toEqual([B, 2, 2, C]);
    expect(px(out, 0, 1, 1, 0)).toBe(px(image, 0, 2, 6, 0));
  });
});
