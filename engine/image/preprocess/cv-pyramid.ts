import type { U8Mat } from './mat.ts';

/**
 * `cv2.pyrUp` and `cv2.pyrDown` on uint8 with the default border, as OpenCV computes them: the 5-tap
 * binomial kernel [1 4 6 4 1] split into even/odd phases for pyrUp, integer sums over both axes and one
 * rounding shift at the end (by 6 for pyrUp, 8 for pyrDown). OpenCV's pyrUp reflects at the top/left
 * edge and replicates at the bottom/right one (its last output pair is src[n-2] + 7·src[n-1] and
 * 8·src[n-1]); pyrDown reflects (BORDER_REFLECT_101) on both sides.
 */

/** One axis of pyrUp on integer samples: 2n outputs from n inputs, weights ×8. */
function upLine(src: (i: number) => number, n: number, out: Int32Array, stride: number, offset: number): void {
  if (n === 1) {
    out[offset] = src(0) * 8;
    out[offset + stride] = src(0) * 8;
    return;
  }
  for (let i = 0; i < n; i++) {
    const l = i === 0 ? src(1) : src(i - 1);
    const c = src(i);
    const r = i === n - 1 ? c : src(i + 1);
    out[offset + 2 * i * stride] = l + 6 * c + r;
    out[offset + (2 * i + 1) * stride] = 4 * (c + r);
  }
}

export function pyrUp(src: U8Mat): U8Mat {
  const { h, w, c } = src;
  const W = 2 * w;
  const H = 2 * h;
  const rows = new Int32Array(h * W * c);
  for (let y = 0; y < h; y++) {
    for (let k = 0; k < c; k++) upLine((i) => src.data[(y * w + i) * c + k], w, rows, c, y * W * c + k);
  }
  const acc = new Int32Array(H * W * c);
  for (let x = 0; x < W * c; x++) upLine((i) => rows[i * W * c + x], h, acc, W * c, x);
  const out = new Uint8Array(H * W * c);
  for (let i = 0; i < out.length; i++) out[i] = Math.min(255, (acc[i] + 32) >> 6);
  return { h: H, w: W, c, data: out };
}

function reflect101(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

export function pyrDown(src: U8Mat): U8Mat {
  const { h, w, c } = src;
  const W = Math.floor((w + 1) / 2);
  const H = Math.floor((h + 1) / 2);
  const k5 = [1, 4, 6, 4, 1];
  const rows = new Int32Array(h * W * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < W; x++) {
      for (let k = 0; k < c; k++) {
        let s = 0;
        for (let t = 0; t < 5; t++) s += k5[t] * src.data[(y * w + reflect101(2 * x + t - 2, w)) * c + k];
        rows[(y * W + x) * c + k] = s;
      }
    }
  }
  const out = new Uint8Array(H * W * c);
  for (let y = 0; y < H; y++) {
    for (let i = 0; i < W * c; i++) {
      let s = 0;
      for (let t = 0; t < 5; t++) s += k5[t] * rows[reflect101(2 * y + t - 2, h) * W * c + i];
      out[y * W * c + i] = Math.min(255, (s + 128) >> 8);
    }
  }
  return { h: H, w: W, c, data: out };
}
