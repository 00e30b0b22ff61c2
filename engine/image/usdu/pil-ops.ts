import { PIL_HALF, PIL_ONE, pilCoeffs, type PilFilter } from '../pil-lanczos.ts';
/**
 * The few Pillow (9.4) operations Ultimate SD Upscale's masks go through, on 8-bit planes, in
 * Pillow's integer arithmetic: GaussianBlur (three extended box blurs), BICUBIC resampling, the
 * linear and radial gradient images, square rotations, getbbox and alpha_composite.
 */

/** An 8-bit single-band image ("L"), row-major. */
export interface Gray8 {
  readonly w: number;
  readonly h: number;
  readonly data: Uint8Array;
}

export const gray8 = (w: number, h: number, fill = 0): Gray8 => ({ w, h, data: new Uint8Array(w * h).fill(fill) });

const f32 = Math.fround;

/** Pillow's _gaussian_blur_radius: the extended box radius of `passes` boxes with the Gaussian's variance (float arithmetic as in C). */
export function boxRadiusForGaussian(radius: number, passes = 3): number {
  const sigma2 = f32(f32(radius * radius) / passes);
  const L = f32(Math.sqrt(12 * sigma2 + 1));
  const l = Math.floor((L - 1) / 2);
  let a = f32((2 * l + 1) * f32(l * (l + 1) - 3 * sigma2));
  a = f32(a / f32(6 * f32(sigma2 - (l + 1) * (l + 1))));
  return f32(l + a);
}

/** ImagingLineBoxBlur8 over one line (`lineIn` read through `get`). */
function lineBoxBlur(
  get: (i: number) => number,
  put: (i: number, v: number) => void,
  lastx: number,
  radius: number,
  edgeA: number,
  edgeB: number,
  ww: number,
  fw: number,
): void {
  let acc = get(0) * (radius + 1);
  for (let x = 0; x < edgeA - 1; x++) acc += get(x);
  acc += get(lastx) * (radius - edgeA + 1);
  const save = (x: number, left: number, right: number): void => {
    // (acc·ww + (in[left] + in[right])·fw + 2²³) >> 24 in 32-bit unsigned arithmetic.
    const bulk = (acc * ww + (get(left) + get(right)) * fw) % 2 ** 32;
    put(x, Math.floor((bulk + 2 ** 23) / 2 ** 24) & 0xff);
  };
  if (edgeA <= edgeB) {
    for (let x = 0; x < edgeA; x++) {
      acc += get(x + radius) - get(0);
      save(x, 0, x + radius + 1);
    }
    for (let x = edgeA; x < edgeB; x++) {
      acc += get(x + radius) - get(x - radius - 1);
      save(x, x - radius - 1, x + radius + 1);
    }
    for (let x = edgeB; x <= lastx; x++) {
      acc += get(lastx) - get(x - radius - 1);
      save(x, x - radius - 1, lastx);
    }
  } else {
    for (let x = 0; x < edgeB; x++) {
      acc += get(x + radius) - get(0);
      save(x, 0, x + radius + 1);
    }
    for (let x = edgeB; x < edgeA; x++) {
      acc += get(lastx) - get(0);
      save(x, 0, lastx);
    }
    for (let x = edgeA; x <= lastx; x++) {
      acc += get(lastx) - get(x - radius - 1);
      save(x, x - radius - 1, lastx);
    }
  }
}

/** ImagingHorizontalBoxBlur in place on the lines of `d` (`lines` lines of `len`, at `stride` apart with `step` between pixels). */
function boxBlurLines(d: Uint8Array, lines: number, len: number, lineStride: number, step: number, floatRadius: number): void {
  const radius = Math.trunc(floatRadius);
  const ww = Math.trunc(f32(2 ** 24 / f32(floatRadius * 2 + 1)));
  const fw = Math.trunc((2 ** 24 - (radius * 2 + 1) * ww) / 2);
  const edgeA = Math.min(radius + 1, len);
  const edgeB = Math.max(len - radius - 1, 0);
  const line = new Uint8Array(len);
  for (let y = 0; y < lines; y++) {
    const base = y * lineStride;
    for (let x = 0; x < len; x++) line[x] = d[base + x * step];
    lineBoxBlur(
      (i) => line[i],
      (i, v) => (d[base + i * step] = v),
      len - 1,
      radius,
      edgeA,
      edgeB,
      ww,
      fw,
    );
  }
}

/** `Image.filter(ImageFilter.GaussianBlur(radius))` on an L image. */
export function gaussianBlur(img: Gray8, radius: number): Gray8 {
  const out = new Uint8Array(img.data);
  const r = boxRadiusForGaussian(radius, 3);
  if (r === 0) return { ...img, data: out };
  for (let i = 0; i < 3; i++) boxBlurLines(out, img.h, img.w, img.w, 1, r);
  for (let i = 0; i < 3; i++) boxBlurLines(out, img.w, img.h, 1, img.w, r);
  return { ...img, data: out };
}

