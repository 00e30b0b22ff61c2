import { InterruptedError } from '../../engine/core/errors.ts';
import { describeShape, type ImageTensor, type Latent, type Tensor } from '../../engine/core/tensor.ts';
import { pilResampleLanczos8 } from '../../engine/image/pil-lanczos.ts';
import { quantize8 } from '../../engine/image/quantize.ts';
import { resizeNCHW } from '../../engine/image/resize.ts';
import {
  canvasSize,
  upscaleFactors,
  usduJobs,
  tileRegion,
  type Box,
  type UsduJob,
  type UsduParams,
} from '../../engine/image/usdu/geometry.ts';
import { cropConditioningMask } from '../../engine/image/usdu/mask-crop.ts';
import { compositeOverOpaque, gaussianBlur, getbbox } from '../../engine/image/usdu/pil-ops.ts';
import type { ModelHandle, VaeHandle } from '../../engine/models/handles.ts';
import { decodeTiled } from '../../engine/models/ort-vae.ts';
import type { UpscaleModel } from '../../engine/models/upscale/model.ts';
import { ControlNetControl, type ControlLink } from '../../engine/models/controlnet/control.ts';
import { T2IAdapterControl } from '../../engine/models/controlnet/adapter-control.ts';
import type { Conditioning, ConditioningEntry, Control } from '../../engine/sampling/conditioning.ts';
import { cfgGuider } from '../../engine/sampling/guider.ts';
import { ksample } from '../../engine/sampling/ksampler.ts';
import { randomNoise } from '../../engine/sampling/noise/index.ts';
import { checkLatent, sampleLatent } from '../../engine/sampling/run.ts';
import type { SamplerObject } from '../../engine/sampling/samplers/index.ts';

/**
 * Ultimate SD Upscale's run (ComfyUI_UltimateSDUpscale's `upscale` → the A1111 script's
 * USDUpscaler with the port's patches and its `process_images`): the image goes through 8-bit
 * RGB as the PIL images there do; each pass crops its region from every image of the batch,
 * resizes it to the tile size with Pillow's LANCZOS, encodes, samples as KSampler does at the
 * node's denoise, decodes, resizes back and is alpha-composited through its blurred mask.
 */

/** An 8-bit RGB image, planar [3, h, w] (the shape Pillow's resampler is written for here). */
interface Rgb8 {
  readonly w: number;
  readonly h: number;
  readonly data: Uint8Array;
}

export interface UsduSampling {
  model: ModelHandle;
  positive: Conditioning;
  negative: Conditioning;
  vae: VaeHandle;
  seed: bigint;
  steps: number;
  cfg: number;
  samplerName: string;
  scheduler: string;
  denoise: number;
  tiledDecode: boolean;
  /** Tiles sampled together in the redraw (the seam fix always goes one at a time). */
  batchSize: number;
  /**
   * UltimateSDUpscaleCustomSample with both custom inputs: each tile is sampled as SamplerCustom does
   * (noise added from `seed`, this sampler on exactly these sigmas; steps, sampler name, scheduler
   * and denoise are then unused, as in the port).
   */
  custom?: { sampler: SamplerObject; sigmas: Float64Array };
}

/** The port's `sample`: SamplerCustom when a custom sampler and sigmas are given, else KSampler (common_ksampler) at denoise. */
async function sampleTile(
  s: UsduSampling,
  positive: Conditioning,
  negative: Conditioning,
  latent: Latent,
  signal?: AbortSignal,
): Promise<Latent> {
  if (!s.custom) {
    const { model, seed, steps, cfg, samplerName, scheduler, denoise } = s;
    return ksample({ model, seed, steps, cfg, samplerName, scheduler, positive, negative, latent, denoise, signal });
  }
  checkLatent(latent, s.model);
  const guider = cfgGuider({ model: s.model, positive, negative, cfg: s.cfg });
  const noise = randomNoise(s.seed).generate(latent);
  return sampleLatent({ guider, sampler: s.custom.sampler, sigmas: s.custom.sigmas, noise, latent, seed: s.seed, signal });
}

