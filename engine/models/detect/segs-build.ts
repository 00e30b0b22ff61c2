import type { ImageTensor, MaskTensor } from '../../core/tensor.ts';
import type { Box, Seg, Segs } from '../../image/segs.ts';

/**
 * The Impact Pack's SEGS arithmetic (`modules/impact/utils.py`, `core.py`), in its integer rules:
 * Python's int() truncation toward zero, slices clamped to the array, OpenCV's rectangular
 * morphology with the anchor at k/2.
 */

// `|| 0` turns the -0 of a truncated small negative into 0, as Python int() has no negative zero
const pyInt = (v: number): number => Math.trunc(v) || 0;

/** The Impact Pack's normalize_region: a span of `size` from `start`, shifted to lie inside [0, limit]. */
function normalizeRegion(limit: number, start: number, size: number): [number, number] {
  if (start < 0) return [0, pyInt(Math.min(limit, size))];
  if (start + size > limit) return [pyInt(Math.max(0, limit - size)), pyInt(limit)];
  return [pyInt(start), pyInt(Math.min(limit, start + size))];
}

/** make_crop_region: the bbox scaled by `cropFactor` about its centre, shifted (not cut) to fit the image. */
export function makeCropRegion(w: number, h: number, bbox: Box, cropFactor: number, cropMinSize?: number): Box {
  const [x1, y1, x2, y2] = bbox;
  const bw = x2 - x1;
  const bh = y2 - y1;
  let cw = bw * cropFactor;
  let ch = bh * cropFactor;
  if (cropMinSize !== undefined) {
    cw = Math.max(cropMinSize, cw);
    ch = Math.max(cropMinSize, ch);
  }
  const kx = x1 + bw / 2;
  const ky = y1 + bh / 2;
  const [nx1, nx2] = normalizeRegion(w, pyInt(kx - cw / 2), cw);
  const [ny1, ny2] = normalizeRegion(h, pyInt(ky - ch / 2), ch);
  return [nx1, ny1, nx2, ny2];
}

/** numpy's `a[y1:y2, x1:x2]` of an [h, w] plane (bounds clamped as slices clamp them). */
export function cropPlane(src: Float32Array, h: number, w: number, r: Box): { data: Float32Array; h: number; w: number } {
  const x1 = Math.min(Math.max(r[0], 0), w);
  const x2 = Math.min(Math.max(r[2], x1), w);
  const y1 = Math.min(Math.max(r[1], 0), h);
  const y2 = Math.min(Math.max(r[3], y1), h);
  const cw = x2 - x1;
  const ch = y2 - y1;
  const data = new Float32Array(cw * ch);
  for (let y = 0; y < ch; y++) data.set(src.subarray((y + y1) * w + x1, (y + y1) * w + x2), y * cw);
  return { data, h: ch, w: cw };
}

/** crop_image: IMAGE [1, H, W, C] cut to the region. */
export function cropImage(image: ImageTensor, r: Box): ImageTensor {
  const [b, h, w, c] = image.shape;
  const x1 = Math.min(Math.max(r[0], 0), w);
  const x2 = Math.min(Math.max(r[2], x1), w);
  const y1 = Math.min(Math.max(r[1], 0), h);
  const y2 = Math.min(Math.max(r[3], y1), h);
  const cw = x2 - x1;
  const ch = y2 - y1;
  const data = new Float32Array(b * ch * cw * c);
  for (let n = 0; n < b; n++) {
    for (let y = 0; y < ch; y++) {
      const s = ((n * h + y + y1) * w + x1) * c;
      data.set(image.data.subarray(s, s + cw * c), ((n * ch + y) * cw) * c);
    }
  }
  return { shape: [b, ch, cw, c], data } as ImageTensor;
}

