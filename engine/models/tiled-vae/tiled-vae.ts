import { InterruptedError } from '../../core/errors.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { WeightSource } from '../../core/weights.ts';
import type { VaeConfig } from '../families/sd1/config.ts';
import type { PartsRuntime } from '../runtime/parts-runtime.ts';
import { applyGroupNorm, combineStats, groupStats, siluInPlace, type GroupStats } from './group-norm.ts';
import { LayerRunner } from './layers.ts';
import { TileSpill, type Parked } from './spill.ts';
import { splitTiles, type Bbox } from './split.ts';
import { taskQueue, type Task } from './tasks.ts';
import { DroppedMemory } from '../../core/dropped-memory.ts';
import { TILE_ARRAYS_LIMIT, TileArrays } from './tile-arrays.ts';

/**
 * The A1111 Tiled VAE (pkuliyi2015's multidiffusion-upscaler, as ComfyUI-TiledDiffusion's
 * tiled_vae.py runs it). The VAE runs layer by layer over padded tiles; at every GroupNorm each tile
 * stops, its statistics are taken, and once all tiles are there they are normalised with the
 * pixel-weighted average of those statistics, so the tiles see (nearly) the statistics of the whole
 * image. Fast mode takes the GroupNorm statistics instead from one pass over the input shrunk to
 * one tile (its mean and std restored per channel), so the tiles never wait for each other; the
 * encoder's colour fix takes only those before the first downsample from it, the rest across tiles.
 * Only the convs and attention run in ONNX (engine/models/tiled-vae/layers.ts); GroupNorm, SiLU and
 * the residual adds are done here. Memory: tiles waiting at a GroupNorm (activation and pending
 * residual) stay in memory up to `memoryBudget` and wait in temporary files beyond it (spill.ts), so
 * the peak is the budget, one tile's work and the output, whatever the image size.
 */

export interface TiledVaeSource {
  readonly cfg: VaeConfig;
  /** The VAE's weights under bare LDM keys. */
  readonly weights: WeightSource;
  /** Content hash of the VAE's file. */
  readonly hash: string;
  readonly file?: string;
}

export interface TiledVaeOptions {
  /** The node's tile_size: image pixels (the decoder's is divided by 8 into latent pixels). */
  readonly tileSize: number;
  readonly fast: boolean;
  /** Encoder only. */
  readonly colorFix?: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: (done: number, total: number) => void;
  /** Bytes of waiting tiles kept in memory; beyond it they wait in temporary files (default 512 MiB). */
  readonly memoryBudget?: number;
}

interface TileState {
  x: Tensor;
  res?: Tensor;
  pos: number;
}

/** A 1×1 conv in plain loops (quant_conv, post_quant_conv), float64 accumulation. */
function conv1x1(ws: WeightSource, key: string, x: Tensor): Tensor {
  const [b, cin, h, w] = x.shape;
  const wt = ws.get(`${key}.weight`);
  const bias = ws.has(`${key}.bias`) ? ws.get(`${key}.bias`) : undefined;
  const cout = ws.shape(`${key}.weight`)[0];
  const hw = h * w;
  const out = new Float32Array(b * cout * hw);
  const acc = new Float64Array(hw);
  for (let bi = 0; bi < b; bi++)
    for (let o = 0; o < cout; o++) {
      acc.fill(bias ? bias[o] : 0);
      for (let i = 0; i < cin; i++) {
        const k = wt[o * cin + i];
        const src = x.data.subarray((bi * cin + i) * hw, (bi * cin + i + 1) * hw);
        for (let p = 0; p < hw; p++) acc[p] += k * src[p];
      }
      out.set(acc, (bi * cout + o) * hw);
    }
  return { shape: [b, cout, h, w], data: out };
}

function cropNchw(x: Tensor, y0: number, y1: number, x0: number, x1: number): Tensor {
  const [b, c, H, W] = x.shape;
  const h = y1 - y0;
  const w = x1 - x0;
  const out = new Float32Array(b * c * h * w);
  for (let p = 0; p < b * c; p++) for (let y = 0; y < h; y++) out.set(x.data.subarray((p * H + y0 + y) * W + x0, (p * H + y0 + y) * W + x1), (p * h + y) * w);
  return { shape: [b, c, h, w], data: out };
}

/**
 * F.interpolate(x, scale_factor=s, mode='nearest-exact'): floor(size·s) pixels, source index
 * floor((i + 0.5)·float32(1/s)) clamped to the input.
 */
