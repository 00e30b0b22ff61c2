import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { GraphBuilder } from '../../onnx/graph.ts';
import { Rng } from '../generate/rng.ts';
import { decodeYolo, scaleBoxes } from './decode.ts';

const { onnx } = onnxProto;

/**
 * Detectors made by project code in ultralytics' ONNX layout (input `images` [1, 3, H, W], `output0`
 * [1, 4 + nc (+ 32), N], `output1` [1, 32, H/4, W/4], the exporter's metadata_props), so the whole
 * decode path runs without real weights:
 * - `weft-tiny-face` (bbox) and `weft-tiny-face-seg` (segm): deterministic. Their heads are constants,
 *   so they find the same faces and hand in any image: `TINY_FACE_ANCHORS` in the 640² input, and
 *   `tinyFaceDetections(w, h)` where they land in a w×h image.
 * - `randomYoloGraph`: random strided convolutions with YOLOv8's box decoding (sigmoid offsets on an
 *   anchor grid), for tests of the real shapes; its detections mean nothing.
 */


/** One anchor of the deterministic heads, in model-input pixels (640 × 640). */
export interface FixedAnchor {
  readonly cx: number;
  readonly cy: number;
  readonly w: number;
  readonly h: number;
  readonly cls: number;
  readonly conf: number;
}

export const TINY_FACE_CLASSES = ['face', 'hand'] as const;
export const TINY_FACE_SIZE = 640;

/**
 * Two faces and a hand kept by any threshold below 0.66; a second, weaker box on the first face that
 * NMS removes (IoU ≈ 0.9 > 0.7); a faint face (0.2) under the usual thresholds.
 */
export const TINY_FACE_ANCHORS: readonly FixedAnchor[] = [
  { cx: 208, cy: 200, w: 144, h: 176, cls: 0, conf: 0.92 },
  { cx: 464, cy: 232, w: 96, h: 112, cls: 0, conf: 0.81 },
  { cx: 336, cy: 496, w: 96, h: 80, cls: 1, conf: 0.66 },
  { cx: 212, cy: 204, w: 140, h: 170, cls: 0, conf: 0.6 },
  { cx: 560, cy: 568, w: 64, h: 64, cls: 0, conf: 0.2 },
];

/** Score of the classes an anchor is not. */
const OTHER = 0.01;
const MASK_DIM = 32;

/** Python's repr() of a str, as the exporter's str(dict) writes it. */
function pyRepr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  return q + s.replace(/\\/g, '\\\\').replace(new RegExp(q, 'g'), `\\${q}`).replace(/\n/g, '\\n') + q;
}

/** The exporter's metadata_props for these models. */
export function yoloMetadata(names: readonly string[], task: 'detect' | 'segment', imgsz: number): Record<string, string> {
  return {
    description: `Weft generated YOLO-layout ${task} model (test weights)`,
    author: 'Weft',
    stride: '32',
    task,
    batch: '1',
    imgsz: `[${imgsz}, ${imgsz}]`,
    names: `{${names.map((n, i) => `${i}: ${pyRepr(n)}`).join(', ')}}`,
  };
}

/** A serialised model with metadata_props appended (protobuf merges a repeated field written later). */
export function withMetadata(model: Uint8Array, meta: Record<string, string>): Uint8Array {
  const extra = onnx.ModelProto.encode(onnx.ModelProto.create({ metadataProps: Object.entries(meta).map(([key, value]) => ({ key, value })) })).finish();
  const out = new Uint8Array(model.length + extra.length);
  out.set(model);
  out.set(extra, model.length);
  return out;
}

/** output0's values for the fixed anchors: [4 + nc + nm, N] channels first. */
function fixedHead(anchors: readonly FixedAnchor[], nc: number, nm: number): Float32Array {
  const n = anchors.length;
  const c = 4 + nc + nm;
  const v = new Float32Array(c * n);
  anchors.forEach((a, i) => {
    v[0 * n + i] = a.cx;
    v[1 * n + i] = a.cy;
    v[2 * n + i] = a.w;
    v[3 * n + i] = a.h;
    for (let k = 0; k < nc; k++) v[(4 + k) * n + i] = k === a.cls ? a.conf : OTHER;
    if (nm > 0) v[(4 + nc + (i % nm)) * n + i] = 1;
  });
  return v;
}

