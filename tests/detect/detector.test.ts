import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageTensor } from '../../engine/core/tensor.ts';
import {
  fixedYoloGraph,
  makeRandomYolo,
  makeTinyFaceDetectors,
  tinyFaceDetections,
  withMetadata,
  yoloMetadata,
} from '../../engine/models/detect/generate.ts';
import { readOnnxInfo } from '../../engine/models/detect/onnx-info.ts';
import { YoloSegsDetector } from '../../engine/models/detect/segs-detector.ts';
import { openYolo, runYolo } from '../../engine/models/detect/yolo.ts';
import { PartsRuntime } from '../../engine/models/runtime/parts-runtime.ts';
import { GraphBuilder } from '../../engine/onnx/graph.ts';

/**
 * The detectors end to end through ONNX Runtime on generated models: the deterministic weft-tiny-face
 * pair (known boxes and elliptical masks), random YOLO-layout heads (the real decode path), and the
 * refusals (PyTorch file, not ONNX, wrong output shapes).
 */

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
let dir: string;
let rt: PartsRuntime;
let bboxFile: string;
let segmFile: string;

function picture(h: number, w: number): ImageTensor {
  const data = new Float32Array(h * w * 3);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 7919) % 255) / 255;
  return { shape: [1, h, w, 3], data };
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-detect-'));
  [bboxFile, segmFile] = makeTinyFaceDetectors(path.join(dir, 'ultralytics'));
  rt = new PartsRuntime({ cacheDir: path.join(dir, 'cache'), device: 'cpu', log: quiet });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const detector = (kind: 'bbox' | 'segm', file: string): YoloSegsDetector => new YoloSegsDetector(kind, openYolo(file), rt.fileRunner(file));
const opts = { threshold: 0.5, dilation: 0, cropFactor: 3, dropSize: 10 };

