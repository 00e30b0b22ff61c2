import { describe, expect, it } from 'vitest';
import { tensor, type ImageTensor } from '../../engine/core/tensor.ts';
import { resizeImageWithPad, removePad } from '../../engine/image/preprocess/aux-resize.ts';
import { cvCanny } from '../../engine/image/preprocess/cv-canny.ts';
import { hwc3, imageToU8, type U8Mat } from '../../engine/image/preprocess/mat.ts';
import { Canny, CannyEdgePreprocessor } from '../../nodes/controlnet/preprocessors/canny.ts';
import { decodeU8, mismatches, opencvFixture } from './opencv-fixture.ts';

const fx = opencvFixture();

/** An IMAGE whose `* 255` truncation gives back exactly these bytes. */
function imageOf(m: U8Mat): ImageTensor {
  const t = tensor([1, m.h, m.w, m.c]);
  for (let i = 0; i < m.data.length; i++) t.data[i] = Math.fround((m.data[i] + 0.5) / 255);
  return t;
}

function u8Of(t: ImageTensor): U8Mat {
  const [, h, w, c] = t.shape;
  return { h, w, c, data: Uint8Array.from(t.data, (v) => Math.round(v * 255)) };
}

describe('CannyEdgePreprocessor: the aux pipeline (resize with pad, cv2.Canny, crop) against OpenCV', () => {
  for (const [key, value] of Object.entries(fx.pipelines)) {
    const m = /^canny_(\w)_(\d+)$/.exec(key);
    if (!m) continue;
    it(key, async () => {
      const src = decodeU8(fx.images[m[1]]);
      expect(imageToU8(imageOf(src), 0).data).toEqual(src.data);
      const [out] = (await CannyEdgePreprocessor.run({ image: imageOf(src), resolution: Number(m[2]) }, undefined as never)) as [
        ImageTensor,
      ];
      const want = decodeU8(value);
      expect(mismatches(u8Of(out), want)).toEqual({ count: 0, first: undefined });
      expect(want.data.some((v) => v === 255)).toBe(true);
    });
  }

  it('resizes the short side to the resolution and pads to 64 for the detector only', () => {
    const p = resizeImageWithPad({ h: 37, w: 53, c: 3, data: new Uint8Array(37 * 53 * 3) }, 64);
    expect([p.h, p.w, p.image.h, p.image.w]).toEqual([64, 92, 64, 128]);
    expect(removePad(p, p.image).w).toBe(92);
  });

  it('takes RGBA (over white), grey and 1×1 images', async () => {
    const rgba = tensor([1, 1, 1, 4], new Float32Array([1, 0, 0, 0]));
    const [a] = (await CannyEdgePreprocessor.run({ image: rgba, resolution: 64 }, undefined as never)) as [ImageTensor];
    expect(a.shape).toEqual([1, 64, 64, 3]);
    expect(a.data.every((v) => v === 0)).toBe(true);
    const grey = tensor([2, 20, 30, 1]);
    for (let i = 0; i < grey.data.length; i++) grey.data[i] = i % 30 < 15 ? 0 : 1;
    const [g] = (await CannyEdgePreprocessor.run({ image: grey, resolution: 64 }, undefined as never)) as [ImageTensor];
    expect(g.shape).toEqual([2, 64, 96, 3]);
    const direct = hwc3(
      removePad(resizeImageWithPad(imageToU8(grey, 1), 64), cvCanny(resizeImageWithPad(imageToU8(grey, 1), 64).image, 100, 200)),
    );
    expect(u8Of({ shape: [1, 64, 96, 3], data: g.data.subarray(64 * 96 * 3) }).data).toEqual(direct.data);
    expect(direct.data.some((v) => v === 255)).toBe(true);
  });

  it('refuses two-channel images and non-images with the node name', async () => {
    await expect(CannyEdgePreprocessor.run({ image: tensor([1, 4, 4, 2]) }, undefined as never)).rejects.toThrow(
      /CannyEdgePreprocessor.*2 channels/,
    );
    await expect(CannyEdgePreprocessor.run({ image: tensor([4, 4, 3]) }, undefined as never)).rejects.toThrow(
      /CannyEdgePreprocessor.*IMAGE/,
    );
  });
});

describe('Canny (ComfyUI core, kornia)', () => {
  /** 0 left of `at`, 0.6 at it, 1 right: an asymmetric edge, so one column is the strict maximum. */
  function step(h: number, w: number, at: number): ImageTensor {
    const t = tensor([1, h, w, 3]);
    for (let y = 0; y < h; y++) for (let x = at; x < w; x++) t.data.fill(x === at ? 0.6 : 1, (y * w + x) * 3, (y * w + x) * 3 + 3);
    return t;
  }
  const run = (image: ImageTensor, lo: number, hi: number): ImageTensor =>
    (Canny.run({ image, low_threshold: lo, high_threshold: hi }, undefined as never) as [ImageTensor])[0];

  it('marks a vertical edge one pixel wide, in every row, nothing elsewhere', () => {
    const out = run(step(12, 16, 8), 0.4, 0.8);
    expect(out.shape).toEqual([1, 12, 16, 3]);
    for (let y = 0; y < 12; y++) {
      const on = Array.from({ length: 16 }, (_, x) => out.data[(y * 16 + x) * 3]).flatMap((v, x) => (v === 1 ? [x] : []));
      expect(on).toHaveLength(1);
      expect(Math.abs(on[0] - 8)).toBeLessThanOrEqual(1);
    }
  });

  it('keeps nothing on a flat image (the magnitude floor √eps is not an edge)', () => {
    expect(run(tensor([1, 6, 6, 3]), 0.01, 0.02).data.every((v) => v === 0)).toBe(true);
  });

  it('keeps weak edges only when connected to a strong one (hysteresis)', () => {
    // a strong edge at 6 and a faint one at 16 (1 → 1.06 → 1.1): weak for thresholds (0.05, 0.8)
    const t = step(10, 24, 6);
    for (let y = 0; y < 10; y++) for (let x = 16; x < 24; x++) t.data.fill(x === 16 ? 1.06 : 1.1, (y * 24 + x) * 3, (y * 24 + x) * 3 + 3);
    const both = run(t, 0.05, 0.1);
    const strongOnly = run(t, 0.05, 0.8);
    const col = (img: ImageTensor, x0: number, x1: number): number => {
      let n = 0;
      for (let y = 0; y < 10; y++) for (let x = x0; x < x1; x++) n += img.data[(y * 24 + x) * 3];
      return n;
    };
    expect(col(both, 13, 19)).toBeGreaterThan(0);
    expect(col(strongOnly, 13, 19)).toBe(0);
    expect(col(strongOnly, 3, 9)).toBeGreaterThan(0);
  });

  it('refuses low > high as kornia does, and alpha images', () => {
    expect(() => run(step(4, 4, 2), 0.9, 0.2)).toThrow(/low_threshold/);
    expect(() => Canny.run({ image: tensor([1, 4, 4, 4]), low_threshold: 0.4, high_threshold: 0.8 }, undefined as never)).toThrow(
      /4 channels/,
    );
  });
});
