import { describe, expect, it } from 'vitest';
import {
  bilinearResize,
  decodeYolo,
  maskToImage,
  nms,
  processMask,
  scaleBoxes,
  type RawDetection,
} from '../../engine/models/detect/decode.ts';
import { Rng } from '../../engine/models/generate/rng.ts';

/** output0 [1, 4 + nc + nm, N] from rows of (cx, cy, w, h, scores..., coeffs...), channels first. */
function head(rows: number[][]): { data: Float32Array; channels: number; anchors: number } {
  const channels = rows[0].length;
  const anchors = rows.length;
  const data = new Float32Array(channels * anchors);
  rows.forEach((r, i) => r.forEach((v, c) => (data[c * anchors + i] = v)));
  return { data, channels, anchors };
}

// Boxes of 20×20 around (50, 50): b overlaps a with IoU 360 / 440 = 0.818; e overlaps a with IoU 280 / 520 = 0.538.
const ROWS = [
  [50, 50, 20, 20, 0.9, 0.1], // a: face
  [52, 50, 20, 20, 0.8, 0.05], // b: face, IoU 0.818 with a → suppressed
  [52, 50, 20, 20, 0.1, 0.75], // c: hand on b's box → kept (NMS is per class)
  [56, 50, 20, 20, 0.7, 0.0], // e: face, IoU 0.538 with a → kept at 0.7
  [10, 10, 8, 8, 0.5, 0.2], // f: exactly at the threshold → dropped (conf must exceed it)
  [90, 90, 8, 8, 0.2, 0.1], // g: below
];

describe('decodeYolo (ultralytics non_max_suppression)', () => {
  const h = head(ROWS);
  const boxes = (d: RawDetection[]): number[][] => d.map((x) => [...x.box]);

  it('filters by conf > threshold, keeps the best class, runs class-aware NMS at IoU 0.7, sorts by confidence', () => {
    const d = decodeYolo(h.data, h.channels, h.anchors, 2, { conf: 0.5, iou: 0.7 });
    expect(boxes(d)).toEqual([
      [40, 40, 60, 60],
      [42, 40, 62, 60],
      [46, 40, 66, 60],
    ]);
    expect(d.map((x) => x.cls)).toEqual([0, 1, 0]);
    expect(d.map((x) => x.conf)).toEqual([Math.fround(0.9), Math.fround(0.75), Math.fround(0.7)]);
  });

  it('a lower IoU threshold suppresses the 0.538 overlap too; max_det cuts the list', () => {
    expect(boxes(decodeYolo(h.data, h.channels, h.anchors, 2, { conf: 0.5, iou: 0.5 }))).toEqual([
      [40, 40, 60, 60],
      [42, 40, 62, 60],
    ]);
    expect(decodeYolo(h.data, h.channels, h.anchors, 2, { conf: 0.5, iou: 0.7, maxDet: 1 })).toHaveLength(1);
    expect(decodeYolo(h.data, h.channels, h.anchors, 2, { conf: 0.15, iou: 0.7 })).toHaveLength(5);
  });

  it('mask coefficients after the class scores travel with their box', () => {
    const s = head(ROWS.map((r, i) => [...r, i, -i]));
    const d = decodeYolo(s.data, s.channels, s.anchors, 2, { conf: 0.5, iou: 0.7 });
    expect(d.map((x) => Array.from(x.coeffs ?? []))).toEqual([
      [0, -0],
      [2, -2],
      [3, -3],
    ]);
  });

  it('refuses a head with fewer channels than 4 + classes', () => {
    expect(() => decodeYolo(new Float32Array(10), 5, 2, 2, { conf: 0.5, iou: 0.7 })).toThrow(/5 channels/);
  });

  it('nms keeps an IoU exactly at the threshold (torchvision suppresses only above it)', () => {
    // 10×10 boxes offset by 6 in x: IoU = 40 / 160 = 0.25 exactly
    const d: RawDetection[] = [
      { box: [0, 0, 10, 10], conf: 0.9, cls: 0 },
      { box: [6, 0, 16, 10], conf: 0.8, cls: 0 },
    ];
    expect(nms(d, 0.25)).toHaveLength(2);
    expect(nms(d, 0.24)).toHaveLength(1);
  });
});

