import type { WeightSource } from '../core/weights.ts';
import * as ort from 'onnxruntime-node';
import type { ImageTensor, Tensor } from '../core/tensor.ts';
import { describeShape } from '../core/tensor.ts';
import { pyRound } from '../image/python-compat.ts';
import { InterruptedError } from '../core/errors.ts';
import type { VaeConfig } from './config.ts';
import type { VaeHandle } from './handles.ts';

/**
 * ComfyUI's `tiled_scale_multidim` for NCHW images: run `fn` on overlapping tiles and blend the
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

function crop(s: Tensor, y: number, x: number, h: number, w: number): Tensor {
  const [, C, H, W] = s.shape;
  const out = new Float32Array(C * h * w);
  for (let c = 0; c < C; c++) for (let r = 0; r < h; r++) {
    const src = (c * H + y + r) * W + x;
    out.set(s.data.subarray(src, src + w), (c * h + r) * w);
  }
  return { shape: [1, C, h, w], data: out };
}

/** The 1-D feather ramp: (t+1)/feather on both ends, 1 inside; all ones when the tile is too small. */
function ramp(len: number, feather: number): Float32Array {
  const m = new Float32Array(len).fill(1);
  if (feather >= len) return m;
  for (let t = 0; t < feather; t++) {
    const a = (t + 1) / feather;
    m[t] *= a;
    m[len - 1 - t] *= a;
  }
  return m;
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
        const ps = await fn(crop(s, y, x, h, w));
        const [, pc, ph, pw] = ps.shape;
        if (pc !== outChannels) throw new Error(`tile function returned ${pc} channels, expected ${outChannels}`);
        const oy = pyRound(y * scale);
        const ox = pyRound(x * scale);
        if (oy + ph > OH || ox + pw > OW) throw new Error(`tile of ${ph}x${pw} at (${oy}, ${ox}) exceeds the ${OH}x${OW} output`);
        const my = ramp(ph, feather);
        const mx = ramp(pw, feather);
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
    for (let c = 0; c < outChannels; c++) for (let k = 0; k < OH * OW; k++) output[b * per + c * OH * OW + k] = out[c * OH * OW + k] / div[k];
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

/** What the VAE needs of an ONNX Runtime session (an `ort.InferenceSession` fits). */
export type OnnxSession = Pick<ort.InferenceSession, 'run'> & Partial<Pick<ort.InferenceSession, 'release'>>;

export interface TiledOptions {
  /** Tile edge in output-image pixels for decoding, input-image pixels for encoding (ComfyUI's tile_size). */
  tileSize: number;
  /** Overlap in image pixels. */
  overlap: number;
  signal?: AbortSignal;
  /** Progress over all tiles of the three passes. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * A VAE that also exposes the model's raw range (NCHW, −1..1 images), which tiled decoding needs to
 * blend tiles before clamping, as ComfyUI does.
 */
export interface RawVae extends VaeHandle {
  decodeRaw(latent: Tensor, signal?: AbortSignal): Promise<Tensor>;
  encodeRaw(image: Tensor, signal?: AbortSignal): Promise<Tensor>;
}

export function isRawVae(v: VaeHandle): v is RawVae {
  return typeof (v as RawVae).decodeRaw === 'function' && typeof (v as RawVae).encodeRaw === 'function';
}

/** ComfyUI's `vae_encode_crop_pixels`: centre-crop H and W down to multiples of `m`. */
export function cropToMultiple(image: ImageTensor, m: number): ImageTensor {
  const [B, H, W, C] = image.shape;
  const h = Math.floor(H / m) * m;
  const w = Math.floor(W / m) * m;
  if (h === H && w === W) return image;
  if (h === 0 || w === 0) throw new Error(`image of ${W}x${H} pixels is smaller than the VAE's ${m}-pixel grid`);
  const y0 = Math.floor((H % m) / 2);
  const x0 = Math.floor((W % m) / 2);
  const out = new Float32Array(B * h * w * C);
  for (let b = 0; b < B; b++) for (let y = 0; y < h; y++) {
    const src = ((b * H + y + y0) * W + x0) * C;
    out.set(image.data.subarray(src, src + w * C), (b * h + y) * w * C);
  }
  return { shape: [B, h, w, C], data: out };
}

/** IMAGE (NHWC 0..1, first 3 channels) → the model's input range (NCHW, 2x − 1). */
export function imageToModel(image: ImageTensor): Tensor {
  if (image.shape.length !== 4) throw new Error(`image must be [B, H, W, C], got ${describeShape(image.shape)}`);
  const [B, H, W, C] = image.shape;
  if (C < 3) throw new Error(`image must have 3 or 4 channels, got ${C}`);
  const S = H * W;
  const out = new Float32Array(B * 3 * S);
  for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let c = 0; c < 3; c++) out[(b * 3 + c) * S + s] = image.data[(b * S + s) * C + c] * 2 - 1;
  return { shape: [B, 3, H, W], data: out };
}

/** The model's output (NCHW, −1..1) → IMAGE: clamp((x + 1) / 2, 0, 1), moved to NHWC. */
export function modelToImage(x: Tensor): ImageTensor {
  const [B, C, H, W] = x.shape;
  const S = H * W;
  const out = new Float32Array(B * S * C);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let s = 0; s < S; s++) {
    const v = (x.data[(b * C + c) * S + s] + 1) / 2;
    out[(b * S + s) * C + c] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
  return { shape: [B, H, W, C], data: out };
}

/** A clamped IMAGE back to NCHW −1..1 (for VAEs that only offer `decode`). */
function imageToRaw(image: ImageTensor): Tensor {
  const [B, H, W, C] = image.shape;
  const S = H * W;
  const out = new Float32Array(B * C * S);
  for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let c = 0; c < C; c++) out[(b * C + c) * S + s] = image.data[(b * S + s) * C + c] * 2 - 1;
  return { shape: [B, C, H, W], data: out };
}

