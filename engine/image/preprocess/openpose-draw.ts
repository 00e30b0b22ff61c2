import { ellipse2Poly, fillCircle, fillConvexPoly, thickLine, type Color } from './cv-draw.ts';
import type { U8Mat } from './mat.ts';

/**
 * The OpenPose renderer of comfyui_controlnet_aux (dwpose/util.py): limbs as filled ellipses in 60% of
 * the joint colours, joints as radius-4 dots, hands as HSV-coloured bones with red joints, faces as white
 * dots. Keypoints in pixels are drawn as they are; keypoints all within [0, 1] are taken as fractions of
 * the canvas (the package's `is_normalized`).
 */

export interface Keypoint {
  x: number;
  y: number;
  score?: number;
}

export type Keypoints = readonly (Keypoint | null)[];

export interface Pose {
  body: Keypoints;
  leftHand: Keypoints | null;
  rightHand: Keypoints | null;
  face: Keypoints | null;
}

/** OpenPose's 18 body joint colours (RGB) and the limbs between joints (1-based, as the package lists them). */
export const BODY_COLORS: readonly Color[] = [
  [255, 0, 0],
  [255, 85, 0],
  [255, 170, 0],
  [255, 255, 0],
  [170, 255, 0],
  [85, 255, 0],
  [0, 255, 0],
  [0, 255, 85],
  [0, 255, 170],
  [0, 255, 255],
  [0, 170, 255],
  [0, 85, 255],
  [0, 0, 255],
  [85, 0, 255],
  [170, 0, 255],
  [255, 0, 255],
  [255, 0, 170],
  [255, 0, 85],
];

export const LIMB_SEQ: readonly (readonly [number, number])[] = [
  [2, 3],
  [2, 6],
  [3, 4],
  [4, 5],
  [6, 7],
  [7, 8],
  [2, 9],
  [9, 10],
  [10, 11],
  [2, 12],
  [12, 13],
  [13, 14],
  [2, 1],
  [1, 15],
  [15, 17],
  [1, 16],
  [16, 18],
];

export const HAND_EDGES: readonly (readonly [number, number])[] = [
  [0, 1],
  [1, 2],
  [2, 3],
  [3, 4],
  [0, 5],
  [5, 6],
  [6, 7],
  [7, 8],
  [0, 9],
  [9, 10],
  [10, 11],
  [11, 12],
  [0, 13],
  [13, 14],
  [14, 15],
  [15, 16],
  [0, 17],
  [17, 18],
  [18, 19],
  [19, 20],
];

const EPS = 0.01;

function isNormalized(kps: Keypoints): boolean {
  const present = kps.filter((k): k is Keypoint => k !== null);
  return present.length > 0 && present.every((k) => Math.abs(k.x) <= 1 && Math.abs(k.y) <= 1);
}

function scaleOf(canvas: U8Mat, kps: Keypoints): [number, number] {
  return isNormalized(kps) ? [canvas.w, canvas.h] : [1, 1];
}

/** Python's int() of a float: toward zero. */
const int = Math.trunc;

export function drawBodyPose(canvas: U8Mat, kps: Keypoints, xinsrStickScaling = false): void {
  const [W, H] = scaleOf(canvas, kps);
  const maxSide = Math.max(canvas.w, canvas.h);
  const stickScale = xinsrStickScaling && maxSide >= 500 ? Math.min(2 + Math.floor(maxSide / 1000), 7) : 1;
  LIMB_SEQ.forEach(([a, b], i) => {
    const k1 = kps[a - 1];
    const k2 = kps[b - 1];
    if (!k1 || !k2) return;
    const Y0 = k1.x * W;
    const Y1 = k2.x * W;
    const X0 = k1.y * H;
    const X1 = k2.y * H;
    const mX = (X0 + X1) / 2;
    const mY = (Y0 + Y1) / 2;
    const length = Math.sqrt((X0 - X1) ** 2 + (Y0 - Y1) ** 2);
    const angle = (Math.atan2(X0 - X1, Y0 - Y1) * 180) / Math.PI;
    const poly = ellipse2Poly([int(mY), int(mX)], [int(length / 2), 4 * stickScale], int(angle), 0, 360, 1);
    fillConvexPoly(
      canvas,
      poly,
      BODY_COLORS[i].map((c) => int(c * 0.6)),
    );
  });
  kps.forEach((k, i) => {
    if (!k || i >= BODY_COLORS.length) return;
    fillCircle(canvas, [int(k.x * W), int(k.y * H)], 4, BODY_COLORS[i]);
  });
}

/** matplotlib's hsv_to_rgb for s = v = 1, times 255, as cv2 takes a float colour (rounded per channel). */
export function handEdgeColor(i: number): Color {
  const h = i / HAND_EDGES.length;
  const k = Math.floor(h * 6);
  const f = h * 6 - k;
  const q = 1 - f;
  const rgb = [
    [1, f, 0],
    [q, 1, 0],
    [0, 1, f],
    [0, q, 1],
    [f, 0, 1],
    [1, 0, q],
  ][k % 6];
  return rgb.map((v) => {
    const x = v * 255;
    const r = Math.round(x);
    return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
  });
}

/** Hand bones as 2-pixel lines in the HSV wheel's colours, joints as red dots. */
export function drawHandPose(canvas: U8Mat, kps: Keypoints | null): void {
  if (!kps || kps.length === 0) return;
  const [W, H] = scaleOf(canvas, kps);
  HAND_EDGES.forEach(([e1, e2], i) => {
    const k1 = kps[e1];
    const k2 = kps[e2];
    if (!k1 || !k2) return;
    const x1 = int(k1.x * W);
    const y1 = int(k1.y * H);
    const x2 = int(k2.x * W);
    const y2 = int(k2.y * H);
    if (x1 > EPS && y1 > EPS && x2 > EPS && y2 > EPS) {
      thickLine(canvas, [x1, y1], [x2, y2], handEdgeColor(i), 2);
    }
  });
  for (const k of kps) {
    if (!k) continue;
    const x = int(k.x * W);
    const y = int(k.y * H);
    if (x > EPS && y > EPS) fillCircle(canvas, [x, y], 4, [0, 0, 255]);
  }
}

export function drawFacePose(canvas: U8Mat, kps: Keypoints | null): void {
  if (!kps || kps.length === 0) return;
  const [W, H] = scaleOf(canvas, kps);
  for (const k of kps) {
    if (!k) continue;
    const x = int(k.x * W);
    const y = int(k.y * H);
    if (x > EPS && y > EPS) fillCircle(canvas, [x, y], 3, [255, 255, 255]);
  }
}

/** draw_poses: a black canvas with each pose's parts, in the package's order. */
export function drawPoses(poses: readonly Pose[], h: number, w: number, body: boolean, hand: boolean, face: boolean, xinsr = false): U8Mat {
  const canvas: U8Mat = { h, w, c: 3, data: new Uint8Array(h * w * 3) };
  for (const p of poses) {
    if (body) drawBodyPose(canvas, p.body, xinsr);
    if (hand) {
      drawHandPose(canvas, p.leftHand);
      drawHandPose(canvas, p.rightHand);
    }
    if (face) drawFacePose(canvas, p.face);
  }
  return canvas;
}
