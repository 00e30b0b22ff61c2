import type { Tensor } from '../../core/tensor.ts';
import { commonUpscale } from '../../image/resize.ts';
import type { ControlResiduals, ControlTiles, ModelHandle } from '../handles.ts';
import { HINT_DOWNSCALE } from './layout.ts';
import type { ControlNetModel } from './model.ts';
import { TileHints } from './tile-hints.ts';

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
  /** The model sampled (ComfyUI's pre_run), for a Control-LoRA. */
  readonly model?: ModelHandle;
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
  /** The hint cut per tile for tiled diffusion: resized to the whole input as below, cropped, encoded per tile. */
  private readonly tileHints = new TileHints(
    {
      resized: (w, h) => {
        const resize = this.application.resize ?? ((t: Tensor, width: number, height: number) => commonUpscale(t, width, height, 'nearest-exact', 'center'));
        return resize(this.application.hint, w * HINT_DOWNSCALE, h * HINT_DOWNSCALE);
      },
      encode: async (hint, signal) => [await this.net.encodeHint(hint, signal)],
    },
    HINT_DOWNSCALE,
  );

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
      ? (await this.tileHints.outputs(req.tiles, rows, req.signal))[0]
      : broadcastRows(await this.hintFeatures(h, w, req.signal), rows, req.chunks);
    const x = { shape: req.x.shape, data: ms.calculateInput(req.sigma, req.x.data) };
    const out = await this.net.run({ x, timesteps: req.timesteps, context: req.context, hintFeatures: features, y: req.extra?.y, model: req.model, signal: req.signal });
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
