import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { f16ToF32, f32ToF16 } from '../../core/dtype.ts';
import type { ImageTensor } from '../../core/tensor.ts';
import type { RunSession } from '../runtime/part.ts';
import { decodeEnd2End, decodeYolo, maskToImage, processMask, scaleBoxes, type RawDetection } from './decode.ts';
import { letterboxImage } from './letterbox.ts';
import { parseYoloMetadata, type YoloMetadata } from './metadata.ts';
import { readOnnxInfo, type OnnxValueInfo } from './onnx-info.ts';

/**
 * A YOLOv8/YOLO11 detection or segmentation model exported by ultralytics to ONNX (`yolo export
 * format=onnx`): `images` [1, 3, H, W] → `output0` [1, 4 + nc (+ nm), N] and, for segmentation,
 * `output1` [1, nm, H/4, W/4] prototypes. Class names, stride and export size come from the metadata.
 */
export interface YoloModel {
  readonly file: string;
  readonly meta: YoloMetadata;
  readonly inputName: string;
  /** [height, width] the image is letterboxed to. */
  readonly inputSize: readonly [number, number];
  /** Dynamic spatial axes: pad only to the stride, as ultralytics' predictor does for such exports. */
  readonly dynamic: boolean;
  readonly stride: number;
  readonly segmentation: boolean;
  /** Exports made with half=True take and give float16. */
  readonly half: boolean;
}

export interface YoloDetection {
  /** x1, y1, x2, y2 in image pixels (floats, clipped to the image). */
  readonly box: [number, number, number, number];
  readonly confidence: number;
  readonly classIndex: number;
  readonly label: string;
  /** Segmentation models: the mask at image size [H, W], soft at the edges (bilinear from the model's). */
  readonly mask?: Float32Array;
}

/** Extensions of PyTorch files that ultralytics saves and the Impact Pack loads. */
const TORCH_EXT = new Set(['.pt', '.pth', '.ckpt', '.bin', '.pt2', '.pkl']);

/** The refusal for a PyTorch detector, with the command that makes the ONNX file Weft runs. */
export function torchDetectorError(file: string): Error {
  const base = path.basename(file);
  return new Error(
    `${base} is a PyTorch file; Weft runs YOLO detectors exported to ONNX. Export it with ultralytics and put the .onnx beside it: ` +
      `yolo export model=${base} format=onnx`,
  );
}

const describe = (v: OnnxValueInfo | undefined): string => (v ? `${v.name} [${v.dims.map((d) => d ?? '?').join(', ')}]` : 'none');

/** Reads and checks a detector file without running it. */
export function openYolo(file: string): YoloModel {
  const ext = path.extname(file).toLowerCase();
  if (TORCH_EXT.has(ext)) throw torchDetectorError(file);
  if (ext !== '.onnx') throw new Error(`${path.basename(file)}: a YOLO detector must be an ultralytics ONNX export (.onnx), not '${ext || 'no extension'}'`);
  const info = readOnnxInfo(file);
  const meta = parseYoloMetadata(info.metadata, path.basename(file));
  const input = info.inputs[0];
  const out0 = info.outputs.find((o) => o.name === 'output0') ?? info.outputs[0];
  const shapes = `inputs ${info.inputs.map(describe).join(', ')}; outputs ${info.outputs.map(describe).join(', ')}`;
  if (!input || input.dims.length !== 4 || (typeof input.dims[1] === 'number' && input.dims[1] !== 3)) {
    throw new Error(`${path.basename(file)}: expected one image input [1, 3, H, W], found ${shapes}`);
  }
  if (meta.task !== undefined && meta.task !== 'detect' && meta.task !== 'segment') {
    throw new Error(`${path.basename(file)}: a YOLO '${meta.task}' model; the detectors run 'detect' and 'segment' models`);
  }
  if (!out0 || out0.dims.length !== 3) throw new Error(`${path.basename(file)}: unexpected output shapes (${shapes}); expected output0 [1, 4 + classes (+ 32), anchors]`);
  const segmentation = info.outputs.length >= 2 || meta.task === 'segment';
  const stride = meta.stride ?? 32;
  const [h, w] = [input.dims[2], input.dims[3]];
  const dynamic = typeof h !== 'number' || typeof w !== 'number';
  const inputSize: [number, number] = dynamic ? [...(meta.imgsz ?? [640, 640])] : [h, w];
  if (inputSize[0] <= 0 || inputSize[1] <= 0 || inputSize[0] > 8192 || inputSize[1] > 8192) {
    throw new Error(`${path.basename(file)}: input size ${inputSize.join('×')} is out of range`);
  }
  if (input.elemType !== undefined && input.elemType !== 1 && input.elemType !== 10) {
    throw new Error(`${path.basename(file)}: the image input has ONNX element type ${input.elemType}; expected float32 or float16`);
  }
  return { file, meta, inputName: input.name, inputSize, dynamic, stride, segmentation, half: input.elemType === 10 };
}

