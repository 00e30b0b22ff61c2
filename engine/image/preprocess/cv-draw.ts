import type { U8Mat } from './mat.ts';

/**
 * OpenCV's integer drawing on uint8 RGB/BGR images, as the OpenPose renderer of comfyui_controlnet_aux
 * calls it: `ellipse2Poly` (the 1°-step float sine table), `fillConvexPoly` (8-connected outline, then
 * the scanline fill in 16-bit fixed point) and the filled midpoint `circle`. Colours are written as
 * given, channel for channel.
 */

const XY_SHIFT = 16;
const XY_ONE = 1 << XY_SHIFT;

export type Point = readonly [number, number];
export type Color = readonly number[];

/** OpenCV's SinTable: sin of whole degrees 0..450, printed with 7 decimals, as float32. */
const SIN_TABLE = Float32Array.from({ length: 451 }, (_, i) => Number(Math.sin((i * Math.PI) / 180).toFixed(7)));

function cvRound(v: number): number {
  const r = Math.round(v);
  return (r - v === 0.5 && r % 2 !== 0 ? r - 1 : r) || 0;
}

/** `cv2.ellipse2Poly(center, axes, angle, arcStart, arcEnd, delta)` with integer output points. */
export function ellipse2Poly(center: Point, axes: Point, angle: number, arcStart: number, arcEnd: number, delta: number): Point[] {
  while (angle < 0) angle += 360;
  while (angle > 360) angle -= 360;
  if (arcStart > arcEnd) [arcStart, arcEnd] = [arcEnd, arcStart];
  while (arcStart < 0) {
    arcStart += 360;
    arcEnd += 360;
  }
  while (arcEnd > 360) {
    arcEnd -= 360;
    arcStart -= 360;
  }
  if (arcEnd - arcStart > 360) {
    arcStart = 0;
    arcEnd = 360;
  }
  const alpha = SIN_TABLE[450 - angle];
  const beta = SIN_TABLE[angle];
  const raw: [number, number][] = [];
  for (let i = arcStart; i < arcEnd + delta; i += delta) {
    let a = i;
    if (a > arcEnd) a = arcEnd;
    if (a < 0) a += 360;
    const x = axes[0] * SIN_TABLE[450 - a];
    const y = axes[1] * SIN_TABLE[a];
    raw.push([center[0] + x * alpha - y * beta, center[1] + x * beta + y * alpha]);
  }
  const pts: Point[] = [];
  let prev: Point | undefined;
  for (const [x, y] of raw) {
    const p: Point = [cvRound(x), cvRound(y)];
    if (!prev || p[0] !== prev[0] || p[1] !== prev[1]) {
      pts.push(p);
      prev = p;
    }
  }
  if (pts.length === 1) return [center, center];
  return pts;
}

function put(img: U8Mat, x: number, y: number, color: Color): void {
  const o = (y * img.w + x) * img.c;
  for (let k = 0; k < img.c; k++) img.data[o + k] = color[k];
}

function hline(img: U8Mat, y: number, x1: number, x2: number, color: Color): void {
  for (let x = x1; x <= x2; x++) put(img, x, y, color);
}

/** Cohen–Sutherland-style clip of OpenCV's clipLine to [0, w) × [0, h); false when nothing is left. */
function clipLine(w: number, h: number, p1: [number, number], p2: [number, number]): boolean {
  const right = w - 1;
  const bottom = h - 1;
  let [x1, y1] = p1;
  let [x2, y2] = p2;
  let c1 = (x1 < 0 ? 1 : 0) + (x1 > right ? 2 : 0) + (y1 < 0 ? 4 : 0) + (y1 > bottom ? 8 : 0);
  let c2 = (x2 < 0 ? 1 : 0) + (x2 > right ? 2 : 0) + (y2 < 0 ? 4 : 0) + (y2 > bottom ? 8 : 0);
  if ((c1 & c2) === 0 && (c1 | c2) !== 0) {
    let a: number;
    if (c1 & 12) {
      a = c1 < 8 ? 0 : bottom;
      x1 += Math.trunc(((a - y1) * (x2 - x1)) / (y2 - y1));
      y1 = a;
      c1 = (x1 < 0 ? 1 : 0) + (x1 > right ? 2 : 0);
    }
    if (c2 & 12) {
      a = c2 < 8 ? 0 : bottom;
      x2 += Math.trunc(((a - y2) * (x2 - x1)) / (y2 - y1));
      y2 = a;
      c2 = (x2 < 0 ? 1 : 0) + (x2 > right ? 2 : 0);
    }
    if ((c1 & c2) === 0 && (c1 | c2) !== 0) {
      if (c1) {
        a = c1 === 1 ? 0 : right;
        y1 += Math.trunc(((a - x1) * (y2 - y1)) / (x2 - x1));
        x1 = a;
        c1 = 0;
      }
      if (c2) {
        a = c2 === 1 ? 0 : right;
        y2 += Math.trunc(((a - x2) * (y2 - y1)) / (x2 - x1));
        x2 = a;
        c2 = 0;
      }
    }
  }
  p1[0] = x1;
  p1[1] = y1;
  p2[0] = x2;
  p2[1] = y2;
  return (c1 | c2) === 0;
}