function rawToImageUnclamped(x: Tensor): ImageTensor {
  const [B, C, H, W] = x.shape;
  const S = H * W;
  const out = new Float32Array(B * S * C);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let s = 0; s < S; s++) out[(b * S + s) * C + c] = (x.data[(b * C + c) * S + s] + 1) / 2;
  return { shape: [B, H, W, C], data: out };
}

function checkLatent(vae: VaeHandle, latent: Tensor): void {
  if (latent.shape.length !== 4) throw new Error(`latent must be [B, C, H, W], got ${describeShape(latent.shape)}`);
  if (latent.shape[1] !== vae.latentChannels) {
    throw new Error(`latent has ${latent.shape[1]} channels but this VAE takes ${vae.latentChannels} (shape ${describeShape(latent.shape)})`);
  }
}

/**
 * ComfyUI's VAEDecodeTiled for any VAE: `tileSize`/`overlap` in image pixels, overlap reduced to a
 * quarter tile when larger (as the node does), three blended passes, clamped after blending.
 */
export async function decodeTiled(vae: VaeHandle, latent: Tensor, opts: TiledOptions): Promise<ImageTensor> {
  checkLatent(vae, latent);
  const f = vae.downscale;
  let overlap = opts.overlap;
  if (opts.tileSize < overlap * 4) overlap = Math.floor(opts.tileSize / 4);
  const tile = Math.floor(opts.tileSize / f);
  const lap = Math.floor(overlap / f);
  if (tile < 2) throw new Error(`tile_size ${opts.tileSize} is too small for a VAE that scales by ${f}`);
  const fn = isRawVae(vae) ? (t: Tensor) => vae.decodeRaw(t, opts.signal) : async (t: Tensor) => imageToRaw(await vae.decode(t, opts.signal));
  const [B, , H, W] = latent.shape;
  const total = threePassTileCount(B, H, W, tile, lap);
  let done = 0;
  const raw = await tiledScaleThreePass(latent, fn, tile, lap, f, 3, { signal: opts.signal, onTile: () => opts.onProgress?.(++done, total) });
  return modelToImage(raw);
}

/** ComfyUI's VAEEncodeTiled: centre-crop to the grid, three blended passes in image pixels. */
export async function encodeTiled(vae: VaeHandle, image: ImageTensor, opts: TiledOptions): Promise<Tensor> {
  const f = vae.downscale;
  const px = imageToModel(cropToMultiple(image, f));
  const fn = isRawVae(vae)
    ? (t: Tensor) => vae.encodeRaw(t, opts.signal)
    : (t: Tensor) => vae.encode(rawToImageUnclamped(t), opts.signal);
  const [B, , H, W] = px.shape;
  const total = threePassTileCount(B, H, W, opts.tileSize, opts.overlap);
  let done = 0;
  return tiledScaleThreePass(px, fn, opts.tileSize, opts.overlap, 1 / f, vae.latentChannels, {
    signal: opts.signal,
    onTile: () => opts.onProgress?.(++done, total),
  });
}

