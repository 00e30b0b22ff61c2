import { pyRound } from '../../core/py-round.ts';
import type { Tensor } from '../../core/tensor.ts';
import { otsuThreshold } from '../../image/preprocess/cv-color.ts';
import { cvResize, type CvInterpolation } from '../../image/preprocess/cv-resize.ts';
import type { U8Mat } from '../../image/preprocess/mat.ts';

/**
 * The A1111 ControlNet extension's control-map resize (`Script.detectmap_proc` in
 * scripts/controlnet.py with lvmin's `high_quality_resize`, `nake_nms` and `lvmin_thin`): the hint as
 * uint8 HWC, resized to the generation size by one of the three resize modes, back to 0..1.
 *
 * - Just Resize: stretched to the target size.
 * - Crop and Resize: scaled to cover the target (the larger factor), centre-cropped.
 * - Resize and Fill: scaled to fit inside (the smaller factor), centred on a background of the median
 *   border colour.
 *
 * `high_quality_resize` picks OpenCV's interpolation by content: nearest for maps of 3..199 colours
 * (segmentation, pose), area when shrinking, cubic when enlarging. A binary map (two colours, one
 * below 16 and one above 240) is averaged to grey and thresholded again with Otsu after the resize;
 * when most of its edges are one pixel wide (an opening removes them) it is also thinned by
 * non-maximum suppression and lvmin's hit-or-miss thinning, so edge maps keep one-pixel lines.
 */

export const A1111_RESIZE_MODES = ['Just Resize', 'Crop and Resize', 'Resize and Fill'] as const;
export type A1111ResizeMode = (typeof A1111_RESIZE_MODES)[number];

type Kernel = readonly (readonly number[])[];

/** numpy's rot90 (counter-clockwise, k times) of a 3×3 kernel. */
function rot90(k: Kernel, times: number): Kernel {
  let m = k;
  for (let t = 0; t < times; t++) m = [0, 1, 2].map((i) => [0, 1, 2].map((j) => m[j][2 - i]));
  return m;
}

const rotations = (raw: Kernel[]): Kernel[] => [0, 1, 2, 3].flatMap((t) => raw.map((k) => rot90(k, t)));

const THIN_KERNELS = rotations([
  [
    [-1, -1, -1],
    [0, 1, 0],
    [1, 1, 1],
  ],
  [
    [0, -1, -1],
    [1, 1, -1],
    [0, 1, 0],
  ],
]);
const PRUNE_KERNELS = rotations([
  [
    [-1, -1, -1],
    [-1, 1, -1],
    [0, 0, -1],
  ],
  [
    [-1, -1, -1],
    [-1, 1, -1],
    [-1, 0, 0],
  ],
]);

/**
 * cv2.erode (min) or cv2.dilate (max) of every channel with a 3×3 structuring element, default
 * borders: pixels outside the image never win.
 */
function morph(m: U8Mat, k: Kernel, op: 'min' | 'max'): U8Mat {
  const out = new Uint8Array(m.data.length);
  const { h, w, c } = m;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let ch = 0; ch < c; ch++) {
        let v = op === 'min' ? 255 : 0;
        for (let dy = -1; dy <= 1; dy++)
          for (let dx = -1; dx <= 1; dx++) {
            if (!k[dy + 1][dx + 1]) continue;
            const yy = y + dy;
            const xx = x + dx;
            if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
            const s = m.data[(yy * w + xx) * c + ch];
            v = op === 'min' ? Math.min(v, s) : Math.max(v, s);
          }
        out[(y * w + x) * c + ch] = v;
      }
  return { h, w, c, data: out };
}

/** lvmin's remove_pattern: cv2.MORPH_HITMISS (1 = foreground, -1 = background, outside counts as both), hits set to 0 in place. */
function removePattern(m: U8Mat, k: Kernel): boolean {
  const { h, w, data } = m;
  const hits: number[] = [];
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      let hit = true;
      for (let dy = -1; dy <= 1 && hit; dy++)
        for (let dx = -1; dx <= 1 && hit; dx++) {
          const want = k[dy + 1][dx + 1];
          const yy = y + dy;
          const xx = x + dx;
          if (!want || yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
          const v = data[yy * w + xx];
          // erode(src) over the 1s and erode(~src) over the -1s, then AND, then > 127.
          if (want === 1 ? v <= 127 : 255 - v <= 127) hit = false;
        }
      if (hit) hits.push(y * w + x);
    }
  for (const i of hits) data[i] = 0;
  return hits.length > 0;
}