export function nearestExact(x: Tensor, s: number): Tensor {
  const [b, c, H, W] = x.shape;
  const h = Math.floor(H * s);
  const w = Math.floor(W * s);
  if (h < 1 || w < 1) throw new Error(`tiled VAE fast mode: ${W}x${H} scaled by ${s} is empty`);
  const inv = Math.fround(1 / s);
  const src = (i: number, n: number): number => Math.min(Math.floor(Math.fround((i + 0.5) * inv)), n - 1);
  const rows = Array.from({ length: h }, (_, i) => src(i, H));
  const cols = Array.from({ length: w }, (_, i) => src(i, W));
  const out = new Float32Array(b * c * h * w);
  for (let p = 0; p < b * c; p++) for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) out[(p * h + y) * w + xx] = x.data[(p * H + rows[y]) * W + cols[xx]];
  return { shape: [b, c, h, w], data: out };
}

/** torch.std_mean over batch and space per channel (std with Bessel's correction). */
function channelStdMean(x: Tensor): { std: Float64Array; mean: Float64Array } {
  const [b, c, h, w] = x.shape;
  const hw = h * w;
  const n = b * hw;
  const mean = new Float64Array(c);
  const std = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    for (let bi = 0; bi < b; bi++) for (let p = 0; p < hw; p++) s += x.data[(bi * c + ch) * hw + p];
    const m = s / n;
    let v = 0;
    for (let bi = 0; bi < b; bi++)
      for (let p = 0; p < hw; p++) {
        const d = x.data[(bi * c + ch) * hw + p] - m;
        v += d * d;
      }
    mean[ch] = m;
    std[ch] = Math.sqrt(v / Math.max(1, n - 1));
  }
  return { std, mean };
}

/** Fast mode's input: shrunk to the tile size, each channel's mean and std restored, clamped to the input's range. */
export function fastModeInput(z: Tensor, tileSize: number): Tensor {
  const [, c, H, W] = z.shape;
  const down = nearestExact(z, tileSize / Math.max(H, W));
  const old = channelStdMean(z);
  const cur = channelStdMean(down);
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of z.data) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const hw = down.shape[2] * down.shape[3];
  const out = new Float32Array(down.data.length);
  for (let i = 0; i < out.length; i++) {
    const ch = Math.floor(i / hw) % c;
    const v = ((down.data[i] - cur.mean[ch]) / cur.std[ch]) * old.std[ch] + old.mean[ch];
    out[i] = v < lo ? lo : v > hi ? hi : v;
  }
  return { shape: down.shape, data: out };
}

/**
 * Waiting tiles kept in memory by default. Issue 15 bounds a 2048² run at 1.5 GB above the loaded
 * weights, and one decoder tile's own work (input, residual, output at 128 channels) is ~0.75 GB.
 */
export const DEFAULT_TILE_MEMORY = 512 * 2 ** 20;

/**
 * Working memory of one tiled pass, for the session budget: the waiting tiles' budget, the output,
 * the arrays kept for reuse (tile-arrays.ts), and one tile's work at full resolution, where its
 * activations are largest (first channel width at the tile's pixel size): the input, the pending
 * residual, the output and a conv's scratch.
 */
export function tiledPassBytes(cfg: VaeConfig, batch: number, tilePixels: number, outputValues: number, spillBytes: number): number {
  const widest = batch * cfg.ch * cfg.chMult[0] * tilePixels * 4;
  return spillBytes + outputValues * 4 + 4 * widest + TILE_ARRAYS_LIMIT;
}

export class TiledVae {
  private readonly layers: LayerRunner;
  /** Whole-tile arrays dropped at each layer (see dropped-memory.ts). */
  private readonly dropped = new DroppedMemory();
  /** Arrays of finished layers, reused for the next (see tile-arrays.ts). */
  private readonly arrays = new TileArrays(this.dropped);
  private readonly take = (n: number): Float32Array => this.arrays.take(n);
  private readonly groups: number;

  constructor(
    private readonly runtime: PartsRuntime,
    private readonly src: TiledVaeSource,
  ) {
    this.layers = new LayerRunner(runtime, { hash: src.hash, weights: src.weights, file: src.file });
    this.groups = src.cfg.normGroups;
  }

  /** Raw latent [B, 4, h, w] → the decoder's output, NCHW in −1..1 (unclamped). */
  async decodeRaw(latent: Tensor, o: TiledVaeOptions): Promise<Tensor> {
    if (latent.shape.length !== 4 || latent.shape[1] !== this.src.cfg.embedDim)
      throw new Error(`tiled VAE decode: the latent must be [B, ${this.src.cfg.embedDim}, H, W], got [${latent.shape.join(', ')}]`);
    const z = conv1x1(this.src.weights, 'post_quant_conv', latent);
    return this.forward('decoder', z, Math.floor(o.tileSize / 8), 11, o.fast, false, o);
  }