export interface UsduRunOptions {
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** tensor_to_pil: 255·x truncated to uint8 (NaN → 0), one image of an IMAGE batch. */
function toRgb8(t: Tensor, b: number): Rgb8 {
  const [, h, w] = t.shape;
  const data = new Uint8Array(3 * h * w);
  const base = b * h * w * 3;
  for (let i = 0; i < h * w; i++) for (let c = 0; c < 3; c++) data[c * h * w + i] = quantize8(t.data[base + i * 3 + c]);
  return { w, h, data };
}

function toImage(images: readonly Rgb8[]): ImageTensor {
  const { w, h } = images[0];
  const out = new Float32Array(images.length * h * w * 3);
  images.forEach((im, b) => {
    for (let i = 0; i < h * w; i++) for (let c = 0; c < 3; c++) out[(b * h * w + i) * 3 + c] = im.data[c * h * w + i] / 255;
  });
  return { shape: [images.length, h, w, 3], data: out };
}

/** `Image.resize((w, h), LANCZOS)`; the same size is a copy, as in Pillow. */
function lanczos(im: Rgb8, w: number, h: number): Rgb8 {
  if (im.w === w && im.h === h) return { w, h, data: new Uint8Array(im.data) };
  return { w, h, data: pilResampleLanczos8(im.data, 3, im.h, im.w, h, w) };
}

function crop(im: Rgb8, [x1, y1, x2, y2]: Box): Rgb8 {
  const w = x2 - x1;
  const h = y2 - y1;
  const data = new Uint8Array(3 * w * h);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < h; y++)
      data.set(im.data.subarray((c * im.h + y1 + y) * im.w + x1, (c * im.h + y1 + y) * im.w + x2), (c * h + y) * w);
  return { w, h, data };
}

/** usdu_utils.resize_region: a box on one canvas size mapped onto another (floor the start, ceil the end). */
function resizeRegion([x1, y1, x2, y2]: Box, from: [number, number], to: [number, number]): Box {
  return [
    Math.floor((x1 * to[0]) / from[0]),
    Math.floor((y1 * to[1]) / from[1]),
    Math.ceil((x2 * to[0]) / from[0]),
    Math.ceil((y2 * to[1]) / from[1]),
  ];
}

/** crop_controlnet: each control's hint cut to the regions (on the canvas) and resized nearest-exact to the tile, batched per region. */
function cropControl(
  c: ControlLink | undefined,
  regions: readonly Box[],
  canvas: [number, number],
  tile: [number, number],
): ControlLink | undefined {
  if (!c) return undefined;
  const previous = cropControl(c.previous, regions, canvas, tile);
  if (!(c instanceof ControlNetControl) && !(c instanceof T2IAdapterControl))
    throw new Error('UltimateSDUpscale: a control of an unknown kind cannot be cropped to the tiles');
  const hint = c.application.hint;
  const [hb, hc, hh, hw] = hint.shape;
  const parts = regions.map((r) => {
    const [x1, y1, x2, y2] = resizeRegion(r, canvas, [hw, hh]);
    const w = x2 - x1;
    const h = y2 - y1;
    const cut = new Float32Array(hb * hc * h * w);
    for (let p = 0; p < hb * hc; p++)
      for (let y = 0; y < h; y++) cut.set(hint.data.subarray((p * hh + y1 + y) * hw + x1, (p * hh + y1 + y) * hw + x2), (p * h + y) * w);
    return resizeNCHW({ shape: [hb, hc, h, w], data: cut }, tile[1], tile[0], 'nearest-exact');
  });
  const data = new Float32Array(parts.reduce((s, p) => s + p.data.length, 0));
  let o = 0;
  for (const p of parts) {
    data.set(p.data, o);
    o += p.data.length;
  }
  const application = { ...c.application, hint: { shape: [hb * parts.length, hc, tile[1], tile[0]], data } };
  return c instanceof ControlNetControl
    ? new ControlNetControl(c.net, application, previous)
    : new T2IAdapterControl(c.adapter, application, previous);
}

/**
 * crop_area: an area (latent units of the input image) mapped to the canvas, intersected with the
 * tile's crop region and moved to the crop's origin (in the crop's pixels, not rescaled to the tile,
 * as the port does); an area outside the region is dropped with its strength.
 */
