import { describe, expect, it } from 'vitest';
import type { Seg, Segs } from '../../engine/image/segs.ts';
import { imageToU8, letterboxGeometry } from '../../engine/models/detect/letterbox.ts';
import { maskToSegs } from '../../engine/models/detect/mask-to-segs.ts';
import { parseNames, parseYoloMetadata } from '../../engine/models/detect/metadata.ts';
import {
  boxMask,
  dilateSegs,
  filterSegsByLabels,
  makeCropRegion,
  segsBitwiseAndMask,
  segsToCombinedMask,
} from '../../engine/models/detect/segs-build.ts';

describe('letterboxGeometry (ultralytics LetterBox)', () => {
  it('768×512 into 640²: r = 5/6, 640×427 resized, 213 rows of padding split 106 / 107', () => {
    const g = letterboxGeometry(512, 768, { size: [640, 640], auto: false, stride: 32 });
    expect(g.ratio).toBeCloseTo(640 / 768, 12);
    expect([g.resizedW, g.resizedH, g.top, g.bottom, g.left, g.right, g.outW, g.outH]).toEqual([640, 427, 106, 107, 0, 0, 640, 640]);
  });

  it('auto (dynamic exports): padding only to the next multiple of 32 (213 mod 32 = 21 → 10 / 11)', () => {
    const g = letterboxGeometry(512, 768, { size: [640, 640], auto: true, stride: 32 });
    expect([g.top, g.bottom, g.outW, g.outH]).toEqual([10, 11, 640, 448]);
  });

  it('Python rounding: round() sends halves to even, the ±0.1 puts an odd pixel bottom/right', () => {
    // 100×200 into 64²: r = 0.32, 64 × 32 resized, 32 rows of padding → 16 / 16
    expect(letterboxGeometry(100, 200, { size: [64, 64], auto: false, stride: 32 })).toMatchObject({
      resizedW: 64,
      resizedH: 32,
      top: 16,
      bottom: 16,
    });
    // 10×5 into 5²: r = 0.5, the 2.5 column width rounds to 2 (even), padding 3 → 1 left, 2 right
    expect(letterboxGeometry(10, 5, { size: [5, 5], auto: false, stride: 32 })).toMatchObject({
      resizedW: 2,
      resizedH: 5,
      left: 1,
      right: 2,
    });
  });

  it('enlarges images smaller than the input (scaleup, as predict does); scaleup=false keeps them', () => {
    expect(letterboxGeometry(100, 150, { size: [640, 640], auto: false, stride: 32 })).toMatchObject({
      resizedW: 640,
      resizedH: 427,
      outH: 640,
    });
    expect(letterboxGeometry(100, 150, { size: [640, 640], auto: false, stride: 32, scaleup: false })).toMatchObject({
      resizedW: 150,
      resizedH: 100,
      top: 270,
      bottom: 270,
      left: 245,
      right: 245,
    });
  });

  it('always fills the input exactly (non-auto) or a stride multiple (auto)', () => {
    for (const [h, w] of [
      [1, 1],
      [17, 900],
      [333, 777],
      [1024, 1024],
      [1080, 1920],
    ]) {
      const g = letterboxGeometry(h, w, { size: [640, 640], auto: false, stride: 32 });
      expect([g.outH, g.outW]).toEqual([640, 640]);
      const a = letterboxGeometry(h, w, { size: [640, 640], auto: true, stride: 32 });
      expect(a.outH % 32 === 0 || a.outH === 640).toBe(true);
      expect(a.outW % 32 === 0 || a.outW === 640).toBe(true);
    }
  });
});

describe('imageToU8 (tensor2pil, then RGB as ultralytics converts it)', () => {
  it('truncates 255·v (0.999 → 254), clips, drops alpha, repeats grey', () => {
    const rgba = { shape: [1, 1, 2, 4], data: Float32Array.from([0.999, 0.5, 1.2, 0.3, -0.1, 1, 0.00392, 0]) };
    expect(Array.from(imageToU8(rgba).data)).toEqual([254, 127, 255, 0, 255, 0]);
    expect(Array.from(imageToU8({ shape: [1, 1, 1, 1], data: Float32Array.from([0.5]) }).data)).toEqual([127, 127, 127]);
    expect(() => imageToU8({ shape: [1, 1, 1, 2], data: new Float32Array(2) })).toThrow(/2 channels/);
  });
});

