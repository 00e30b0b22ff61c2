import type { F64Mat, U8Mat } from './mat.ts';

/**
 * `cv2.resize` as OpenCV 4.x computes it on the CPU for the cases comfyui_controlnet_aux uses:
 * INTER_LINEAR on uint8 (11-bit fixed-point coefficients; the horizontal pass moves taps outside the
 * image onto its edge, the vertical one reads the edge row at the computed weights; the vertical pass
 * drops 4 bits as OpenCV's does; an exact halving goes to INTER_AREA's fast path, as in OpenCV),
 * INTER_AREA (integer-factor fast path, fractional decimation tables, and the bilinear variant when
 * enlarging), INTER_CUBIC on uint8 (fixed point, 11-bit
 * coefficients, with the SIMD vertical pass's float32 arithmetic on the vector-wide part of each row), INTER_NEAREST, and INTER_CUBIC on
 * float64 (the shuffle's noise). Checked byte for byte against OpenCV in tests/preprocessors/.
 */

export type CvInterpolation = 'nearest' | 'linear' | 'cubic' | 'area';

const COEF_BITS = 11;
const COEF_SCALE = 1 << COEF_BITS;
/** SSE vector lanes of the vertical passes (v_int16 / v_uint8 on the baseline x86-64 build). */
const CUBIC_VEC = 8;

const f = Math.fround;

