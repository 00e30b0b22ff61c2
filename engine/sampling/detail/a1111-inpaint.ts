import { pilResampleLanczos8 } from '../../image/pil-lanczos.ts';

/**
 * AUTOMATIC1111's inpainting geometry (modules/processing.py StableDiffusionProcessingImg2Img.init,
 * modules/masking.py, images.resize_image, apply_overlay) in its 8-bit arithmetic. Images are planar
 * uint8 [C, H, W]; masks [H, W].
 */

export interface PlanarU8 {
  readonly c: number;
  readonly h: number;
  readonly w: number;
  readonly data: Uint8Array;
}

/** create_binary_mask(round=True): 255 where the value is above 128. */
export function binaryMask(m: Uint8Array): Uint8Array {
  return m.map((v) => (v > 128 ? 255 : 0));
}

/** cv2.getGaussianKernel(k, σ) for σ > 0: exp(−(i − (k−1)/2)² / 2σ²), summing to 1. */
export function cvGaussianKernel(k: number, sigma: number): Float64Array {
  const g = new Float64Array(k);
  let s = 0;
  for (let i = 0; i < k; i++) {
    const x = i - (k - 1) / 2;
    g[i] = Math.exp(-(x * x) / (2 * sigma * sigma));
    s += g[i];
  }
  return g.map((v) => v / s);
}

/** OpenCV's default border (BORDER_REFLECT_101): gfedcb|abcdefgh|gfedcba. */
function reflect101(i: number, n: number): number {
  if (n === 1) return 0;
  let k = i;
  while (k < 0 || k >= n) k = k < 0 ? -k : 2 * (n - 1) - k;
  return k;
}

/** Round half to even, as cvRound / saturate_cast<uchar> do. */
function cvRound(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * A1111's mask blur: cv2.GaussianBlur with a (k, 1) kernel then a (1, k) one, k = 2·⌊2.5·blur + 0.5⌋ + 1,
 * σ = blur. OpenCV computes 8-bit blurs in fixed point; this is the float filter rounded (±1 at most).
 */
export function a1111MaskBlur(m: Uint8Array, h: number, w: number, blurX: number, blurY = blurX): Uint8Array {
  let cur = m;
  if (blurX > 0) {
    const k = 2 * Math.trunc(2.5 * blurX + 0.5) + 1;
    const g = cvGaussianKernel(k, blurX);
    const r = (k - 1) / 2;
    const out = new Uint8Array(h * w);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let j = 0; j < k; j++) s += g[j] * cur[y * w + reflect101(x + j - r, w)];
        out[y * w + x] = Math.min(255, Math.max(0, cvRound(s)));
      }
    cur = out;
  }
  if (blurY > 0) {
    const k = 2 * Math.trunc(2.5 * blurY + 0.5) + 1;
    const g = cvGaussianKernel(k, blurY);
    const r = (k - 1) / 2;
    const out = new Uint8Array(h * w);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let j = 0; j < k; j++) s += g[j] * cur[reflect101(y + j - r, h) * w + x];
        out[y * w + x] = Math.min(255, Math.max(0, cvRound(s)));
      }
    cur = out;
  }
  return cur;
}

export type CropBox = [number, number, number, number];

/** masking.get_crop_region: the bounding box of the non-zero pixels grown by pad, clamped; undefined for a blank mask. */
export function getCropRegion(m: Uint8Array, h: number, w: number, pad: number): CropBox | undefined {
  let x1 = w;
  let y1 = h;
  let x2 = -1;
  let y2 = -1;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      if (m[y * w + x] !== 0) {
        if (x < x1) x1 = x;
        if (x > x2) x2 = x;
        if (y < y1) y1 = y;
        if (y > y2) y2 = y;
      }
  if (x2 < 0) return undefined;
  return [Math.max(x1 - pad, 0), Math.max(y1 - pad, 0), Math.min(x2 + 1 + pad, w), Math.min(y2 + 1 + pad, h)];
}