describe('weft-tiny-face (deterministic)', () => {
  it('the file carries the exporter metadata and the ultralytics IO names', () => {
    const info = readOnnxInfo(bboxFile);
    expect(info.metadata.get('names')).toBe("{0: 'face', 1: 'hand'}");
    expect(info.inputs).toEqual([{ name: 'images', elemType: 1, dims: [1, 3, 640, 640] }]);
    expect(info.outputs.map((o) => o.name)).toEqual(['output0']);
    expect(readOnnxInfo(segmFile).outputs.map((o) => o.name)).toEqual(['output0', 'output1']);
  });

  it('finds the two faces and the hand where tinyFaceDetections says, for any picture', async () => {
    const d = detector('bbox', bboxFile);
    for (const [h, w] of [
      [512, 512],
      [512, 768],
    ]) {
      const segs = await d.detect(picture(h, w), opts);
      const want = tinyFaceDetections(w, h, 0.5);
      expect(segs.shape).toEqual([h, w]);
      expect(segs.segments.map((s) => s.label)).toEqual(want.map((x) => x.label));
      segs.segments.forEach((s, i) => {
        s.bbox.forEach((v, k) => expect(v).toBeCloseTo(want[i].box[k], 3));
        expect(s.confidence).toBeCloseTo(want[i].confidence, 6);
      });
    }
    // on 512²: gain 1.25, no padding; the first face is (208 ± 72, 200 ± 88) / 1.25
    expect(tinyFaceDetections(512, 512)[0].box.map((v) => Math.round(v * 10) / 10)).toEqual([108.8, 89.6, 224, 230.4]);
  });

  it('bbox SEG: crop region by make_crop_region, mask = the box (truncated corners) dilated by a 10×10 max filter', async () => {
    const segs = await detector('bbox', bboxFile).detect(picture(512, 512), { ...opts, dilation: 10 });
    const s = segs.segments[0];
    expect(s.cropRegion).toEqual([0, 0, 345, 422]);
    expect(s.croppedMask.shape).toEqual([422, 345]);
    expect(s.croppedImage?.shape).toEqual([1, 422, 345, 3]);
    // rows 89..230 and columns 108..224 grow by 4 up/left and 5 down/right (anchor at k/2)
    let sum = 0;
    let inside = true;
    s.croppedMask.data.forEach((v, i) => {
      sum += v;
      const y = Math.floor(i / 345);
      const x = i % 345;
      if (v && (y < 85 || y > 235 || x < 104 || x > 229)) inside = false;
    });
    expect(inside).toBe(true);
    expect(sum).toBe(151 * 126);
  });

  it('threshold, label filter and drop_size', async () => {
    const d = detector('bbox', bboxFile);
    const img = picture(512, 512);
    expect((await d.detect(img, { ...opts, threshold: 0.7 })).segments.map((s) => s.confidence.toFixed(2))).toEqual(['0.92', '0.81']);
    // at 0.1 the faint face joins; the duplicate box on the first face stays suppressed by NMS
    expect((await d.detect(img, { ...opts, threshold: 0.1 })).segments).toHaveLength(4);
    expect((await d.detect(img, { ...opts, labels: 'hand' })).segments.map((s) => s.label)).toEqual(['hand']);
    // second face and hand are 76.8 px wide: drop_size 80 removes them
    expect((await d.detect(img, { ...opts, dropSize: 80 })).segments.map((s) => s.bbox[2] - s.bbox[0])).toEqual([expect.closeTo(115.2, 3)]);
  });

  it('segm SEG: the model mask (an ellipse in the box), zero outside the box; detect_combined is their union', async () => {
    const d = detector('segm', segmFile);
    const img = picture(512, 512);
    const segs = await d.detect(img, opts);
    expect(segs.segments).toHaveLength(3);
    for (const s of segs.segments) {
      const [cx1, cy1] = s.cropRegion;
      const [, mw] = s.croppedMask.shape;
      const [bx1, by1, bx2, by2] = s.bbox;
      let area = 0;
      s.croppedMask.data.forEach((v, i) => {
        area += v;
        const x = (i % mw) + cx1;
        const y = Math.floor(i / mw) + cy1;
        // two bilinear resizes (prototype grid → input → image) soften the edge by up to ~2.5 px
        if (v > 0) expect(x >= bx1 - 3 && x <= bx2 + 2 && y >= by1 - 3 && y <= by2 + 2).toBe(true);
      });
      const ellipse = (Math.PI / 4) * (bx2 - bx1) * (by2 - by1);
      expect(Math.abs(area - ellipse) / ellipse).toBeLessThan(0.06);
    }
    const combined = await d.detectCombined(img, { threshold: 0.5, dilation: 0 });
    expect(combined.shape).toEqual([1, 512, 512]);
    let expected = 0;
    const union = new Float32Array(512 * 512);
    for (const s of segs.segments) {
      const [x1, y1, x2] = s.cropRegion;
      const w = x2 - x1;
      s.croppedMask.data.forEach((v, i) => {
        const p = (Math.floor(i / w) + y1) * 512 + (i % w) + x1;
        if (v > 0) union[p] = 1;
      });
    }
    union.forEach((v) => (expected += v));
    let got = 0;
    combined.data.forEach((v) => (got += v > 0 ? 1 : 0));
    expect(got).toBe(expected);
  });

  it('an image smaller than the model input is enlarged (as ultralytics predicts) and the boxes land inside it', async () => {
    const segs = await detector('bbox', bboxFile).detect(picture(40, 60), { ...opts, dropSize: 1, cropFactor: 1 });
    const want = tinyFaceDetections(60, 40);
    expect(segs.segments.length).toBe(want.filter((x) => x.box[2] - x.box[0] > 1 && x.box[3] - x.box[1] > 1).length);
    for (const s of segs.segments) {
      expect(s.bbox[0]).toBeGreaterThanOrEqual(0);
      expect(s.bbox[2]).toBeLessThanOrEqual(60);
      expect(s.bbox[3]).toBeLessThanOrEqual(40);
    }
  });

  it('a zero-area box is dropped (drop_size ≥ 1), not a crash', async () => {
    const file = path.join(dir, 'zero.onnx');
    const anchors = [
      { cx: 100, cy: 100, w: 0, h: 50, cls: 0, conf: 0.9 },
      { cx: 300, cy: 300, w: 60, h: 60, cls: 0, conf: 0.8 },
    ];
    fs.writeFileSync(file, withMetadata(fixedYoloGraph(anchors, 1, false).toBuffer(), yoloMetadata(['face'], 'detect', 640)));
    const segs = await detector('bbox', file).detect(picture(640, 640), { ...opts, dropSize: 1 });
    expect(segs.segments.map((s) => [...s.bbox])).toEqual([[270, 270, 330, 330]]);
  });
});