function thinOnce(m: U8Mat, kernels: readonly Kernel[]): boolean {
  let done = true;
  for (const k of kernels) if (removePattern(m, k)) done = false;
  return done;
}

/** lvmin_thin: up to 32 thinning passes, then one pruning pass when asked. Modifies `m`. */
export function lvminThin(m: U8Mat, prunings: boolean): U8Mat {
  for (let i = 0; i < 32; i++) if (thinOnce(m, THIN_KERNELS)) break;
  if (prunings) thinOnce(m, PRUNE_KERNELS);
  return m;
}

/** nake_nms: a pixel survives when it equals the maximum along a horizontal, vertical or diagonal line through it. */
export function nakeNms(m: U8Mat): U8Mat {
  const lines: Kernel[] = [
    [
      [0, 0, 0],
      [1, 1, 1],
      [0, 0, 0],
    ],
    [
      [0, 1, 0],
      [0, 1, 0],
      [0, 1, 0],
    ],
    [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ],
    [
      [0, 0, 1],
      [0, 1, 0],
      [1, 0, 0],
    ],
  ];
  const out = new Uint8Array(m.data.length);
  for (const f of lines) {
    const d = morph(m, f, 'max');
    for (let i = 0; i < out.length; i++) if (d.data[i] === m.data[i]) out[i] = m.data[i];
  }
  return { ...m, data: out };
}

/** Distinct pixel values (rows of channels), as the extension's get_unique_axis0 counts them. */
function uniqueColours(m: U8Mat): number {
  const seen = new Set<number>();
  for (let p = 0; p < m.h * m.w; p++) {
    let key = 0;
    for (let ch = 0; ch < m.c; ch++) key = key * 256 + m.data[p * m.c + ch];
    seen.add(key);
  }
  return seen.size;
}

/** cv2.threshold(x, 0, 255, THRESH_BINARY + THRESH_OTSU) on one channel. */
function otsuBinary(m: U8Mat): U8Mat {
  const t = otsuThreshold(m);
  return { ...m, data: m.data.map((v) => (v > t ? 255 : 0)) };
}

/** lvmin's high_quality_resize to w × h (the extension's size argument is (w, h), as cv2's). */
export function highQualityResize(x: U8Mat, w: number, h: number): U8Mat {
  if (x.h === h && x.w === w) return x;
  const smaller = w * h < x.w * x.h;
  const bigger = w * h > x.w * x.h;
  const colours = uniqueColours(x);
  let binary = false;
  let onePixelEdge = false;
  if (colours === 2) {
    let lo = 255;
    let hi = 0;
    for (const v of x.data) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    binary = lo < 16 && hi > 240;
    if (binary) {
      const ones = [
        [1, 1, 1],
        [1, 1, 1],
        [1, 1, 1],
      ];
      const opened = morph(morph(x, ones, 'min'), ones, 'max');
      let thin = 0;
      let edges = 0;
      for (let i = 0; i < x.data.length; i++) {
        if (opened.data[i] < x.data[i]) thin++;
        if (x.data[i] > 127) edges++;
      }
      onePixelEdge = thin * 2 > edges;
    }
  }
  const method: CvInterpolation = colours > 2 && colours < 200 ? 'nearest' : smaller ? 'area' : 'cubic';
  let y = cvResize(x, w, h, method);
  if (binary) {
    let grey: U8Mat = { h, w, c: 1, data: new Uint8Array(h * w) };
    for (let p = 0; p < h * w; p++) {
      let s = 0;
      for (let ch = 0; ch < y.c; ch++) s += y.data[p * y.c + ch];
      grey.data[p] = Math.min(255, Math.trunc(s / y.c));
    }
    if (onePixelEdge) grey = lvminThin(otsuBinary(nakeNms(grey)), bigger);
    else grey = otsuBinary(grey);
    y = { h, w, c: 3, data: new Uint8Array(h * w * 3) };
    for (let p = 0; p < h * w; p++) y.data.fill(grey.data[p], p * 3, p * 3 + 3);
  }
  return y;
}