describe('ultralytics metadata', () => {
  it("reads the exporter's str(dict) of names, either quote style and escapes", () => {
    expect(parseNames("{0: 'face', 1: 'hand'}")).toEqual(['face', 'hand']);
    expect(parseNames(`{0: "person's face", 1: 'a\\'b', 2: 'tab\\tx'}`)).toEqual(["person's face", "a'b", 'tab\tx']);
    expect(parseNames("['a', 'b']")).toEqual(['a', 'b']);
    expect(() => parseNames("{0: 'a', 2: 'c'}")).toThrow(/class 1 has no name/);
    expect(() => parseNames('face, hand')).toThrow(/neither a dict nor a list/);
  });

  it('imgsz, stride, task; a file without names is refused with the export hint', () => {
    const m = parseYoloMetadata(
      new Map([
        ['names', "{0: 'x'}"],
        ['imgsz', '[640, 480]'],
        ['stride', '32'],
        ['task', 'segment'],
      ]),
      'm.onnx',
    );
    expect(m).toMatchObject({ names: ['x'], imgsz: [640, 480], stride: 32, task: 'segment' });
    expect(() => parseYoloMetadata(new Map(), 'm.onnx')).toThrow(/m\.onnx: no 'names'.*yolo export/);
  });
});

/** The Impact Pack's make_crop_region worked by hand. */
describe('makeCropRegion', () => {
  it('inside the image: bbox × crop_factor about its centre, int() truncation', () => {
    // bbox 100..150 × 80..120, ×2 → 100 × 80 about (125, 100): x1 = int(75), y1 = int(60)
    expect(makeCropRegion(512, 512, [100, 80, 150, 120], 2)).toEqual([75, 60, 175, 140]);
    // fractional bbox: w 115.2 × 3 = 345.6; centre 166.4 → int(-6.4) = -6 < 0 → [0, int(345.6)]
    expect(makeCropRegion(512, 512, [108.8, 89.6, 224, 230.4], 3)).toEqual([0, 0, 345, 422]);
  });

  it('past the right/bottom edge the region is shifted back inside; larger than the image it is cut', () => {
    // 20 wide ×3 = 60 about x = 500: 470 + 60 > 512 → [452, 512]; about y = 20: int(−10) < 0 → [0, 60]
    expect(makeCropRegion(512, 512, [490, 10, 510, 30], 3)).toEqual([452, 0, 512, 60]);
    expect(makeCropRegion(100, 80, [10, 10, 90, 70], 3)).toEqual([0, 0, 100, 80]);
  });

  it('crop_min_size raises small regions', () => {
    expect(makeCropRegion(512, 512, [200, 200, 210, 210], 1, 64)).toEqual([173, 173, 237, 237]);
  });
});

const seg = (label: string, mask: number[], crop: [number, number, number, number], w: number): Seg => ({
  croppedMask: { shape: [mask.length / w, w], data: Float32Array.from(mask) },
  confidence: 0.9,
  cropRegion: crop,
  bbox: crop,
  label,
});