/** masking.expand_crop_region: grow the shorter way to the processing size's aspect ratio, shifted back inside the image. */
export function expandCropRegion(r: CropBox, pw: number, ph: number, iw: number, ih: number): CropBox {
  let [x1, y1, x2, y2] = r;
  const ratioCrop = (x2 - x1) / (y2 - y1);
  const ratioProc = pw / ph;
  const floorDiv2 = (v: number): number => Math.floor(v / 2);
  if (ratioCrop > ratioProc) {
    const diff = Math.trunc((x2 - x1) / ratioProc - (y2 - y1));
    y1 -= floorDiv2(diff);
    y2 += diff - floorDiv2(diff);
    if (y2 >= ih) {
      const d = y2 - ih;
      y2 -= d;
      y1 -= d;
    }
    if (y1 < 0) {
      y2 -= y1;
      y1 = 0;
    }
    if (y2 >= ih) y2 = ih;
  } else {
    const diff = Math.trunc((y2 - y1) * ratioProc - (x2 - x1));
    x1 -= floorDiv2(diff);
    x2 += diff - floorDiv2(diff);
    if (x2 >= iw) {
      const d = x2 - iw;
      x2 -= d;
      x1 -= d;
    }
    if (x1 < 0) {
      x2 -= x1;
      x1 = 0;
    }
    if (x2 >= iw) x2 = iw;
  }
  return [x1, y1, x2, y2];
}

export function cropPlanar(img: PlanarU8, r: CropBox): PlanarU8 {
  const [x1, y1, x2, y2] = r;
  const w = x2 - x1;
  const h = y2 - y1;
  const data = new Uint8Array(img.c * h * w);
  for (let c = 0; c < img.c; c++)
    for (let y = 0; y < h; y++)
      data.set(img.data.subarray((c * img.h + y1 + y) * img.w + x1, (c * img.h + y1 + y) * img.w + x2), (c * h + y) * w);
  return { c: img.c, h, w, data };
}

/** PIL's resize(LANCZOS) of every band. */
export function lanczosPlanar(img: PlanarU8, w: number, h: number): PlanarU8 {
  return { c: img.c, h, w, data: pilResampleLanczos8(img.data, img.c, img.h, img.w, h, w) };
}

function pasteInto(dst: PlanarU8, src: PlanarU8, x0: number, y0: number): void {
  for (let c = 0; c < src.c; c++)
    for (let y = 0; y < src.h; y++) {
      const dy = y0 + y;
      if (dy < 0 || dy >= dst.h) continue;
      for (let x = 0; x < src.w; x++) {
        const dx = x0 + x;
        if (dx >= 0 && dx < dst.w) dst.data[(c * dst.h + dy) * dst.w + dx] = src.data[(c * src.h + y) * src.w + x];
      }
    }
}

/**
 * images.resize_image: mode 0 stretches; 1 (crop and resize) scales to cover and centres, cropping
 * the overflow; 2 (resize and fill) scales to fit, centres, and fills the bands from the edge lines.
 */
