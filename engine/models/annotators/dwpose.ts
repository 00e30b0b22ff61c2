import * as ort from 'onnxruntime-node';
import { cvResize } from '../../image/preprocess/cv-resize.ts';
import {
  formatPose,
  poseCrop,
  simccDecode,
  toOpenposeOrder,
  yoloxInput,
  yoloxPersons,
  type Box,
} from '../../image/preprocess/dwpose-decode.ts';
import type { U8Mat } from '../../image/preprocess/mat.ts';
import type { Pose } from '../../image/preprocess/openpose-draw.ts';
import type { RunSession } from '../runtime/part.ts';

/**
 * DWPose as comfyui_controlnet_aux's Wholebody runs it with its ONNX pair: YOLOX person boxes (or the
 * whole image when there is no detector), each box cropped to the pose net's 288×384 input and decoded
 * from SimCC into 133 keypoints in image pixels, in OpenPose order.
 */
export const POSE_W = 288;
export const POSE_H = 384;
const KEYPOINTS = 133;

function output(out: ort.InferenceSession.OnnxValueMapType, name: string, file: string): ort.Tensor {
  const t = out[name] as ort.Tensor | undefined;
  if (!t) throw new Error(`${file}: the model has no output '${name}' (outputs: ${Object.keys(out).join(', ')})`);
  return t;
}

export class DwposeDetector {
  constructor(
    private readonly det: { run: RunSession; file: string } | undefined,
    private readonly pose: { run: RunSession; file: string },
  ) {}

  async boxes(img: U8Mat): Promise<Box[] | undefined> {
    if (!this.det) return undefined;
    const { data, ratio } = yoloxInput(img, (m, w, h) => cvResize(m, w, h, 'linear'));
    const out = await this.det.run({ images: new ort.Tensor('float32', data, [1, 3, 640, 640]) });
    const t = output(out, 'output', this.det.file);
    if (t.dims.length !== 3 || t.dims[0] !== 1) throw new Error(`${this.det.file}: output has shape [${t.dims.join(', ')}], expected [1, 8400, 85]`);
    return yoloxPersons(t.data as Float32Array, t.dims[1], ratio);
  }

  /** Poses of one RGB image; an empty list when the detector finds nobody (as the package returns). */
  async detect(img: U8Mat): Promise<Pose[]> {
    const found = await this.boxes(img);
    if (found && found.length === 0) return [];
    const boxes: Box[] = found ?? [[0, 0, img.w, img.h]];
    const poses: Pose[] = [];
    for (const box of boxes) {
      const crop = poseCrop(img, box, POSE_W, POSE_H);
      const out = await this.pose.run({ input: new ort.Tensor('float32', crop.data, [1, 3, POSE_H, POSE_W]) });
      const sx = output(out, 'simcc_x', this.pose.file);
      const sy = output(out, 'simcc_y', this.pose.file);
      if (sx.dims[1] !== KEYPOINTS || sy.dims[1] !== KEYPOINTS) {
        throw new Error(`${this.pose.file}: SimCC outputs have ${sx.dims[1]} and ${sy.dims[1]} keypoints, DWPose has ${KEYPOINTS}`);
      }
      const kps = simccDecode(sx.data as Float32Array, sy.data as Float32Array, KEYPOINTS, crop, POSE_W, POSE_H);
      poses.push(formatPose(toOpenposeOrder(kps)));
    }
    return poses;
  }
}