/** Prototype k: +1 inside the ellipse inscribed in anchor k's box (on the H/4 grid), −1 elsewhere. */
function fixedProtos(anchors: readonly FixedAnchor[], size: number): Float32Array {
  const g = size / 4;
  const p = new Float32Array(MASK_DIM * g * g).fill(-1);
  anchors.forEach((a, k) => {
    const cx = a.cx / 4;
    const cy = a.cy / 4;
    const rx = a.w / 8;
    const ry = a.h / 8;
    for (let y = 0; y < g; y++) {
      for (let x = 0; x < g; x++) {
        const dx = (x + 0.5 - cx) / rx;
        const dy = (y + 0.5 - cy) / ry;
        if (dx * dx + dy * dy <= 1) p[k * g * g + y * g + x] = 1;
      }
    }
  });
  return p;
}

/** A graph whose outputs are constants plus 0 × the input's mean (so the input is used). */
export function fixedYoloGraph(anchors: readonly FixedAnchor[], nc: number, segment: boolean, size = TINY_FACE_SIZE): GraphBuilder {
  const g = new GraphBuilder(segment ? 'weft-fixed-yolo-seg' : 'weft-fixed-yolo');
  const x = g.input('images', 'float32', [1, 3, size, size]);
  const zero = g.op1('Mul', [g.op1('ReduceMean', [x], { axes: [1, 2, 3], keepdims: 0 }), g.scalar(0)]);
  const nm = segment ? MASK_DIM : 0;
  const c = 4 + nc + nm;
  const head = g.floats('head', [1, c, anchors.length], () => fixedHead(anchors, nc, nm));
  g.output(g.op1('Add', [head, zero]), 'output0', 'float32', [1, c, anchors.length]);
  if (segment) {
    const protos = g.floats('protos', [1, MASK_DIM, size / 4, size / 4], () => fixedProtos(anchors, size));
    g.output(g.op1('Add', [protos, zero]), 'output1', 'float32', [1, MASK_DIM, size / 4, size / 4]);
  }
  return g;
}

export interface ExpectedDetection {
  readonly box: readonly [number, number, number, number];
  readonly confidence: number;
  readonly label: string;
}

/**
 * Where weft-tiny-face's detections land in a w×h image at a confidence threshold (the Impact Pack's
 * default 0.5 keeps both faces and the hand), highest confidence first: the anchors through the same
 * NMS and box mapping the detector uses, with the input letterboxed to 640².
 */
export function tinyFaceDetections(width: number, height: number, threshold = 0.5): ExpectedDetection[] {
  const head = fixedHead(TINY_FACE_ANCHORS, TINY_FACE_CLASSES.length, 0);
  const dets = decodeYolo(head, 4 + TINY_FACE_CLASSES.length, TINY_FACE_ANCHORS.length, TINY_FACE_CLASSES.length, { conf: threshold, iou: 0.7 });
  return dets.map((d) => ({
    box: scaleBoxes(d.box, [TINY_FACE_SIZE, TINY_FACE_SIZE], [height, width]),
    confidence: d.conf,
    label: TINY_FACE_CLASSES[d.cls],
  }));
}

function randn(rng: Rng, n: number, std: number): Float32Array {
  return rng.normal(new Float32Array(n), std);
}

/**
 * A random YOLOv8-style head: per stride s in {16, 32}, a s×s stride-s convolution gives 4 box
 * values, nc class logits (and 32 mask coefficients); boxes decode as ((σ·2 − 0.5) + grid)·s for the
 * centre and σ·4·s for the size, classes through a sigmoid. Segmentation adds 32 prototypes from a
 * stride-4 convolution.
 */
