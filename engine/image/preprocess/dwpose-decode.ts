import type { Keypoint, Keypoints, Pose } from './openpose-draw.ts';
import { getAffineTransform, warpAffineLinear, type Affine } from './cv-warp.ts';
import type { U8Mat } from './mat.ts';

/**
 * The arithmetic around DWPose's two networks, as comfyui_controlnet_aux does it (dwpose/dw_onnx/*.py,
 * wholebody.py): YOLOX's letterbox and grid decode with class-aware NMS for person boxes, the affine
 * crop of each box to the pose net's input with ImageNet normalisation, SimCC decoding of 133 keypoints,
 * the OpenPose reordering (neck inserted), and the POSE_KEYPOINT JSON.
 */

export const YOLOX_SIZE = 640;
const STRIDES = [8, 16, 32];

/** YOLOX letterbox: scale to fit 640×640, top-left, padding 114; returns CHW float32 and the ratio. */
export function yoloxInput(img: U8Mat, resize: (m: U8Mat, w: number, h: number) => U8Mat): { data: Float32Array; ratio: number } {
  const r = Math.min(YOLOX_SIZE / img.h, YOLOX_SIZE / img.w);
  const rw = Math.trunc(img.w * r);
  const rh = Math.trunc(img.h * r);
  const resized = resize(img, Math.max(1, rw), Math.max(1, rh));
  const S = YOLOX_SIZE * YOLOX_SIZE;
  const data = new Float32Array(3 * S).fill(114);
  for (let y = 0; y < resized.h; y++) {
    for (let x = 0; x < resized.w; x++) {
      for (let c = 0; c < 3; c++) data[c * S + y * YOLOX_SIZE + x] = resized.data[(y * resized.w + x) * 3 + c];
    }
  }
  return { data, ratio: r };
}

export type Box = [number, number, number, number];

