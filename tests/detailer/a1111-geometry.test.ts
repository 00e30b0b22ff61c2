import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  a1111MaskBlur,
  applyOverlay,
  cropPlanar,
  expandCropRegion,
  getCropRegion,
  resizeImage,
  type CropBox,
  type PlanarU8,
} from '../../engine/sampling/detail/a1111-inpaint.ts';
import { boxMaskU8 } from '../../engine/sampling/detail/adetailer-masks.ts';

/**
 * A1111's inpaint geometry against values from OpenCV 4.6 and Pillow 9.4 (scripts/fixtures/adetailer-a1111.py
 * → tests/fixtures/adetailer/a1111.json): the mask blur, get_crop_region + expand_crop_region,
 * resize_image's resize-and-fill (with Pillow's bicubic zero-box bands) and apply_overlay's integer
 * compositing.
 */

interface Fixture {
  h: number;
  w: number;
  mask: number[];
  orig: number[];
  blur4: number[];
  blur1: number[];
  crop: CropBox;
  expanded: CropBox;
  expanded_tall: CropBox;
  expanded_wide: CropBox;
  resize2: number[];
  resize2_tall: number[];
  resize2_wide: number[];
  proc: number[];
  overlay: number[];
  rect: number[];
}

const fx = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/adetailer/a1111.json'), 'utf8')) as Fixture;
const { h, w } = fx;
const orig: PlanarU8 = { c: 3, h, w, data: Uint8Array.from(fx.orig) };

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('A1111 inpaint geometry', () => {
  it('box mask: PIL rectangle([20.6, 10.2, 37.9, 25.5]) — corners truncated, both inclusive', () => {
    expect(Array.from(boxMaskU8(h, w, [20.6, 10.2, 37.9, 25.5]))).toEqual(fx.rect);
  });

  it('mask blur: cv2.GaussianBlur (k,1) then (1,k), k = 2⌊2.5b + 0.5⌋ + 1, within 1 of OpenCV’s fixed point', () => {
    const m = Uint8Array.from(fx.mask);
    const b4 = a1111MaskBlur(m, h, w, 4);
    const b1 = a1111MaskBlur(m, h, w, 1);
    expect(maxDiff(b4, fx.blur4)).toBeLessThanOrEqual(1);
    expect(maxDiff(b1, fx.blur1)).toBeLessThanOrEqual(1);
    // the blur reaches as far as OpenCV's (the crop region depends on the non-zero extent)
    expect(getCropRegion(b4, h, w, 8)).toEqual(getCropRegion(Uint8Array.from(fx.blur4), h, w, 8));
  });

  it('get_crop_region with padding, expand_crop_region to the processing aspect (inside, tall, wide, clamped)', () => {
    const b = Uint8Array.from(fx.blur4);
    const cr = getCropRegion(b, h, w, 8);
    expect(cr).toEqual(fx.crop);
    expect(expandCropRegion(fx.crop, 96, 64, w, h)).toEqual(fx.expanded);
    expect(expandCropRegion([50, 5, 60, 45], 64, 64, w, h)).toEqual(fx.expanded_tall);
    expect(expandCropRegion([0, 40, 60, 47], 64, 64, w, h)).toEqual(fx.expanded_wide);
    expect(getCropRegion(new Uint8Array(h * w), h, w, 8)).toBeUndefined();
  });

  it('resize_image mode 2 (resize and fill): PIL lanczos plus the bicubic zero-box bands, byte for byte', () => {
    expect(Array.from(resizeImage(2, cropPlanar(orig, fx.expanded), 96, 64).data)).toEqual(fx.resize2);
    expect(Array.from(resizeImage(2, cropPlanar(orig, [10, 0, 40, 48]), 64, 64).data)).toEqual(fx.resize2_tall);
    expect(Array.from(resizeImage(2, cropPlanar(orig, [0, 10, 48, 30]), 64, 64).data)).toEqual(fx.resize2_wide);
  });

  it('apply_overlay: crop-and-resize into paste_to, Pillow’s RGBa round trip and alpha_composite, byte for byte', () => {
    const proc: PlanarU8 = { c: 3, h: 32, w: 40, data: Uint8Array.from(fx.proc) };
    const [x1, y1, x2, y2] = fx.expanded;
    const out = applyOverlay(orig, Uint8Array.from(fx.blur4), proc, [x1, y1, x2 - x1, y2 - y1]);
    expect(Array.from(out.data)).toEqual(fx.overlay);
    // where the blurred mask is 0 the original bytes come back
    for (let p = 0; p < h * w; p++)
      if (fx.blur4[p] === 0) for (let c = 0; c < 3; c++) expect(out.data[c * h * w + p]).toBe(orig.data[c * h * w + p]);
  });
});
