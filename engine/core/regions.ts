import { InterruptedError } from './errors.ts';
import { pyRound } from './py-round.ts';
import { describeShape, type Tensor } from './tensor.ts';

/**
 * Rectangles of images, masks and latents: crop, paste with a feathered mask, a mask's bounding box,
 * and ComfyUI's tiled_scale (run a function on overlapping tiles, blend with a linear ramp). These
 * are the pieces of tiled VAE, upscale models, tiled diffusion and detect → crop → inpaint → paste.
 */

/** Where the channels sit: NCHW (latents, model inputs) or NHWC (ComfyUI's IMAGE). */
export type Layout = 'NCHW' | 'NHWC';

/** A pixel rectangle: top-left corner and size. */
export interface Region {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/** [B, C, H, W] read from either layout. */
function dims(t: Tensor, layout: Layout, what: string): { b: number; c: number; h: number; w: number } {
  if (t.shape.length !== 4) throw new Error(`${what} must be 4-D ${layout}, got ${describeShape(t.shape)}`);
  const [b, d1, d2, d3] = t.shape;
  return layout === 'NCHW' ? { b, c: d1, h: d2, w: d3 } : { b, c: d3, h: d1, w: d2 };
}

function shaped(layout: Layout, b: number, c: number, h: number, w: number): number[] {
  return layout === 'NCHW' ? [b, c, h, w] : [b, h, w, c];
}

function checkInside(r: Region, h: number, w: number): void {
  const ok = [r.x, r.y, r.width, r.height].every(Number.isInteger) && r.x >= 0 && r.y >= 0 && r.width > 0 && r.height > 0;
  if (!ok || r.x + r.width > w || r.y + r.height > h) {
    throw new Error(`region ${r.width}x${r.height} at (${r.x}, ${r.y}) is not inside the ${w}x${h} image`);
  }
}

/** The pixels of `r` (every batch item and channel); the region must lie inside the tensor. */
export function cropRegion(t: Tensor, r: Region, layout: Layout = 'NCHW'): Tensor {
  const { b, c, h, w } = dims(t, layout, 'crop input');
  checkInside(r, h, w);
  const out = new Float32Array(b * c * r.height * r.width);
  if (layout === 'NCHW') {
    for (let p = 0; p < b * c; p++) {
      for (let row = 0; row < r.height; row++) {
        const src = (p * h + r.y + row) * w + r.x;
        out.set(t.data.subarray(src, src + r.width), (p * r.height + row) * r.width);
      }
    }
  } else {
    const line = r.width * c;
    for (let n = 0; n < b; n++) {
      for (let row = 0; row < r.height; row++) {
        const src = ((n * h + r.y + row) * w + r.x) * c;
        out.set(t.data.subarray(src, src + line), (n * r.height + row) * line);
      }
    }
  }
  return { shape: shaped(layout, b, c, r.height, r.width), data: out };
}

/**
 * The 1-D linear feather ramp of ComfyUI's tiled_scale and FeatherMask: (t+1)/feather for the t-th
 * pixel from either end, 1 inside; all ones when the length is not above the feather.
 */
export function featherRamp(len: number, feather: number): Float32Array {
  const m = new Float32Array(len).fill(1);
  if (feather >= len) return m;
  for (let t = 0; t < feather; t++) {
    const a = (t + 1) / feather;
    m[t] *= a;
    m[len - 1 - t] *= a;
  }
  return m;
}

/** An [h, w] weight that ramps linearly to 0 over `feather` pixels at every edge (product of two ramps). */
export function featherMask(h: number, w: number, feather: number): Float32Array {
  const my = featherRamp(h, feather);
  const mx = featherRamp(w, feather);
  const m = new Float32Array(h * w);
  for (let r = 0; r < h; r++) for (let q = 0; q < w; q++) m[r * w + q] = my[r] * mx[q];
  return m;
}

export interface PasteOptions {
  /** The source's weight, [h, w], [1, h, w] or [B, h, w] at the source's size (1 = source); all ones when absent. */
  mask?: Tensor;
  /** Linear feather in pixels at the source's edges, multiplied into the mask. */
  feather?: number;
}

/**
 * Paste `src` into a copy of `dest` with its top-left corner at (x, y), blended as
 * mask·src + (1 − mask)·dest like ComfyUI's ImageCompositeMasked, with the mask feathered at the
 * source's edges (Impact Pack's paste of a detailed crop). What falls outside `dest` is dropped. A
 * source or mask batch of 1 serves every item.
 */
export function pasteRegion(dest: Tensor, src: Tensor, x: number, y: number, layout: Layout = 'NCHW', opts: PasteOptions = {}): Tensor {
  const d = dims(dest, layout, 'paste destination');
  const s = dims(src, layout, 'paste source');
  if (s.c !== d.c) throw new Error(`paste: destination has ${d.c} channels but source has ${s.c}`);
  if (s.b !== d.b && s.b !== 1) throw new Error(`paste: source batch ${s.b} does not match destination batch ${d.b}`);
  if (!Number.isInteger(x) || !Number.isInteger(y)) throw new Error(`paste position (${x}, ${y}) must be whole pixels`);
  const plane = s.h * s.w;
  let mask: Float32Array | undefined;
  let maskBatch = 1;
  if (opts.mask) {
    const ms = opts.mask.shape;
    const [mh, mw] = ms.slice(-2);
    maskBatch = ms.length === 3 ? ms[0] : 1;
    if (ms.length < 2 || ms.length > 3 || mh !== s.h || mw !== s.w || (maskBatch !== 1 && maskBatch !== d.b)) {
      throw new Error(`paste mask ${describeShape(ms)} does not fit a ${s.b}-item ${s.w}x${s.h} source`);
    }
    mask = opts.mask.data;
  }
  if (opts.feather && opts.feather > 0) {
    const f = featherMask(s.h, s.w, opts.feather);
    const m = new Float32Array(maskBatch * plane);
    for (let i = 0; i < m.length; i++) m[i] = (mask ? mask[i] : 1) * f[i % plane];
    mask = m;
  }
  const out = new Float32Array(dest.data);
  const f32 = Math.fround;
  for (let n = 0; n < d.b; n++) {
    const sn = s.b === 1 ? 0 : n;
    const mn = maskBatch === 1 ? 0 : n;
    for (let r = 0; r < s.h; r++) {
      const ty = y + r;
      if (ty < 0 || ty >= d.h) continue;
      for (let q = 0; q < s.w; q++) {
        const tx = x + q;
        if (tx < 0 || tx >= d.w) continue;
        const m = mask ? mask[mn * plane + r * s.w + q] : 1;
        const inv = f32(1 - m);
        for (let k = 0; k < d.c; k++) {
          const di = layout === 'NCHW' ? ((n * d.c + k) * d.h + ty) * d.w + tx : ((n * d.h + ty) * d.w + tx) * d.c + k;
          const si = layout === 'NCHW' ? ((sn * s.c + k) * s.h + r) * s.w + q : ((sn * s.h + r) * s.w + q) * s.c + k;
          // Rounded to float32 per operation, as torch computes the blend.
          out[di] = f32(m * src.data[si]) + f32(inv * out[di]);
        }
      }
    }
  }
  return { shape: [...dest.shape], data: out };
}

export interface BoundingBoxOptions {
  /** Pixels added on every side before clamping to the image. */
  padding?: number;
  /** Grow width and height to a multiple of this (centred, kept inside the image; shrunk to fit if it must). */
  multipleOf?: number;
  /** A pixel counts when its value is above this (0: any non-zero weight). */
  threshold?: number;
}

function roundSpan(start: number, len: number, size: number, m: number): [number, number] {
  let want = Math.ceil(len / m) * m;
  if (want > size) want = Math.floor(size / m) * m || size;
  // Centred: half the growth (rounded down) goes before, or half the cut when the image is too small.
  const s = Math.min(Math.max(0, start + Math.trunc((len - want) / 2)), size - want);
  return [s, want];
}

/**
 * The smallest rectangle holding every mask pixel above the threshold, over all batch items of an
 * [H, W] or [B, H, W] mask, grown by `padding`, clamped to the image and optionally rounded to a
 * multiple (as ComfyUI's and Impact Pack's crop-region helpers). Undefined for an empty mask.
 */
export function maskBoundingBox(mask: Tensor, opts: BoundingBoxOptions = {}): Region | undefined {
  if (mask.shape.length !== 2 && mask.shape.length !== 3)
    throw new Error(`mask must be [H, W] or [B, H, W], got ${describeShape(mask.shape)}`);
  const [h, w] = mask.shape.slice(-2);
  const threshold = opts.threshold ?? 0;
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let i = 0; i < mask.data.length; i++) {
    if (!(mask.data[i] > threshold)) continue;
    const p = i % (h * w);
    const r = Math.floor(p / w);
    const q = p % w;
    if (q < x0) x0 = q;
    if (q > x1) x1 = q;
    if (r < y0) y0 = r;
    if (r > y1) y1 = r;
  }
  if (x1 < 0) return undefined;
  const pad = opts.padding ?? 0;
  let x = Math.max(0, x0 - pad);
  let y = Math.max(0, y0 - pad);
  let width = Math.min(w, x1 + 1 + pad) - x;
  let height = Math.min(h, y1 + 1 + pad) - y;
  if (opts.multipleOf && opts.multipleOf > 1) {
    [x, width] = roundSpan(x, width, w, opts.multipleOf);
    [y, height] = roundSpan(y, height, h, opts.multipleOf);
  }
  return { x, y, width, height };
}