/**
 * cv2.dilate (k > 0) or cv2.erode (k < 0) with np.ones((|k|, |k|)): the max (min) over the window
 * [x − ⌊|k|/2⌋, x + |k| − 1 − ⌊|k|/2⌋] of the pixels inside the image (OpenCV's default border
 * never wins).
 */
export function morphRect(src: Float32Array, h: number, w: number, k: number): Float32Array {
  if (k === 0) return src.slice();
  const size = Math.abs(k);
  const a = Math.floor(size / 2);
  const lo = -a;
  const hi = size - 1 - a;
  const dilate = k > 0;
  // A dilation only changes pixels within the window of a non-zero one (masks are ≥ 0 outside it).
  let x0 = 0;
  let y0 = 0;
  let x1 = w - 1;
  let y1 = h - 1;
  if (dilate) {
    let minX = w;
    let minY = h;
    let maxX = -1;
    let maxY = -1;
    let negative = false;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = src[y * w + x];
        if (v !== 0) {
          if (v < 0) negative = true;
          if (x < minX) minX = x;
          if (x > maxX) maxX = x;
          if (y < minY) minY = y;
          if (y > maxY) maxY = y;
        }
      }
    }
    if (maxX < 0) return src.slice();
    if (!negative) {
      x0 = Math.max(0, minX - hi);
      x1 = Math.min(w - 1, maxX - lo);
      y0 = Math.max(0, minY - hi);
      y1 = Math.min(h - 1, maxY - lo);
    }
  }
  const tmp = src.slice();
  for (let y = Math.max(0, y0 + lo); y <= Math.min(h - 1, y1 + hi); y++) {
    const row = y * w;
    for (let x = x0; x <= x1; x++) {
      let v = src[row + x];
      const e = Math.min(hi, w - 1 - x);
      for (let d = Math.max(lo, -x); d <= e; d++) {
        const u = src[row + x + d];
        if (dilate ? u > v : u < v) v = u;
      }
      tmp[row + x] = v;
    }
  }
  const out = src.slice();
  for (let y = y0; y <= y1; y++) {
    const e = Math.min(hi, h - 1 - y);
    for (let x = x0; x <= x1; x++) {
      let v = tmp[y * w + x];
      for (let d = Math.max(lo, -y); d <= e; d++) {
        const u = tmp[(y + d) * w + x];
        if (dilate ? u > v : u < v) v = u;
      }
      out[y * w + x] = v;
    }
  }
  return out;
}

/** The Impact Pack's dilate_mask on a SEG's cropped mask (SimpleDetector's post_dilation). */
export function dilateSegs(segs: Segs, factor: number): Segs {
  if (factor === 0) return segs;
  return {
    shape: segs.shape,
    segments: segs.segments.map((s) => {
      const [h, w] = s.croppedMask.shape.slice(-2);
      return { ...s, croppedMask: { shape: [h, w], data: morphRect(s.croppedMask.data, h, w, factor) } };
    }),
  };
}

/** A box drawn as cv2.rectangle(thickness=-1) from (int(x1), int(y1)) to (int(x2), int(y2)), both corners inside. */
export function boxMask(h: number, w: number, box: Box): Float32Array {
  const m = new Float32Array(h * w);
  const x1 = Math.max(pyInt(box[0]), 0);
  const y1 = Math.max(pyInt(box[1]), 0);
  const x2 = Math.min(pyInt(box[2]), w - 1);
  const y2 = Math.min(pyInt(box[3]), h - 1);
  for (let y = y1; y <= y2; y++) m.fill(1, y * w + x1, x2 >= x1 ? y * w + x2 + 1 : y * w + x1);
  return m;
}

/**
 * SEGSLabelFilter.filter: keeps the segments whose label is listed (comma-separated, trimmed); `all`
 * keeps everything; `eyes`, `eyebrows`, `pupils` stand for their left_/right_ pairs. Returns the kept
 * and the remaining segments.
 */