/** OpenCV's Line with 8-connectivity (LineIterator left to right, clipped to the image). */
export function line8(img: U8Mat, a: Point, b: Point, color: Color): void {
  const p1: [number, number] = [a[0], a[1]];
  const p2: [number, number] = [b[0], b[1]];
  const outside = (p: [number, number]): boolean => p[0] < 0 || p[0] >= img.w || p[1] < 0 || p[1] >= img.h;
  if ((outside(p1) || outside(p2)) && !clipLine(img.w, img.h, p1, p2)) return;
  let dx = p2[0] - p1[0];
  let dy = p2[1] - p1[1];
  let x = p1[0];
  let y = p1[1];
  if (dx < 0) {
    dx = -dx;
    dy = -dy;
    x = p2[0];
    y = p2[1];
  }
  let sy = 1;
  if (dy < 0) {
    dy = -dy;
    sy = -1;
  }
  // the major axis steps every time, the minor one when err goes negative
  const steep = dy > dx;
  const major = steep ? dy : dx;
  const minor = steep ? dx : dy;
  let err = major - (minor + minor);
  const plusDelta = major + major;
  const minusDelta = -(minor + minor);
  for (let i = 0; i <= major; i++) {
    put(img, x, y, color);
    const neg = err < 0;
    err += minusDelta + (neg ? plusDelta : 0);
    // minusStep is along the major axis, plusStep along the minor one
    if (steep) {
      y += sy;
      if (neg) x += 1;
    } else {
      x += 1;
      if (neg) y += sy;
    }
  }
}

/** OpenCV's Line2: a line between 16-bit fixed-point points, clipped to the image. */
function line2(img: U8Mat, a: Point, b: Point, color: Color): void {
  let [x1, y1] = a;
  let [x2, y2] = b;
  const W = img.w * XY_ONE;
  const H = img.h * XY_ONE;
  const p1: [number, number] = [x1, y1];
  const p2: [number, number] = [x2, y2];
  if (!clipLine(W, H, p1, p2)) return;
  [x1, y1] = p1;
  [x2, y2] = p2;
  let dx = x2 - x1;
  let dy = y2 - y1;
  const ax = Math.abs(dx);
  const ay = Math.abs(dy);
  let xStep: number;
  let yStep: number;
  let ecount: number;
  if (ax > ay) {
    if (dx < 0) {
      dy = -dy;
      [x1, x2] = [x2, x1];
      [y1, y2] = [y2, y1];
    }
    xStep = XY_ONE;
    yStep = Math.trunc((dy * XY_ONE) / (ax | 1));
    ecount = Math.floor((x2 - x1) / XY_ONE);
  } else {
    if (dy < 0) {
      dx = -dx;
      [x1, x2] = [x2, x1];
      [y1, y2] = [y2, y1];
    }
    xStep = Math.trunc((dx * XY_ONE) / (ay | 1));
    yStep = XY_ONE;
    ecount = Math.floor((y2 - y1) / XY_ONE);
  }
  x1 += XY_ONE >> 1;
  y1 += XY_ONE >> 1;
  const putClipped = (x: number, y: number): void => {
    if (x >= 0 && x < img.w && y >= 0 && y < img.h) put(img, x, y, color);
  };
  putClipped(Math.floor((x2 + (XY_ONE >> 1)) / XY_ONE), Math.floor((y2 + (XY_ONE >> 1)) / XY_ONE));
  if (ax > ay) {
    x1 = Math.floor(x1 / XY_ONE);
    for (; ecount >= 0; ecount--) {
      putClipped(x1, Math.floor(y1 / XY_ONE));
      x1++;
      y1 += yStep;
    }
  } else {
    y1 = Math.floor(y1 / XY_ONE);
    for (; ecount >= 0; ecount--) {
      putClipped(Math.floor(x1 / XY_ONE), y1);
      x1 += xStep;
      y1++;
    }
  }
}