  /** Image NCHW in −1..1 (sides multiples of 8) → the posterior mean. */
  async encodeRaw(image: Tensor, o: TiledVaeOptions): Promise<Tensor> {
    const [, c, H, W] = image.shape;
    if (image.shape.length !== 4 || c !== this.src.cfg.inChannels) throw new Error(`tiled VAE encode: the image must be [B, ${this.src.cfg.inChannels}, H, W], got [${image.shape.join(', ')}]`);
    if (H % 8 || W % 8) throw new Error(`tiled VAE encode: ${W}x${H} is not a multiple of 8`);
    const h = await this.forward('encoder', image, o.tileSize, 32, o.fast, o.colorFix === true, o);
    const moments = conv1x1(this.src.weights, 'quant_conv', h);
    const [b, , lh, lw] = moments.shape;
    const e = this.src.cfg.embedDim;
    return cropChannels(moments, b, e, lh * lw);
  }

  /** The norm over `s.x`, in place unless `s.x` is also the residual a later add needs (a tile of a whole image is ~600 MB). */
  private norm(key: string, s: TileState, stats: GroupStats): Tensor {
    const x = s.x;
    const inPlace = s.res?.data !== x.data;
    const ws = this.src.weights;
    const weight = ws.has(`${key}.weight`) ? ws.get(`${key}.weight`) : undefined;
    const bias = ws.has(`${key}.bias`) ? ws.get(`${key}.bias`) : undefined;
    return applyGroupNorm(x, this.groups, stats, weight, bias, 1e-6, inPlace);
  }

  /** One task on a tile (anything but a synchronising norm). */
  private async step(t: Task, s: TileState): Promise<void> {
    if (t.op === 'layer') {
      const input = s.x;
      s.x = await this.layers.run(t.kind, t.key, input, this.take);
      if (input.data !== s.res?.data) this.arrays.give(input.data);
    }
    else if (t.op === 'silu') siluInPlace(s.x);
    else if (t.op === 'store') s.res = t.key ? await this.layers.run('conv', t.key, s.x, this.take) : s.x;
    else if (t.op === 'add') {
      // In place: x is the last layer's own output here, and a fresh whole-tile array per add was garbage V8 freed late.
      const r = s.res!.data;
      const d = s.x.data;
      for (let i = 0; i < d.length; i++) d[i] += r[i];
      s.res = undefined;
      if (r !== d) this.arrays.give(r);
    } else throw new Error(`tiled VAE: a norm (${t.key}) reached the step function`);
  }

  /**
   * Fast mode's statistics (estimate_group_norm): the queue run on the shrunk input up to its last
   * norm, or with the colour fix up to the first downsample; each norm's statistics by task index.
   */
  private async estimate(z: Tensor, queue: readonly Task[], tileSize: number, colorFix: boolean, signal?: AbortSignal): Promise<Map<number, GroupStats>> {
    const fixed = new Map<number, GroupStats>();
    let last = queue.length - 1;
    while (last >= 0 && queue[last].op !== 'norm') last--;
    const s: TileState = { x: fastModeInput(z, tileSize), pos: 0 };
    for (let i = 0; i <= last; i++) {
      if (signal?.aborted) throw new InterruptedError();
      const t = queue[i];
      if (t.op === 'norm') {
        const stats = groupStats(s.x, this.groups);
        fixed.set(i, stats);
        if (i === last) break;
        s.x = this.norm(t.key, s, stats);
      } else if (colorFix && t.op === 'layer' && t.kind === 'down') break;
      else await this.step(t, s);
    }
    return fixed;
  }

  private async forward(part: 'encoder' | 'decoder', z: Tensor, tileSize: number, pad: number, fast: boolean, colorFix: boolean, o: TiledVaeOptions): Promise<Tensor> {
    const ws = this.src.weights;
    const queue = taskQueue(this.src.cfg, part, (k) => ws.has(k));
    const decoder = part === 'decoder';
    const [N, , H, W] = z.shape;
    if (!(tileSize >= 1)) throw new Error(`tiled VAE: tile size ${tileSize} is below 1`);
    const split = splitTiles(H, W, tileSize, pad, decoder);
    const spillBytes = o.memoryBudget ?? DEFAULT_TILE_MEMORY;
    const tilePixels = Math.max(...split.input.map(([x1, x2, y1, y2]) => (x2 - x1) * (y2 - y1))) * (decoder ? 64 : 1);
    const outValues = N * (decoder ? this.src.cfg.outChannels * H * W * 64 : 2 * this.src.cfg.zChannels * Math.floor(H / 8) * Math.floor(W / 8));
    const bytes = tiledPassBytes(this.src.cfg, N, tilePixels, outValues, spillBytes);
    const why = `the tiled VAE ${part === 'decoder' ? 'decode' : 'encode'} of ${decoder ? W * 8 : W}x${decoder ? H * 8 : H} (${(bytes / 2 ** 30).toFixed(2)} GiB of tiles)`;
    return this.runtime.withReserved(bytes, why, () => this.pass(part, z, queue, split, tileSize, fast, colorFix, spillBytes, o));
  }

