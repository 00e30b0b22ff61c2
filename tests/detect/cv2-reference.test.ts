import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { letterboxGeometry, letterboxImage, resizeLinearU8 } from '../../engine/models/detect/letterbox.ts';
import { maskToSegs } from '../../engine/models/detect/mask-to-segs.ts';
import { morphRect } from '../../engine/models/detect/segs-build.ts';

/** Values from OpenCV 4.6 written by scripts/fixtures/detect-cv2.py (inputs included). */
interface Fixture {
  resize: { h: number; w: number; dh: number; dw: number; src: string; dst: string }[];
  letterbox: { h: number; w: number; size: number; auto: boolean; src: string; dst: string; oh: number; ow: number; pad: number[] }[];
  morph: { h: number; w: number; src: string; cases: { k: number; dst: string }[] };
  mask_to_segs: {
    masks: { h: number; w: number; data: string }[];
    cases: {
      mask: number;
      crop_factor: number;
      bbox_fill: boolean;
      drop_size: number;
      contour_fill: boolean;
      segs: { bbox: number[]; crop: number[]; mask: string }[];
    }[];
  };
}

const fx = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/detect/cv2.json'), 'utf8')) as Fixture;
const u8 = (b: string): Uint8Array => new Uint8Array(Buffer.from(b, 'base64'));
const f32 = (b: string): Float32Array => {
  const buf = Buffer.from(b, 'base64');
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
};

describe('cv2.resize INTER_LINEAR (uint8)', () => {
  it.each(fx.resize.map((r) => [`${r.h}x${r.w} → ${r.dh}x${r.dw}`, r] as const))(
    '%s: within 1 of OpenCV on under 2%% of the values',
    (_, r) => {
      const got = resizeLinearU8(u8(r.src), r.h, r.w, 3, r.dh, r.dw);
      const want = u8(r.dst);
      expect(got.length).toBe(want.length);
      let off = 0;
      for (let i = 0; i < got.length; i++) {
        const d = Math.abs(got[i] - want[i]);
        expect(d).toBeLessThanOrEqual(1);
        if (d) off++;
      }
      expect(off / got.length).toBeLessThan(0.02);
    },
  );
});

describe('letterbox against cv2 + ultralytics geometry', () => {
  it.each(fx.letterbox.map((c) => [`${c.h}x${c.w} → ${c.size} auto=${c.auto}`, c] as const))('%s', (_, c) => {
    const geo = letterboxGeometry(c.h, c.w, { size: [c.size, c.size], auto: c.auto, stride: 32 });
    expect([geo.top, geo.bottom, geo.left, geo.right]).toEqual(c.pad);
    expect([geo.outH, geo.outW]).toEqual([c.oh, c.ow]);
    const { input } = letterboxImage({ shape: [1, c.h, c.w, 3], data: f32(c.src) }, { size: [c.size, c.size], auto: c.auto, stride: 32 });
    const want = u8(c.dst); // HWC BGR-agnostic (channels unchanged by resize/pad)
    const plane = c.oh * c.ow;
    for (let y = 0; y < c.oh; y++) {
      for (let x = 0; x < c.ow; x++) {
        for (let k = 0; k < 3; k++) {
          const got = Math.round(input[k * plane + y * c.ow + x] * 255);
          expect(Math.abs(got - want[(y * c.ow + x) * 3 + k])).toBeLessThanOrEqual(1);
        }
      }
    }
    // padding is exactly 114
    if (c.pad[0] > 0) expect(input[0]).toBe(Math.fround(114 / 255));
  });
});

describe('cv2.dilate / cv2.erode with a k×k box', () => {
  const { h, w } = fx.morph;
  it.each(fx.morph.cases.map((c) => [c.k, c] as const))('k = %i matches OpenCV exactly', (_, c) => {
    expect(Array.from(morphRect(f32(fx.morph.src), h, w, c.k))).toEqual(Array.from(f32(c.dst)));
  });
});

describe('MaskToSEGS (separate contours) against cv2.findContours', () => {
  it.each(fx.mask_to_segs.cases.map((c, i) => [i, c] as const))('case %i', (_, c) => {
    const m = fx.mask_to_segs.masks[c.mask];
    const segs = maskToSegs(
      { shape: [1, m.h, m.w], data: f32(m.data) },
      { combined: false, cropFactor: c.crop_factor, bboxFill: c.bbox_fill, dropSize: c.drop_size, contourFill: c.contour_fill },
    );
    expect(segs.shape).toEqual([m.h, m.w]);
    expect(segs.segments.map((s) => [...s.bbox])).toEqual(c.segs.map((s) => s.bbox));
    expect(segs.segments.map((s) => [...s.cropRegion])).toEqual(c.segs.map((s) => s.crop));
    segs.segments.forEach((s, i) => {
      expect(Array.from(s.croppedMask.data)).toEqual(Array.from(f32(c.segs[i].mask)));
      expect(s.label).toBe('A');
      expect(s.confidence).toBe(1);
    });
  });
});