/** numpy NMS on xyxy boxes with the +1 pixel area convention, highest score first. */
export function nms(boxes: readonly Box[], scores: readonly number[], thr: number): number[] {
  const area = boxes.map(([x1, y1, x2, y2]) => (x2 - x1 + 1) * (y2 - y1 + 1));
  // numpy's argsort()[::-1]: ascending stable sort reversed, so equal scores come last index first
  let order = scores
    .map((s, i) => [s, i] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
    .reverse()
    .map(([, i]) => i);
  const keep: number[] = [];
  while (order.length > 0) {
    const i = order[0];
    keep.push(i);
    const rest: number[] = [];
    for (const j of order.slice(1)) {
      const w = Math.max(0, Math.min(boxes[i][2], boxes[j][2]) - Math.max(boxes[i][0], boxes[j][0]) + 1);
      const h = Math.max(0, Math.min(boxes[i][3], boxes[j][3]) - Math.max(boxes[i][1], boxes[j][1]) + 1);
      const inter = w * h;
      if (inter / (area[i] + area[j] - inter) <= thr) rest.push(j);
    }
    order = rest;
  }
  return keep;
}

/**
 * YOLOX output [1, 8400, 85] → person boxes in image pixels: grid decode, score = obj × cls, NMS 0.45
 * over scores above 0.1 per class, then class 0 with score above 0.3.
 */
export function yoloxPersons(out: Float32Array, anchors: number, ratio: number): Box[] {
  const nc = out.length / anchors - 5;
  const boxes: Box[] = [];
  let a = 0;
  for (const s of STRIDES) {
    const n = YOLOX_SIZE / s;
    for (let gy = 0; gy < n; gy++) {
      for (let gx = 0; gx < n; gx++, a++) {
        const o = a * (nc + 5);
        const cx = (out[o] + gx) * s;
        const cy = (out[o + 1] + gy) * s;
        const w = Math.exp(out[o + 2]) * s;
        const h = Math.exp(out[o + 3]) * s;
        boxes.push([(cx - w / 2) / ratio, (cy - h / 2) / ratio, (cx + w / 2) / ratio, (cy + h / 2) / ratio]);
      }
    }
  }
  if (a !== anchors) throw new Error(`YOLOX output has ${anchors} anchors, a 640×640 input gives ${a}`);
  const persons: Box[] = [];
  for (let c = 0; c < nc; c++) {
    const idx: number[] = [];
    const sc: number[] = [];
    for (let i = 0; i < anchors; i++) {
      const s = Math.fround(out[i * (nc + 5) + 4] * out[i * (nc + 5) + 5 + c]);
      if (s > 0.1) {
        idx.push(i);
        sc.push(s);
      }
    }
    if (idx.length === 0) continue;
    const keep = nms(
      idx.map((i) => boxes[i]),
      sc,
      0.45,
    );
    if (c === 0) for (const k of keep) if (sc[k] > 0.3) persons.push(boxes[idx[k]]);
  }
  return persons;
}

export interface Crop {
  /** NCHW float32 normalised input of one person. */
  data: Float32Array;
  center: [number, number];
  scale: [number, number];
}

/**
 * bbox_xyxy2cs (padding 1.25) and _fix_aspect_ratio to w/h, in the box's float32 as numpy computes
 * them (the detector's boxes are float32 arrays).
 */
export function poseBox(box: Box, w: number, h: number): { center: [number, number]; scale: [number, number] } {
  const f = Math.fround;
  const [x1, y1, x2, y2] = box.map(f);
  const center: [number, number] = [f(f(x1 + x2) * 0.5), f(f(y1 + y2) * 0.5)];
  const sw = f(f(x2 - x1) * 1.25);
  const sh = f(f(y2 - y1) * 1.25);
  const aspect = w / h;
  const scale: [number, number] = sw > f(sh * aspect) ? [sw, f(sw / aspect)] : [f(sh * aspect), sh];
  return { center, scale };
}

/** get_warp_matrix(center, scale, rot=0, (w, h)): three float32 points each side, then getAffineTransform. */
export function poseWarpMatrix(center: readonly [number, number], scale: readonly [number, number], w: number, h: number): Affine {
  const f = Math.fround;
  // _get_3rd_point: b + (−(a − b)[1], (a − b)[0]) in float32
  const third = (a: [number, number], b: [number, number]): [number, number] => {
    const d = [f(a[0] - b[0]), f(a[1] - b[1])];
    return [f(b[0] - d[1]), f(b[1] + d[0])];
  };
  const s0: [number, number] = [center[0], center[1]];
  const s1: [number, number] = [f(center[0] + 0), f(center[1] + scale[0] * -0.5)];
  const d0: [number, number] = [f(w * 0.5), f(h * 0.5)];
  const d1: [number, number] = [f(w * 0.5), f(h * 0.5 - w * 0.5)];
  return getAffineTransform([s0, s1, third(s0, s1)], [d0, d1, third(d0, d1)]);
}

/**
 * The pose net's input for one box (cv_ox_pose.py's preprocess): the box's centre and scale, the
 * crop by cv2.warpAffine (bilinear, zero outside), then (x − mean) / std per channel.
 */
export function poseCrop(img: U8Mat, box: Box, w: number, h: number): Crop {
  const { center, scale } = poseBox(box, w, h);
  const crop = warpAffineLinear(img, poseWarpMatrix(center, scale, w, h), w, h);
  const mean = [123.675, 116.28, 103.53];
  const std = [58.395, 57.12, 57.375];
  const S = w * h;
  const data = new Float32Array(3 * S);
  for (let i = 0; i < S; i++) for (let c = 0; c < 3; c++) data[c * S + i] = (crop.data[i * 3 + c] - mean[c]) / std[c];
  return { data, center, scale };
}

/** SimCC decode of one person: argmax per axis, score the smaller maximum, −1 where it is ≤ 0. */
export function simccDecode(
  sx: Float32Array,
  sy: Float32Array,
  k: number,
  crop: Crop,
  w: number,
  h: number,
  split = 2,
): { x: number; y: number; score: number }[] {
  const wx = sx.length / k;
  const wy = sy.length / k;
  const out: { x: number; y: number; score: number }[] = [];
  for (let j = 0; j < k; j++) {
    let bx = 0;
    let mx = -Infinity;
    for (let i = 0; i < wx; i++) if (sx[j * wx + i] > mx) [mx, bx] = [sx[j * wx + i], i];
    let by = 0;
    let my = -Infinity;
    for (let i = 0; i < wy; i++) if (sy[j * wy + i] > my) [my, by] = [sy[j * wy + i], i];
    const score = mx > my ? my : mx;
    const lx = score <= 0 ? -1 : bx;
    const ly = score <= 0 ? -1 : by;
    out.push({
      x: (lx / split / w) * crop.scale[0] + crop.center[0] - crop.scale[0] / 2,
      y: (ly / split / h) * crop.scale[1] + crop.center[1] - crop.scale[1] / 2,
      score,
    });
  }
  return out;
}

const MMPOSE_IDX = [17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3];
const OPENPOSE_IDX = [1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17];

/** Wholebody's reordering: neck (mean of the shoulders, visible when both are) inserted at 17, then OpenPose order. */
export function toOpenposeOrder(kps: readonly { x: number; y: number; score: number }[]): { x: number; y: number; score: number }[] {
  const l = kps[5];
  const r = kps[6];
  const neck = { x: (l.x + r.x) / 2, y: (l.y + r.y) / 2, score: l.score > 0.3 && r.score > 0.3 ? 1 : 0 };
  const all = [...kps.slice(0, 17), neck, ...kps.slice(17)];
  const re = all.slice();
  OPENPOSE_IDX.forEach((dst, i) => (re[dst] = all[MMPOSE_IDX[i]]));
  return re;
}

function part(kps: readonly { x: number; y: number; score: number }[]): (Keypoint | null)[] | null {
  const p = kps.map((k) => (k.score >= 0.3 ? { x: k.x, y: k.y, score: k.score } : null));
  return p.every((k) => k === null) ? null : p;
}

/** Wholebody.format_result for one person (134 keypoints in OpenPose order). */
export function formatPose(kps: readonly { x: number; y: number; score: number }[]): Pose {
  const body = part(kps.slice(0, 18)) ?? new Array<null>(18).fill(null);
  const face = part(kps.slice(24, 92));
  if (face) face.push(body[14], body[15]);
  return { body, leftHand: part(kps.slice(92, 113)), rightHand: part(kps.slice(113, 134)), face };
}

/** One image's POSE_KEYPOINT entry in the OpenPose JSON shape the aux package emits. */
export interface OpenposeJson {
  people: {
    pose_keypoints_2d: number[] | null;
    face_keypoints_2d: number[] | null;
    hand_left_keypoints_2d: number[] | null;
    hand_right_keypoints_2d: number[] | null;
  }[];
  canvas_height: number;
  canvas_width: number;
}

function compress(kps: Keypoints | null): number[] | null {
  if (!kps || kps.length === 0) return null;
  return kps.flatMap((k) => (k ? [k.x, k.y, 1.0] : [0, 0, 0]));
}

export function encodePoses(poses: readonly Pose[], h: number, w: number): OpenposeJson {
  return {
    people: poses.map((p) => ({
      pose_keypoints_2d: compress(p.body),
      face_keypoints_2d: compress(p.face),
      hand_left_keypoints_2d: compress(p.leftHand),
      hand_right_keypoints_2d: compress(p.rightHand),
    })),
    canvas_height: h,
    canvas_width: w,
  };
}
