import type { Tensor } from '../../core/tensor.ts';
import { commonUpscale } from '../../image/resize.ts';
import type { ControlResiduals, ControlTiles } from '../handles.ts';
import { HINT_DOWNSCALE } from './layout.ts';
import type { ControlNetModel } from './model.ts';

/**
 * A ControlNet applied with a hint, a strength and a range, as ComfyUI's `ControlNet` (controlnet.py)
 * behaves at sampling time: the hint resized to 8× the latent ('nearest-exact', centre crop), the
 * control model run on the UNet's input and timestep, each residual × strength, nothing outside
 * [start, end] of the schedule (mapped to sigmas through the model's percent_to_sigma). It implements
 * the sampling layer's `Control` structurally (this layer cannot import it); the chain's sum is the
 * guider's (`chainResiduals`).
 */

/** The model's sampling as a control needs it (the sampling layer's ModelSamplingDiscrete). */
export interface ControlModelSampling {
  percentToSigma(percent: number): number;
  calculateInput(sigma: number, x: Float32Array): Float32Array;
}

/** The fields of the sampling layer's ControlRequest a ControlNet reads. */
export interface ControlNetRequest {
  readonly x: Tensor;
  readonly sigma: number;
  readonly timesteps: Float32Array;
  readonly context: Tensor;
  /** The batch's named UNet inputs (SDXL's y, which its ControlNets take too). */
  readonly extra?: Readonly<Record<string, Tensor>>;
  readonly chunks: number;
  readonly modelSampling?: ControlModelSampling;
  /** Per chunk: 0 = cond, 1 = uncond. */
  readonly condOrUncond?: readonly number[];
  /** The sampler step as a fraction of the run's steps. */
  readonly stepFraction?: number;
  readonly signal?: AbortSignal;
  /** x is a batch of tiles of the model input (tiled diffusion). */
  readonly tiles?: ControlTiles;
}

/** A link of a control chain (the sampling layer's Control). */
export interface ControlLink {
  readonly previous?: ControlLink;
  getControl(req: ControlNetRequest): Promise<ControlResiduals | undefined>;
}

export interface ControlNetApplication {
  /** The hint, channels first [B, C, H, W], values 0..1 (an IMAGE moved to NCHW). */
  readonly hint: Tensor;
  readonly strength: number;
  readonly startPercent: number;
  readonly endPercent: number;
  /** Replaces ComfyUI's resize of the hint to `width` × `height` (nearest-exact, centre crop): the A1111 node's resize modes. */
  readonly resize?: (hint: Tensor, width: number, height: number) => Tensor;
}

/**
 * ComfyUI's broadcast_image_to on the batch axis: a batch-1 tensor stays (it broadcasts); otherwise
 * the first rows per conditioning chunk, cycled to fill it, then repeated for every chunk.
 */
export function broadcastRows(t: Tensor, target: number, chunks: number): Tensor {
  const n = t.shape[0];
  if (n === 1 || n === target) return t;
  const perBatch = Math.floor(target / chunks);
  const per = t.data.length / n;
  const rows: number[] = [];
  const first = Math.min(perBatch, n);
  for (let i = 0; i < perBatch; i++) rows.push(i % first);
  const all = rows.length === target ? rows : Array.from({ length: chunks }, () => rows).flat();
  const data = new Float32Array(all.length * per);
  all.forEach((r, i) => data.set(t.data.subarray(r * per, (r + 1) * per), i * per));
  return { shape: [all.length, ...t.shape.slice(1)], data };
}

/** Mean over H and W, repeated over them (ComfyUI's global_average_pooling for shuffle ControlNets). */
function globalAverage(t: Tensor): Tensor {
  const [b, c, h, w] = t.shape;
  const hw = h * w;
  const data = new Float32Array(t.data.length);
  for (let p = 0; p < b * c; p++) {
    let s = 0;
    for (let i = 0; i < hw; i++) s += t.data[p * hw + i];
    data.fill(Math.fround(s / hw), p * hw, (p + 1) * hw);
  }
  return { shape: t.shape, data };
}

export class ControlNetControl implements ControlLink {
  /** Encoded hints per latent size: the hint encoder runs once per size, not once per step. */
  private readonly features = new Map<string, Promise<Tensor>>();
  /** The hint resized to a whole input, for cutting tiles from (one size at a time). */
  private resizedForTiles?: { key: string; hint: Tensor };

  constructor(
    readonly net: ControlNetModel,
    readonly application: ControlNetApplication,
    readonly previous?: ControlLink,
  ) {}

  /** The encoded hint for a latent of h × w (resized as ComfyUI resizes cond_hint_original). */
  hintFeatures(h: number, w: number, signal?: AbortSignal): Promise<Tensor> {
    const key = `${h}x${w}`;
    let hit = this.features.get(key);
    if (!hit) {
      const hint = this.application.hint;
      if (hint.shape.length !== 4 || hint.shape[1] !== this.net.config.hintChannels) {
        throw new Error(`ControlNet hint image has ${hint.shape[1]} channels; this ControlNet takes ${this.net.config.hintChannels} (an RGB image)`);
      }
      const resize = this.application.resize ?? ((t: Tensor, width: number, height: number) => commonUpscale(t, width, height, 'nearest-exact', 'center'));
      const resized = resize(hint, w * HINT_DOWNSCALE, h * HINT_DOWNSCALE);
      hit = this.net.encodeHint(resized, signal);
      hit.catch(() => this.features.delete(key));
      this.features.set(key, hit);
    }
    return hit;
  }

