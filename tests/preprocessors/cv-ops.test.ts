import { describe, expect, it } from 'vitest';
import { hsvValue, otsuThreshold, rgbToGray, thresholdBinaryInv } from '../../engine/image/preprocess/cv-color.ts';
import { pyrDown, pyrUp } from '../../engine/image/preprocess/cv-pyramid.ts';
import { gaussianBlurF32, gaussianKernel } from '../../engine/image/preprocess/cv-gaussian.ts';
import { labLightness } from '../../engine/image/preprocess/detectors.ts';
import { channel, toF32, type F32Mat } from '../../engine/image/preprocess/mat.ts';
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

describe('GaussianBlur on float32, bit for bit against OpenCV ' + fx.opencv, () => {
  const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);
  /** Positions whose float32 bits differ (all of them would mean a shape or layout error). */
  function differing(got: F32Mat, want: F32Mat): { count: number; first?: string } {
    expect([got.h, got.w, got.c]).toEqual([want.h, want.w, want.c]);
    const [g, w] = [bits(got.data), bits(want.data)];
    let count = 0;
    let first: string | undefined;
    for (let i = 0; i < w.length; i++) {
      if (g[i] === w[i]) continue;
      first ??= `index ${i}: ${got.data[i]} vs ${want.data[i]}`;
      count++;
    }
    return { count, first };
  }
  for (const [key, value] of Object.entries(fx.ops)) {
    const m = /^gauss_(\w)_([\d.]+)$/.exec(key);
    if (!m) continue;
    it(key, () => {
      expect(differing(gaussianBlurF32(toF32(decodeU8(fx.images[m[1]])), Number(m[2])), decodeF32(value))).toEqual({
        count: 0,
        first: undefined,
      });
    });
  }
  for (const key of ['g1odd', 'g1even', 'gcol', 'grow']) {
    it(`${key}: one channel, ${key === 'gcol' || key === 'grow' ? 'a side of length 1' : 'rows of odd and even length'}`, () => {
      const src = decodeF32(fx.ops[`${key}_in`]);
      for (const s of ['0.3', '0.5', '2.0'])
        expect(differing(gaussianBlurF32(src, Number(s)), decodeF32(fx.ops[`${key}_${s}`]))).toEqual({ count: 0, first: undefined });
    });
  }
  it('getGaussianKernel taps over a sweep of sigmas', () => {
    for (const [key, value] of Object.entries(fx.ops)) {
      const m = /^gkernel_([\d.]+)$/.exec(key);
      if (!m) continue;
      const want = decodeF32(value);
      expect(Array.from(gaussianKernel(want.h, Number(m[1]))), key).toEqual(Array.from(want.data));
    }
  });
  it('refuses sigma <= 0', () => {
    expect(() => gaussianBlurF32(toF32(decodeU8(fx.images.a)), 0)).toThrow(/sigma must be positive/);
  });
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
