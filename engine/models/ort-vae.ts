import type { WeightSource } from '../core/weights.ts';
import * as ort from 'onnxruntime-node';
import type { ImageTensor, Tensor } from '../core/tensor.ts';
import { describeShape } from '../core/tensor.ts';
import { threePassTileCount, tiledScaleThreePass } from '../core/regions.ts';
import { InterruptedError } from '../core/errors.ts';
import type { VaeConfig } from './families/sd1/config.ts';
import type { VaeHandle } from './handles.ts';

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