export function resizeImage(mode: 0 | 1 | 2, im: PlanarU8, width: number, height: number): PlanarU8 {
  if (mode === 0) return lanczosPlanar(im, width, height);
  const ratio = width / height;
  const src = im.w / im.h;
  let sw: number;
  let sh: number;
  if (mode === 1) {
    sw = ratio > src ? width : Math.floor((im.w * height) / im.h);
    sh = ratio <= src ? height : Math.floor((im.h * width) / im.w);
  } else {
    sw = ratio < src ? width : Math.floor((im.w * height) / im.h);
    sh = ratio >= src ? height : Math.floor((im.h * width) / im.w);
  }
  const resized = lanczosPlanar(im, sw, sh);
  const res: PlanarU8 = { c: im.c, h: height, w: width, data: new Uint8Array(im.c * width * height) };
  const ox = Math.floor(width / 2) - Math.floor(sw / 2);
  const oy = Math.floor(height / 2) - Math.floor(sh / 2);
  pasteInto(res, resized, ox, oy);
  if (mode === 2) {
    // Pillow's resize of a zero-height (zero-width) box with its default bicubic filter: every line is
    // 9/8 of the edge line minus 1/8 of the next one inward, rounded and clipped (exact in its fixed point).
    const edge = (e0: number, e1: number): number => Math.min(255, Math.max(0, Math.floor((9 * e0 - e1) / 8 + 0.5)));
    if (ratio < src && oy > 0) {
      for (let c = 0; c < im.c; c++) {
        const row = (r: number, x: number): number => resized.data[(c * sh + r) * sw + x];
        for (let x = 0; x < width; x++) {
          const top = edge(row(0, x), row(Math.min(1, sh - 1), x));
          const bottom = edge(row(sh - 1, x), row(Math.max(sh - 2, 0), x));
          for (let y = 0; y < oy; y++) res.data[(c * height + y) * width + x] = top;
          for (let y = oy + sh; y < Math.min(height, 2 * oy + sh); y++) res.data[(c * height + y) * width + x] = bottom;
        }
      }
    } else if (ratio > src && ox > 0) {
      for (let c = 0; c < im.c; c++) {
        const col = (y: number, x: number): number => resized.data[(c * sh + y) * sw + x];
        for (let y = 0; y < height; y++) {
          const left = edge(col(y, 0), col(y, Math.min(1, sw - 1)));
          const right = edge(col(y, sw - 1), col(y, Math.max(sw - 2, 0)));
          for (let x = 0; x < ox; x++) res.data[(c * height + y) * width + x] = left;
          for (let x = ox + sw; x < Math.min(width, 2 * ox + sw); x++) res.data[(c * height + y) * width + x] = right;
        }
      }
    }
  }
  return res;
}

const div255 = (a: number): number => {
  const t = a + 128;
  return ((t >> 8) + t) >> 8;
};

/**
 * apply_overlay: the processed picture (resized to paste_to with crop-and-resize and placed there, or
 * the whole picture) under the original image whose alpha is 255 − mask_for_overlay, composited by
 * Pillow's integer alpha_composite. The original goes through RGBa (premultiplied) with that alpha
 * first, which rounds its colours where the mask is partly set. Where the mask is 0 the original
 * bytes come back unchanged.
 */
export function applyOverlay(original: PlanarU8, overlayMask: Uint8Array, processed: PlanarU8, pasteTo?: CropBox): PlanarU8 {
  const { h, w } = original;
  const base: PlanarU8 = { c: 3, h, w, data: new Uint8Array(3 * h * w) };
  const baseAlpha = new Uint8Array(h * w);
  if (pasteTo) {
    const [x, y, pw, ph] = pasteTo;
    const placed = resizeImage(1, processed, pw, ph);
    pasteInto(base, placed, x, y);
    for (let yy = Math.max(0, y); yy < Math.min(h, y + ph); yy++)
      baseAlpha.fill(255, yy * w + Math.max(0, x), yy * w + Math.min(w, x + pw));
  } else {
    base.data.set(processed.data);
    baseAlpha.fill(255);
  }
  const PREC = 7;
  const out: PlanarU8 = { c: 3, h, w, data: new Uint8Array(3 * h * w) };
  for (let p = 0; p < h * w; p++) {
    const sa = 255 - overlayMask[p];
    const da = baseAlpha[p];
    for (let c = 0; c < 3; c++) {
      const orig = original.data[c * h * w + p];
      // paste(RGBa, mask=alpha) onto transparent, then RGBa → RGBA: premultiply, un-premultiply.
      const pre = div255(orig * sa);
      const sc = sa === 0 ? 0 : sa === 255 ? pre : Math.min(255, Math.trunc((255 * pre) / sa));
      const dc = base.data[c * h * w + p];
      let v: number;
      if (sa === 0) v = dc;
      else {
        const blend = da * (255 - sa);
        const outa255 = sa * 255 + blend;
        const coef1 = Math.trunc((sa * 255 * 255 * (1 << PREC)) / outa255);
        const coef2 = 255 * (1 << PREC) - coef1;
        const tmp = sc * coef1 + dc * coef2 + (0x80 << PREC);
        v = (((tmp >> 8) + tmp) >> 8) >> PREC;
      }
      out.data[c * h * w + p] = v;
    }
  }
  return out;
}
