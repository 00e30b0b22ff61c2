import type { U8Mat } from './mat.ts';

/**
 * OpenCV's uint8 colour conversions and thresholds used by the aux detectors: RGB→GRAY (fixed-point
 * BT.601 weights), BGR→Lab's L (OpenCV's sRGB gamma table and cube-root table in fixed point), BGR→HSV's
 * V (the channel maximum), and `cv2.threshold` with THRESH_BINARY_INV and Otsu.
 */

/** cvtColor(RGB2GRAY) on uint8 (OpenCV 4): (R·9798 + G·19235 + B·3735 + 2^14) >> 15. */
export function rgbToGray(m: U8Mat): U8Mat {
  const n = m.h * m.w;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const r = m.data[i * m.c];
    const g = m.data[i * m.c + 1];
    const b = m.data[i * m.c + 2];
    out[i] = (r * 9798 + g * 19235 + b * 3735 + (1 << 14)) >> 15;
  }
  return { h: m.h, w: m.w, c: 1, data: out };
}

/** The V channel of cvtColor(BGR2HSV) on uint8: max(B, G, R). */
export function hsvValue(m: U8Mat): U8Mat {
  const n = m.h * m.w;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.max(m.data[i * m.c], m.data[i * m.c + 1], m.data[i * m.c + 2]);
  return { h: m.h, w: m.w, c: 1, data: out };
}

/** `cv2.threshold(gray, t, 255, THRESH_BINARY_INV)`: 0 above t, 255 at or below. */
export function thresholdBinaryInv(g: U8Mat, t: number): U8Mat {
  const out = new Uint8Array(g.data.length);
  const ti = Math.floor(t);
  for (let i = 0; i < out.length; i++) out[i] = g.data[i] > ti ? 0 : 255;
  return { h: g.h, w: g.w, c: 1, data: out };
}

const FLT_EPSILON = 1.1920928955078125e-7;

/** Otsu's threshold as OpenCV computes it (float64 moments over the 256-bin histogram). */
export function otsuThreshold(g: U8Mat): number {
  const hist = new Float64Array(256);
  for (const v of g.data) hist[v]++;
  const N = g.data.length;
  let mu = 0;
  const scale = 1 / N;
  for (let i = 0; i < 256; i++) mu += i * hist[i];
  mu *= scale;
  let mu1 = 0;
  let q1 = 0;
  let maxSigma = 0;
  let maxVal = 0;
  for (let i = 0; i < 256; i++) {
    const p = hist[i] * scale;
    mu1 *= q1;
    q1 += p;
    const q2 = 1 - q1;
    if (Math.min(q1, q2) < FLT_EPSILON || Math.max(q1, q2) > 1 - FLT_EPSILON) continue;
    mu1 = (mu1 + i * p) / q1;
    const mu2 = (mu - q1 * mu1) / q2;
    const sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
    if (sigma > maxSigma) {
      maxSigma = sigma;
      maxVal = i;
    }
  }
  return maxVal;
}