function cropArea(e: ConditioningEntry, region: Box, init: [number, number], canvas: [number, number]): ConditioningEntry {
  const a = e.area!;
  const [x1, y1, x2, y2] = resizeRegion([8 * a.x, 8 * a.y, 8 * (a.x + a.width), 8 * (a.y + a.height)], init, canvas);
  const ix1 = Math.max(x1, region[0]);
  const iy1 = Math.max(y1, region[1]);
  const ix2 = Math.min(x2, region[2]);
  const iy2 = Math.min(y2, region[3]);
  if (ix1 >= ix2 || iy1 >= iy2) {
    const { area: _a, strength: _s, ...rest } = e;
    void _a;
    void _s;
    return rest;
  }
  const [ox1, oy1, ox2, oy2] = [ix1 - region[0], iy1 - region[1], ix2 - region[0], iy2 - region[1]];
  return {
    ...e,
    area: { height: Math.floor((oy2 - oy1) / 8), width: Math.floor((ox2 - ox1) / 8), y: Math.floor(oy1 / 8), x: Math.floor(ox1 / 8) },
  };
}

/**
 * crop_cond: text conditioning is kept; ControlNet hints are cropped to every region, areas and masks
 * to the first (the port's crop_area and crop_mask take one region, also for a batch of tiles).
 */
export function cropCond(
  cond: Conditioning,
  regions: readonly Box[],
  init: [number, number],
  canvas: [number, number],
  tile: [number, number],
  which: string,
): Conditioning {
  return cond.map((entry, i) => {
    let e = entry;
    if (e.area?.percentage)
      throw new Error(`UltimateSDUpscale: ${which} conditioning entry ${i} has a percentage area, which the package cannot crop either`);
    if (e.control) e = { ...e, control: cropControl(e.control as ControlLink, regions, canvas, tile) as Control | undefined };
    if (e.area) e = cropArea(e, regions[0], init, canvas);
    return e.mask ? { ...e, mask: cropConditioningMask(e.mask, canvas, regions[0], tile) } : e;
  });
}

/** The upscaled canvas images (USDUpscaler.upscale as the port patches it). */
async function upscaleStage(
  image: ImageTensor,
  W: number,
  H: number,
  model: UpscaleModel | undefined,
  opts: UsduRunOptions,
): Promise<Rgb8[]> {
  const [B, h, w] = image.shape;
  const originals = Array.from({ length: B }, (_, b) => toRgb8(image, b));
  const factors = upscaleFactors(w, h, W, H);
  let batch = originals;
  let first = originals[0];
  if (factors.length > 0) {
    if (model) {
      // Every factor runs the model on the original batch (the port's Upscaler ignores the factor), so once is enough.
      const up = await model.upscale(image, { signal: opts.signal });
      batch = Array.from({ length: B }, (_, b) => toRgb8(up, b));
      first = batch[0];
    } else for (const f of factors) first = lanczos(first, first.w * f, first.h * f);
  }
  return [lanczos(first, W, H), ...batch.slice(1).map((im) => lanczos(im, W, H))];
}