/** cvRound: nearest, ties to even (what `saturate_cast` from float does). */
export function cvRound(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function satU8(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

function satS16(v: number): number {
  return v < -32768 ? -32768 : v > 32767 ? 32767 : v;
}

/** OpenCV's interpolateCubic (A = -0.75) in float32. */
function cubicCoeffs(x: number): [number, number, number, number] {
  const A = -0.75;
  const x1 = f(x + 1);
  const c0 = f(f(f(f(f(f(A * x1) - f(5 * A)) * x1) + f(8 * A)) * x1) - f(4 * A));
  const c1 = f(f(f(f(f((A + 2) * x) - (A + 3)) * x) * x) + 1);
  const ox = f(1 - x);
  const c2 = f(f(f(f(f((A + 2) * ox) - (A + 3)) * ox) * ox) + 1);
  const c3 = f(f(f(1 - c0) - c1) - c2);
  return [c0, c1, c2, c3];
}

interface Axis {
  /** First source index of each destination position. */
  ofs: Int32Array;
  /** ksize coefficients per destination position (float32 values). */
  coef: Float32Array;
  /** Destination positions [min, max) whose taps are all inside the source. */
  min: number;
  max: number;
}

/** `clamp`: the horizontal table moves taps outside the source onto its edge at full weight; the vertical one keeps them (rows are clamped when read). */
function axisTable(ssize: number, dsize: number, scale: number, invScale: number, ksize: 2 | 4, area: boolean, clamp = true): Axis {
  const ofs = new Int32Array(dsize);
  const coef = new Float32Array(dsize * ksize);
  const half = ksize / 2;
  let min = 0;
  let max = dsize;
  for (let d = 0; d < dsize; d++) {
    let s: number;
    let fx: number;
    if (!area) {
      fx = f((d + 0.5) * scale - 0.5);
      s = Math.floor(fx);
      fx = f(fx - s);
    } else {
      s = Math.floor(d * scale);
      fx = f(d + 1 - (s + 1) * invScale);
      fx = fx <= 0 ? 0 : f(fx - Math.floor(fx));
    }
    if (s < half - 1) {
      min = d + 1;
      if (s < 0 && ksize === 2 && clamp) {
        fx = 0;
        s = 0;
      }
    }
    if (s + half >= ssize) {
      max = Math.min(max, d);
      if (s >= ssize - 1 && ksize === 2 && clamp) {
        fx = 0;
        s = ssize - 1;
      }
    }
    ofs[d] = s;
    if (ksize === 4) coef.set(cubicCoeffs(fx), d * 4);
    else {
      coef[d * 2] = f(1 - fx);
      coef[d * 2 + 1] = fx;
    }
  }
  return { ofs, coef, min, max };
}

/** Fixed-point coefficients: `saturate_cast<short>(c * 2048)`. */
function fixed(coef: Float32Array): Int32Array {
  const out = new Int32Array(coef.length);
  for (let i = 0; i < coef.length; i++) out[i] = satS16(cvRound(f(coef[i] * COEF_SCALE)));
  return out;
}

function scales(src: { h: number; w: number }, dw: number, dh: number): { sx: number; sy: number; ix: number; iy: number } {
  const ix = dw / src.w;
  const iy = dh / src.h;
  return { ix, iy, sx: 1 / ix, sy: 1 / iy };
}

/** Horizontal pass of one uint8 row into int sums (HResizeLinear / HResizeCubic with replicated borders). */
function hresizeU8(S: Uint8Array, rowOff: number, sw: number, cn: number, ax: Axis, ia: Int32Array, ksize: number, out: Int32Array): void {
  const dw = ax.ofs.length;
  const swidth = sw * cn;
  for (let d = 0; d < dw; d++) {
    for (let k = 0; k < cn; k++) {
      let v = 0;
      if (ksize === 2) {
        const sx = ax.ofs[d] * cn + k;
        // past xmax OpenCV takes the clamped pixel at full weight
        v = d < ax.max ? S[rowOff + sx] * ia[d * 2] + S[rowOff + sx + cn] * ia[d * 2 + 1] : S[rowOff + sx] * COEF_SCALE;
      } else {
        const sx = (ax.ofs[d] - 1) * cn + k;
        for (let j = 0; j < 4; j++) {
          let sxj = sx + j * cn;
          while (sxj < 0) sxj += cn;
          while (sxj >= swidth) sxj -= cn;
          v += S[rowOff + sxj] * ia[d * 4 + j];
        }
      }
      out[d * cn + k] = v;
    }
  }
}

function resizeGenericU8(src: U8Mat, dw: number, dh: number, method: 'cubic' | 'area' | 'linear'): U8Mat {
  const { sx, sy, ix, iy } = scales(src, dw, dh);
  const ksize = method === 'cubic' ? 4 : 2;
  const area = method === 'area';
  const ax = axisTable(src.w, dw, sx, ix, ksize, area);
  const ay = axisTable(src.h, dh, sy, iy, ksize, area, false);
  const ia = fixed(ax.coef);
  const ib = fixed(ay.coef);
  const cn = src.c;
  const width = dw * cn;
  const out = new Uint8Array(dh * width);
  const rowCache = new Map<number, Int32Array>();
  const row = (y: number): Int32Array => {
    let r = rowCache.get(y);
    if (!r) {
      r = new Int32Array(width);
      hresizeU8(src.data, y * src.w * cn, src.w, cn, ax, ia, ksize, r);
      rowCache.set(y, r);
    }
    return r;
  };
  const clampY = (y: number): number => (y < 0 ? 0 : y >= src.h ? src.h - 1 : y);
  for (let y = 0; y < dh; y++) {
    const y0 = ay.ofs[y];
    const o = y * width;
    if (ksize === 4) {
      const S0 = row(clampY(y0 - 1));
      const S1 = row(clampY(y0));
      const S2 = row(clampY(y0 + 1));
      const S3 = row(clampY(y0 + 2));
      const b0 = ib[y * 4];
      const b1 = ib[y * 4 + 1];
      const b2 = ib[y * 4 + 2];
      const b3 = ib[y * 4 + 3];
      // The SIMD part computes in float32 (scale folded into the coefficients), the tail in integers.
      const vecEnd = width - (width % CUBIC_VEC);
      const fs = 1 / (COEF_SCALE * COEF_SCALE);
      const fb0 = f(b0 * fs);
      const fb1 = f(b1 * fs);
      const fb2 = f(b2 * fs);
      const fb3 = f(b3 * fs);
      for (let x = 0; x < vecEnd; x++) {
        const t3 = f(S3[x] * fb3);
        const t2 = f(f(S2[x] * fb2) + t3);
        const t1 = f(f(S1[x] * fb1) + t2);
        const t0 = f(f(S0[x] * fb0) + t1);
        out[o + x] = satU8(satS16(cvRound(t0)));
      }
      for (let x = vecEnd; x < width; x++) {
        const v = S0[x] * b0 + S1[x] * b1 + S2[x] * b2 + S3[x] * b3;
        out[o + x] = satU8(Math.floor((v + (1 << 21)) / (1 << 22)));
      }
    } else {
      const S0 = row(clampY(y0));
      const S1 = row(clampY(y0 + 1));
      const b0 = ib[y * 2];
      const b1 = ib[y * 2 + 1];
      // OpenCV's VResizeLinear for uint8 (vector and scalar alike): drop 4 bits, keep the high half, round by 2 bits
      for (let x = 0; x < width; x++) {
        const p0 = Math.floor((b0 * (S0[x] >> 4)) / 65536);
        const p1 = Math.floor((b1 * (S1[x] >> 4)) / 65536);
        out[o + x] = (p0 + p1 + 2) >> 2;
      }
    }
    if (rowCache.size > 8) {
      for (const k of rowCache.keys()) if (k < y0 - 2) rowCache.delete(k);
    }
  }
  return { h: dh, w: dw, c: cn, data: out };
}

/** The decimation table of INTER_AREA along one axis (computeResizeAreaTab). */
function areaTab(ssize: number, dsize: number, scale: number): { di: Int32Array; si: Int32Array; alpha: Float32Array } {
  const di: number[] = [];
  const si: number[] = [];
  const alpha: number[] = [];
  for (let d = 0; d < dsize; d++) {
    const fsx1 = d * scale;
    const fsx2 = fsx1 + scale;
    const cellWidth = Math.min(scale, ssize - fsx1);
    let sx1 = Math.ceil(fsx1);
    let sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, ssize - 1);
    sx1 = Math.min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) {
      di.push(d);
      si.push(sx1 - 1);
      alpha.push(f((sx1 - fsx1) / cellWidth));
    }
    for (let s = sx1; s < sx2; s++) {
      di.push(d);
      si.push(s);
      alpha.push(f(1 / cellWidth));
    }
    if (fsx2 - sx2 > 1e-3) {
      di.push(d);
      si.push(sx2);
      alpha.push(f(Math.min(Math.min(fsx2 - sx2, 1), cellWidth) / cellWidth));
    }
  }
  return { di: Int32Array.from(di), si: Int32Array.from(si), alpha: Float32Array.from(alpha) };
}

