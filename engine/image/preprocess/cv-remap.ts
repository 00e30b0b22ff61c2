import type { U8Mat } from './mat.ts';

/**
 * `cv2.remap(src, map, None, INTER_LINEAR)` on uint8 with float32 maps and the default constant border
 * (0): coordinates rounded to 1/32 pixel, bilinear weights in 15-bit fixed point (exact products for
 * 32 steps), neighbours outside the image read as 0.
 */
export function remapLinear(src: U8Mat, mapX: Float32Array, mapY: Float32Array, h: number, w: number): U8Mat {
  const cn = src.c;
  const out = new Uint8Array(h * w * cn);
  const cvRound = (v: number): number => {
    const r = Math.round(v);
    return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
  };
  const at = (x: number, y: number, k: number): number =>
    x < 0 || y < 0 || x >= src.w || y >= src.h ? 0 : src.data[(y * src.w + x) * cn + k];
  for (let i = 0; i < h * w; i++) {
    const X = cvRound(Math.fround(mapX[i] * 32));
    const Y = cvRound(Math.fround(mapY[i] * 32));
    const sx = X >> 5;
    const sy = Y >> 5;
    const fx = X & 31;
    const fy = Y & 31;
    if (sx >= src.w || sx + 1 < 0 || sy >= src.h || sy + 1 < 0) continue;
    const w0 = (32 - fy) * (32 - fx) * 32;
    const w1 = (32 - fy) * fx * 32;
    const w2 = fy * (32 - fx) * 32;
    const w3 = fy * fx * 32;
    for (let k = 0; k < cn; k++) {
      const v = at(sx, sy, k) * w0 + at(sx + 1, sy, k) * w1 + at(sx, sy + 1, k) * w2 + at(sx + 1, sy + 1, k) * w3;
      out[i * cn + k] = Math.min(255, Math.max(0, (v + (1 << 14)) >> 15));
    }
  }
  return { h, w, c: cn, data: out };
}