  private async pass(
    part: 'encoder' | 'decoder',
    z: Tensor,
    queue: Task[],
    split: ReturnType<typeof splitTiles>,
    tileSize: number,
    fast: boolean,
    colorFix: boolean,
    spillBytes: number,
    o: TiledVaeOptions,
  ): Promise<Tensor> {
    const decoder = part === 'decoder';
    const [N, , H, W] = z.shape;
    const fixed = fast ? await this.estimate(z, queue, tileSize, colorFix, o.signal) : new Map<number, GroupStats>();
    const spill = new TileSpill(spillBytes, this.arrays);
    const tiles: { parked?: Parked; pos: number; pending?: GroupStats }[] = split.input.map(([x1, x2, y1, y2]) => ({
      parked: spill.park(cropNchw(z, y1, y2, x1, x2), undefined),
      pos: 0,
    }));
    const total = tiles.length * queue.length;
    let done = 0;
    const oh = decoder ? H * 8 : Math.floor(H / 8);
    const ow = decoder ? W * 8 : Math.floor(W / 8);
    let out: Float32Array | undefined;
    let channels = 0;
    try {
      for (;;) {
        const waiting: { stats: GroupStats; pixels: number }[] = [];
        for (const [i, tile] of tiles.entries()) {
          if (tile.pos >= queue.length) continue;
          const s: TileState = { ...spill.take(tile.parked!), pos: tile.pos };
          tile.parked = undefined;
          if (tile.pending) {
            // The GroupNorm every tile stopped at, with the statistics of all of them.
            s.x = this.norm((queue[s.pos] as Extract<Task, { op: 'norm' }>).key, s, tile.pending);
            tile.pending = undefined;
            s.pos++;
            o.onProgress?.(++done, total);
          }
          while (s.pos < queue.length) {
            if (o.signal?.aborted) throw new InterruptedError();
            const t = queue[s.pos];
            if (t.op === 'norm') {
              const f = fixed.get(s.pos);
              if (!f) {
                waiting.push({ stats: groupStats(s.x, this.groups), pixels: s.x.shape[2] * s.x.shape[3] });
                break;
              }
              s.x = this.norm(t.key, s, f);
            } else await this.step(t, s);
            s.pos++;
            o.onProgress?.(++done, total);
          }
          tile.pos = s.pos;
          if (s.pos < queue.length) tile.parked = spill.park(s.x, s.res);
          else {
            channels = s.x.shape[1];
            out ??= new Float32Array(N * channels * oh * ow);
            placeTile(out, [N, channels, oh, ow], s.x, split.input[i], split.output[i], decoder);
            this.arrays.give(s.x.data);
          }
        }
        if (waiting.length === 0) break;
        if (waiting.length !== tiles.length) throw new Error('tiled VAE: tiles reached different norms');
        const stats = combineStats(waiting);
        for (const tile of tiles) tile.pending = stats;
      }
    } finally {
      spill.close();
      this.arrays.clear();
    }
    return { shape: [N, channels, oh, ow], data: out! };
  }
}

function cropChannels(x: Tensor, b: number, keep: number, hw: number): Tensor {
  const c = x.shape[1];
  const out = new Float32Array(b * keep * hw);
  for (let bi = 0; bi < b; bi++) out.set(x.data.subarray(bi * c * hw, (bi * c + keep) * hw), bi * keep * hw);
  return { shape: [b, keep, x.shape[2], x.shape[3]], data: out };
}

/** crop_valid_region, then the result's rectangle: the tile's output less its padding, written where it belongs. */
function placeTile(out: Float32Array, shape: readonly number[], tile: Tensor, input: Bbox, target: Bbox, decoder: boolean): void {
  const [N, c, oh, ow] = shape;
  const padded = input.map((v) => (decoder ? v * 8 : Math.floor(v / 8)));
  const m = target.map((v, i) => v - padded[i]);
  const [, , th, tw] = tile.shape;
  const y0 = m[2];
  const x0 = m[0];
  const h = th + m[3] - y0;
  const w = tw + m[1] - x0;
  if (h !== target[3] - target[2] || w !== target[1] - target[0])
    throw new Error(`tiled VAE: a tile's valid region is ${w}x${h} but its place is ${target[1] - target[0]}x${target[3] - target[2]}`);
  for (let p = 0; p < N * c; p++)
    for (let y = 0; y < h; y++) {
      const src = (p * th + y0 + y) * tw + x0;
      out.set(tile.data.subarray(src, src + w), (p * oh + target[2] + y) * ow + target[0]);
    }
}
