import { quantize8 } from './quantize.ts';
import { describeShape, type Tensor } from '../core/tensor.ts';

/**
 * Pillow's `Image.resize(..., LANCZOS)` on 8-bit images, which ComfyUI's "lanczos" method goes through:
 * values become uint8 with `clip(255·x)` truncation, are resampled with Pillow's fixed-point two-pass
 * filter (horizontal first, 22 fraction bits, 8-bit intermediate), and come back as v / 255.
 * RGBA and LA are premultiplied by alpha around the resample, as Pillow does.
 */

const PRECISION_BITS = 32 - 8 - 2;
/** Pillow's fixed-point 1.0 and 0.5 for 8-bit resampling (22 fraction bits). */
export const PIL_ONE = 1 << PRECISION_BITS;
export const PIL_HALF = 1 << (PRECISION_BITS - 1);

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

function lanczos(x: number): number {
  return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

/** A Pillow resampling filter: its kernel and support radius at scale 1. */
export interface PilFilter {
  readonly support: number;
  readonly kernel: (x: number) => number;
}

const LANCZOS: PilFilter = { support: 3, kernel: lanczos };

export interface PilCoeffs {
  ksize: number;
  /** First source index and number of taps, per output index. */
  bounds: Int32Array;
  /** Fixed-point weights, `ksize` per output index. */
  kk: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for a full-image box. */
export function pilCoeffs(inSize: number, outSize: number, filter: PilFilter): PilCoeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    // C's (int) cast truncates toward zero.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      k[x] = filter.kernel((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    for (let x = 0; x < ksize; x++) {
      const v = x < xmax ? (ww !== 0 ? k[x] / ww : k[x]) : 0;
      kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * PIL_ONE) : Math.trunc(0.5 + v * PIL_ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = Math.max(xmax, 0);
  }
  return { ksize, bounds, kk };
}

/** Pillow's clip8: the accumulator shifted down (an arithmetic shift, i.e. floor) and clamped. */
function clip8(ss: number): number {
  const v = Math.floor(ss / PIL_ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** One pass along rows (`horizontal`) or columns of a [planes, h, w] uint8 stack. */
function pass(src: Uint8Array, planes: number, h: number, w: number, c: PilCoeffs, horizontal: boolean): Uint8Array {
  const oh = horizontal ? h : c.bounds.length / 2;
  const ow = horizontal ? c.bounds.length / 2 : w;
  const out = new Uint8Array(planes * oh * ow);
  for (let p = 0; p < planes; p++) {
    const s = p * h * w;
    const d = p * oh * ow;
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        const o = horizontal ? x : y;
        const min = c.bounds[o * 2];
        const n = c.bounds[o * 2 + 1];
        const kOff = o * c.ksize;
        let ss = PIL_HALF;
        if (horizontal) for (let i = 0; i < n; i++) ss += src[s + y * w + min + i] * c.kk[kOff + i];
        else for (let i = 0; i < n; i++) ss += src[s + (min + i) * w + x] * c.kk[kOff + i];
        out[d + y * ow + x] = clip8(ss);
      }
    }
  }
  return out;
}

/** Pillow's resample of whole uint8 planes [planes, h, w] (each plane is one band). */
export function pilResampleLanczos8(planes: Uint8Array, count: number, h: number, w: number, outH: number, outW: number): Uint8Array {
  let cur = planes;
  let ch = h;
  let cw = w;
  if (outW !== w) {
    cur = pass(cur, count, ch, cw, pilCoeffs(w, outW, LANCZOS), true);
    cw = outW;
  }
  if (outH !== h) {
    cur = pass(cur, count, ch, cw, pilCoeffs(h, outH, LANCZOS), false);
    ch = outH;
  }
  return cur === planes ? new Uint8Array(planes) : cur;
}

/** Pillow's MULDIV255: a·b/255 rounded, in integers. */
function muldiv255(a: number, b: number): number {
  const tmp = a * b + 128;
  return ((tmp >> 8) + tmp) >> 8;
}

/**
 * `comfy.utils.lanczos` on [N, C, H, W]: C = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA) bands per image,
 * as PIL's `Image.fromarray` accepts them.
 */
export function pilLanczos(t: Tensor, outH: number, outW: number): Tensor {
  const [n, c, h, w] = t.shape;
  if (c < 1 || c > 4) {
    throw new Error(`lanczos resizing goes through 8-bit PIL images, which take 1 to 4 channels; got shape ${describeShape(t.shape)}`);
  }
  const hw = h * w;
  const out = new Float32Array(n * c * outH * outW);
  const alphaBand = c === 2 || c === 4 ? c - 1 : -1;
  for (let b = 0; b < n; b++) {
    const planes = new Uint8Array(c * hw);
    for (let i = 0; i < c * hw; i++) planes[i] = quantize8(t.data[b * c * hw + i]);
    if (alphaBand >= 0 && (outH !== h || outW !== w)) {
      // RGBA → RGBa: premultiply so transparent pixels' colours do not bleed into their neighbours.
      for (let k = 0; k < alphaBand; k++) {
        for (let i = 0; i < hw; i++) planes[k * hw + i] = muldiv255(planes[k * hw + i], planes[alphaBand * hw + i]);
      }
    }
    const r = pilResampleLanczos8(planes, c, h, w, outH, outW);
    const ohw = outH * outW;
    if (alphaBand >= 0 && (outH !== h || outW !== w)) {
      // RGBa → RGBA: integer division by alpha, clipped; alpha 0 and 255 leave the value as is.
      for (let k = 0; k < alphaBand; k++) {
        for (let i = 0; i < ohw; i++) {
          const a = r[alphaBand * ohw + i];
          const v = r[k * ohw + i];
          if (a !== 0 && a !== 255) r[k * ohw + i] = Math.min(255, Math.trunc((255 * v) / a));
        }
      }
    }
    for (let i = 0; i < c * ohw; i++) out[b * c * ohw + i] = r[i] / 255;
  }
  return { shape: [n, c, outH, outW], data: out };
}