describe('random YOLO-layout heads (real decode path)', () => {
  it.each([false, true])('segment=%s: detections inside the image, above the threshold, sorted, NMS-clean per class', async (segment) => {
    const file = makeRandomYolo(path.join(dir, segment ? 'rand-seg.onnx' : 'rand.onnx'), { seed: 3, segment });
    const model = openYolo(file);
    expect(model.segmentation).toBe(segment);
    expect(model.inputSize).toEqual([128, 128]);
    const dets = await runYolo(model, rt.fileRunner(file), picture(96, 160), { conf: 0.3 });
    expect(dets.length).toBeGreaterThan(0);
    for (let i = 0; i < dets.length; i++) {
      const d = dets[i];
      expect(d.confidence).toBeGreaterThan(0.3);
      if (i) expect(d.confidence).toBeLessThanOrEqual(dets[i - 1].confidence);
      expect(d.box[0]).toBeGreaterThanOrEqual(0);
      expect(d.box[2]).toBeLessThanOrEqual(160);
      expect(d.box[3]).toBeLessThanOrEqual(96);
      expect(['face', 'hand', 'person']).toContain(d.label);
      if (segment) expect(d.mask?.length).toBe(96 * 160);
    }
  });
});

describe('end-to-end exports (YOLOv10 / YOLO26: NMS inside the model)', () => {
  it('output0 [1, N, 6] rows are kept above the threshold in model order, boxes mapped to the image', async () => {
    const rows = [
      [100, 120, 300, 360, 0.9, 1],
      [110, 130, 290, 350, 0.85, 1], // overlapping: an end-to-end head already chose, nothing is suppressed here
      [400, 400, 500, 480, 0.3, 0],
      [10, 10, 50, 50, 0.95, 0],
    ];
    const g = new GraphBuilder('e2e');
    const x = g.input('images', 'float32', [1, 3, 640, 640]);
    const zero = g.op1('Mul', [g.op1('ReduceMean', [x], { axes: [1, 2, 3], keepdims: 0 }), g.scalar(0)]);
    const head = g.floats('head', [1, rows.length, 6], () => Float32Array.from(rows.flat()));
    g.output(g.op1('Add', [head, zero]), 'output0', 'float32', [1, rows.length, 6]);
    const file = path.join(dir, 'e2e.onnx');
    fs.writeFileSync(file, withMetadata(g.toBuffer(), { ...yoloMetadata(['face', 'hand'], 'detect', 640), end2end: 'True' }));
    const dets = await runYolo(openYolo(file), rt.fileRunner(file), picture(320, 320), { conf: 0.5 });
    expect(dets.map((d) => [d.label, ...d.box])).toEqual([
      ['hand', 50, 60, 150, 180],
      ['hand', 55, 65, 145, 175],
      ['face', 5, 5, 25, 25],
    ]);
  });
});

