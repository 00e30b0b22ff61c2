import type { Tensor } from '../core/tensor.ts';
import { resizeNCHW } from '../image/resize.ts';
import type { ModelHandle } from '../models/handles.ts';
import type { Conditioning, ConditioningEntry } from './conditioning.ts';
import type { ModelSamplingDiscrete } from './model-sampling.ts';
import type { Denoise } from './samplers/types.ts';

/**
 * ComfyUI's CFG denoiser (`sampling_function` + `calc_cond_batch`): every conditioning entry is
 * evaluated on its area of the latent, weighted by strength, mask and the feathered area edges, and
 * the weighted predictions are averaged per pixel; then uncond + (cond − uncond)·cfg. Entries whose
 * inputs have the same shape run in one UNet call (cond and uncond together, as ComfyUI batches them).
 */

/** An entry ready for sampling: area in latent pixels, mask at latent size, timestep range as sigmas. */
interface ResolvedEntry {
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
}

/** ComfyUI's resolve_areas_and_cond_masks + timestep ranges, for a latent of [B, C, H, W]. */
function resolve(conds: Conditioning, group: number, shape: readonly number[], ms: ModelSamplingDiscrete): ResolvedEntry[] {
  const [, , H, W] = shape;
  return conds.map((c: ConditioningEntry): ResolvedEntry => {
    let area: ResolvedEntry['area'];
    if (c.area) {
      const a = c.area;
      area = a.percentage
        ? { h: Math.max(1, Math.round(a.height * H)), w: Math.max(1, Math.round(a.width * W)), y: Math.round(a.y * H), x: Math.round(a.x * W) }
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
        // The bounding box of the mask's non-zero pixels (first mask), as ComfyUI's get_mask_aabb.
        let y0 = H, x0 = W, y1 = -1, x1 = -1;
        for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (m.data[y * W + x] > 0) {
          y0 = Math.min(y0, y); y1 = Math.max(y1, y); x0 = Math.min(x0, x); x1 = Math.max(x1, x);
        }
        if (y1 >= 0) area = { h: y1 - y0 + 1, w: x1 - x0 + 1, y: y0, x: x0 };
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
    };
  });
}

/** One entry's crop of x and its per-pixel weight (ComfyUI's get_area_and_mult). */
interface Piece {
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
function stepFraction(sigmas: ArrayLike<number>, sigma: number): number {
  const steps = sigmas.length - 1;
  let i = 0;
  while (i + 1 < steps && sigmas[i + 1] >= sigma * (1 - 1e-6)) i++;
  return steps > 0 ? i / steps : 0;
}

function piece(e: ResolvedEntry, shape: readonly number[], sigma: number, sigmas?: ArrayLike<number>): Piece | undefined {
  if (e.stepRange && sigmas) {
    const f = stepFraction(sigmas, sigma);
    if (f < e.stepRange.start - 1e-9 || f >= e.stepRange.end - 1e-9) return undefined;
  }
  if (e.sigmaStart !== undefined && sigma > e.sigmaStart) return undefined;
  if (e.sigmaEnd !== undefined && sigma < e.sigmaEnd) return undefined;
  const [B, C, H, W] = shape;
  let y = 0, x = 0, h = H, w = W;
  if (e.area) {
    y = Math.min(e.area.y, H - 1);
    x = Math.min(e.area.x, W - 1);
    h = Math.min(H - y, e.area.h);
    w = Math.min(W - x, e.area.w);
  }
  const mult = new Float32Array(B * C * h * w).fill(e.strength);
  if (e.mask) {
    const [mb] = e.mask.shape;
    for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let yy = 0; yy < h; yy++) for (let xx = 0; xx < w; xx++) {
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
    for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let yy = 0; yy < h; yy++) for (let xx = 0; xx < w; xx++) mult[((b * C + c) * h + yy) * w + xx] *= scale(yy, xx);
  }
  return { entry: e, y, x, h, w, mult };
}

function crop(x: Tensor, p: Piece): Float32Array {
  const [B, C, H, W] = x.shape;
  if (p.h === H && p.w === W) return x.data;
  const out = new Float32Array(B * C * p.h * p.w);
  for (let bc = 0; bc < B * C; bc++) for (let yy = 0; yy < p.h; yy++) {
    const src = (bc * H + p.y + yy) * W + p.x;
    out.set(x.data.subarray(src, src + p.w), (bc * p.h + yy) * p.w);
  }
  return out;
}

const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);

/** Contexts of different token counts repeated to their least common multiple, as ComfyUI's CONDCrossAttn.concat. */
function contextLength(lengths: number[]): number | undefined {
  let l = lengths[0];
  for (const n of lengths) {
    const lcm = (l * n) / gcd(l, n);
    if (lcm / Math.min(l, n) > 4) return undefined;
    l = lcm;
  }
  return l;
}