describe('SEGS operations', () => {
  const segs: Segs = {
    shape: [4, 5],
    segments: [
      seg('face', [1, 0.5, 0.2, 1], [0, 0, 2, 2], 2),
      seg('left_eye', [0.6, 1, 1, 0.3], [1, 1, 3, 3], 2),
      seg('hand', [1], [4, 3, 5, 4], 1),
    ],
  };

  it('label filter: listed labels (trimmed), all, and the eyes alias; the rest is returned too', () => {
    expect(filterSegsByLabels(segs, 'face, hand').kept.segments.map((s) => s.label)).toEqual(['face', 'hand']);
    expect(filterSegsByLabels(segs, 'eyes').kept.segments.map((s) => s.label)).toEqual(['left_eye']);
    expect(filterSegsByLabels(segs, 'eyes').rest.segments.map((s) => s.label)).toEqual(['face', 'hand']);
    expect(filterSegsByLabels(segs, 'hand,all').kept.segments).toHaveLength(3);
    expect(filterSegsByLabels(segs, 'person').kept.segments).toHaveLength(0);
  });

  it('segs_to_combined_mask ORs the masks as truncated bytes: 0.5 → 127, 0.6 | 0.5 → 153 | 127', () => {
    const m = segsToCombinedMask(segs);
    expect(m.shape).toEqual([1, 4, 5]);
    const at = (y: number, x: number): number => Math.round(m.data[y * 5 + x] * 255);
    expect(at(0, 0)).toBe(255);
    expect(at(0, 1)).toBe(127);
    expect(at(1, 0)).toBe(51);
    expect(at(1, 1)).toBe(255 | 153); // 1 | 0.6
    expect(at(1, 2)).toBe(255);
    expect(at(2, 2)).toBe(Math.trunc(Math.fround(0.3 * 255)));
    expect(at(3, 4)).toBe(255);
    expect(at(3, 0)).toBe(0);
  });

  it('segs_bitwise_and_mask ANDs each cropped mask with the mask bytes under it', () => {
    const mask = { shape: [1, 4, 5], data: new Float32Array(20).fill(0.5) };
    const out = segsBitwiseAndMask(segs, mask);
    expect(Array.from(out.segments[0].croppedMask.data).map((v) => Math.round(v * 255))).toEqual([255 & 127, 127 & 127, 51 & 127, 127]);
  });

  it('dilate_segs dilates (k > 0) or erodes (k < 0) each cropped mask', () => {
    const one: Segs = {
      shape: [5, 5],
      segments: [seg('A', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 5, 5], 5)],
    };
    expect(dilateSegs(one, 3).segments[0].croppedMask.data.reduce((a, b) => a + b, 0)).toBe(9);
    expect(dilateSegs(dilateSegs(one, 3), -3).segments[0].croppedMask.data.reduce((a, b) => a + b, 0)).toBe(1);
  });

  it('a bbox mask is cv2.rectangle of the truncated corners, both inclusive', () => {
    const m = boxMask(6, 6, [1.7, 2.2, 3.9, 4.99]);
    const rows = [];
    for (let y = 0; y < 6; y++) rows.push(Array.from(m.subarray(y * 6, y * 6 + 6)).join(''));
    expect(rows).toEqual(['000000', '000000', '011100', '011100', '011100', '000000']);
    // a zero-area box still draws its one pixel, as cv2 does
    expect(boxMask(4, 4, [2, 2, 2, 2]).reduce((a, b) => a + b, 0)).toBe(1);
  });
});

describe('MaskToSEGS combined', () => {
  const mask = new Float32Array(8 * 10);
  mask[2 * 10 + 3] = 1;
  mask[5 * 10 + 6] = 0.5;

  it('one SEG around every non-zero pixel; its bbox keeps the inclusive max corner (np.max of the indices)', () => {
    const s = maskToSegs(
      { shape: [1, 8, 10], data: mask },
      { combined: true, cropFactor: 1, bboxFill: false, dropSize: 10, contourFill: false },
    );
    expect(s.segments).toHaveLength(1);
    expect(s.segments[0].bbox).toEqual([3, 2, 6, 5]);
    // 3 × 3 about (4.5, 3.5): int(3.0) = 3 → [3, 6)
    expect(s.segments[0].cropRegion).toEqual([3, 2, 6, 5]);
    expect(s.segments[0].croppedMask.shape).toEqual([3, 3]);
    expect(s.segments[0].croppedMask.data[0]).toBe(1);
  });

  it('bbox_fill fills with the bbox in image coordinates inside the cropped mask, as the Impact Pack does', () => {
    const s = maskToSegs(
      { shape: [8, 10], data: mask },
      { combined: true, cropFactor: 2, bboxFill: true, dropSize: 1, contourFill: false },
    );
    const [h, w] = s.segments[0].croppedMask.shape;
    const d = s.segments[0].croppedMask.data;
    // 6 × 6 about (4.5, 3.5): [int(1.5), int(0.5)] → [1, 0, 7, 6]; the fill is rows 2..4, cols 3..5 of the crop, not of the image
    expect(s.segments[0].cropRegion).toEqual([1, 0, 7, 6]);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (y >= 2 && y < 5 && x >= 3 && x < 6) expect(d[y * w + x]).toBe(1);
    // crop-relative filling would have set column 2 (image column 3) as well
    expect(d[3 * w + 2]).toBe(0);
  });

  it('an empty mask gives no SEG; an all-ones mask gives one covering the image', () => {
    const o = { combined: false, cropFactor: 3, bboxFill: false, dropSize: 10, contourFill: false };
    expect(maskToSegs({ shape: [1, 8, 10], data: new Float32Array(80) }, o).segments).toHaveLength(0);
    const full = maskToSegs({ shape: [1, 40, 30], data: new Float32Array(1200).fill(1) }, o);
    expect(full.segments.map((x) => [...x.cropRegion])).toEqual([[0, 0, 30, 40]]);
    expect(full.segments[0].croppedMask.data.every((v) => v === 1)).toBe(true);
  });
});
