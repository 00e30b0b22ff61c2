import type { U8Mat } from './mat.ts';

/**
 * `cv2.Canny(image, low, high)` with OpenCV's defaults (aperture 3, L1 gradient) on uint8 images of
 * any channel count: 3×3 Sobel with replicated borders per channel, the channel of largest |dx|+|dy|
 * (the first on ties), non-maximum suppression with OpenCV's fixed-point tan(22.5°) sector tests
 * (strict on one side, as OpenCV), then hysteresis over 8-neighbours. Returns one channel, 0 or 255.
 */

const SHIFT = 15;
const TG22 = Math.trunc(0.4142135623730950488016887242097 * (1 << SHIFT) + 0.5);

export function cvCanny(src: U8Mat, lowThreshold: number, highThreshold: number): U8Mat {
  const { h, w, c } = src;
  let lo = lowThreshold;
  let hi = highThreshold;
  if (lo > hi) [lo, hi] = [hi, lo];
  const low = Math.floor(lo);
  const high = Math.floor(hi);
  const n = h * w;
  const dx = new Int32Array(n);
  const dy = new Int32Array(n);
  const mag = new Int32Array((h + 2) * (w + 2));
  const px = (y: number, x: number, k: number): number =>
    src.data[((y < 0 ? 0 : y >= h ? h - 1 : y) * w + (x < 0 ? 0 : x >= w ? w - 1 : x)) * c + k];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let best = -1;
      let bx = 0;
      let by = 0;
      for (let k = 0; k < c; k++) {
        const gx =
          px(y - 1, x + 1, k) - px(y - 1, x - 1, k) + 2 * (px(y, x + 1, k) - px(y, x - 1, k)) + px(y + 1, x + 1, k) - px(y + 1, x - 1, k);
        const gy =
          px(y + 1, x - 1, k) - px(y - 1, x - 1, k) + 2 * (px(y + 1, x, k) - px(y - 1, x, k)) + px(y + 1, x + 1, k) - px(y - 1, x + 1, k);
        const m = Math.abs(gx) + Math.abs(gy);
        if (m > best) {
          best = m;
          bx = gx;
          by = gy;
        }
      }
      dx[y * w + x] = bx;
      dy[y * w + x] = by;
      mag[(y + 1) * (w + 2) + x + 1] = best;
    }
  }
  // 0: candidate, 1: not an edge, 2: edge (OpenCV's map), with a border of 1s.
  const W = w + 2;
  const map = new Uint8Array((h + 2) * W).fill(1);
  const stack: number[] = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y + 1) * W + x + 1;
      const m = mag[i];
      if (m <= low) continue;
      const xs = dx[y * w + x];
      const ys = dy[y * w + x];
      const ax = Math.abs(xs);
      const ay = Math.abs(ys) * (1 << SHIFT);
      const tg22x = ax * TG22;
      let keep: boolean;
      if (ay < tg22x) keep = m > mag[i - 1] && m >= mag[i + 1];
      else {
        const tg67x = tg22x + ax * (1 << (SHIFT + 1));
        if (ay > tg67x) keep = m > mag[i - W] && m >= mag[i + W];
        else {
          const s = (xs ^ ys) < 0 ? -1 : 1;
          keep = m > mag[i - W - s] && m > mag[i + W + s];
        }
      }
      if (!keep) continue;
      if (m > high) {
        map[i] = 2;
        stack.push(i);
      } else map[i] = 0;
    }
  }
  const nb = [-W - 1, -W, -W + 1, -1, 1, W - 1, W, W + 1];
  while (stack.length > 0) {
    const i = stack.pop() as number;
    for (const o of nb) {
      if (map[i + o] === 0) {
        map[i + o] = 2;
        stack.push(i + o);
      }
    }
  }
  const out = new Uint8Array(n);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = map[(y + 1) * W + x + 1] === 2 ? 255 : 0;
  return { h, w, c: 1, data: out };
}