function resizeAreaDecimate(src: U8Mat, dw: number, dh: number, sx: number, sy: number): U8Mat {
  const cn = src.c;
  const width = dw * cn;
  const xt = areaTab(src.w, dw, sx);
  const yt = areaTab(src.h, dh, sy);
  const out = new Uint8Array(dh * width);
  const buf = new Float32Array(width);
  const sum = new Float32Array(width);
  let prev = yt.di[0];
  const flush = (dy: number): void => {
    for (let x = 0; x < width; x++) out[dy * width + x] = satU8(cvRound(sum[x]));
  };
  for (let j = 0; j < yt.di.length; j++) {
    const beta = yt.alpha[j];
    const dy = yt.di[j];
    const rowOff = yt.si[j] * src.w * cn;
    buf.fill(0);
    for (let k = 0; k < xt.di.length; k++) {
      const a = xt.alpha[k];
      const s = rowOff + xt.si[k] * cn;
      const d = xt.di[k] * cn;
      for (let c = 0; c < cn; c++) buf[d + c] = f(buf[d + c] + f(src.data[s + c] * a));
    }
    if (dy !== prev) {
      flush(prev);
      for (let x = 0; x < width; x++) sum[x] = f(beta * buf[x]);
      prev = dy;
    } else {
      for (let x = 0; x < width; x++) sum[x] = f(sum[x] + f(beta * buf[x]));
    }
  }
  flush(prev);
  return { h: dh, w: dw, c: cn, data: out };
}

/** INTER_AREA by an integer factor: block means (2×2 with a rounding shift, others through a float scale). */
function resizeAreaFast(src: U8Mat, dw: number, dh: number, kx: number, ky: number): U8Mat {
  const cn = src.c;
  const out = new Uint8Array(dh * dw * cn);
  const area = kx * ky;
  const scale = f(1 / area);
  const fullW = Math.floor(src.w / kx);
  for (let dy = 0; dy < dh; dy++) {
    const sy0 = dy * ky;
    const fullRow = sy0 + ky <= src.h;
    for (let dx = 0; dx < dw; dx++) {
      for (let c = 0; c < cn; c++) {
        let sum = 0;
        let count = 0;
        for (let yy = 0; yy < ky && sy0 + yy < src.h; yy++) {
          for (let xx = 0; xx < kx && dx * kx + xx < src.w; xx++) {
            sum += src.data[((sy0 + yy) * src.w + dx * kx + xx) * cn + c];
            count++;
          }
        }
        let v: number;
        if (fullRow && dx < fullW) v = kx === 2 && ky === 2 ? (sum + 2) >> 2 : cvRound(f(sum * scale));
        else v = cvRound(f(sum / count));
        out[(dy * dw + dx) * cn + c] = satU8(v);
      }
    }
  }
  return { h: dh, w: dw, c: cn, data: out };
}

