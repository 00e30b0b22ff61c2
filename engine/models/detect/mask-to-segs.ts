import type { MaskTensor } from '../../core/tensor.ts';
import type { Box, Seg, Segs } from '../../image/segs.ts';
import { makeCropRegion } from './segs-build.ts';

/**
 * The Impact Pack's mask_to_segs (MaskToSEGS). Combined: one SEG around all non-zero pixels (its bbox
 * keeps the inclusive max corner, as `np.max(indices)` gives it). Separate: one SEG per outer contour
 * of `cv2.findContours(RETR_TREE)` on the 8-bit mask; here an outer contour is an 8-connected
 * component not lying in another's hole, its filled contour the component with its holes (background
 * not 4-connected to the outside), and contours come in OpenCV's order for top-level ones: the
 * reverse of where the scan first meets them. Checked against cv2 in tests/detect/mask-to-segs.test.ts.
 */

export interface MaskToSegsOptions {
  readonly combined: boolean;
  readonly cropFactor: number;
  readonly bboxFill: boolean;
  readonly dropSize: number;
  /** contour_fill: the SEG's mask is the filled contour instead of the mask's values inside it. */
  readonly contourFill: boolean;
  readonly label?: string;
  readonly cropMinSize?: number;
}

interface Component {
  /** first pixel in scan order */
  readonly start: number;
  readonly x0: number;
  readonly y0: number;
  readonly x1: number;
  readonly y1: number;
  /** filled region (component + holes) within [x0..x1] × [y0..y1] */
  readonly filled: Uint8Array;
}

/** 8-connected components of `fg` that no other component's holes contain, in scan order. */
function outerComponents(fg: Uint8Array, h: number, w: number): Component[] {
  const label = new Int32Array(h * w).fill(-1);
  const covered = new Uint8Array(h * w);
  const out: Component[] = [];
  const stack: number[] = [];
  let next = 0;
  for (let start = 0; start < h * w; start++) {
    if (!fg[start] || label[start] >= 0) continue;
    const id = next++;
    let x0 = w;
    let y0 = h;
    let x1 = -1;
    let y1 = -1;
    label[start] = id;
    stack.push(start);
    while (stack.length) {
      const p = stack.pop() as number;
      const x = p % w;
      const y = (p - x) / w;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= w) continue;
          const q = yy * w + xx;
          if (fg[q] && label[q] < 0) {
            label[q] = id;
            stack.push(q);
          }
        }
      }
    }
    if (covered[start]) continue; // inside an earlier component's hole: not an outer contour
    // background reachable from outside the bbox through 4-neighbours that are not this component
    const bw = x1 - x0 + 3;
    const bh = y1 - y0 + 3;
    const outside = new Uint8Array(bw * bh);
    const own = (lx: number, ly: number): boolean => {
      const x = lx + x0 - 1;
      const y = ly + y0 - 1;
      return x >= x0 && x <= x1 && y >= y0 && y <= y1 && label[y * w + x] === id;
    };
    const q: number[] = [0];
    outside[0] = 1;
    while (q.length) {
      const p = q.pop() as number;
      const lx = p % bw;
      const ly = (p - lx) / bw;
      const nb = [
        [lx - 1, ly],
        [lx + 1, ly],
        [lx, ly - 1],
        [lx, ly + 1],
      ];
      for (const [nx, ny] of nb) {
        if (nx < 0 || ny < 0 || nx >= bw || ny >= bh) continue;
        const r = ny * bw + nx;
        if (outside[r] || own(nx, ny)) continue;
        outside[r] = 1;
        q.push(r);
      }
    }
    const cw = x1 - x0 + 1;
    const filled = new Uint8Array(cw * (y1 - y0 + 1));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        if (!outside[(y - y0 + 1) * bw + (x - x0 + 1)]) {
          filled[(y - y0) * cw + (x - x0)] = 1;
          covered[y * w + x] = 1;
        }
      }
    }
    out.push({ start, x0, y0, x1, y1, filled });
  }
  return out;
}

function sliceCrop(src: Float32Array, w: number, r: Box): Float32Array {
  const cw = r[2] - r[0];
  const ch = r[3] - r[1];
  const out = new Float32Array(cw * ch);
  for (let y = 0; y < ch; y++) out.set(src.subarray((y + r[1]) * w + r[0], (y + r[1]) * w + r[2]), y * cw);
  return out;
}