/** np.median of each channel over the border pixels (top and bottom rows, left and right columns), cast to uint8. */
function borderMedian(m: U8Mat): number[] {
  return Array.from({ length: m.c }, (_, ch) => {
    const v: number[] = [];
    for (let x = 0; x < m.w; x++) v.push(m.data[x * m.c + ch], m.data[((m.h - 1) * m.w + x) * m.c + ch]);
    for (let y = 0; y < m.h; y++) v.push(m.data[y * m.w * m.c + ch], m.data[(y * m.w + m.w - 1) * m.c + ch]);
    v.sort((a, b) => a - b);
    const mid = v.length >> 1;
    return Math.trunc(v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2);
  });
}

/** detectmap_proc for one uint8 HWC map → h × w. */
export function detectMapResize(map: U8Mat, mode: A1111ResizeMode, h: number, w: number): U8Mat {
  if (mode === 'Just Resize') return highQualityResize(map, w, h);
  const k0 = h / map.h;
  const k1 = w / map.w;
  if (mode === 'Resize and Fill') {
    const k = Math.min(k0, k1);
    const colour = borderMedian(map);
    const r = highQualityResize(map, pyRound(map.w * k), pyRound(map.h * k));
    const out: U8Mat = { h, w, c: map.c, data: new Uint8Array(h * w * map.c) };
    for (let p = 0; p < h * w; p++) for (let ch = 0; ch < map.c; ch++) out.data[p * map.c + ch] = colour[ch];
    const ph = Math.max(0, Math.floor((h - r.h) / 2));
    const pw = Math.max(0, Math.floor((w - r.w) / 2));
    for (let y = 0; y < Math.min(r.h, h - ph); y++)
      for (let x = 0; x < Math.min(r.w, w - pw); x++)
        for (let ch = 0; ch < map.c; ch++) out.data[((y + ph) * w + x + pw) * map.c + ch] = r.data[(y * r.w + x) * r.c + ch];
    return out;
  }
  const k = Math.max(k0, k1);
  const r = highQualityResize(map, pyRound(map.w * k), pyRound(map.h * k));
  const ph = Math.max(0, Math.floor((r.h - h) / 2));
  const pw = Math.max(0, Math.floor((r.w - w) / 2));
  const oh = Math.min(h, r.h - ph);
  const ow = Math.min(w, r.w - pw);
  const out: U8Mat = { h: oh, w: ow, c: r.c, data: new Uint8Array(oh * ow * r.c) };
  for (let y = 0; y < oh; y++) out.data.set(r.data.subarray(((y + ph) * r.w + pw) * r.c, ((y + ph) * r.w + pw + ow) * r.c), y * ow * r.c);
  return out;
}

/** The A1111 resize of a hint [B, 3, H, W] in 0..1 to width × height: each image as the uint8 map the extension holds, resized, back to 0..1. */
export function a1111ResizeHint(hint: Tensor, mode: A1111ResizeMode, width: number, height: number): Tensor {
  const [B, C, H, W] = hint.shape;
  if (C !== 3) throw new Error(`an A1111 control map is RGB; this hint has ${C} channels`);
  const outs: U8Mat[] = [];
  for (let b = 0; b < B; b++) {
    const m: U8Mat = { h: H, w: W, c: 3, data: new Uint8Array(H * W * 3) };
    for (let ch = 0; ch < 3; ch++)
      for (let i = 0; i < H * W; i++) {
        const v = Math.round(hint.data[(b * 3 + ch) * H * W + i] * 255);
        m.data[i * 3 + ch] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    outs.push(detectMapResize(m, mode, height, width));
  }
  const { h, w } = outs[0];
  const data = new Float32Array(B * 3 * h * w);
  outs.forEach((m, b) => {
    for (let ch = 0; ch < 3; ch++) for (let i = 0; i < h * w; i++) data[(b * 3 + ch) * h * w + i] = m.data[i * 3 + ch] / 255;
  });
  return { shape: [B, 3, h, w], data };
}