// Pillow's resample: fixed-point two-pass convolution (22 fraction bits, 8-bit intermediate), with
// pil-lanczos.ts's coefficients under the bicubic kernel.

function bicubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

const BICUBIC: PilFilter = { support: 2, kernel: bicubic };

function resamplePass(src: Gray8, outLen: number, horizontal: boolean): Gray8 {
  const c = pilCoeffs(horizontal ? src.w : src.h, outLen, BICUBIC);
  const ow = horizontal ? outLen : src.w;
  const oh = horizontal ? src.h : outLen;
  const out = new Uint8Array(ow * oh);
  for (let y = 0; y < oh; y++)
    for (let x = 0; x < ow; x++) {
      const o = horizontal ? x : y;
      const min = c.bounds[o * 2];
      const n = c.bounds[o * 2 + 1];
      let ss = PIL_HALF;
      for (let i = 0; i < n; i++)
        ss += (horizontal ? src.data[y * src.w + min + i] : src.data[(min + i) * src.w + x]) * c.kk[o * c.ksize + i];
      const v = Math.floor(ss / PIL_ONE);
      out[y * ow + x] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  return { w: ow, h: oh, data: out };
}

/** `Image.resize((w, h), Image.BICUBIC)` on an L image. */
export function resizeBicubic(img: Gray8, w: number, h: number): Gray8 {
  let cur = img;
  if (w !== cur.w) cur = resamplePass(cur, w, true);
  if (h !== cur.h) cur = resamplePass(cur, h, false);
  return cur === img ? { ...img, data: new Uint8Array(img.data) } : cur;
}

/** `Image.linear_gradient("L")`: 256×256, value = row. */
export function linearGradient(): Gray8 {
  const g = gray8(256, 256);
  for (let y = 0; y < 256; y++) g.data.fill(y, y * 256, (y + 1) * 256);
  return g;
}

/** `Image.radial_gradient("L")`: 256×256, √2 times the distance from (128, 128), truncated, at most 255. */
export function radialGradient(): Gray8 {
  const g = gray8(256, 256);
  for (let y = 0; y < 256; y++)
    for (let x = 0; x < 256; x++)
      g.data[y * 256 + x] = Math.min(255, Math.trunc(Math.sqrt(((x - 128) * (x - 128) + (y - 128) * (y - 128)) * 2)));
  return g;
}

/** `Image.rotate(angle)` for 90, 180 and 270 degrees (counter-clockwise) on a square image: Pillow transposes exactly. */
export function rotateSquare(img: Gray8, angle: 90 | 180 | 270): Gray8 {
  const n = img.w;
  if (img.h !== n) throw new Error(`rotateSquare: ${img.w}x${img.h} is not square`);
  const out = new Uint8Array(n * n);
  for (let y = 0; y < n; y++)
    for (let x = 0; x < n; x++) {
      const v = img.data[y * n + x];
      if (angle === 180) out[(n - 1 - y) * n + (n - 1 - x)] = v;
      else if (angle === 90) out[(n - 1 - x) * n + y] = v;
      else out[x * n + (n - 1 - y)] = v;
    }
  return { w: n, h: n, data: out };
}

export const invert = (img: Gray8): Gray8 => ({ ...img, data: img.data.map((v) => 255 - v) });

/** `Image.paste(src, (x, y))` of an L image into an L image (clipped at the edges), in place. */
export function pasteGray(dest: Gray8, src: Gray8, x: number, y: number): void {
  for (let r = Math.max(0, -y); r < src.h && y + r < dest.h; r++)
    for (let q = Math.max(0, -x); q < src.w && x + q < dest.w; q++) dest.data[(y + r) * dest.w + x + q] = src.data[r * src.w + q];
}

/** `Image.getbbox()`: [x1, y1, x2, y2) of the non-zero pixels, undefined when all are zero. */
export function getbbox(img: Gray8): [number, number, number, number] | undefined {
  let x1 = img.w;
  let y1 = img.h;
  let x2 = 0;
  let y2 = 0;
  for (let y = 0; y < img.h; y++)
    for (let x = 0; x < img.w; x++) {
      if (img.data[y * img.w + x] === 0) continue;
      if (x < x1) x1 = x;
      if (x + 1 > x2) x2 = x + 1;
      if (y < y1) y1 = y;
      if (y + 1 > y2) y2 = y + 1;
    }
  return x2 === 0 ? undefined : [x1, y1, x2, y2];
}

/**
 * `Image.alpha_composite` of a source pixel (colour `s`, alpha `a`) over an opaque destination
 * colour `d`, Pillow's integer formula with 7 extra bits; the result is opaque.
 */
export function compositeOverOpaque(s: number, a: number, d: number): number {
  if (a === 0) return d;
  const outa255 = a * 255 + 255 * (255 - a);
  const coef1 = Math.floor((a * 255 * 255 * 128) / outa255);
  const coef2 = 255 * 128 - coef1;
  const t = s * coef1 + d * coef2 + (0x80 << 7);
  return (((t >> 8) + t) >> 8) >> 7;
}
