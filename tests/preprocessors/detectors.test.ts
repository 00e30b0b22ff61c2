import { describe, expect, it } from 'vitest';
import {
  binaryDetector,
  colorDetector,
  lineartStandardDetector,
  recolorDetector,
  scribbleXdogDetector,
  tileDetector,
} from '../../engine/image/preprocess/detectors.ts';
import type { U8Mat } from '../../engine/image/preprocess/mat.ts';
import { decodeU8, mismatches, opencvFixture } from './opencv-fixture.ts';

const fx = opencvFixture();
const img = (n: string): U8Mat => decodeU8(fx.images[n]);
const exact = { count: 0, first: undefined };

describe('comfyui_controlnet_aux detectors against the same pipelines run with OpenCV ' + fx.opencv, () => {
  for (const n of Object.keys(fx.images)) {
    for (const res of [64, 80]) {
      it(`binary, intensity, luminance (exact) ${n} @${res}`, () => {
        expect(mismatches(recolorDetector(img(n), 'luminance', 0.7, res), decodeU8(fx.pipelines[`luminance_${n}_${res}`]))).toEqual(exact);
        expect(mismatches(binaryDetector(img(n), 100, res), decodeU8(fx.pipelines[`binary_${n}_${res}`]))).toEqual(exact);
        expect(mismatches(recolorDetector(img(n), 'intensity', 1.3, res), decodeU8(fx.pipelines[`intensity_${n}_${res}`]))).toEqual(exact);
      });
      it(`scribble XDoG and standard lineart (exact) ${n} @${res}`, () => {
        for (const [thr, key] of [
          [32, 'xdog'],
          [8, 'xdog8'],
        ] as const)
          expect(mismatches(scribbleXdogDetector(img(n), thr, res), decodeU8(fx.pipelines[`${key}_${n}_${res}`]))).toEqual(exact);
        for (const [sigma, thr, key] of [
          [6, 8, 'lineart_standard'],
          [2, 4, 'lineart_standard_2_4'],
        ] as const)
          expect(mismatches(lineartStandardDetector(img(n), sigma, thr, res), decodeU8(fx.pipelines[`${key}_${n}_${res}`]))).toEqual(exact);
      });
    }
    it(`color and tile ${n} (exact)`, () => {
      expect(mismatches(colorDetector(img(n), 64), decodeU8(fx.pipelines[`color_${n}`]))).toEqual(exact);
      const t = fx.pipelines[`tile_${n}`];
      if (t) expect(mismatches(tileDetector(img(n), 3), decodeU8(t))).toEqual(exact);
    });
  }

  it('refuses images too small for the tile and colour grids with a reason', () => {
    const tiny: U8Mat = { h: 1, w: 1, c: 3, data: new Uint8Array(3) };
    expect(() => tileDetector(tiny, 3)).toThrow(/too small/);
    expect(colorDetector(tiny, 64).w).toBe(64);
  });
});