/**
 * ComfyUI's `tiled_scale_multidim` for NCHW tensors: run `fn` on overlapping tiles and blend the
 * results with a mask that ramps linearly over the overlap, so seams vanish and memory stays at one
 * tile plus the output. `scale` is output pixels per input pixel (8 to decode, 1/8 to encode).
 */

export interface TileGrid {
  /** Tile height and width in input pixels. */
  tileY: number;
  tileX: number;
  /** Overlap in input pixels. */
  overlap: number;
}

/** Tile start positions along one axis, as ComfyUI computes them (last tile flush with the end). */
export function tilePositions(size: number, tile: number, overlap: number): number[] {
  if (size <= tile) return [0];
  const step = Math.max(1, tile - overlap);
  const out: number[] = [];
  for (let p = 0; p < size - overlap; p += step) out.push(p);
  if (out.length === 0) out.push(0);
  if (out[out.length - 1] + tile < size) out.push(size - tile);
  return out;
}

/** Number of `fn` calls one tiled pass makes per batch item (for progress). */
export function tileCount(h: number, w: number, grid: TileGrid): number {
  if (h <= grid.tileY && w <= grid.tileX) return 1;
  return tilePositions(h, grid.tileY, grid.overlap).length * tilePositions(w, grid.tileX, grid.overlap).length;
}