  /**
   * The encoded hint of each tile, as ComfyUI-TiledDiffusion cuts a ControlNet's hint: resized to the
   * whole input, rolled as the input was, cropped to the tile, then encoded (so the hint encoder sees
   * the tile's own borders); each tile's rows repeated to its share of the batch (repeat_to_batch_size).
   */
  private async tileFeatures(tiles: ControlTiles, rows: number, signal?: AbortSignal): Promise<Tensor> {
    const per = rows / tiles.boxes.length;
    const parts: Tensor[] = [];
    for (const box of tiles.boxes) {
      const rolled = tiles.roll !== undefined && (tiles.roll.dy !== 0 || tiles.roll.dx !== 0);
      const key = `tile:${tiles.full.h}x${tiles.full.w}:${box.y},${box.x},${box.h},${box.w}`;
      let hit = rolled ? undefined : this.features.get(key);
      if (!hit) {
        hit = this.net.encodeHint(this.tileHint(tiles, box), signal);
        // Rolled tiles change every step (SpotDiffusion), so they are not kept.
        if (!rolled) {
          hit.catch(() => this.features.delete(key));
          this.features.set(key, hit);
        }
      }
      const f = await hit;
      const n = f.shape[0];
      const size = f.data.length / n;
      const data = new Float32Array(per * size);
      for (let i = 0; i < per; i++) data.set(f.data.subarray((i % n) * size, ((i % n) + 1) * size), i * size);
      parts.push({ shape: [per, ...f.shape.slice(1)], data });
    }
    const out = new Float32Array(parts.reduce((s, p) => s + p.data.length, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p.data, off);
      off += p.data.length;
    }
    return { shape: [rows, ...parts[0].shape.slice(1)], data: out };
  }

  /** The hint pixels of one tile: the hint resized to the whole input, rolled by the input's roll, cropped. */
  private tileHint(tiles: ControlTiles, box: ControlTiles['boxes'][number]): Tensor {
    const s = HINT_DOWNSCALE;
    const key = `${tiles.full.h}x${tiles.full.w}`;
    if (this.resizedForTiles?.key !== key) {
      const resize = this.application.resize ?? ((t: Tensor, width: number, height: number) => commonUpscale(t, width, height, 'nearest-exact', 'center'));
      this.resizedForTiles = { key, hint: resize(this.application.hint, tiles.full.w * s, tiles.full.h * s) };
    }
    const src = this.resizedForTiles.hint;
    const [b, c, H, W] = src.shape;
    const dy = (tiles.roll?.dy ?? 0) * s;
    const dx = (tiles.roll?.dx ?? 0) * s;
    const h = box.h * s;
    const w = box.w * s;
    const data = new Float32Array(b * c * h * w);
    const mod = (v: number, n: number): number => ((v % n) + n) % n;
    for (let p = 0; p < b * c; p++)
      for (let yy = 0; yy < h; yy++) {
        const sy = mod(box.y * s + yy - dy, H);
        for (let xx = 0; xx < w; xx++) data[(p * h + yy) * w + xx] = src.data[(p * H + sy) * W + mod(box.x * s + xx - dx, W)];
      }
    return { shape: [b, c, h, w], data };
  }

  async getControl(req: ControlNetRequest): Promise<ControlResiduals | undefined> {
    const ms = req.modelSampling;
    if (!ms) throw new Error('a ControlNet needs the model sampling of the run (the guider passes it)');
    const { startPercent, endPercent } = this.application;
    if (req.sigma > ms.percentToSigma(startPercent) || req.sigma < ms.percentToSigma(endPercent)) return undefined;
    return this.residuals(req);
  }

  /**
   * The residuals at this evaluation, whatever the range: each × strength (× `scales[i]` when given:
   * one per skip connection, then the middle block's, as the A1111 extension's control_scales).
   */
  async residuals(req: ControlNetRequest, scales?: readonly number[]): Promise<ControlResiduals> {
    const ms = req.modelSampling;
    if (!ms) throw new Error('a ControlNet needs the model sampling of the run (the guider passes it)');
    const { strength } = this.application;
    const [rows, , h, w] = req.x.shape;
    const features = req.tiles
      ? await this.tileFeatures(req.tiles, rows, req.signal)
      : broadcastRows(await this.hintFeatures(h, w, req.signal), rows, req.chunks);
    const x = { shape: req.x.shape, data: ms.calculateInput(req.sigma, req.x.data) };
    const out = await this.net.run({ x, timesteps: req.timesteps, context: req.context, hintFeatures: features, y: req.extra?.y, signal: req.signal });
    const scale = (t: Tensor, k: number): Tensor => {
      const s = Math.fround(strength * (scales?.[k] ?? 1));
      const src = this.net.globalAveragePooling ? globalAverage(t) : t;
      const data = new Float32Array(src.data.length);
      for (let i = 0; i < data.length; i++) data[i] = Math.fround(src.data[i] * s);
      return { shape: src.shape, data };
    };
    return { input: out.input.map((t, i) => scale(t, i)), middle: scale(out.middle, out.input.length) };
  }
}