function resizeNearest(src: U8Mat, dw: number, dh: number): U8Mat {
  const cn = src.c;
  const ifx = 1 / (dw / src.w);
  const ify = 1 / (dh / src.h);
  const out = new Uint8Array(dh * dw * cn);
  for (let y = 0; y < dh; y++) {
    const sy = Math.min(Math.floor(y * ify), src.h - 1);
    for (let x = 0; x < dw; x++) {
      const sx = Math.min(Math.floor(x * ifx), src.w - 1);
      for (let c = 0; c < cn; c++) out[(y * dw + x) * cn + c] = src.data[(sy * src.w + sx) * cn + c];
    }
  }
  return { h: dh, w: dw, c: cn, data: out };
}

/** `cv2.resize(src, (dw, dh), interpolation=method)` for uint8 images. */
export function cvResize(src: U8Mat, dw: number, dh: number, method: CvInterpolation): U8Mat {
  if (!(dw > 0 && dh > 0)) throw new Error(`cannot resize to ${dw}x${dh}: both sides must be at least 1`);
  if (src.w < 1 || src.h < 1) throw new Error(`cannot resize an empty ${src.w}x${src.h} image`);
  if (dw === src.w && dh === src.h) return { h: dh, w: dw, c: src.c, data: new Uint8Array(src.data) };
  if (method === 'nearest') return resizeNearest(src, dw, dh);
  const { sx, sy } = scales(src, dw, dh);
  const kx = Math.round(sx);
  const ky = Math.round(sy);
  const fast = Math.abs(sx - kx) < Number.EPSILON && Math.abs(sy - ky) < Number.EPSILON;
  if (method === 'area' && sx >= 1 && sy >= 1) {
    return fast ? resizeAreaFast(src, dw, dh, kx, ky) : resizeAreaDecimate(src, dw, dh, sx, sy);
  }
  if (method === 'linear' && fast && kx === 2 && ky === 2) return resizeAreaFast(src, dw, dh, 2, 2);
  return resizeGenericU8(src, dw, dh, method);
}

/** INTER_CUBIC on float64 (coefficients float32, sums in float64, replicated borders). */
export function cvResizeCubicF64(src: F64Mat, dw: number, dh: number): F64Mat {
  const { sx, sy, ix, iy } = scales(src, dw, dh);
  const ax = axisTable(src.w, dw, sx, ix, 4, false);
  const ay = axisTable(src.h, dh, sy, iy, 4, false);
  const cn = src.c;
  const width = dw * cn;
  const swidth = src.w * cn;
  const rows: Float64Array[] = [];
  for (let y = 0; y < src.h; y++) {
    const r = new Float64Array(width);
    for (let d = 0; d < dw; d++) {
      for (let k = 0; k < cn; k++) {
        const s0 = (ax.ofs[d] - 1) * cn + k;
        let v = 0;
        for (let j = 0; j < 4; j++) {
          let sxj = s0 + j * cn;
          while (sxj < 0) sxj += cn;
          while (sxj >= swidth) sxj -= cn;
          v += src.data[y * swidth + sxj] * ax.coef[d * 4 + j];
        }
        r[d * cn + k] = v;
      }
    }
    rows.push(r);
  }
  const out = new Float64Array(dh * width);
  const clampY = (y: number): number => (y < 0 ? 0 : y >= src.h ? src.h - 1 : y);
  for (let y = 0; y < dh; y++) {
    const y0 = ay.ofs[y];
    const S = [rows[clampY(y0 - 1)], rows[clampY(y0)], rows[clampY(y0 + 1)], rows[clampY(y0 + 2)]];
    const b = ay.coef.subarray(y * 4, y * 4 + 4);
    for (let x = 0; x < width; x++) out[y * width + x] = S[0][x] * b[0] + S[1][x] * b[1] + S[2][x] * b[2] + S[3][x] * b[3];
  }
  return { h: dh, w: dw, c: cn, data: out };
}