function toOrt(t: Tensor): ort.Tensor {
  return new ort.Tensor('float32', t.data, [...t.shape]);
}

function fromOrt(v: ort.OnnxValue | undefined, what: string): Tensor {
  if (!v || !(v instanceof ort.Tensor) || !(v.data instanceof Float32Array)) throw new Error(`${what}: the session returned no float32 tensor`);
  return { shape: [...v.dims], data: v.data };
}

export interface OrtVaeOptions {
  weights?: WeightSource;
  id: string;
  cfg: VaeConfig;
  /** Graph from `buildVaeDecoderGraph`: `latent` → `image`. */
  decoder: OnnxSession;
  /** Graph from `buildVaeEncoderGraph`: `image` → `latent`. */
  encoder: OnnxSession;
  /** Images per session run; 1 keeps activation memory to one image (default). */
  maxBatch?: number;
}

/**
 * VAE socket value over two ORT sessions. Latents are raw VAE space; images ComfyUI's IMAGE.
 * Batches run `maxBatch` items at a time so memory does not grow with the batch.
 */
export class OrtVae implements RawVae {
  readonly id: string;
  readonly latentChannels: number;
  readonly downscale: number;
  readonly cfg: VaeConfig;
  /** The VAE's weights under bare LDM keys (`encoder.conv_in.weight`, ...), for CheckpointSave. */
  readonly weights?: WeightSource;
  private readonly maxBatch: number;

  constructor(private readonly opts: OrtVaeOptions) {
    this.id = opts.id;
    this.weights = opts.weights;
    this.cfg = opts.cfg;
    this.latentChannels = opts.cfg.embedDim;
    this.downscale = 2 ** (opts.cfg.chMult.length - 1);
    this.maxBatch = Math.max(1, opts.maxBatch ?? 1);
  }

  private async runChunks(session: OnnxSession, input: Tensor, inName: string, outName: string, signal?: AbortSignal): Promise<Tensor> {
    const [B] = input.shape;
    const per = input.data.length / Math.max(1, B);
    const parts: Tensor[] = [];
    for (let b = 0; b < B; b += this.maxBatch) {
      if (signal?.aborted) throw new InterruptedError();
      const n = Math.min(this.maxBatch, B - b);
      const chunk: Tensor = { shape: [n, ...input.shape.slice(1)], data: input.data.subarray(b * per, (b + n) * per) };
      const out = await session.run({ [inName]: toOrt(chunk) });
      parts.push(fromOrt(out[outName], `VAE ${outName}`));
    }
    if (parts.length === 1) return parts[0];
    const rest = parts[0].shape.slice(1);
    const data = new Float32Array(parts.reduce((s, p) => s + p.data.length, 0));
    let off = 0;
    for (const p of parts) {
      data.set(p.data, off);
      off += p.data.length;
    }
    return { shape: [B, ...rest], data };
  }

  async decodeRaw(latent: Tensor, signal?: AbortSignal): Promise<Tensor> {
    checkLatent(this, latent);
    return this.runChunks(this.opts.decoder, latent, 'latent', 'image', signal);
  }

  async encodeRaw(image: Tensor, signal?: AbortSignal): Promise<Tensor> {
    if (image.shape.length !== 4 || image.shape[1] !== this.cfg.inChannels) {
      throw new Error(`VAE encoder input must be [B, ${this.cfg.inChannels}, H, W], got ${describeShape(image.shape)}`);
    }
    const [, , H, W] = image.shape;
    if (H % this.downscale || W % this.downscale) throw new Error(`VAE encoder input ${W}x${H} is not a multiple of ${this.downscale}`);
    return this.runChunks(this.opts.encoder, image, 'image', 'latent', signal);
  }

  async decode(latent: Tensor, signal?: AbortSignal): Promise<ImageTensor> {
    return modelToImage(await this.decodeRaw(latent, signal));
  }

  async encode(image: ImageTensor, signal?: AbortSignal): Promise<Tensor> {
    return this.encodeRaw(imageToModel(cropToMultiple(image, this.downscale)), signal);
  }

  decodeTiled(latent: Tensor, opts: TiledOptions): Promise<ImageTensor> {
    return decodeTiled(this, latent, opts);
  }

  encodeTiled(image: ImageTensor, opts: TiledOptions): Promise<Tensor> {
    return encodeTiled(this, image, opts);
  }

  async release(): Promise<void> {
    await this.opts.decoder.release?.();
    await this.opts.encoder.release?.();
  }
}
