import { cvResize, type CvInterpolation } from './cv-resize.ts';
import { cropTopLeft, hwc3, type U8Mat } from './mat.ts';

/**
 * comfyui_controlnet_aux's `resize_image_with_pad`: the short side to `resolution` (numpy rounding of
 * each side), INTER_AREA when shrinking or keeping the size, the node's method when enlarging, then
 * edge-padding of the bottom and right up to multiples of 64. The detector runs on the padded image and
 * `removePad` crops its result back to the resized size (not to the input size: the aux nodes return
 * images at detect resolution).
 */
export interface Padded {
  image: U8Mat;
  /** The resized size before padding. */
  h: number;
  w: number;
}

/** numpy's np.round on a float (half to even). */
function npRound(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function pad64(x: number): number {
  return Math.ceil(x / 64) * 64 - x;
}

/** `np.pad(img, [[0, ph], [0, pw], [0, 0]], mode='edge')`. */
export function padEdge(m: U8Mat, ph: number, pw: number): U8Mat {
  if (ph === 0 && pw === 0) return m;
  const H = m.h + ph;
  const W = m.w + pw;
  const out = new Uint8Array(H * W * m.c);
  for (let y = 0; y < H; y++) {
    const sy = Math.min(y, m.h - 1);
    for (let x = 0; x < W; x++) {
      const sx = Math.min(x, m.w - 1);
      for (let k = 0; k < m.c; k++) out[(y * W + x) * m.c + k] = m.data[(sy * m.w + sx) * m.c + k];
    }
  }
  return { h: H, w: W, c: m.c, data: out };
}

export function resizeImageWithPad(input: U8Mat, resolution: number, upscale: CvInterpolation = 'cubic'): Padded {
  const img = hwc3(input);
  if (resolution === 0) return { image: img, h: img.h, w: img.w };
  const k = resolution / Math.min(img.h, img.w);
  const h = npRound(img.h * k);
  const w = npRound(img.w * k);
  if (h < 1 || w < 1) {
    throw new Error(`a ${img.w}x${img.h} image resized to ${resolution} on its short side would be ${w}x${h}: too thin to process`);
  }
  const resized = cvResize(img, w, h, k > 1 ? upscale : 'area');
  return { image: padEdge(resized, pad64(h), pad64(w)), h, w };
}

export function removePad<M extends U8Mat>(p: Padded, result: M): U8Mat {
  return cropTopLeft(result, p.h, p.w);
}
