import { maskAsBatch } from './layout.ts';
import type { MaskTensor } from '../core/tensor.ts';

const f32 = Math.fround;

/**
 * Max (or min) over the window [i − r, i + r] ∩ [0, n) of each element of a strided 1-D line, in
 * O(n) whatever r (van Herk / Gil-Werman: block prefix and suffix extremes).
 */
function windowExtreme(
  src: Float32Array,
  start: number,
  stride: number,
  n: number,
  r: number,
  grow: boolean,
  out: Float32Array,
  g: Float32Array,
  hb: Float32Array,
): void {
  const id = grow ? -Infinity : Infinity;
  const pick = grow ? Math.max : Math.min;
  const w = 2 * r + 1;
  const len = Math.ceil((n + 2 * r) / w) * w;
  const at = (j: number): number => (j >= r && j - r < n ? src[start + (j - r) * stride] : id);
  for (let j = 0; j < len; j++) g[j] = j % w === 0 ? at(j) : pick(g[j - 1], at(j));
  for (let j = len - 1; j >= 0; j--) hb[j] = j % w === w - 1 ? at(j) : pick(hb[j + 1], at(j));
  for (let i = 0; i < n; i++) out[start + i * stride] = pick(hb[i], g[i + 2 * r]);
}

/**
 * ComfyUI's GrowMask: |expand| passes of scipy's grey_dilation (expand > 0) or grey_erosion (< 0)
 * with a 3×3 footprint, a cross when `taperedCorners`, else the full square. scipy's default
 * border mode ('reflect') mirrors the edge pixel, which for a 3×3 footprint means neighbours
 * outside the mask simply do not count. k square passes reach exactly the (2k+1)² window clipped
 * to the mask, so the square is done in one separable windowed pass; the cross is iterated.
 */
export function growMask(mask: MaskTensor, expand: number, taperedCorners: boolean, onPass?: () => void): MaskTensor {
  const m = maskAsBatch(mask);
  const [b, h, w] = m.shape;
  if (!Number.isInteger(expand)) throw new Error(`GrowMask expand must be a whole number, got ${expand}`);
  const grow = expand > 0;
  const k = Math.abs(expand);
  if (k === 0 || h === 0 || w === 0) return { shape: [b, h, w], data: new Float32Array(m.data) };
  if (!taperedCorners) {
    onPass?.();
    const out = new Float32Array(m.data.length);
    const tmp = new Float32Array(h * w);
    // A window wider than the line covers all of it: clamp so buffers stay the line's size.
    const rx = Math.min(k, w);
    const ry = Math.min(k, h);
    const buf = Math.max(Math.ceil((w + 2 * rx) / (2 * rx + 1)) * (2 * rx + 1), Math.ceil((h + 2 * ry) / (2 * ry + 1)) * (2 * ry + 1));
    const g = new Float32Array(buf);
    const hb = new Float32Array(buf);
    for (let n = 0; n < b; n++) {
      const item = m.data.subarray(n * h * w, (n + 1) * h * w);
      for (let y = 0; y < h; y++) windowExtreme(item, y * w, 1, w, rx, grow, tmp, g, hb);
      const dst = out.subarray(n * h * w, (n + 1) * h * w);
      for (let x = 0; x < w; x++) windowExtreme(tmp, x, w, h, ry, grow, dst, g, hb);
    }
    return { shape: [b, h, w], data: out };
  }
  const pick = grow ? Math.max : Math.min;
  let cur = new Float32Array(m.data);
  let next = new Float32Array(cur.length);
  for (let it = 0; it < k; it++) {
    onPass?.();
    let changed = false;
    for (let n = 0; n < b; n++) {
      const off = n * h * w;
      // Cross: the pixel and its 4 edge neighbours.
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const i = off + y * w + x;
          let v = cur[i];
          if (x > 0) v = pick(v, cur[i - 1]);
          if (x < w - 1) v = pick(v, cur[i + 1]);
          if (y > 0) v = pick(v, cur[i - w]);
          if (y < h - 1) v = pick(v, cur[i + w]);
          next[i] = v;
          if (v !== cur[i]) changed = true;
        }
      }
    }
    [cur, next] = [next, cur];
    // Once a pass changes nothing, every further pass would return the same values.
    if (!changed) break;
  }
  return { shape: [b, h, w], data: cur };
}

/**
 * ComfyUI's FeatherMask: the i-th row/column from a feathered edge (0-based) is multiplied by
 * (i + 1) / n, where n is that edge's width clamped to the mask size; overlapping ramps multiply.
 */
export function featherMask(mask: MaskTensor, left: number, top: number, right: number, bottom: number): MaskTensor {
  const m = maskAsBatch(mask);
  const [b, h, w] = m.shape;
  const l = Math.min(left, w);
  const r = Math.min(right, w);
  const t = Math.min(top, h);
  const bt = Math.min(bottom, h);
  const out = new Float32Array(m.data);
  for (let n = 0; n < b; n++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = (n * h + y) * w + x;
        // ComfyUI multiplies in place once per ramp (left, right, top, bottom), each rate cast to
        // float32 as torch does with a Python scalar: keep that order and rounding.
        let v = out[i];
        if (x < l) v = f32(v * f32((x + 1) / l));
        if (w - 1 - x < r) v = f32(v * f32((w - x) / r));
        if (y < t) v = f32(v * f32((y + 1) / t));
        if (h - 1 - y < bt) v = f32(v * f32((h - y) / bt));
        out[i] = v;
      }
    }
  }
  return { shape: [b, h, w], data: out };
}