/** numpy's `a[y1:y2, x1:x2] = 1` on an [h, w] array, with Python's slice clamping (negative = from the end). */
function fillSlice(a: Float32Array, h: number, w: number, x1: number, y1: number, x2: number, y2: number): void {
  const norm = (v: number, n: number): number => (v < 0 ? Math.max(0, n + v) : Math.min(v, n));
  const ys = norm(y1, h);
  const ye = norm(y2, h);
  const xs = norm(x1, w);
  const xe = norm(x2, w);
  for (let y = ys; y < ye; y++) for (let x = xs; x < xe; x++) a[y * w + x] = 1;
}

/** mask_to_segs over a MASK [H, W] or [B, H, W] (every mask of the batch adds its SEGs). */
export function maskToSegs(mask: MaskTensor, o: MaskToSegsOptions): Segs {
  const dims = mask.shape;
  if (dims.length < 2 || dims.length > 3) throw new Error(`MaskToSEGS: mask must be [H, W] or [B, H, W], got [${dims.join(', ')}]`);
  const [b, h, w] = dims.length === 2 ? [1, dims[0], dims[1]] : [dims[0], dims[1], dims[2]];
  const label = o.label ?? 'A';
  const drop = Math.max(o.dropSize, 1);
  const segments: Seg[] = [];
  for (let n = 0; n < b; n++) {
    const m = mask.data.subarray(n * h * w, (n + 1) * h * w);
    if (o.combined) {
      let minX = w;
      let minY = h;
      let maxX = -1;
      let maxY = -1;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          if (m[y * w + x] !== 0) {
            if (x < minX) minX = x;
            if (x > maxX) maxX = x;
            if (y < minY) minY = y;
            if (y > maxY) maxY = y;
          }
        }
      }
      if (maxX < 0) continue;
      const bbox: Box = [minX, minY, maxX, maxY];
      const cr = makeCropRegion(w, h, bbox, o.cropFactor);
      if (!(cr[2] - cr[0] > 0 && cr[3] - cr[1] > 0)) continue;
      const cropped = sliceCrop(m, w, cr);
      // the Impact Pack fills with the bbox's image coordinates inside the cropped mask
      if (o.bboxFill) fillSlice(cropped, cr[3] - cr[1], cr[2] - cr[0], bbox[0], bbox[1], bbox[2], bbox[3]);
      segments.push({ croppedMask: { shape: [cr[3] - cr[1], cr[2] - cr[0]], data: cropped }, confidence: 1, cropRegion: cr, bbox, label });
      continue;
    }
    const fg = new Uint8Array(h * w);
    for (let i = 0; i < h * w; i++) fg[i] = Math.fround(m[i] * 255) >= 1 ? 1 : 0;
    const comps = outerComponents(fg, h, w).reverse();
    for (const c of comps) {
      const cw = c.x1 - c.x0 + 1;
      const ch = c.y1 - c.y0 + 1;
      const bbox: Box = [c.x0, c.y0, c.x0 + cw, c.y0 + ch];
      const cr = makeCropRegion(w, h, bbox, o.cropFactor, o.cropMinSize);
      if (!(cw > drop && ch > drop)) continue;
      const rw = cr[2] - cr[0];
      const rh = cr[3] - cr[1];
      const cropped = new Float32Array(rw * rh);
      for (let y = 0; y < rh; y++) {
        const iy = y + cr[1];
        if (iy < c.y0 || iy > c.y1) continue;
        for (let x = 0; x < rw; x++) {
          const ix = x + cr[0];
          if (ix < c.x0 || ix > c.x1 || !c.filled[(iy - c.y0) * cw + (ix - c.x0)]) continue;
          cropped[y * rw + x] = o.contourFill ? 1 : m[iy * w + ix];
        }
      }
      if (o.bboxFill) fillSlice(cropped, rh, rw, c.x0 - cr[0], c.y0 - cr[1], c.x0 + cw - cr[0], c.y0 + ch - cr[1]);
      for (let i = 0; i < cropped.length; i++) cropped[i] = Math.min(Math.max(cropped[i], 0), 1);
      segments.push({ croppedMask: { shape: [rh, rw], data: cropped }, confidence: 1, cropRegion: cr, bbox, label });
    }
  }
  return { shape: [h, w], segments };
}
