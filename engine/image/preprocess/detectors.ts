import { removePad, resizeImageWithPad } from './aux-resize.ts';
import { hsvValue, otsuThreshold, rgbToGray, thresholdBinaryInv } from './cv-color.ts';
import { gaussianBlurF32 } from './cv-gaussian.ts';
import { pyrUp } from './cv-pyramid.ts';
import { remapLinear } from './cv-remap.ts';
import { cvResize, cvResizeCubicF64 } from './cv-resize.ts';
import { hwc3, toF32, type U8Mat } from './mat.ts';

/**
 * The OpenCV-only detectors of comfyui_controlnet_aux, step for step on uint8 images (numpy's casts
 * included: float → uint8 truncates, uint8 arithmetic wraps). Each returns the image the package's
 * detector returns for `output_type="np"`.
 */

const f = Math.fround;

function grey3(g: U8Mat): U8Mat {
  return hwc3(g);
}

/** BinaryDetector: grey, THRESH_BINARY_INV at `bin_threshold` (Otsu for 0 or 255), inverted back. */
export function binaryDetector(img: U8Mat, binThreshold: number, resolution: number): U8Mat {
  const p = resizeImageWithPad(img, resolution);
  const g = rgbToGray(p.image);
  const t = binThreshold === 0 || binThreshold === 255 ? otsuThreshold(g) : binThreshold;
  const b = thresholdBinaryInv(g, t);
  for (let i = 0; i < b.data.length; i++) b.data[i] = 255 - b.data[i];
  return grey3(removePad(p, b));
}

/** `((x / 255) ** gamma * 255).clip(0, 255).astype(uint8)` in float32. */
function gammaU8(g: U8Mat, gamma: number): U8Mat {
  const out = new Uint8Array(g.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = f(f(Math.pow(f(g.data[i] / 255), gamma)) * 255);
    out[i] = v >= 255 ? 255 : v > 0 ? Math.trunc(v) : 0;
  }
  return { h: g.h, w: g.w, c: 1, data: out };
}

/** OpenCV's 8-bit Lab tables: sRGB gamma in 3 extra bits, the cube root over 1.5× range in 15 bits. */
let labTables: { gamma: Int32Array; cbrt: Int32Array } | undefined;

function labTabs(): { gamma: Int32Array; cbrt: Int32Array } {
  if (labTables) return labTables;
  const gamma = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    const g = x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
    gamma[i] = Math.round(255 * 8 * g);
  }
  const cbrt = new Int32Array(3072);
  for (let i = 0; i < 3072; i++) {
    const x = i / (255 * 8);
    const c = x < 0.008856 ? x * 7.787 + 16 / 116 : Math.cbrt(x);
    cbrt[i] = Math.round((1 << 15) * c);
  }
  return (labTables = { gamma, cbrt });
}

/**
 * The L channel of cvtColor(BGR2LAB) on uint8 as OpenCV's fixed-point path computes it (the image's first
 * channel taken as blue, as the aux package passes RGB): Y from 12-bit coefficients, the cube-root table,
 * L = (296·fY − 1336934 + 2^14) >> 15.
 */
export function labLightness(m: U8Mat): U8Mat {
  const { gamma, cbrt } = labTabs();
  const n = m.h * m.w;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const b = gamma[m.data[i * m.c]];
    const g = gamma[m.data[i * m.c + 1]];
    const r = gamma[m.data[i * m.c + 2]];
    const y = (r * 871 + g * 2929 + b * 296 + (1 << 11)) >> 12;
    const L = (296 * cbrt[y] - 1336934 + (1 << 14)) >> 15;
    out[i] = L < 0 ? 0 : L > 255 ? 255 : L;
  }
  return { h: m.h, w: m.w, c: 1, data: out };
}

/** Recolorizer: luminance (Lab L) or intensity (HSV V), gamma-corrected, as grey RGB. */
export function recolorDetector(img: U8Mat, mode: 'luminance' | 'intensity', gamma: number, resolution: number): U8Mat {
  const p = resizeImageWithPad(img, resolution);
  const g = mode === 'luminance' ? labLightness(p.image) : hsvValue(p.image);
  return removePad(p, grey3(gammaU8(g, gamma)));
}

/** ColorDetector: short side to `resolution` (INTER_AREA), cubic down to 1/64, nearest back up. */
export function colorDetector(input: U8Mat, resolution: number): U8Mat {
  const img = hwc3(input);
  const { h, w } = img;
  let nh: number;
  let nw: number;
  if (h < w) {
    nh = resolution;
    nw = Math.round((w / h) * resolution);
  } else {
    nw = resolution;
    nh = Math.round((h / w) * resolution);
  }
  const r = cvResize(img, nw, nh, 'area');
  const sw = Math.floor(nw / 64);
  const sh = Math.floor(nh / 64);
  if (sw < 1 || sh < 1)
    throw new Error(`the colour grid of a ${nw}x${nh} image would be ${sw}x${sh} cells: use a resolution of at least 64`);
  return cvResize(cvResize(r, sw, sh, 'cubic'), nw, nh, 'nearest');
}