export interface TiledScaleOptions {
  signal?: AbortSignal;
  /** Called after each tile. */
  onTile?: () => void;
}

export async function tiledScale(
  samples: Tensor,
  fn: (tile: Tensor) => Promise<Tensor>,
  grid: TileGrid,
  scale: number,
  outChannels: number,
  opts: TiledScaleOptions = {},
): Promise<Tensor> {
  const [B, C, H, W] = samples.shape;
  const OH = pyRound(H * scale);
  const OW = pyRound(W * scale);
  const per = outChannels * OH * OW;
  const output = new Float32Array(B * per);
  const feather = pyRound(grid.overlap * scale);
  for (let b = 0; b < B; b++) {
    const s: Tensor = { shape: [1, C, H, W], data: samples.data.subarray(b * C * H * W, (b + 1) * C * H * W) };
    if (H <= grid.tileY && W <= grid.tileX) {
      const r = await fn(s);
      expectTile(r, [1, outChannels, OH, OW]);
      output.set(r.data, b * per);
      opts.onTile?.();
      continue;
    }
    const out = new Float32Array(per);
    // The mask is the same for every channel, so the divisor is kept per pixel.
    const div = new Float32Array(OH * OW);
    for (const py of tilePositions(H, grid.tileY, grid.overlap)) {
      for (const px of tilePositions(W, grid.tileX, grid.overlap)) {
        if (opts.signal?.aborted) throw new InterruptedError();
        const y = Math.max(0, Math.min(H - grid.overlap, py));
        const x = Math.max(0, Math.min(W - grid.overlap, px));
        const h = Math.min(grid.tileY, H - y);
        const w = Math.min(grid.tileX, W - x);
        const ps = await fn(cropRegion(s, { x, y, width: w, height: h }));
        const [, pc, ph, pw] = ps.shape;
        if (pc !== outChannels) throw new Error(`tile function returned ${pc} channels, expected ${outChannels}`);
        const oy = pyRound(y * scale);
        const ox = pyRound(x * scale);
        if (oy + ph > OH || ox + pw > OW) throw new Error(`tile of ${ph}x${pw} at (${oy}, ${ox}) exceeds the ${OH}x${OW} output`);
        const my = featherRamp(ph, feather);
        const mx = featherRamp(pw, feather);
        for (let r = 0; r < ph; r++) {
          for (let q = 0; q < pw; q++) div[(oy + r) * OW + ox + q] += my[r] * mx[q];
          for (let c = 0; c < pc; c++) {
            const src = (c * ph + r) * pw;
            const dst = (c * OH + oy + r) * OW + ox;
            for (let q = 0; q < pw; q++) out[dst + q] += ps.data[src + q] * my[r] * mx[q];
          }
        }
        opts.onTile?.();
      }
    }
    for (let c = 0; c < outChannels; c++)
      for (let k = 0; k < OH * OW; k++) output[b * per + c * OH * OW + k] = out[c * OH * OW + k] / div[k];
  }
  return { shape: [B, outChannels, OH, OW], data: output };
}

