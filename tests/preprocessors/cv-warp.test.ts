import { describe, expect, it } from 'vitest';
import { cvResize } from '../../engine/image/preprocess/cv-resize.ts';
import { getAffineTransform, warpAffineLinear } from '../../engine/image/preprocess/cv-warp.ts';
import { poseBox, poseCrop, poseWarpMatrix, type Box } from '../../engine/image/preprocess/dwpose-decode.ts';
import { decodeU8, mismatches, opencvFixture } from './opencv-fixture.ts';

const fx = opencvFixture() as ReturnType<typeof opencvFixture> & {
  pose_crops: { image: string; box: Box; size: [number, number]; matrix: number[][]; crop: Parameters<typeof decodeU8>[0] }[];
};
const exact = { count: 0, first: undefined };

describe('cv2.resize INTER_LINEAR on uint8 (DWPose letterbox), byte for byte against OpenCV ' + fx.opencv, () => {
  for (const [key, value] of Object.entries(fx.ops)) {
    const m = /^linear_(\w)_(\d+)x(\d+)$/.exec(key);
    if (!m) continue;
    it(key, () => {
      expect(mismatches(cvResize(decodeU8(fx.images[m[1]]), Number(m[2]), Number(m[3]), 'linear'), decodeU8(value))).toEqual(exact);
    });
  }
});

describe("DWPose's crop of a person box: getAffineTransform and warpAffine against OpenCV " + fx.opencv, () => {
  for (const [i, c] of fx.pose_crops.entries()) {
    const [w, h] = c.size;
    it(`box ${i} [${c.box.join(', ')}] of image ${c.image} to ${w}x${h}`, () => {
      const { center, scale } = poseBox(c.box, w, h);
      const m = poseWarpMatrix(center, scale, w, h);
      // the matrix bit for bit: it comes from float32 points through OpenCV's LU in double
      expect(m).toEqual(c.matrix.flat());
      const img = decodeU8(fx.images[c.image]);
      const want = decodeU8(c.crop);
      expect(mismatches(warpAffineLinear(img, m, w, h), want)).toEqual(exact);
      // poseCrop normalises exactly those bytes
      const crop = poseCrop(img, c.box, w, h);
      const S = w * h;
      for (const p of [0, 17, S - 1]) expect(crop.data[S + p]).toBeCloseTo((want.data[p * 3 + 1] - 116.28) / 57.12, 6);
    });
  }

  it('refuses three collinear points and an empty output', () => {
    expect(() =>
      getAffineTransform(
        [
          [0, 0],
          [1, 1],
          [2, 2],
        ],
        [
          [0, 0],
          [1, 0],
          [0, 1],
        ],
      ),
    ).toThrow(/collinear/);
    expect(() => warpAffineLinear(decodeU8(fx.images.a), [1, 0, 0, 0, 1, 0], 0, 5)).toThrow(/at least 1/);
  });
});
