import { cvRound } from './cv-resize.ts';
import type { U8Mat } from './mat.ts';

/**
 * `cv2.getAffineTransform` and `cv2.warpAffine(..., flags=INTER_LINEAR)` with a constant zero
 * border on uint8, as OpenCV 4.6 computes them: the 6×6 system solved by its LU (partial pivoting,
 * double), the matrix inverted in double, source positions in 10-bit fixed point per row and
 * column, cut to 5 fractional bits, and the pixel blended with the 15-bit bilinear table of
 * `remap`. Checked byte for byte by tests/preprocessors/cv-warp.test.ts.
 */

/** A 2×3 affine matrix, row-major. */
export type Affine = [number, number, number, number, number, number];

type Pt = readonly [number, number];

/** OpenCV's LUImpl on an m×m system with one right-hand side, in place; false when singular. */
function luSolve(a: Float64Array, b: Float64Array, m: number): boolean {
  for (let i = 0; i < m; i++) {
    let k = i;
    for (let j = i + 1; j < m; j++) if (Math.abs(a[j * m + i]) > Math.abs(a[k * m + i])) k = j;
    if (Math.abs(a[k * m + i]) < Number.EPSILON * 100) return false;
    if (k !== i) {
      for (let j = i; j < m; j++) [a[i * m + j], a[k * m + j]] = [a[k * m + j], a[i * m + j]];
      [b[i], b[k]] = [b[k], b[i]];
    }
    const d = -1 / a[i * m + i];
    for (let j = i + 1; j < m; j++) {
      const alpha = a[j * m + i] * d;
      for (let c = i + 1; c < m; c++) a[j * m + c] += alpha * a[i * m + c];
      b[j] += alpha * b[i];
    }
  }
  for (let i = m - 1; i >= 0; i--) {
    let s = b[i];
    for (let c = i + 1; c < m; c++) s -= a[i * m + c] * b[c];
    b[i] = s / a[i * m + i];
  }
  return true;
}

/** The affine map taking three source points to three destination points (float32 points, as OpenCV's Point2f). */
export function getAffineTransform(src: readonly Pt[], dst: readonly Pt[]): Affine {
  const a = new Float64Array(36);
  const b = new Float64Array(6);
  const f = Math.fround;
  for (let i = 0; i < 3; i++) {
    const j = i * 12;
    const k = i * 12 + 6;
    a[j] = a[k + 3] = f(src[i][0]);
    a[j + 1] = a[k + 4] = f(src[i][1]);
    a[j + 2] = a[k + 5] = 1;
    b[i * 2] = f(dst[i][0]);
    b[i * 2 + 1] = f(dst[i][1]);
  }
  if (!luSolve(a, b, 6)) throw new Error('getAffineTransform: the three source points are collinear');
  return [b[0], b[1], b[2], b[3], b[4], b[5]];
}

const INTER_BITS = 5;
const INTER_TAB_SIZE = 1 << INTER_BITS;
const AB_BITS = 10;
const AB_SCALE = 1 << AB_BITS;
const REMAP_BITS = 15;

/** saturate_cast<int>(double). */
function satInt(v: number): number {
  const r = cvRound(v);
  return r > 2147483647 ? 2147483647 : r < -2147483648 ? -2147483648 : r;
}

function satShort(v: number): number {
  return v > 32767 ? 32767 : v < -32768 ? -32768 : v;
}

/** `cv2.warpAffine(src, m, (dw, dh), flags=cv2.INTER_LINEAR)` (m maps source to destination; zero border). */
export function warpAffineLinear(src: U8Mat, m: Affine, dw: number, dh: number): U8Mat {
  if (!(dw > 0 && dh > 0)) throw new Error(`cannot warp to ${dw}x${dh}: both sides must be at least 1`);
  let [m0, m1, m2, m3, m4, m5] = m;
  // the inverse map, as warpAffine computes it without WARP_INVERSE_MAP
  let det = m0 * m4 - m1 * m3;
  det = det !== 0 ? 1 / det : 0;
  const a11 = m4 * det;
  const a22 = m0 * det;
  m0 = a11;
  m1 *= -det;
  m3 *= -det;
  m4 = a22;
  const b1 = -m0 * m2 - m1 * m5;
  const b2 = -m3 * m2 - m4 * m5;
  m2 = b1;
  m5 = b2;
  const adelta = new Int32Array(dw);
  const bdelta = new Int32Array(dw);
  for (let x = 0; x < dw; x++) {
    adelta[x] = satInt(m0 * x * AB_SCALE);
    bdelta[x] = satInt(m3 * x * AB_SCALE);
  }
  const roundDelta = AB_SCALE / INTER_TAB_SIZE / 2;
  const { w: sw, h: sh, c: cn } = src;
  const out = new Uint8Array(dw * dh * cn);
  const px = (x: number, y: number, k: number): number => (x < 0 || y < 0 || x >= sw || y >= sh ? 0 : src.data[(y * sw + x) * cn + k]);
  for (let y = 0; y < dh; y++) {
    const X0 = satInt((m1 * y + m2) * AB_SCALE) + roundDelta;
    const Y0 = satInt((m4 * y + m5) * AB_SCALE) + roundDelta;
    for (let x = 0; x < dw; x++) {
      const X = (X0 + adelta[x]) >> (AB_BITS - INTER_BITS);
      const Y = (Y0 + bdelta[x]) >> (AB_BITS - INTER_BITS);
      const sx = satShort(X >> INTER_BITS);
      const sy = satShort(Y >> INTER_BITS);
      // remap's table: (1 − u)(1 − v) etc. times 2^15, exact for fractions of 1/32
      const u = X & (INTER_TAB_SIZE - 1);
      const v = Y & (INTER_TAB_SIZE - 1);
      const w00 = (INTER_TAB_SIZE - u) * (INTER_TAB_SIZE - v) * 32;
      const w01 = u * (INTER_TAB_SIZE - v) * 32;
      const w10 = (INTER_TAB_SIZE - u) * v * 32;
      const w11 = u * v * 32;
      const o = (y * dw + x) * cn;
      if (sx >= sw || sx + 1 < 0 || sy >= sh || sy + 1 < 0) continue;
      for (let k = 0; k < cn; k++) {
        const s = px(sx, sy, k) * w00 + px(sx + 1, sy, k) * w01 + px(sx, sy + 1, k) * w10 + px(sx + 1, sy + 1, k) * w11;
        const r = (s + (1 << (REMAP_BITS - 1))) >> REMAP_BITS;
        out[o + k] = r > 255 ? 255 : r;
      }
    }
  }
  return { h: dh, w: dw, c: cn, data: out };
}