function expectTile(t: Tensor, shape: number[]): void {
  if (t.shape.length !== 4 || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`tile function returned shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
}

/**
 * ComfyUI's `decode_tiled_` / `encode_tiled_` blend: three tiled passes with tile shapes
 * (x/2, y·2), (x·2, y/2) and (x, y), averaged, so no seam sits in the same place twice.
 * `tile` and `overlap` are in input pixels (latent pixels to decode, image pixels to encode).
 */
export async function tiledScaleThreePass(
  samples: Tensor,
  fn: (tile: Tensor) => Promise<Tensor>,
  tile: number,
  overlap: number,
  scale: number,
  outChannels: number,
  opts: TiledScaleOptions = {},
): Promise<Tensor> {
  const grids: TileGrid[] = [
    { tileX: Math.floor(tile / 2), tileY: tile * 2, overlap },
    { tileX: tile * 2, tileY: Math.floor(tile / 2), overlap },
    { tileX: tile, tileY: tile, overlap },
  ];
  let sum: Float32Array | undefined;
  let shape: readonly number[] = [];
  for (const g of grids) {
    const r = await tiledScale(samples, fn, g, scale, outChannels, opts);
    if (!sum) {
      sum = new Float32Array(r.data);
      shape = r.shape;
    } else for (let i = 0; i < sum.length; i++) sum[i] += r.data[i];
  }
  for (let i = 0; i < sum!.length; i++) sum![i] /= 3;
  return { shape: [...shape], data: sum! };
}

/** Total `fn` calls of `tiledScaleThreePass` (for progress bars). */
export function threePassTileCount(batch: number, h: number, w: number, tile: number, overlap: number): number {
  return (
    batch *
    (tileCount(h, w, { tileX: Math.floor(tile / 2), tileY: tile * 2, overlap }) +
      tileCount(h, w, { tileX: tile * 2, tileY: Math.floor(tile / 2), overlap }) +
      tileCount(h, w, { tileX: tile, tileY: tile, overlap }))
  );
}