export function randomYoloGraph(seed: number, names: readonly string[], segment: boolean, size = 128): GraphBuilder {
  const g = new GraphBuilder(segment ? 'weft-random-yolo-seg' : 'weft-random-yolo');
  const rng = new Rng(seed);
  const nc = names.length;
  const nm = segment ? MASK_DIM : 0;
  const x = g.input('images', 'float32', [1, 3, size, size]);
  const parts: string[] = [];
  let anchors = 0;
  for (const s of [16, 32]) {
    const grid = size / s;
    const n = grid * grid;
    anchors += n;
    const ch = 4 + nc + nm;
    const w = g.floats(`head${s}.weight`, [ch, 3, s, s], () => randn(rng, ch * 3 * s * s, 1.5 / (Math.sqrt(3) * s)));
    const b = g.floats(`head${s}.bias`, [ch], () => {
      const v = randn(rng, ch, 0.3);
      for (let k = 0; k < nc; k++) v[4 + k] -= 1.5;
      return v;
    });
    const y = g.op1('Reshape', [g.op1('Conv', [x, w, b], { kernel_shape: [s, s], strides: [s, s] }), g.ints([1, ch, n])]);
    const [xy, wh, rest] = g.op('Split', [y, g.ints([2, 2, nc + nm])], { axis: 1 }, 3);
    const gridXY = g.floats(`grid${s}`, [1, 2, n], () => {
      const v = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        v[i] = (i % grid) + 0.5;
        v[n + i] = Math.floor(i / grid) + 0.5;
      }
      return v;
    });
    const centre = g.op1('Mul', [g.op1('Add', [g.op1('Sub', [g.op1('Mul', [g.op1('Sigmoid', [xy]), g.scalar(2)]), g.scalar(1)]), gridXY]), g.scalar(s)]);
    const dims = g.op1('Mul', [g.op1('Sigmoid', [wh]), g.scalar(4 * s)]);
    if (nm > 0) {
      const [cls, coef] = g.op('Split', [rest, g.ints([nc, nm])], { axis: 1 }, 2);
      parts.push(g.op1('Concat', [centre, dims, g.op1('Sigmoid', [cls]), coef], { axis: 1 }));
    } else parts.push(g.op1('Concat', [centre, dims, g.op1('Sigmoid', [rest])], { axis: 1 }));
  }
  g.output(g.op1('Concat', parts, { axis: 2 }), 'output0', 'float32', [1, 4 + nc + nm, anchors]);
  if (segment) {
    const pw = g.floats('proto.weight', [MASK_DIM, 3, 4, 4], () => randn(rng, MASK_DIM * 48, 1));
    g.output(g.op1('Conv', [x, pw], { kernel_shape: [4, 4], strides: [4, 4] }), 'output1', 'float32', [1, MASK_DIM, size / 4, size / 4]);
  }
  return g;
}

function write(file: string, g: GraphBuilder, meta: Record<string, string>): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, withMetadata(g.toBuffer(), meta));
  return file;
}

/** Writes weft-tiny-face.onnx (bbox/) and weft-tiny-face-seg.onnx (segm/) under `ultralyticsDir` (models/ultralytics). */
export function makeTinyFaceDetectors(ultralyticsDir: string): string[] {
  const nc = TINY_FACE_CLASSES.length;
  return [
    write(path.join(ultralyticsDir, 'bbox', 'weft-tiny-face.onnx'), fixedYoloGraph(TINY_FACE_ANCHORS, nc, false), yoloMetadata(TINY_FACE_CLASSES, 'detect', TINY_FACE_SIZE)),
    write(
      path.join(ultralyticsDir, 'segm', 'weft-tiny-face-seg.onnx'),
      fixedYoloGraph(TINY_FACE_ANCHORS, nc, true),
      yoloMetadata(TINY_FACE_CLASSES, 'segment', TINY_FACE_SIZE),
    ),
  ];
}

/** Writes a random YOLO-layout detector (or segmenter with `segment`) to `file`. */
export function makeRandomYolo(file: string, opts: { seed?: number; names?: readonly string[]; segment?: boolean; size?: number } = {}): string {
  const names = opts.names ?? ['face', 'hand', 'person'];
  const size = opts.size ?? 128;
  return write(file, randomYoloGraph(opts.seed ?? 1, names, opts.segment ?? false, size), yoloMetadata(names, opts.segment ? 'segment' : 'detect', size));
}


