import { morphRect } from '../../models/detect/segs-build.ts';
import type { Box, Seg } from '../../image/segs.ts';

/**
 * A1111 ADetailer's detection post-processing (adetailer/mask.py, common.py) on 8-bit full-image
 * masks: box masks as PIL draws them, ratio and top-k filters, bbox sorting, and mask_preprocess
 * (offset, dilate/erode, merge/invert) in its order.
 */

/** One detection as ADetailer's PredictOutput holds it: a float box, its confidence and its mask at image size. */
export interface AdDetection {
  readonly bbox: Box;
  readonly confidence: number;
  readonly mask: Uint8Array;
}

export const AD_SORT_BY = ['None', 'Position (left to right)', 'Position (center to edge)', 'Area (large to small)'] as const;
export const AD_MERGE_INVERT = ['None', 'Merge', 'Merge and Invert'] as const;
export type AdSortBy = (typeof AD_SORT_BY)[number];
export type AdMergeInvert = (typeof AD_MERGE_INVERT)[number];

/** create_mask_from_bbox: PIL's ImageDraw.rectangle(bbox, fill=255) — corners truncated to integers, both inclusive. */
export function boxMaskU8(h: number, w: number, box: Box): Uint8Array {
  const m = new Uint8Array(h * w);
  const x1 = Math.max(Math.trunc(box[0]), 0);
  const y1 = Math.max(Math.trunc(box[1]), 0);
  const x2 = Math.min(Math.trunc(box[2]), w - 1);
  const y2 = Math.min(Math.trunc(box[3]), h - 1);
  for (let y = y1; y <= y2; y++) if (x2 >= x1) m.fill(255, y * w + x1, y * w + x2 + 1);
  return m;
}

/** A segm detection's mask placed at its crop region as an 8-bit image (to_pil_image: v·255 truncated). */
export function segMaskU8(seg: Seg, h: number, w: number): Uint8Array {
  const m = new Uint8Array(h * w);
  const [x1, y1, x2, y2] = seg.cropRegion;
  const cw = x2 - x1;
  for (let y = Math.max(y1, 0); y < Math.min(y2, h); y++)
    for (let x = Math.max(x1, 0); x < Math.min(x2, w); x++)
      m[y * w + x] = Math.min(255, Math.max(0, Math.trunc(seg.croppedMask.data[(y - y1) * cw + x - x1] * 255)));
  return m;
}

const area = (b: Box): number => (b[2] - b[0]) * (b[3] - b[1]);

/** filter_by_ratio: keep boxes whose area / image area lies in [low, high]. */
export function filterByRatio(d: readonly AdDetection[], low: number, high: number, h: number, w: number): AdDetection[] {
  return d.filter((x) => {
    const r = area(x.bbox) / (w * h);
    return low <= r && r <= high;
  });
}

/**
 * filter_k_largest / filter_k_most_confident: the k largest (or most confident), largest first;
 * k = 0 keeps all. numpy's argsort is not stable; ties keep detection order here.
 */
export function filterK(d: readonly AdDetection[], k: number, by: 'Area' | 'Confidence'): AdDetection[] {
  if (k === 0 || d.length === 0) return [...d];
  const key = (x: AdDetection): number => (by === 'Area' ? area(x.bbox) : x.confidence);
  const asc = d.map((x, i) => ({ x, i })).sort((a, b) => key(a.x) - key(b.x) || a.i - b.i);
  return asc
    .slice(-k)
    .reverse()
    .map((e) => e.x);
}

/** sort_bboxes with ADetailer's ad_bbox_sortby setting (Python's stable sort). */
export function sortDetections(d: readonly AdDetection[], by: AdSortBy, h: number, w: number): AdDetection[] {
  if (by === 'None' || d.length <= 1) return [...d];
  const key =
    by === 'Position (left to right)'
      ? (b: Box): number => b[0]
      : by === 'Area (large to small)'
        ? (b: Box): number => -area(b)
        : (b: Box): number => Math.hypot(w / 2 - (b[0] + b[2]) / 2, h / 2 - (b[1] + b[3]) / 2);
  return d
    .map((x, i) => ({ x, i, k: key(x.bbox) }))
    .sort((a, b) => a.k - b.k || a.i - b.i)
    .map((e) => e.x);
}

/** ImageChops.offset(mask, x, −y): the mask rolled x right and y up, wrapping around. */
export function offsetMask(m: Uint8Array, h: number, w: number, x: number, y: number): Uint8Array {
  if (x === 0 && y === 0) return m;
  const out = new Uint8Array(h * w);
  const mod = (a: number, n: number): number => ((a % n) + n) % n;
  for (let r = 0; r < h; r++) {
    const dr = mod(r - y, h);
    for (let c = 0; c < w; c++) out[dr * w + mod(c + x, w)] = m[r * w + c];
  }
  return out;
}

/** dilate_erode: cv2.dilate (value > 0) or cv2.erode (< 0) with a value×value MORPH_RECT kernel, once. */
export function dilateErode(m: Uint8Array, h: number, w: number, value: number): Uint8Array {
  if (value === 0) return m;
  return Uint8Array.from(morphRect(Float32Array.from(m), h, w, value));
}

/** mask_preprocess: offset, then dilate/erode dropping masks left all black, then merge / merge and invert. */
export function maskPreprocess(
  masks: readonly Uint8Array[],
  h: number,
  w: number,
  o: { kernel: number; xOffset: number; yOffset: number; mergeInvert: AdMergeInvert },
): Uint8Array[] {
  if (masks.length === 0) return [];
  let out = masks.map((m) => offsetMask(m, h, w, o.xOffset, o.yOffset));
  if (o.kernel !== 0) out = out.map((m) => dilateErode(m, h, w, o.kernel)).filter((m) => m.some((v) => v !== 0));
  if (o.mergeInvert === 'None' || out.length === 0) return out;
  const merged = new Uint8Array(h * w);
  for (const m of out) for (let i = 0; i < merged.length; i++) merged[i] |= m[i];
  if (o.mergeInvert === 'Merge') return [merged];
  return [merged.map((v) => 255 - v)];
}
