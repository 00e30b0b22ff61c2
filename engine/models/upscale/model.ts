import { freemem } from 'node:os';
import * as ort from 'onnxruntime-node';
import { InterruptedError } from '../../core/errors.ts';
import { tileCount, tiledScale } from '../../core/regions.ts';
import { describeShape, type ImageTensor, type Tensor } from '../../core/tensor.ts';
import type { WeightSource } from '../../core/weights.ts';
import { nchwToNhwc, nhwcToNchw } from '../../image/layout.ts';
import { pixelUnshuffle } from '../controlnet/adapter.ts';
import type { PartSpec } from '../runtime/part.ts';
import type { PartsRuntime } from '../runtime/parts-runtime.ts';
import type { UpscaleArch } from './detect.ts';
import { buildUpscaleGraph, UPSCALE_IO } from './graph.ts';

/**
 * A loaded upscale model (ComfyUI's UPSCALE_MODEL, a spandrel ImageModelDescriptor): one ONNX part
 * `upscaler`, run as ImageUpscaleWithModel runs it: tiles of 512 with 32 pixels of overlap through
 * the regions module's tiled_scale, each tile padded to the model's size requirements and clamped
 * to 0..1 as spandrel's descriptor does, the blend clamped again. Where a 512 tile's activations
 * would not fit the free memory, the tile is halved (down to 128, as ComfyUI's out-of-memory retry
 * goes) before anything runs, instead of failing first.
 */

export const UPSCALE_TILE = 512;
export const UPSCALE_OVERLAP = 32;
const MIN_TILE = 128;

export interface UpscaleRunOptions {
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** Force a tile size (tests, benchmarks); default: 512, or smaller when memory is short. */
  tile?: number;
}

export interface UpscaleModel {
  readonly kind: 'upscale-model';
  /** `upscaler:<hash>` */
  readonly id: string;
  readonly file: string;
  readonly arch: UpscaleArch;
  /** Output pixels per input pixel. */
  readonly scale: number;
  /** The model's forward pass on one NCHW tile (padded, unshuffled, clamped and cropped as spandrel does). */
  forward(tile: Tensor): Promise<Tensor>;
  /** ImageUpscaleWithModel: IMAGE [B, H, W, 3] → [B, H·s, W·s, 3]. */
  upscale(image: ImageTensor, opts?: UpscaleRunOptions): Promise<ImageTensor>;
  /** Model runs so far. */
  readonly runs: { tiles: number };
}

/** Peak activation bytes of one square tile of `t` input pixels (float32; the concat of a dense block and the high-resolution maps dominate). */
export function tileActivationBytes(a: UpscaleArch, t: number): number {
  if (a.kind === 'compact') return 4 * t * t * (3 * a.nf + 2 * a.outNc * a.scale * a.scale);
  const lr = (t / a.shuffle) ** 2;
  let hr = 0;
  for (let u = 1; u <= a.upsamples; u++) hr = Math.max(hr, lr * 4 ** u * a.nf * 3);
  return 4 * Math.max(lr * (a.nf + 4 * a.gc) * 3, hr);
}

/** The tile ComfyUI would use (512), halved while its activations exceed half of `availableBytes` (not below 128). */
export function chooseUpscaleTile(a: UpscaleArch, availableBytes: number): number {
  let tile = UPSCALE_TILE;
  while (tile > MIN_TILE && tileActivationBytes(a, tile) > availableBytes / 2) tile /= 2;
  return tile;
}

/** spandrel's size requirements: at least 2 pixels, a multiple of 4 for unshuffled models; reflect padding at the right and bottom, then replicate. */
export function padToRequirements(t: Tensor, multiple: number): { padded: Tensor; h: number; w: number } {
  const [B, C, H, W] = t.shape;
  const up = (v: number): number => Math.ceil(Math.max(2, v) / multiple) * multiple;
  const PH = up(H);
  const PW = up(W);
  if (PH === H && PW === W) return { padded: t, h: H, w: W };
  // torch's reflect (edge not repeated) for at most size − 1 pixels, then replicate of the last reflected one.
  const source = (n: number, pad: number): ((i: number) => number) => {
    const r = Math.min(pad, n - 1);
    return (i) => (i < n ? i : i - n < r ? n - 2 - (i - n) : n - 1 - r);
  };
  const rowOf = source(H, PH - H);
  const colOf = source(W, PW - W);
  const out = new Float32Array(B * C * PH * PW);
  for (let p = 0; p < B * C; p++)
    for (let y = 0; y < PH; y++) {
      const sy = rowOf(y);
      for (let x = 0; x < PW; x++) out[(p * PH + y) * PW + x] = t.data[(p * H + sy) * W + colOf(x)];
    }
  return { padded: { shape: [B, C, PH, PW], data: out }, h: H, w: W };
}