/** One process_images call over a group of passes sharing a sampling call (one pass, or a redraw batch). */
async function processGroup(
  images: Rgb8[],
  jobs: readonly UsduJob[],
  p: UsduParams,
  s: UsduSampling,
  sizes: { init: [number, number]; canvas: [number, number] },
  opts: UsduRunOptions,
): Promise<void> {
  const { init, canvas } = sizes;
  const { w: W, h: H } = images[0];
  const planned = jobs.map((job) => {
    const mask = job.mask();
    const bb = getbbox(mask);
    const { region, tile } = tileRegion(bb, W, H, job, p.uniform);
    return { region, tile, mask: job.blur > 0 ? gaussianBlur(mask, job.blur) : mask };
  });
  const [tw, th] = planned[0].tile;
  if (planned.some((q) => q.tile[0] !== tw || q.tile[1] !== th))
    throw new Error('UltimateSDUpscale: tiles of one batch differ in size; batch_size above 1 needs force_uniform_tiles');
  // Order of the batch: every pass of the first image, then of the next (as the port batches them).
  const crops = images.flatMap((im) => planned.map((q) => crop(im, q.region)));
  const tiles = crops.map((c) => lanczos(c, tw, th));
  const samples = await s.vae.encode(toImage(tiles), opts.signal);
  // A batched redraw crops hints for every (image, tile) pair; a single pass for its one region (the port's crop_cond calls).
  const regions = planned.length > 1 ? images.flatMap(() => planned.map((q) => q.region)) : [planned[0].region];
  const positive = cropCond(s.positive, regions, init, canvas, [tw, th], 'positive');
  const negative = cropCond(s.negative, regions, init, canvas, [tw, th], 'negative');
  const out = await sampleTile(s, positive, negative, { samples }, opts.signal);
  const decoded = s.tiledDecode
    ? await decodeTiled(s.vae, out.samples, { tileSize: 512, overlap: 64, signal: opts.signal })
    : await s.vae.decode(out.samples, opts.signal);
  if (decoded.shape[0] !== crops.length || decoded.shape[1] !== th || decoded.shape[2] !== tw) {
    throw new Error(`UltimateSDUpscale: the VAE decoded ${describeShape(decoded.shape)} for ${crops.length} tiles of ${tw}x${th}`);
  }
  images.forEach((im, b) => {
    planned.forEach((q, j) => {
      const idx = b * planned.length + j;
      const c = crops[idx];
      const back = lanczos(toRgb8(decoded, idx), c.w, c.h);
      const [x1, y1] = q.region;
      const plane = W * H;
      for (let y = 0; y < c.h; y++)
        for (let x = 0; x < c.w; x++) {
          const at = (y1 + y) * W + x1 + x;
          const a = q.mask.data[at];
          if (a === 0) continue;
          for (let k = 0; k < 3; k++)
            im.data[k * plane + at] = compositeOverOpaque(back.data[(k * c.h + y) * c.w + x], a, im.data[k * plane + at]);
        }
    });
  });
}

/** Groups of passes sampled together: the redraw's tiles `batchSize` at a time (per chess colour), every seam-fix pass alone. */
export function batchJobs(jobs: readonly UsduJob[], batchSize: number, mode: UsduParams['mode']): UsduJob[][] {
  const groups: UsduJob[][] = [];
  let cur: UsduJob[] = [];
  let colour: boolean | undefined;
  for (const j of jobs) {
    if (j.stage !== 'redraw' || batchSize <= 1) {
      if (cur.length) groups.push(cur);
      cur = [];
      groups.push([j]);
      continue;
    }
    const white = mode === 'Chess' ? (j.xi % 2 === 0) !== (j.yi > 0 && j.yi % 2 !== 0) : true;
    if (cur.length && (cur.length >= batchSize || white !== colour)) {
      groups.push(cur);
      cur = [];
    }
    colour = white;
    cur.push(j);
  }
  if (cur.length) groups.push(cur);
  return groups;
}

/** The whole node: upscale (with the model, or only to the canvas), redraw, seam fix. Returns the IMAGE batch. */
export async function ultimateSdUpscale(
  image: ImageTensor,
  upscaleBy: number,
  upscaleModel: UpscaleModel | undefined,
  p: UsduParams,
  s: UsduSampling,
  opts: UsduRunOptions = {},
): Promise<ImageTensor> {
  if (image.shape.length !== 4 || image.shape[3] !== 3)
    throw new Error(`UltimateSDUpscale: image must be an RGB IMAGE [B, H, W, 3], got ${describeShape(image.shape)}`);
  if (s.batchSize > 1 && !p.uniform)
    throw new Error(
      'UltimateSDUpscale: batch_size greater than 1 requires force_uniform_tiles to be True; all tiles in the batch must be the same size',
    );
  const [, h, w] = image.shape;
  const { width: W, height: H } = canvasSize(w, h, upscaleBy);
  if (W < 8 || H < 8)
    throw new Error(`UltimateSDUpscale: a ${w}x${h} image upscaled by ${upscaleBy} gives a ${W}x${H} canvas; it needs at least 8x8`);
  const images = await upscaleStage(image, W, H, upscaleModel, opts);
  const groups = batchJobs(usduJobs(W, H, p), s.batchSize, p.mode);
  const total = groups.reduce((n, g) => n + g.length, 0);
  let done = 0;
  opts.onProgress?.(0, total);
  for (const g of groups) {
    if (opts.signal?.aborted) throw new InterruptedError();
    await processGroup(images, g, p, s, { init: [w, h], canvas: [W, H] }, opts);
    done += g.length;
    opts.onProgress?.(done, total);
  }
  return toImage(images);
}