describe('half-precision exports (half=True)', () => {
  it('float16 input and outputs: the image goes in as float16, the head comes back as float32', async () => {
    const g = new GraphBuilder('half');
    const x = g.input('images', 'float16', [1, 3, 640, 640]);
    const zero = g.op1('Mul', [g.op1('ReduceMean', [g.op1('Cast', [x], { to: 1 })], { axes: [1, 2, 3], keepdims: 0 }), g.scalar(0)]);
    const rows = [208, 464, 336, 200, 232, 496, 144, 96, 96, 176, 112, 80, 0.92, 0.81, 0.01, 0.01, 0.01, 0.66];
    const head = g.floats('head', [1, 6, 3], () => Float32Array.from(rows));
    g.output(g.op1('Cast', [g.op1('Add', [head, zero])], { to: 10 }), 'output0', 'float16', [1, 6, 3]);
    const file = path.join(dir, 'half.onnx');
    fs.writeFileSync(file, withMetadata(g.toBuffer(), yoloMetadata(['face', 'hand'], 'detect', 640)));
    const model = openYolo(file);
    expect(model.half).toBe(true);
    const dets = await runYolo(model, rt.fileRunner(file), picture(512, 512), { conf: 0.5 });
    const want = tinyFaceDetections(512, 512);
    expect(dets.map((d) => d.label)).toEqual(want.map((w) => w.label));
    dets.forEach((d, i) => {
      d.box.forEach((v, k) => expect(v).toBeCloseTo(want[i].box[k], 3));
      expect(d.confidence).toBeCloseTo(want[i].confidence, 3);
    });
  });
});

describe('refusals', () => {
  it('a PyTorch detector names the export command', () => {
    const pt = path.join(dir, 'face_yolov8m.pt');
    fs.writeFileSync(pt, 'PK\u0003\u0004');
    expect(() => openYolo(pt)).toThrow('face_yolov8m.pt is a PyTorch file; Weft runs YOLO detectors exported to ONNX');
    expect(() => openYolo(pt)).toThrow('yolo export model=face_yolov8m.pt format=onnx');
  });

  it('a file that is not ONNX, and an ONNX file without ultralytics metadata', () => {
    const bogus = path.join(dir, 'bogus.onnx');
    fs.writeFileSync(bogus, '{"not": "a model"}\n');
    expect(() => openYolo(bogus)).toThrow(/bogus\.onnx is not an ONNX model/);
    const bare = path.join(dir, 'bare.onnx');
    fs.writeFileSync(bare, fixedYoloGraph([{ cx: 1, cy: 1, w: 1, h: 1, cls: 0, conf: 1 }], 1, false).toBuffer());
    expect(() => openYolo(bare)).toThrow(/bare\.onnx: no 'names' in the ONNX metadata/);
  });

  it('outputs of an unexpected shape are an error naming the shapes', async () => {
    const file = path.join(dir, 'wrong.onnx');
    // a head for 3 classes under metadata naming 2
    fs.writeFileSync(
      file,
      withMetadata(
        fixedYoloGraph([{ cx: 1, cy: 1, w: 1, h: 1, cls: 0, conf: 1 }], 3, false).toBuffer(),
        yoloMetadata(['a', 'b'], 'detect', 640),
      ),
    );
    await expect(runYolo(openYolo(file), rt.fileRunner(file), picture(64, 64), { conf: 0.5 })).rejects.toThrow(
      'wrong.onnx: unexpected output shapes output0 [1, 7, 1]; with 2 class names the model should give output0 [1, 6, anchors] (or [1, detections, 6] from an end-to-end export)',
    );
  });

  it('a bbox-only model cannot be a SEGM_DETECTOR; a batch of images is refused', async () => {
    expect(() => detector('segm', bboxFile)).toThrow(/without masks; it cannot be a SEGM_DETECTOR/);
    const two: ImageTensor = { shape: [2, 8, 8, 3], data: new Float32Array(2 * 8 * 8 * 3) };
    await expect(detector('bbox', bboxFile).detect(two, opts)).rejects.toThrow(/one image at a time/);
  });
});
