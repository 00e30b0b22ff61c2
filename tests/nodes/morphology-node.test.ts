import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { ImageRGBToYUV, ImageYUVToRGB, Morphology } from '../../nodes/image/morphology.ts';

/**
 * ComfyUI's Morphology (kornia, flat k×k kernel, geodesic border) against a brute-force window
 * min/max over y − ⌊k/2⌋ … y + k − 1 − ⌊k/2⌋ clipped to the image, and kornia's compositions.
 */

type Run = (args: Record<string, unknown>, c: NodeContext) => unknown;
const run = (image: Tensor, operation: string, kernel_size: number): Tensor =>
  ((Morphology.run as Run)({ image, operation, kernel_size }, {} as NodeContext) as Tensor[])[0];

const B = 2;
const H = 7;
const W = 9;
const C = 2;
const image: Tensor = {
  shape: [B, H, W, C],
  data: Float32Array.from({ length: B * H * W * C }, (_, i) => Math.abs(Math.sin(i * 12.9898) * 43758.5453) % 1),
};

/** One max_pool2d(k, stride 1, padding k // 2) pass (or its min) on an [B, h, w, C] array: output (h', w') = (h, w) + 2⌊k/2⌋ − k + 1. */
function brute(src: Float32Array, h: number, w: number, k: number, max: boolean): { data: Float32Array; h: number; w: number } {
  const lo = Math.floor(k / 2);
  const oh = h + 2 * lo - k + 1;
  const ow = w + 2 * lo - k + 1;
  const out = new Float32Array(B * oh * ow * C);
  for (let b = 0; b < B; b++)
    for (let y = 0; y < oh; y++)
      for (let x = 0; x < ow; x++)
        for (let c = 0; c < C; c++) {
          let v = max ? -Infinity : Infinity;
          for (let yy = Math.max(0, y - lo); yy <= Math.min(h - 1, y - lo + k - 1); yy++)
            for (let xx = Math.max(0, x - lo); xx <= Math.min(w - 1, x - lo + k - 1); xx++) {
              const s = src[((b * h + yy) * w + xx) * C + c];
              v = max ? Math.max(v, s) : Math.min(v, s);
            }
          out[((b * oh + y) * ow + x) * C + c] = v;
        }
  return { data: out, h: oh, w: ow };
}

describe('Morphology', () => {
  for (const k of [3, 5, 13]) {
    it(`kernel ${k}: erode/dilate are window min/max; open, close, gradient, top_hat, bottom_hat compose them`, () => {
      const er = brute(image.data, H, W, k, false).data;
      const di = brute(image.data, H, W, k, true).data;
      const open = brute(er, H, W, k, true).data;
      const close = brute(di, H, W, k, false).data;
      const want: Record<string, ArrayLike<number>> = {
        erode: er,
        dilate: di,
        open,
        close,
        gradient: di.map((d, i) => d - er[i]),
        top_hat: image.data.map((v, i) => v - open[i]),
        bottom_hat: close.map((c, i) => c - image.data[i]),
      };
      for (const [op, w] of Object.entries(want)) {
        const got = run(image, op, k);
        expect(got.shape).toEqual(image.shape);
        expect(Array.from(got.data), `${op} k=${k}`).toEqual(Array.from(Float32Array.from(w)));
      }
    });
  }

  it('an even kernel grows the image by one pixel per pass, as torch max_pool2d with padding k/2; top_hat then fails as in ComfyUI', () => {
    const di = brute(image.data, H, W, 4, true);
    const got = run(image, 'dilate', 4);
    expect(got.shape).toEqual([B, H + 1, W + 1, C]);
    expect(Array.from(got.data)).toEqual(Array.from(di.data));
    const open = brute(brute(image.data, H, W, 4, false).data, H + 1, W + 1, 4, true);
    const gotOpen = run(image, 'open', 4);
    expect(gotOpen.shape).toEqual([B, H + 2, W + 2, C]);
    expect(Array.from(gotOpen.data)).toEqual(Array.from(open.data));
    expect(() => run(image, 'top_hat', 4)).toThrow(/sizes/);
  });
});

describe('ImageRGBToYUV / ImageYUVToRGB', () => {
  it("kornia's YCbCr constants, each component a grey RGB image; the round trip is close to the identity", () => {
    const rgb: Tensor = { shape: [1, 1, 2, 4], data: Float32Array.of(1, 0, 0, 0.5, 0.2, 0.4, 0.9, 1) };
    const [Y, U, V] = (ImageRGBToYUV.run as Run)({ image: rgb }, {} as NodeContext) as Tensor[];
    expect(Y.shape).toEqual([1, 1, 2, 3]);
    expect(Y.data[0]).toBeCloseTo(0.299, 6);
    expect(Y.data[2]).toBeCloseTo(0.299, 6);
    expect(U.data[0]).toBeCloseTo((0 - 0.299) * 0.564 + 0.5, 6);
    expect(V.data[3]).toBeCloseTo((0.2 - (0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.9)) * 0.713 + 0.5, 6);
    const [back] = (ImageYUVToRGB.run as Run)({ Y, U, V }, {} as NodeContext) as Tensor[];
    // kornia's rounded constants are not exact inverses: a few thousandths.
    for (const [i, want] of [1, 0, 0, 0.2, 0.4, 0.9].entries()) expect(Math.abs(back.data[i] - want)).toBeLessThan(5e-3);
  });
});