describe('scaleBoxes (ultralytics scale_boxes)', () => {
  it('removes the letterbox padding and gain, then clips to the image', () => {
    // 768×512 image in a 640² input: gain 640/768, pad x round(-0.1) = 0, pad y round((640 - 426.67)/2 - 0.1) = 107
    const b = scaleBoxes([100, 200, 300, 400], [640, 640], [512, 768]);
    expect(b[0]).toBeCloseTo(120, 4);
    expect(b[1]).toBeCloseTo(93 * 1.2, 4);
    expect(b[2]).toBeCloseTo(360, 4);
    expect(b[3]).toBeCloseTo(293 * 1.2, 4);
    // (−10, 100 − 107, …) lies outside: clipped to the image
    expect(scaleBoxes([-10, 100, 700, 600], [640, 640], [512, 768])).toEqual([0, 0, 768, 512]);
  });
});

/** PyTorch's bilinear (align_corners=False) in float64, written from its definition. */
function refBilinear(src: Float64Array, h: number, w: number, oh: number, ow: number): Float64Array {
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    const sy = Math.max(((y + 0.5) * h) / oh - 0.5, 0);
    const y0 = Math.min(Math.floor(sy), h - 1);
    const y1 = Math.min(y0 + 1, h - 1);
    const ly = sy - y0;
    for (let x = 0; x < ow; x++) {
      const sx = Math.max(((x + 0.5) * w) / ow - 0.5, 0);
      const x0 = Math.min(Math.floor(sx), w - 1);
      const x1 = Math.min(x0 + 1, w - 1);
      const lx = sx - x0;
      out[y * ow + x] =
        (1 - ly) * ((1 - lx) * src[y0 * w + x0] + lx * src[y0 * w + x1]) + ly * ((1 - lx) * src[y1 * w + x0] + lx * src[y1 * w + x1]);
    }
  }
  return out;
}

describe('masks (process_mask, back to the image)', () => {
  it('bilinearResize follows PyTorch align_corners=False', () => {
    const rng = new Rng(3);
    const src = rng.normal(new Float32Array(7 * 9), 1);
    for (const [oh, ow] of [
      [21, 18],
      [4, 5],
      [7, 9],
    ]) {
      const got = bilinearResize(src, 7, 9, oh, ow);
      const want = refBilinear(Float64Array.from(src), 7, 9, oh, ow);
      for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(want[i], 5);
    }
  });

  it('processMask: coefficients · prototypes, zero outside the scaled box, upsampled, > 0', () => {
    const rng = new Rng(7);
    const nm = 4;
    const [mh, mw] = [16, 16];
    const protos = rng.normal(new Float32Array(nm * mh * mw), 1);
    const det: RawDetection = { box: [10, 14, 41, 50], conf: 0.9, cls: 0, coeffs: Float32Array.from([0.5, -1, 0.25, 2]) };
    const got = processMask(protos, nm, mh, mw, det, [64, 64]);
    // reference: products in float64, box on the 16² grid is [2.5, 3.5, 10.25, 12.5]
    const m = new Float64Array(mh * mw);
    for (let y = 0; y < mh; y++)
      for (let x = 0; x < mw; x++) {
        if (!(x >= 2.5 && x < 10.25 && y >= 3.5 && y < 12.5)) continue;
        let s = 0;
        for (let k = 0; k < nm; k++) s += det.coeffs![k] * protos[k * mh * mw + y * mw + x];
        m[y * mw + x] = s;
      }
    const up = refBilinear(m, mh, mw, 64, 64);
    let checked = 0;
    for (let i = 0; i < up.length; i++) {
      if (Math.abs(up[i]) < 1e-5) continue; // too close to 0 to decide
      expect(got[i]).toBe(up[i] > 0 ? 1 : 0);
      checked++;
    }
    expect(checked).toBeGreaterThan(500);
    // nothing survives outside the box's upsampled footprint
    for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) if (y < 14 || y > 53 || x < 10 || x > 45) expect(got[y * 64 + x]).toBe(0);
  });

  it('maskToImage cuts the letterbox padding (scale_masks geometry) and resizes to the image', () => {
    // 768×512 image letterboxed into 64×64: content rows 10.67 .. 53.33 → crop [10, 53)
    const mask = new Float32Array(64 * 64);
    for (let y = 20; y < 40; y++) for (let x = 16; x < 48; x++) mask[y * 64 + x] = 1;
    const got = maskToImage(mask, [64, 64], [512, 768]);
    const crop = new Float64Array(43 * 64);
    for (let y = 0; y < 43; y++) for (let x = 0; x < 64; x++) crop[y * 64 + x] = mask[(y + 10) * 64 + x];
    const want = refBilinear(crop, 43, 64, 512, 768);
    expect(got.length).toBe(512 * 768);
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    expect(worst).toBeLessThan(1e-5);
  });
});
