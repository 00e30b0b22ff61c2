import { describe, expect, it } from 'vitest';
import { hsvValue, otsuThreshold, rgbToGray, thresholdBinaryInv } from '../../engine/image/preprocess/cv-color.ts';
import { pyrDown, pyrUp } from '../../engine/image/preprocess/cv-pyramid.ts';
import { gaussianBlurF32 } from '../../engine/image/preprocess/cv-gaussian.ts';
import { labLightness } from '../../engine/image/preprocess/detectors.ts';
import { channel, toF32 } from '../../engine/image/preprocess/mat.ts';
import { decodeF32, decodeU8, mismatches, opencvFixture } from './opencv-fixture.ts';

const fx = opencvFixture();
const names = Object.keys(fx.images);

describe('OpenCV uint8 ops, byte for byte against OpenCV ' + fx.opencv, () => {
  for (const n of names) {
    const img = decodeU8(fx.images[n]);
    it(`pyrUp/pyrDown ${n}`, () => {
      expect(mismatches(pyrUp(img), decodeU8(fx.ops[`pyrup_${n}`]))).toEqual({ count: 0, first: undefined });
      expect(mismatches(pyrDown(img), decodeU8(fx.ops[`pyrdown_${n}`]))).toEqual({ count: 0, first: undefined });
    });
    it(`RGB2GRAY, HSV's V, Otsu ${n}`, () => {
      const g = rgbToGray(img);
      expect(mismatches(g, decodeU8(fx.ops[`gray_${n}`]))).toEqual({ count: 0, first: undefined });
      expect(mismatches(hsvValue(img), channel(decodeU8(fx.ops[`hsv_${n}`]), 2))).toEqual({ count: 0, first: undefined });
      const t = otsuThreshold(g);
      expect(t).toBe(fx.ops[`otsu_t_${n}`]);
      expect(mismatches(thresholdBinaryInv(g, t), decodeU8(fx.ops[`otsu_${n}`]))).toEqual({ count: 0, first: undefined });
    });
  }
});

describe('GaussianBlur on float32 against OpenCV', () => {
  for (const [key, value] of Object.entries(fx.ops)) {
    const m = /^gauss_(\w)_([\d.]+)$/.exec(key);
    if (!m) continue;
    it(key, () => {
      const got = gaussianBlurF32(toF32(decodeU8(fx.images[m[1]])), Number(m[2]));
      const want = decodeF32(value);
      expect([got.h, got.w, got.c]).toEqual([want.h, want.w, want.c]);
      let worst = 0;
      for (let i = 0; i < want.data.length; i++) worst = Math.max(worst, Math.abs(got.data[i] - want.data[i]));
      expect(worst).toBeLessThan(255e-4);
    });
  }
});

describe("BGR2LAB's L on uint8 against OpenCV", () => {
  for (const n of names) {
    it(n, () => {
      const got = labLightness(decodeU8(fx.images[n]));
      const want = channel(decodeU8(fx.ops[`lab_${n}`]), 0);
      expect(mismatches(got, want)).toEqual({ count: 0, first: undefined });
    });
  }
});