export interface YoloRunOptions {
  /** Confidence threshold (kept when the best class score exceeds it). */
  readonly conf: number;
  /** NMS IoU threshold; ultralytics' predict default 0.7. */
  readonly iou?: number;
  readonly maxDet?: number;
}

function dimsOf(t: ort.Tensor | undefined): readonly number[] {
  return t ? t.dims : [];
}

/** An output as float32 (half exports give float16). */
function floats(t: ort.Tensor): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array;
  if (t.type === 'float16') return Float32Array.from(t.data as Uint16Array, f16ToF32);
  throw new Error(`output of type ${t.type}; expected float32 or float16`);
}

/** Runs the model on one image ([1, H, W, 3]) and returns its detections in the image's pixels. */
export async function runYolo(model: YoloModel, run: RunSession, image: ImageTensor, o: YoloRunOptions): Promise<YoloDetection[]> {
  const name = path.basename(model.file);
  if (image.shape.length !== 4 || image.shape[0] !== 1) throw new Error(`${name}: detection runs on one image at a time, got a batch of shape [${image.shape.join(', ')}]`);
  const [, ih, iw] = image.shape;
  if (ih < 1 || iw < 1) throw new Error(`${name}: the image is empty (${iw}×${ih})`);
  const { input, geo } = letterboxImage(image, { size: model.inputSize, auto: model.dynamic, stride: model.stride });
  const dims = [1, 3, geo.outH, geo.outW];
  const feed = model.half ? new ort.Tensor('float16', Uint16Array.from(input, f32ToF16), dims) : new ort.Tensor('float32', input, dims);
  const out = await run({ [model.inputName]: feed });
  const names = Object.keys(out);
  const o0 = (out.output0 ?? out[names[0]]) as ort.Tensor | undefined;
  const o1 = model.segmentation ? ((out.output1 ?? out[names[1]]) as ort.Tensor | undefined) : undefined;
  const nc = model.meta.names.length;
  const d0 = dimsOf(o0);
  const d1 = dimsOf(o1);
  const shapes = `output0 [${d0.join(', ')}]${model.segmentation ? `, output1 [${d1.join(', ')}]` : ''}`;
  const nm = model.segmentation ? (d1[1] ?? 0) : 0;
  // an end-to-end head lays out [1, N, 6 + nm] (boxes already suppressed); a raw one [1, 4 + nc + nm, N]
  const end2end = d0.length === 3 && d0[0] === 1 && d0[2] === 6 + nm && (model.meta.end2end === true || d0[1] !== 4 + nc + nm);
  const ok0 = d0.length === 3 && d0[0] === 1 && (end2end || d0[1] === 4 + nc + nm);
  const ok1 = !model.segmentation || (d1.length === 4 && d1[0] === 1 && nm > 0);
  if (!o0 || !ok0 || !ok1) {
    const want = model.segmentation
      ? `output0 [1, ${4 + nc} + mask coefficients, anchors] and output1 [1, coefficients, h, w]`
      : `output0 [1, ${4 + nc}, anchors] (or [1, detections, 6] from an end-to-end export)`;
    throw new Error(`${name}: unexpected output shapes ${shapes}; with ${nc} class names the model should give ${want}`);
  }
  const data = floats(o0);
  const dets = end2end
    ? decodeEnd2End(data, d0[1], d0[2], { conf: o.conf, maxDet: o.maxDet }).filter((d) => d.cls >= 0 && d.cls < nc)
    : decodeYolo(data, d0[1], d0[2], nc, { conf: o.conf, iou: o.iou ?? 0.7, maxDet: o.maxDet });
  const inSize: [number, number] = [geo.outH, geo.outW];
  return dets.map((d: RawDetection): YoloDetection => {
    let mask: Float32Array | undefined;
    if (o1) mask = maskToImage(processMask(floats(o1), nm, d1[2], d1[3], d, inSize), inSize, [ih, iw]);
    return { box: scaleBoxes(d.box, inSize, [ih, iw]), confidence: d.conf, classIndex: d.cls, label: model.meta.names[d.cls], mask };
  });
}
