import { pyRound } from '../../core/py-round.ts';
import { pilResampleLanczos8 } from '../pil-lanczos.ts';
import { quantize8 } from '../quantize.ts';
import type { Box } from './geometry.ts';
import { gray8, pasteGray, resizeBicubic, type Gray8 } from './pil-ops.ts';

/**
 * Ultimate SD Upscale's `crop_mask` (ComfyUI_UltimateSDUpscale's usdu_utils): a conditioning mask
 * goes through 8-bit Pillow images: resized to the canvas with BICUBIC, cut to the tile's crop
 * region, then `resize_and_pad_image(fill=True)` to the tile size (LANCZOS to the largest size of
 * the same aspect, edges repeated into the margins by `pad_image2`, LANCZOS to the tile), and back
 * to floats as bytes / 255.
 */

/** `Image.resize((w, h), NEAREST)`: Pillow's ImagingScaleAffine, source positions accumulated in doubles from the half-pixel. */
export function resizeNearest(img: Gray8, w: number, h: number): Gray8 {
  if (w === img.w && h === img.h) return { w, h, data: new Uint8Array(img.data) };
  const out = gray8(w, h);
  const sx = img.w / w;
  const sy = img.h / h;
  // Pillow accumulates `xo += a[0]` rather than multiplying, which can differ in the last bit; kept.
  const xin = new Int32Array(w);
  let xo = sx * 0.5;
  for (let x = 0; x < w; x++, xo += sx) xin[x] = Math.min(img.w - 1, Math.trunc(xo));
  let yo = sy * 0.5;
  for (let y = 0; y < h; y++, yo += sy) {
    const row = Math.min(img.h - 1, Math.trunc(yo)) * img.w;
    for (let x = 0; x < w; x++) out.data[y * w + x] = img.data[row + xin[x]];
  }
  return out;
}

/** `Image.crop(box)` inside the image. */
export function cropGray(img: Gray8, [x1, y1, x2, y2]: Box): Gray8 {
  const out = gray8(x2 - x1, y2 - y1);
  for (let y = y1; y < y2; y++) out.data.set(img.data.subarray(y * img.w + x1, y * img.w + x2), (y - y1) * out.w);
  return out;
}

const lanczosGray = (img: Gray8, w: number, h: number): Gray8 => ({ w, h, data: pilResampleLanczos8(img.data, 1, img.h, img.w, h, w) });

/**
 * `pad_image2(image, left, right, top, bottom, fill=True)`: the image on a black canvas, each margin
 * filled with its edge row or column stretched (nearest) over the margin. The edges skip the
 * image's corner pixels, and the top and bottom bands are pasted last, over the side bands.
 */
export function padEdges(img: Gray8, left: number, right: number, top: number, bottom: number): Gray8 {
  const W = img.w + left + right;
  const H = img.h + top + bottom;
  const out = gray8(W, H);
  pasteGray(out, img, left, top);
  if ((left > 0 || right > 0) && img.h < 3) throw new Error(`Ultimate SD Upscale mask: cannot pad the sides of a ${img.w}x${img.h} mask`);
  if ((top > 0 || bottom > 0) && img.w < 3)
    throw new Error(`Ultimate SD Upscale mask: cannot pad the top and bottom of a ${img.w}x${img.h} mask`);
  if (left > 0) pasteGray(out, resizeNearest(cropGray(img, [0, 1, 1, img.h - 1]), left, H), 0, 0);
  if (right > 0) pasteGray(out, resizeNearest(cropGray(img, [img.w - 1, 1, img.w, img.h - 1]), right, H), W - right, 0);
  if (top > 0) pasteGray(out, resizeNearest(cropGray(img, [1, 0, img.w - 1, 1]), W, top), 0, 0);
  if (bottom > 0) pasteGray(out, resizeNearest(cropGray(img, [1, img.h - 1, img.w - 1, img.h]), W, bottom), 0, H - bottom);
  return out;
}

/** `resize_and_pad_image(image, w, h, fill=True)`: the largest same-aspect LANCZOS resize, padded with its edges, LANCZOS to w × h. */
export function resizeAndPad(img: Gray8, w: number, h: number): Gray8 {
  const wr = w / img.w;
  const hr = h / img.h;
  const ratio = hr > wr ? wr : hr;
  const rw = pyRound(img.w * ratio);
  const rh = pyRound(img.h * ratio);
  const resized = rw === img.w && rh === img.h ? img : lanczosGray(img, rw, rh);
  const hp = Math.floor((w - rw) / 2);
  const vp = Math.floor((h - rh) / 2);
  const padded = hp === 0 && vp === 0 ? resized : padEdges(resized, hp, hp, vp, vp);
  return padded.w === w && padded.h === h ? { w, h, data: new Uint8Array(padded.data) } : lanczosGray(padded, w, h);
}

/**
 * One conditioning mask ([B, H, W] or [H, W], any resolution) cropped to one tile: each mask of the
 * batch as an 8-bit image (255·m truncated; values outside 0..1 are clamped, where numpy's cast
 * would wrap), BICUBIC to the canvas, cut to `region`, resized and padded to `tile`, / 255.
 */
export function cropConditioningMask(
  mask: { readonly shape: readonly number[]; readonly data: Float32Array },
  canvas: readonly [number, number],
  region: Box,
  tile: readonly [number, number],
): { shape: number[]; data: Float32Array } {
  const [b, mh, mw] = mask.shape.length === 2 ? [1, mask.shape[0], mask.shape[1]] : mask.shape;
  const [tw, th] = tile;
  const out = new Float32Array(b * tw * th);
  for (let i = 0; i < b; i++) {
    const src = gray8(mw, mh);
    for (let k = 0; k < mw * mh; k++) src.data[k] = quantize8(mask.data[i * mw * mh + k]);
    const cut = cropGray(resizeBicubic(src, canvas[0], canvas[1]), region);
    const t = resizeAndPad(cut, tw, th);
    for (let k = 0; k < tw * th; k++) out[i * tw * th + k] = t.data[k] / 255;
  }
  return { shape: [b, th, tw], data: out };
}