function cropTo(t: Tensor, h: number, w: number): Tensor {
  const [B, C, H, W] = t.shape;
  if (H === h && W === w) return t;
  const out = new Float32Array(B * C * h * w);
  for (let p = 0; p < B * C; p++) for (let y = 0; y < h; y++) out.set(t.data.subarray((p * H + y) * W, (p * H + y) * W + w), (p * h + y) * w);
  return { shape: [B, C, h, w], data: out };
}

function clamp01(d: Float32Array): Float32Array {
  for (let i = 0; i < d.length; i++) d[i] = d[i] < 0 ? 0 : d[i] > 1 ? 1 : d[i] !== d[i] ? 0 : d[i];
  return d;
}

export function upscalerPart(arch: UpscaleArch, weights: WeightSource, hash: string, file: string): PartSpec {
  return { id: 'upscaler', hash, source: file, prefix: '', weights, build: (w, o) => buildUpscaleGraph(arch, w, o) };
}

/** Bytes the runtime may still give to one tile's activations: the smaller of free RAM and what the session budget leaves. */
export function availableForActivations(runtime: PartsRuntime): number {
  const { budget, bytes, reserved } = runtime.pool.stats();
  return Math.max(0, Math.min(freemem(), budget - bytes - reserved));
}

export function upscaleModel(runtime: PartsRuntime, arch: UpscaleArch, weights: WeightSource, hash: string, file: string): UpscaleModel {
  const run = runtime.runner(upscalerPart(arch, weights, hash, file));
  const runs = { tiles: 0 };
  const inC = arch.kind === 'esrgan' ? arch.inNc / arch.shuffle ** 2 : arch.inNc;
  const shuffle = arch.kind === 'esrgan' ? arch.shuffle : 1;
  const forward = async (tile: Tensor): Promise<Tensor> => {
    const { padded, h, w } = padToRequirements(tile, shuffle > 1 ? 4 : 1);
    const x = shuffle > 1 ? pixelUnshuffle(padded, shuffle) : padded;
    runs.tiles++;
    const out = await run({ [UPSCALE_IO.input]: new ort.Tensor('float32', x.data, [...x.shape]) });
    const v = out[UPSCALE_IO.output];
    if (!v || !(v.data instanceof Float32Array)) throw new Error('upscaler session returned no float32 output');
    const y: Tensor = { shape: [...v.dims], data: clamp01(new Float32Array(v.data)) };
    return cropTo(y, h * arch.scale, w * arch.scale);
  };
  return {
    kind: 'upscale-model',
    id: `upscaler:${hash}`,
    file,
    arch,
    scale: arch.scale,
    runs,
    forward,
    async upscale(image, opts = {}) {
      if (image.shape.length !== 4 || image.shape[3] !== inC) {
        throw new Error(`ImageUpscaleWithModel: image must be [B, H, W, ${inC}], got ${describeShape(image.shape)}`);
      }
      if (arch.outNc !== 3) throw new Error(`${file}: the model writes ${arch.outNc} channels; IMAGE needs 3`);
      const tile = opts.tile ?? chooseUpscaleTile(arch, availableForActivations(runtime));
      const [B, H, W] = image.shape;
      const grid = { tileX: tile, tileY: tile, overlap: UPSCALE_OVERLAP };
      const total = B * tileCount(H, W, grid);
      let done = 0;
      if (opts.signal?.aborted) throw new InterruptedError();
      const s = await tiledScale(nhwcToNchw(image), forward, grid, arch.scale, 3, {
        signal: opts.signal,
        onTile: () => opts.onProgress?.(++done, total),
      });
      // ORT's arena now holds a tile's activations (~2 GB for Real-ESRGAN x4plus at 512) that the next nodes need more.
      await run.release?.();
      clamp01(s.data);
      return nchwToNhwc(s);
    },
  };
}

declare module '../../registry/sockets.ts' {
  interface SocketValueTypes {
    UPSCALE_MODEL: UpscaleModel;
  }
}
