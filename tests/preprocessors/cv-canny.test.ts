import { describe, expect, it } from 'vitest';
import { cvCanny } from '../../engine/image/preprocess/cv-canny.ts';
import { channel } from '../../engine/image/preprocess/mat.ts';
import { decodeU8, mismatches, opencvFixture } from './opencv-fixture.ts';

const fx = opencvFixture();

describe('cv2.Canny, pixel for pixel against OpenCV ' + fx.opencv, () => {
  for (const [key, value] of Object.entries(fx.ops)) {
    const m = /^canny(1?)_(\w)_(\d+)_(\d+)$/.exec(key);
    if (!m) continue;
    it(key, () => {
      let src = decodeU8(fx.images[m[2]]);
      if (m[1] === '1') src = channel(src, 1);
      const got = cvCanny(src, Number(m[3]), Number(m[4]));
      const want = decodeU8(value);
      expect(mismatches(got, want)).toEqual({ count: 0, first: undefined });
      // a fixture without edges would prove nothing
      if (Number(m[4]) < 255) expect(want.data.some((v) => v === 255)).toBe(true);
    });
  }
});
