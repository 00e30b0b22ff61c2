import { cropRegion, maskBoundingBox } from '../core/regions.ts';
import type { Tensor } from '../core/tensor.ts';
import { resizeNCHW } from '../image/resize.ts';
import type { ExtraConds, PromptType } from '../models/handles.ts';
import type { Conditioning, ConditioningEntry, Control } from './conditioning.ts';
import type { ModelSamplingObject } from './model-sampling.ts';

/**
 * Where and how much each conditioning entry counts (ComfyUI's area, mask, strength and timestep
 * range handling): entries resolved once per run, then cut into pieces of x per model evaluation.
 */

/** An entry ready for sampling: area in latent pixels, mask at latent size, timestep range as sigmas. */
export interface ResolvedEntry {
  cond: Tensor;
  strength: number;
  area?: { h: number; w: number; y: number; x: number };
  /** [Bm, H, W] at latent size, already × mask strength. */
  mask?: Tensor;
  sigmaStart?: number;
  sigmaEnd?: number;
  stepRange?: { start: number; end: number };
  /** Index into the list of conditionings (0 = positive, 1 = negative). */
  group: number;
  control?: Control;
  controlApplyToUncond?: boolean;
  /** Named UNet inputs (the family's extra conds, then the entry's own), batch 1 or B, at full latent size. */
  named: Readonly<Record<string, Tensor>>;
}

/**
 * ComfyUI's resolve_areas_and_cond_masks + timestep ranges + encode_model_conds, for a latent of
 * [B, C, H, W].
 */
export function resolve(
  conds: Conditioning,
  group: number,
  shape: readonly number[],
  ms: ModelSamplingObject,
  extraConds?: ExtraConds,
  promptType: PromptType = 'positive',
): ResolvedEntry[] {
  const [B, , H, W] = shape;
  return conds.map((c: ConditioningEntry): ResolvedEntry => {
    let area: ResolvedEntry['area'];
    if (c.area) {
      const a = c.area;
      area = a.percentage
        ? {
            h: Math.max(1, Math.round(a.height * H)),
            w: Math.max(1, Math.round(a.width * W)),
            y: Math.round(a.y * H),
            x: Math.round(a.x * W),
          }
        : { h: a.height, w: a.width, y: a.y, x: a.x };
    }
    let mask: Tensor | undefined;
    if (c.mask) {
      let m = c.mask;
      if (m.shape.length === 2) m = { shape: [1, ...m.shape], data: m.data };
      const [mb, mh, mw] = m.shape;
      if (mh !== H || mw !== W) {
        const r = resizeNCHW({ shape: [mb, 1, mh, mw], data: m.data }, H, W, 'bilinear');
        m = { shape: [mb, H, W], data: r.data };
      }
      if (c.setAreaToBounds) {
        // The bounding box of the first mask's non-zero pixels, as ComfyUI's get_mask_aabb.
        const box = maskBoundingBox({ shape: [H, W], data: m.data.subarray(0, H * W) });
        if (box) area = { h: box.height, w: box.width, y: box.y, x: box.x };
      }
      const s = c.maskStrength ?? 1;
      mask = s === 1 ? m : { shape: m.shape, data: m.data.map((v) => v * s) };
    }
    return {
      cond: c.cond,
      strength: c.strength ?? 1,
      area,
      mask,
      sigmaStart: c.startPercent !== undefined ? ms.percentToSigma(c.startPercent) : undefined,
      sigmaEnd: c.endPercent !== undefined ? ms.percentToSigma(c.endPercent) : undefined,
      stepRange: c.stepRange,
      group,
      control: c.control,
      controlApplyToUncond: c.controlApplyToUncond,
      named: { ...extraConds?.(c, { batch: B, height: H, width: W }, promptType), ...c.modelConds },
    };
  });
}

/** One entry's crop of x and its per-pixel weight (ComfyUI's get_area_and_mult). */
export interface Piece {
  entry: ResolvedEntry;
  y: number;
  x: number;
  h: number;
  w: number;
  /** [B, C, h, w] weights. */
  mult: Float32Array;
}

/**
 * The sampler step a sigma belongs to, as a fraction of all steps: the last schedule entry at or above
 * it (a second-order sampler's midpoint evaluation counts as its step).
 */
export function stepFraction(sigmas: ArrayLike<number>, sigma: number): number {
  const steps = sigmas.length - 1;
  let i = 0;
  while (i + 1 < steps && sigmas[i + 1] >= sigma * (1 - 1e-6)) i++;
  return steps > 0 ? i / steps : 0;
}

export function piece(e: ResolvedEntry, shape: readonly number[], sigma: number, sigmas?: ArrayLike<number>): Piece | undefined {
  if (e.stepRange && sigmas) {
    const f = stepFraction(sigmas, sigma);
    if (f < e.stepRange.start - 1e-9 || f >= e.stepRange.end - 1e-9) return undefined;
  }
  if (e.sigmaStart !== undefined && sigma > e.sigmaStart) return undefined;
  if (e.sigmaEnd !== undefined && sigma < e.sigmaEnd) return undefined;
  const [B, C, H, W] = shape;
  let y = 0,
    x = 0,
    h = H,
    w = W;
  if (e.area) {
    y = Math.min(e.area.y, H - 1);
    x = Math.min(e.area.x, W - 1);
    h = Math.min(H - y, e.area.h);
    w = Math.min(W - x, e.area.w);
  }
  const mult = new Float32Array(B * C * h * w).fill(e.strength);
  if (e.mask) {
    const [mb] = e.mask.shape;
    for (let b = 0; b < B; b++)
      for (let c = 0; c < C; c++)
        for (let yy = 0; yy < h; yy++)
          for (let xx = 0; xx < w; xx++) {
            mult[((b * C + c) * h + yy) * w + xx] *= e.mask.data[((b % mb) * H + y + yy) * W + x + xx];
          }
  } else if (e.area) {
    // Feather the inner edges of an area over up to 8 latent pixels so areas blend.
    const ry = Math.min(8, Math.floor(h / 4));
    const rx = Math.min(8, Math.floor(w / 4));
    const scale = (yy: number, xx: number): number => {
      let f = 1;
      if (y !== 0 && yy < ry) f *= (yy + 1) / ry;
      if (y + h < H && h - 1 - yy < ry) f *= (h - yy) / ry;
      if (x !== 0 && xx < rx) f *= (xx + 1) / rx;
      if (x + w < W && w - 1 - xx < rx) f *= (w - xx) / rx;
      return f;
    };
    for (let b = 0; b < B; b++)
      for (let c = 0; c < C; c++)
        for (let yy = 0; yy < h; yy++) for (let xx = 0; xx < w; xx++) mult[((b * C + c) * h + yy) * w + xx] *= scale(yy, xx);
  }
  return { entry: e, y, x, h, w, mult };
}

export function crop(x: Tensor, p: Piece): Float32Array {
  const [, , H, W] = x.shape;
  if (p.h === H && p.w === W) return x.data;
  return cropRegion(x, { x: p.x, y: p.y, width: p.w, height: p.h }).data;
}