/** TileDetector: sides rounded to 64, INTER_AREA down by 2^iters, pyrUp `iters` times. Ignores `resolution`. */
export function tileDetector(img: U8Mat, pyrUpIters: number): U8Mat {
  const H = npRound(img.h / 64) * 64;
  const W = npRound(img.w / 64) * 64;
  const s = 2 ** pyrUpIters;
  const dw = Math.floor(W / s);
  const dh = Math.floor(H / s);
  if (dw < 1 || dh < 1) {
    throw new Error(`a ${img.w}x${img.h} image is too small for ${pyrUpIters} pyrUp iterations (its sides rounded to 64 give ${W}x${H})`);
  }
  let m = hwc3(cvResize(img, dw, dh, 'area'));
  for (let i = 0; i < pyrUpIters; i++) m = pyrUp(m);
  return m;
}

function npRound(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Per-pixel minimum over channels of a − b (float32 images). */
function minDiff(a: Float32Array, b: Float32Array, n: number, c: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let m = Infinity;
    for (let k = 0; k < c; k++) m = Math.min(m, f(a[i * c + k] - b[i * c + k]));
    out[i] = m;
  }
  return out;
}

/** ScribbleXDog_Detector: difference of Gaussians (σ 0.5 and 5), thresholded with numpy's uint8 wrap. */
export function scribbleXdogDetector(img: U8Mat, threshold: number, resolution: number): U8Mat {
  const p = resizeImageWithPad(img, resolution);
  const x = toF32(p.image);
  const g1 = gaussianBlurF32(x, 0.5);
  const g2 = gaussianBlurF32(x, 5);
  const n = x.h * x.w;
  const d = minDiff(g2.data, g1.data, n, x.c);
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const v = f(255 - d[i]);
    const dog = v >= 255 ? 255 : v > 0 ? Math.trunc(v) : 0;
    // `2 * (255 - dog)` stays uint8 in numpy and wraps
    if (((2 * (255 - dog)) & 255) > threshold) out.fill(255, 3 * i, 3 * i + 3);
  }
  return removePad(p, { h: x.h, w: x.w, c: 3, data: out });
}

/** numpy's median of a float32 sample (mean of the middle pair in float32); NaN when empty. */
function medianF32(v: Float32Array): number {
  if (v.length === 0) return NaN;
  const s = Float32Array.from(v).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : f(f(s[m - 1] + s[m]) / 2);
}

/** LineartStandardDetector: min over channels of blur(x, σ) − x, normalised by its median above a threshold. */
export function lineartStandardDetector(img: U8Mat, sigma: number, intensityThreshold: number, resolution: number): U8Mat {
  const p = resizeImageWithPad(img, resolution);
  const x = toF32(p.image);
  const g = gaussianBlurF32(x, sigma);
  const n = x.h * x.w;
  const inten = minDiff(g.data, x.data, n, x.c);
  for (let i = 0; i < n; i++) inten[i] = Math.min(255, Math.max(0, inten[i]));
  const med = medianF32(inten.filter((v) => v > intensityThreshold));
  // Python's max(16, nan) is 16
  const div = f(Number.isNaN(med) || !(med > 16) ? 16 : med);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = f(f(inten[i] / div) * 127);
    out[i] = v >= 255 ? 255 : v > 0 ? Math.trunc(v) : 0;
  }
  return grey3(removePad(p, { h: x.h, w: x.w, c: 1, data: out }));
}

/**
 * ContentShuffleDetector: two noise fields (numpy's `uniform` on a coarse grid of cells of 256 pixels,
 * INTER_CUBIC up, cropped, normalised to 0..1) scaled to the padded size become a remap flow.
 * `uniform(n)` draws n values from the node's generator (numpy's default_rng(seed)).
 */
export function contentShuffleDetector(img: U8Mat, resolution: number, uniform: (n: number) => Float64Array): U8Mat {
  const p = resizeImageWithPad(img, resolution);
  const { h: H, w: W } = p.image;
  const F = 256;
  const disk = (): Float64Array => {
    const gh = Math.floor(H / F) + 2;
    const gw = Math.floor(W / F) + 2;
    const big = cvResizeCubicF64({ h: gh, w: gw, c: 1, data: uniform(gh * gw) }, W + 2 * F, H + 2 * F);
    const n = new Float64Array(H * W);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) n[y * W + x] = big.data[(y + F) * (W + 2 * F) + x + F];
    let lo = Infinity;
    for (const v of n) lo = Math.min(lo, v);
    let hi = -Infinity;
    for (let i = 0; i < n.length; i++) hi = Math.max(hi, (n[i] -= lo));
    for (let i = 0; i < n.length; i++) n[i] /= hi;
    return n;
  };
  const nx = disk();
  const ny = disk();
  const mx = Float32Array.from(nx, (v) => v * (W - 1));
  const my = Float32Array.from(ny, (v) => v * (H - 1));
  return removePad(p, remapLinear(p.image, mx, my, H, W));
}