export interface GuiderOptions {
  model: ModelHandle;
  modelSampling: ModelSamplingDiscrete;
  positive: Conditioning;
  negative: Conditioning;
  cfg: number;
  signal?: AbortSignal;
  /** Largest batch (latent items) per UNet call; more entries are split across calls. */
  maxBatch?: number;
  /** The sampler's sigma schedule, for entries with a step range (A1111 prompt editing). */
  sigmas?: ArrayLike<number>;
}

/**
 * The denoiser samplers call: x (scaled latent space) at sigma → CFG-combined x0 prediction.
 * With cfg = 1 the negative is skipped entirely, as ComfyUI does.
 */
export function cfgDenoiser(opts: GuiderOptions, latentShape: readonly number[]): Denoise {
  const { model, modelSampling: ms } = opts;
  const pos = resolve(opts.positive, 0, latentShape, ms);
  const neg = opts.cfg === 1 ? [] : resolve(opts.negative, 1, latentShape, ms);
  const groups = opts.cfg === 1 ? 1 : 2;
  const maxBatch = opts.maxBatch ?? 64;

  return async (x: Tensor, sigma: number): Promise<Tensor> => {
    const n = x.data.length;
    const outs = Array.from({ length: groups }, () => new Float32Array(n));
    const counts = Array.from({ length: groups }, () => new Float32Array(n).fill(1e-37));
    const pieces = [...pos, ...neg].map((e) => piece(e, x.shape, sigma, opts.sigmas)).filter((p): p is Piece => p !== undefined);
    // Batch pieces with equal crop sizes and compatible token counts into one UNet call.
    const pending = [...pieces];
    while (pending.length) {
      const first = pending[0];
      const batch: Piece[] = [];
      for (let i = 0; i < pending.length && batch.length * x.shape[0] < maxBatch; ) {
        const p = pending[i];
        const lens = [...batch, p].map((q) => q.entry.cond.shape[1]);
        if (p.h === first.h && p.w === first.w && contextLength(lens) !== undefined) {
          batch.push(p);
          pending.splice(i, 1);
        } else i++;
      }
      await runBatch(batch, x, sigma, outs, counts);
    }
    const result = outs.map((o, g) => {
      const c = counts[g];
      for (let i = 0; i < n; i++) o[i] /= c[i];
      return o;
    });
    if (groups === 1) return { shape: x.shape, data: result[0] };
    const [cond, uncond] = result;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = uncond[i] + (cond[i] - uncond[i]) * opts.cfg;
    return { shape: x.shape, data: out };
  };

  async function runBatch(batch: Piece[], x: Tensor, sigma: number, outs: Float32Array[], counts: Float32Array[]): Promise<void> {
    const [B, C, H, W] = x.shape;
    const { h, w } = batch[0];
    const per = B * C * h * w;
    const T = contextLength(batch.map((p) => p.entry.cond.shape[1]))!;
    const D = batch[0].entry.cond.shape[2];
    const rows = batch.length * B;
    const xin = new Float32Array(rows * C * h * w);
    const ctx = new Float32Array(rows * T * D);
    batch.forEach((p, k) => {
      xin.set(crop(x, p), k * per);
      const c = p.entry.cond;
      const len = c.shape[1];
      for (let b = 0; b < B; b++) {
        // A conditioning batched per image ([B, T, D]) gives each image its own row; [1, T, D] is shared.
        const src = c.shape[0] > 1 ? c.data.subarray((b % c.shape[0]) * len * D, ((b % c.shape[0]) + 1) * len * D) : c.data.subarray(0, len * D);
        for (let r = 0; r < T / len; r++) ctx.set(src, ((k * B + b) * T + r * len) * D);
      }
    });
    const scaled = ms.calculateInput(sigma, xin);
    const t = new Float32Array(rows).fill(ms.timestep(sigma));
    const eps = await model.unet.run({ x: { shape: [rows, C, h, w], data: scaled }, timesteps: t, context: { shape: [rows, T, D], data: ctx }, signal: opts.signal });
    const denoised = ms.calculateDenoised(sigma, eps.data, xin);
    batch.forEach((p, k) => {
      const out = outs[p.entry.group];
      const cnt = counts[p.entry.group];
      for (let bc = 0; bc < B * C; bc++) for (let yy = 0; yy < h; yy++) for (let xx = 0; xx < w; xx++) {
        const li = (bc * h + yy) * w + xx;
        const gi = (bc * H + p.y + yy) * W + p.x + xx;
        const m = p.mult[li];
        out[gi] += denoised[k * per + li] * m;
        cnt[gi] += m;
      }
    });
  }
}
