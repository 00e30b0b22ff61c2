import type { Tensor } from '../../core/tensor.ts';
import { commonUpscale } from '../../image/resize.ts';
import type { ControlResiduals } from '../handles.ts';
import { adapterImageChannels, adapterTargets, adapterUnshuffle, type T2IAdapterConfig } from './adapter-layout.ts';
import type { T2IAdapterModel } from './adapter.ts';
import { broadcastRows, type ControlLink, type ControlNetApplication, type ControlNetRequest } from './control.ts';
import { HINT_DOWNSCALE } from './layout.ts';
import { TileHints } from './tile-hints.ts';

/**
 * A T2I-Adapter applied with a hint, a strength and a range, as ComfyUI's `T2IAdapter` (controlnet.py)
 * behaves at sampling time: the hint resized to 8× the latent rounded up to the unshuffle amount
 * ('nearest-exact', centre crop), averaged to one channel for one-channel adapters, the adapter run
 * once per latent size (its features do not depend on the step), each feature × strength and added
 * right after UNet input block 3·level + 2 (SDXL's: blocks 3, 5, 8 and the middle block), nothing
 * outside [start, end] of the schedule.
 */

/** Mean over channels, keeping the axis (ComfyUI's `torch.mean(cond_hint, 1, keepdim=True)`). */
function channelMean(t: Tensor): Tensor {
  const [b, c, h, w] = t.shape;
  const hw = h * w;
  const data = new Float32Array(b * hw);
  for (let n = 0; n < b; n++)
    for (let i = 0; i < hw; i++) {
      let s = 0;
      for (let k = 0; k < c; k++) s += t.data[(n * c + k) * hw + i];
      data[n * hw + i] = Math.fround(s / c);
    }
  return { shape: [b, 1, h, w], data };
}

/** ComfyUI's T2IAdapter.scale_image_to: each side rounded up to a multiple of the unshuffle amount (8, SDXL's 16). */
export const adapterHintSize = (n: number, cfg: T2IAdapterConfig): number => Math.ceil(n / adapterUnshuffle(cfg)) * adapterUnshuffle(cfg);

export class T2IAdapterControl implements ControlLink {
  private readonly features = new Map<string, Promise<Tensor[]>>();
  /** Tiled diffusion: the hint prepared for the whole input as below, cut and encoded per tile. */
  private readonly tileHints = new TileHints(
    { resized: (w, h) => this.hintFor(w * HINT_DOWNSCALE, h * HINT_DOWNSCALE), encode: (hint, signal) => this.adapter.encode(hint, signal) },
    HINT_DOWNSCALE,
  );

  constructor(
    readonly adapter: T2IAdapterModel,
    readonly application: ControlNetApplication,
    readonly previous?: ControlLink,
  ) {}

  /** The adapter's features for a latent of h × w, computed once per size. */
  adapterFeatures(h: number, w: number, signal?: AbortSignal): Promise<Tensor[]> {
    const key = `${h}x${w}`;
    let hit = this.features.get(key);
    if (!hit) {
      hit = this.adapter.encode(this.hintFor(w * HINT_DOWNSCALE, h * HINT_DOWNSCALE), signal);
      hit.catch(() => this.features.delete(key));
      this.features.set(key, hit);
    }
    return hit;
  }

  /** The hint for an input of `width` × `height` pixels: resized to them rounded up to the unshuffle amount, one channel where the adapter takes one. */
  private hintFor(width: number, height: number): Tensor {
    const want = adapterImageChannels(this.adapter.config);
    const resize = this.application.resize ?? ((t: Tensor, w: number, h: number) => commonUpscale(t, w, h, 'nearest-exact', 'center'));
    const cfg = this.adapter.config;
    let hint = resize(this.application.hint, adapterHintSize(width, cfg), adapterHintSize(height, cfg));
    if (want === 1 && hint.shape[1] > 1) hint = channelMean(hint);
    if (hint.shape[1] !== want) throw new Error(`T2I-Adapter hint image has ${hint.shape[1]} channels; this adapter takes ${want}`);
    return hint;
  }

  /** The residuals before the range check: feature × strength per target input block. */
  async residuals(req: ControlNetRequest, scales?: readonly number[]): Promise<ControlResiduals> {
    const [rows, , h, w] = req.x.shape;
    // Tiles of a tiled-diffusion batch get their own crop of the hint, already rows × tile-major.
    const feats = req.tiles ? await this.tileHints.outputs(req.tiles, rows, req.signal) : await this.adapterFeatures(h, w, req.signal);
    const targets = adapterTargets(this.adapter.config);
    const blocks = targets.filter((t): t is number => t !== 'middle');
    const afterInput: (Tensor | undefined)[] = Array.from({ length: Math.max(...blocks) + 1 }, () => undefined);
    let middle: Tensor | undefined;
    feats.forEach((f, level) => {
      const s = Math.fround(this.application.strength * (scales?.[level] ?? 1));
      const src = req.tiles ? f : broadcastRows(f, rows, req.chunks);
      const data = new Float32Array(src.data.length);
      for (let i = 0; i < data.length; i++) data[i] = Math.fround(src.data[i] * s);
      const target = targets[level];
      if (target === 'middle') middle = { shape: src.shape, data };
      else afterInput[target] = { shape: src.shape, data };
    });
    return { input: [], afterInput, ...(middle ? { middle } : {}) };
  }

  async getControl(req: ControlNetRequest): Promise<ControlResiduals | undefined> {
    const ms = req.modelSampling;
    if (!ms) throw new Error('a T2I-Adapter needs the model sampling of the run (the guider passes it)');
    const { startPercent, endPercent } = this.application;
    if (req.sigma > ms.percentToSigma(startPercent) || req.sigma < ms.percentToSigma(endPercent)) return undefined;
    return this.residuals(req);
  }
}