/** `cv2.fillConvexPoly(img, pts, color, LINE_8, shift)`: points in `shift`-bit fixed point (0 = pixels). */
export function fillConvexPoly(img: U8Mat, v: readonly Point[], color: Color, shift = 0): void {
  const npts = v.length;
  const delta = (1 << shift) >> 1;
  const up = 2 ** (XY_SHIFT - shift);
  const sh = (n: number): number => Math.floor((n + delta) / 2 ** shift);
  let p0 = v[npts - 1];
  let xmin = v[0][0];
  let xmax = v[0][0];
  let ymin = v[0][1];
  let ymax = v[0][1];
  let imin = 0;
  for (let i = 0; i < npts; i++) {
    const p = v[i];
    if (p[1] < ymin) {
      ymin = p[1];
      imin = i;
    }
    ymax = Math.max(ymax, p[1]);
    xmax = Math.max(xmax, p[0]);
    xmin = Math.min(xmin, p[0]);
    if (shift === 0) line8(img, p0, p, color);
    else line2(img, [p0[0] * up, p0[1] * up], [p[0] * up, p[1] * up], color);
    p0 = p;
  }
  xmin = sh(xmin);
  xmax = sh(xmax);
  ymin = sh(ymin);
  ymax = sh(ymax);
  if (npts < 3 || xmax < 0 || ymax < 0 || xmin >= img.w || ymin >= img.h) return;
  ymax = Math.min(ymax, img.h - 1);
  const delta1 = XY_ONE >> 1;
  const delta2 = XY_ONE >> 1;
  const edge = [
    { idx: imin, di: 1, x: -XY_ONE, dx: 0, ye: ymin },
    { idx: imin, di: npts - 1, x: -XY_ONE, dx: 0, ye: ymin },
  ];
  let edges = npts;
  let y = ymin;
  do {
    for (let i = 0; i < 2; i++) {
      const e = edge[i];
      if (y >= e.ye) {
        let idx0 = e.idx;
        let idx = idx0 + e.di;
        if (idx >= npts) idx -= npts;
        for (; edges-- > 0;) {
          const ty = sh(v[idx][1]);
          if (ty > y) {
            const xs = v[idx0][0] * up;
            const xe = v[idx][0] * up;
            e.ye = ty;
            e.dx = Math.trunc(((xe - xs) * 2 + (ty - y)) / (2 * (ty - y)));
            e.x = xs;
            e.idx = idx;
            break;
          }
          idx0 = idx;
          idx += e.di;
          if (idx >= npts) idx -= npts;
        }
      }
    }
    if (edges < 0) break;
    if (y >= 0) {
      const [l, r] = edge[0].x > edge[1].x ? [edge[1], edge[0]] : [edge[0], edge[1]];
      let x1 = Math.floor((l.x + delta1) / XY_ONE);
      let x2 = Math.floor((r.x + delta2) / XY_ONE);
      if (x2 >= 0 && x1 < img.w) {
        if (x1 < 0) x1 = 0;
        if (x2 >= img.w) x2 = img.w - 1;
        hline(img, y, x1, x2, color);
      }
    }
    edge[0].x += edge[0].dx;
    edge[1].x += edge[1].dx;
  } while (++y <= ymax);
}

/** `cv2.line(img, a, b, color, thickness)` with LINE_8 for thickness > 1: OpenCV's ThickLine (a fixed-point quad and round caps). */
export function thickLine(img: U8Mat, a: Point, b: Point, color: Color, thickness: number): void {
  if (thickness <= 1) {
    line8(img, a, b, color);
    return;
  }
  const p0: Point = [a[0] * XY_ONE, a[1] * XY_ONE];
  const p1: Point = [b[0] * XY_ONE, b[1] * XY_ONE];
  const odd = thickness & 1;
  const t = thickness * (XY_ONE >> 1);
  const dx = (p0[0] - p1[0]) / XY_ONE;
  const dy = (p1[1] - p0[1]) / XY_ONE;
  const r2 = dx * dx + dy * dy;
  if (Math.abs(r2) > Number.EPSILON) {
    const r = (t + odd * XY_ONE * 0.5) / Math.sqrt(r2);
    const dpx = cvRound(dy * r);
    const dpy = cvRound(dx * r);
    fillConvexPoly(
      img,
      [
        [p0[0] + dpx, p0[1] + dpy],
        [p0[0] - dpx, p0[1] - dpy],
        [p1[0] - dpx, p1[1] - dpy],
        [p1[0] + dpx, p1[1] + dpy],
      ],
      color,
      XY_SHIFT,
    );
  }
  const radius = (t + (XY_ONE >> 1)) >> XY_SHIFT;
  for (const p of [p0, p1])
    fillCircle(img, [Math.floor((p[0] + (XY_ONE >> 1)) / XY_ONE), Math.floor((p[1] + (XY_ONE >> 1)) / XY_ONE)], radius, color);
}

/** `cv2.circle(img, center, radius, color, thickness=-1)`: OpenCV's filled midpoint circle. */
export function fillCircle(img: U8Mat, center: Point, radius: number, color: Color): void {
  const [cx, cy] = center;
  let err = 0;
  let dx = radius;
  let dy = 0;
  let plus = 1;
  let minus = (radius << 1) - 1;
  const row = (yy: number, x1: number, x2: number): void => {
    if (yy < 0 || yy >= img.h) return;
    const a = Math.max(x1, 0);
    const b = Math.min(x2, img.w - 1);
    if (a <= b) hline(img, yy, a, b, color);
  };
  while (dx >= dy) {
    const x11 = cx - dx;
    const x12 = cx + dx;
    const x21 = cx - dy;
    const x22 = cx + dy;
    if (x11 < img.w && x12 >= 0 && cy - dx < img.h && cy + dx >= 0) {
      row(cy - dy, x11, x12);
      row(cy + dy, x11, x12);
      if (x21 < img.w && x22 >= 0) {
        row(cy - dx, x21, x22);
        row(cy + dx, x21, x22);
      }
    }
    dy++;
    err += plus;
    plus += 2;
    const mask = err <= 0 ? 0 : -1;
    err -= minus & mask;
    dx += mask;
    minus -= mask & 2;
  }
}
