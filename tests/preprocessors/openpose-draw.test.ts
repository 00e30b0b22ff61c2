import { describe, expect, it } from 'vitest';
import { ellipse2Poly, type Point } from '../../engine/image/preprocess/cv-draw.ts';
import { drawBodyPose, drawFacePose, drawHandPose, type Keypoint } from '../../engine/image/preprocess/openpose-draw.ts';
import type { U8Mat } from '../../engine/image/preprocess/mat.ts';
import { decodeU8, mismatches, opencvFixture } from './opencv-fixture.ts';

interface PoseCase {
  h: number;
  w: number;
  body: ([number, number] | null)[];
  face: [number, number][];
  normalized: ([number, number] | null)[];
  canvas: Parameters<typeof decodeU8>[0];
  canvas_norm: Parameters<typeof decodeU8>[0];
  hand: ([number, number] | null)[];
  canvas_hand: Parameters<typeof decodeU8>[0];
  polys: [[number, number], [number, number], number, [number, number][]][];
}

const cases = (opencvFixture() as unknown as { pose: PoseCase[] }).pose;
const kp = (p: [number, number] | null): Keypoint | null => (p ? { x: p[0], y: p[1] } : null);
const blank = (h: number, w: number): U8Mat => ({ h, w, c: 3, data: new Uint8Array(h * w * 3) });

describe('OpenPose skeleton drawing, byte for byte against OpenCV', () => {
  cases.forEach((c, i) => {
    it(`case ${i}: ${c.w}x${c.h}, ${c.body.filter(Boolean).length} joints, 20 face points`, () => {
      for (const [center, axes, angle, want] of c.polys) {
        expect(ellipse2Poly(center as Point, axes as Point, angle, 0, 360, 1)).toEqual(want);
      }
      const canvas = blank(c.h, c.w);
      drawBodyPose(canvas, c.body.map(kp));
      drawFacePose(canvas, c.face.map(kp));
      const want = decodeU8(c.canvas);
      expect(mismatches(canvas, want)).toEqual({ count: 0, first: undefined });
      expect(want.data.some((v) => v > 0)).toBe(true);
      const norm = blank(c.h, c.w);
      drawBodyPose(norm, c.normalized.map(kp));
      expect(mismatches(norm, decodeU8(c.canvas_norm))).toEqual({ count: 0, first: undefined });
      // hands: 2-pixel bones (OpenCV's ThickLine) in the HSV wheel's colours, red joints, points off the canvas included
      const hand = blank(c.h, c.w);
      drawHandPose(hand, c.hand.map(kp));
      expect(mismatches(hand, decodeU8(c.canvas_hand))).toEqual({ count: 0, first: undefined });
    });
  });
});
