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

/** Share of bytes that differ, and the largest difference. */
function diff(a: U8Mat, b: U8Mat): { share: number; worst: number } {
  expect([a.h, a.w, a.c]).toEqual([b.h, b.w, b.c]);
  let n = 0;
  let worst = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i] - b.data[i]);
    if (d) n++;
    worst = Math.max(worst, d);
  }
  return { share: n / a.data.length, worst };
}

describe('comfyui_controlnet_aux detectors against the same pipelines run with OpenCV ' + fx.opencv, () => {
  for (const n of Object.keys(fx.images)) {
    for (const res of [64, 80]) {
      it(`binary, intensity, luminance (exact) ${n} @${res}`, () => {
        expect(mismatches(recolorDetector(img(n), 'luminance', 0.7, res), decodeU8(fx.pipelines[`luminance_${n}_${res}`]))).toEqual(exact);
        expect(mismatches(binaryDetector(img(n), 100, res), decodeU8(fx.pipelines[`binary_${n}_${res}`]))).toEqual(exact);
        expect(mismatches(recolorDetector(img(n), 'intensity', 1.3, res), decodeU8(fx.pipelines[`intensity_${n}_${res}`]))).toEqual(exact);
      });
      it(`scribble XDoG and standard lineart ${n} @${res} (float32 Gaussians: rare threshold flips only)`, () => {
        const x = diff(scribbleXdogDetector(img(n), 32, res), decodeU8(fx.pipelines[`xdog_${n}_${res}`]));
        expect(x.share).toBeLessThan(0.002);
        const l = diff(lineartStandardDetector(img(n), 6, 8, res), decodeU8(fx.pipelines[`lineart_standard_${n}_${res}`]));
        expect(l.worst).toBeLessThanOrEqual(1);
        expect(l.share).toBeLessThan(0.002);
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
