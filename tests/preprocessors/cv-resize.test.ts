import { describe, expect, it } from 'vitest';
import { cvResize, cvResizeCubicF64, type CvInterpolation } from '../../engine/image/preprocess/cv-resize.ts';
import { decodeF64, decodeU8, mismatches, opencvFixture } from './opencv-fixture.ts';

const fx = opencvFixture();
const methods: Record<string, CvInterpolation> = { area: 'area', areaup: 'area', cubic: 'cubic', nearest: 'nearest' };

describe('cv2.resize on uint8, byte for byte against OpenCV ' + fx.opencv, () => {
  for (const [key, value] of Object.entries(fx.ops)) {
    const m = /^(area|areaup|cubic|nearest)_(\w)_(\d+)x(\d+)$/.exec(key);
    if (!m) continue;
    it(key, () => {
      const src = decodeU8(fx.images[m[2]]);
      const got = cvResize(src, Number(m[3]), Number(m[4]), methods[m[1]]);
      expect(mismatches(got, decodeU8(value))).toEqual({ count: 0, first: undefined });
    });
  }
});

describe('cv2.resize INTER_CUBIC on float64', () => {
  it('matches OpenCV within float64 rounding', () => {
    const got = cvResizeCubicF64(decodeF64(fx.ops.noise_in), 41, 29);
    const want = decodeF64(fx.ops.cubic64);
    let worst = 0;
    for (let i = 0; i < want.data.length; i++) worst = Math.max(worst, Math.abs(got.data[i] - want.data[i]));
    expect(worst).toBeLessThan(1e-12);
  });
});
