import { describe, expect, it } from 'vitest';
import { tensor, type ImageTensor } from '../../engine/core/tensor.ts';
import { binaryDetector, tileDetector } from '../../engine/image/preprocess/detectors.ts';
import { imageToU8 } from '../../engine/image/preprocess/mat.ts';
import { BinaryPreprocessor, InpaintPreprocessor, TilePreprocessor } from '../../nodes/controlnet/preprocessors/opencv-detectors.ts';

const ctx = undefined as never;

function gradient(b: number, h: number, w: number, c: number): ImageTensor {
  const t = tensor([b, h, w, c]);
  for (let i = 0; i < t.data.length; i++) t.data[i] = ((i * 37) % 251) / 255;
  return t;
}

describe('OpenCV-only preprocessor nodes', () => {
  it('run every batch item through the detector and return float / 255', async () => {
    const img = gradient(2, 30, 40, 3);
    const [out] = (await BinaryPreprocessor.run({ image: img, bin_threshold: 90, resolution: 64 }, ctx)) as [ImageTensor];
    expect(out.shape).toEqual([2, 64, 85, 3]);
    const second = binaryDetector(imageToU8(img, 1), 90, 64);
    expect(Array.from(out.data.subarray(64 * 85 * 3))).toEqual(Array.from(second.data, (v) => Math.fround(v / 255)));
  });

  it('TilePreprocessor ignores resolution and keeps sides rounded to 64', async () => {
    const [out] = (await TilePreprocessor.run({ image: gradient(1, 100, 70, 4), pyrUp_iters: 2, resolution: 1024 }, ctx)) as [ImageTensor];
    expect(out.shape).toEqual([1, 128, 64, 3]);
    expect(tileDetector(imageToU8(gradient(1, 100, 70, 3), 0), 2).h).toBe(128);
  });

  it('InpaintPreprocessor sets masked pixels (after bilinear resize of the mask) to -1, or 0 for xinsir', () => {
    const img = gradient(1, 8, 8, 3);
    const mask = tensor([1, 4, 4]);
    for (let y = 0; y < 4; y++) for (let x = 2; x < 4; x++) mask.data[y * 4 + x] = 1;
    const [o] = InpaintPreprocessor.run({ image: img, mask }, ctx) as [ImageTensor];
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 8; x++) {
        const v = o.data[(y * 8 + x) * 3];
        // bilinear (align_corners=False) of a 0|1 split at column 2 of 4: 0.25 at x = 3, 0.75 at x = 4
        if (x >= 4) expect(v).toBe(-1);
        else expect(v).toBe(img.data[(y * 8 + x) * 3]);
      }
    }
    const [z] = InpaintPreprocessor.run({ image: img, mask, black_pixel_for_xinsir_cn: true }, ctx) as [ImageTensor];
    expect(z.data[7 * 3]).toBe(0);
    expect(img.data[7 * 3]).not.toBe(-1);
    expect(() => InpaintPreprocessor.run({ image: gradient(2, 8, 8, 3), mask: tensor([3, 4, 4]) }, ctx)).toThrow(/mask batch 3/);
  });
});