export function filterSegsByLabels(segs: Segs, labels: string): { kept: Segs; rest: Segs } {
  const wanted = new Set(labels.split(',').map((l) => l.trim()));
  if (wanted.has('all')) return { kept: segs, rest: { shape: segs.shape, segments: [] } };
  const pairs: Record<string, string[]> = {
    eyes: ['left_eye', 'right_eye'],
    eyebrows: ['left_eyebrow', 'right_eyebrow'],
    pupils: ['left_pupil', 'right_pupil'],
  };
  const kept: Seg[] = [];
  const rest: Seg[] = [];
  for (const s of segs.segments) {
    const hit = wanted.has(s.label) || Object.entries(pairs).some(([k, v]) => wanted.has(k) && v.includes(s.label));
    (hit ? kept : rest).push(s);
  }
  return { kept: { shape: segs.shape, segments: kept }, rest: { shape: segs.shape, segments: rest } };
}

/** Labels as the detector nodes pass them: empty means no filter. */
export function applyLabelFilter(segs: Segs, labels: string | undefined): Segs {
  if (labels === undefined || labels === '') return segs;
  return filterSegsByLabels(segs, labels).kept;
}

/**
 * segs_to_combined_mask: each cropped mask OR-ed into an [H, W] uint8 canvas as (m · 255) truncated,
 * then / 255. Returns MASK [1, H, W].
 */
export function segsToCombinedMask(segs: Segs): MaskTensor {
  const [h, w] = segs.shape;
  const acc = new Uint8Array(h * w);
  for (const s of segs.segments) {
    const [x1, y1, x2, y2] = s.cropRegion;
    const [mh, mw] = s.croppedMask.shape.slice(-2);
    const m = s.croppedMask.data;
    // numpy broadcasting needs the slice and the mask to agree; they do when the SEG is well formed
    if (mh !== Math.min(y2, h) - Math.max(y1, 0) || mw !== Math.min(x2, w) - Math.max(x1, 0)) {
      throw new Error(`SEG '${s.label}': cropped mask is ${mh}×${mw} but its crop region [${s.cropRegion.join(', ')}] is ${y2 - y1}×${x2 - x1}`);
    }
    for (let y = 0; y < mh; y++) {
      for (let x = 0; x < mw; x++) {
        const v = Math.fround(m[y * mw + x] * 255);
        const u = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
        acc[(y + Math.max(y1, 0)) * w + x + Math.max(x1, 0)] |= u;
      }
    }
  }
  const data = new Float32Array(h * w);
  for (let i = 0; i < data.length; i++) data[i] = acc[i] / 255;
  return { shape: [1, h, w], data } as MaskTensor;
}

/**
 * segs_bitwise_and_mask: each cropped mask as (m · 255) bytes AND the mask's bytes over its crop
 * region, / 255 (the SEG's ControlNet is dropped, as there).
 */
export function segsBitwiseAndMask(segs: Segs, mask: MaskTensor): Segs {
  const h = mask.shape[mask.shape.length - 2];
  const w = mask.shape[mask.shape.length - 1];
  const byte = (v: number): number => {
    const x = Math.fround(v * 255);
    return x <= 0 ? 0 : x >= 255 ? 255 : Math.trunc(x);
  };
  return {
    shape: segs.shape,
    segments: segs.segments.map((s) => {
      const [x1, y1] = s.cropRegion;
      const [ch, cw] = s.croppedMask.shape.slice(-2);
      const out = new Float32Array(ch * cw);
      for (let y = 0; y < ch; y++) {
        for (let x = 0; x < cw; x++) {
          const iy = y + y1;
          const ix = x + x1;
          const other = iy < h && ix < w ? byte(mask.data[iy * w + ix]) : 0;
          out[y * cw + x] = (byte(s.croppedMask.data[y * cw + x]) & other) / 255;
        }
      }
      return { ...s, croppedMask: { shape: [ch, cw], data: out }, controlNet: undefined };
    }),
  };
}
