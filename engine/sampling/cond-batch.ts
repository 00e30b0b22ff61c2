import type { Tensor } from '../core/tensor.ts';
import type { ControlResiduals, ControlTiles, ModelApply, ModelCallArgs, ModelHandle } from '../models/handles.ts';
import { crop, stepFraction, type Piece } from './cond-areas.ts';
import { chainResiduals } from './control.ts';
import type { ModelSamplingObject } from './model-sampling.ts';

/**
 * ComfyUI's calc_cond_batch: the pieces of one model evaluation grouped into as few model calls as
 * can share one (equal crop size, token counts that repeat to a common length, the same control,
 * named inputs of the same names and shapes), each call's predictions added into the per-group sums
 * with the pieces' weights.
 */

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

/** A named input shaped like the latent ([n, c, H, W]) is cropped to each entry's area (ComfyUI's CONDNoiseShape). */
function isSpatial(t: Tensor, latent: readonly number[]): boolean {
  return t.shape.length === 4 && t.shape[2] === latent[2] && t.shape[3] === latent[3];
}

/** One batch row's shape of a named input for a piece. */
function rowShape(t: Tensor, p: Piece, latent: readonly number[]): number[] {
  return isSpatial(t, latent) ? [t.shape[1], p.h, p.w] : t.shape.slice(1);
}

/** ComfyUI's can_concat_cond beyond crop size and token count: same control, same named inputs and row shapes. */
function canShare(a: Piece, b: Piece, latent: readonly number[]): boolean {
  if (a.entry.control !== b.entry.control) return false;
  const ka = Object.keys(a.entry.named);
  const kb = Object.keys(b.entry.named);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    const tb = b.entry.named[k];
    if (!tb) return false;
    const ra = rowShape(a.entry.named[k], a, latent);
    const rb = rowShape(tb, b, latent);
    if (ra.length !== rb.length || ra.some((d, i) => d !== rb[i])) return false;
  }
  return true;
}

/** The named inputs of a batch, B rows per piece in the pieces' order (a batch-1 input is repeated). */
function batchNamed(batch: Piece[], x: Tensor): Record<string, Tensor> | undefined {
  const names = Object.keys(batch[0].entry.named);
  if (names.length === 0) return undefined;
  const B = x.shape[0];
  const out: Record<string, Tensor> = {};
  for (const name of names) {
    const row = rowShape(batch[0].entry.named[name], batch[0], x.shape);
    const per = row.reduce((a, d) => a * d, 1);
    const data = new Float32Array(batch.length * B * per);
    batch.forEach((p, k) => {
      const t = p.entry.named[name];
      const src = isSpatial(t, x.shape) ? crop(t, p) : t.data;
      const n = t.shape[0];
      for (let b = 0; b < B; b++) data.set(src.subarray((b % n) * per, ((b % n) + 1) * per), (k * B + b) * per);
    });
    out[name] = { shape: [batch.length * B, ...row], data };
  }
  return out;
}

export interface CondBatchOptions {
  apply: ModelApply;
  modelSampling: ModelSamplingObject;
  /** The model sampled, for controls that build themselves from it (Control-LoRAs). */
  model?: ModelHandle;
  /** Largest batch (latent items) per model call; more pieces are split across calls. */
  maxBatch: number;
  signal?: AbortSignal;
  /** The run's schedule, so controls learn the step (`ControlRequest.stepFraction`). */
  sigmas?: ArrayLike<number>;
  /** The run's seed, passed to the model call's wrappers with the schedule. */
  seed?: bigint;
  /** The model's wrappers ask for control residuals per tile (`controlFor`): none for the whole input. */
  deferControl?: boolean;
}

/** Per conditioning group (0 = positive, 1 = negative): Σ prediction·weight and Σ weight per latent element. */
export interface GroupSums {
  readonly outs: Float32Array[];
  readonly counts: Float32Array[];
}

/** Runs every piece at x, σ and adds its weighted prediction into its group's sums. */
export async function runPieces(pieces: Piece[], x: Tensor, sigma: number, sums: GroupSums, o: CondBatchOptions): Promise<void> {
  const pending = [...pieces];
  while (pending.length) {
    const first = pending[0];
    const batch: Piece[] = [];
    for (let i = 0; i < pending.length && batch.length * x.shape[0] < o.maxBatch;) {
      const p = pending[i];
      const lens = [...batch, p].map((q) => q.entry.cond.shape[1]);
      if (p.h === first.h && p.w === first.w && contextLength(lens) !== undefined && canShare(first, p, x.shape)) {
        batch.push(p);
        pending.splice(i, 1);
      } else i++;
    }
    await runBatch(batch, x, sigma, sums, o);
  }
}

async function runBatch(batch: Piece[], x: Tensor, sigma: number, sums: GroupSums, o: CondBatchOptions): Promise<void> {
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
      const src =
        c.shape[0] > 1 ? c.data.subarray((b % c.shape[0]) * len * D, ((b % c.shape[0]) + 1) * len * D) : c.data.subarray(0, len * D);
      for (let r = 0; r < T / len; r++) ctx.set(src, ((k * B + b) * T + r * len) * D);
    }
  });
  const input: Tensor = { shape: [rows, C, h, w], data: xin };
  const context: Tensor = { shape: [rows, T, D], data: ctx };
  const extra = batchNamed(batch, x);
  const { control: chain } = batch[0].entry;
  const condOrUncond = batch.map((p) => p.entry.group);
  let control: ControlResiduals | undefined;
  let controlFor: ModelCallArgs['controlFor'];
  if (chain) {
    const area = { y: batch[0].y, x: batch[0].x, h, w };
    const ask = (x: Tensor, ctx: Tensor, named: Record<string, Tensor> | undefined, tiles?: ControlTiles) =>
      chainResiduals(chain, {
        x,
        sigma,
        timesteps: new Float32Array(x.shape[0]).fill(o.modelSampling.timestep(sigma)),
        context: ctx,
        extra: named,
        // A tile batch repeats every chunk once per tile, tile-major (as the wrapper's own model call does).
        chunks: batch.length * (tiles?.boxes.length ?? 1),
        area,
        modelSampling: o.modelSampling,
        model: o.model,
        condOrUncond: tiles ? tiles.boxes.flatMap(() => condOrUncond) : condOrUncond,
        stepFraction: o.sigmas ? stepFraction(o.sigmas, sigma) : undefined,
        signal: o.signal,
        tiles,
      });
    controlFor = (t) => ask(t.input, t.context, t.extra && { ...t.extra }, t.tiles);
    if (!o.deferControl) control = await ask(input, context, extra);
  }
  const run = o.sigmas ? { sigmas: o.sigmas, seed: o.seed } : undefined;
  const out = await o.apply({ input, sigma, c: { context, control, extra }, condOrUncond, signal: o.signal, run, controlFor });
  if (out.data.length !== xin.length) throw new Error(`model call returned ${out.data.length} elements for an input of ${xin.length}`);
  const denoised = out.data;
  batch.forEach((p, k) => {
    const sum = sums.outs[p.entry.group];
    const cnt = sums.counts[p.entry.group];
    for (let bc = 0; bc < B * C; bc++)
      for (let yy = 0; yy < h; yy++)
        for (let xx = 0; xx < w; xx++) {
          const li = (bc * h + yy) * w + xx;
          const gi = (bc * H + p.y + yy) * W + p.x + xx;
          const m = p.mult[li];
          sum[gi] += denoised[k * per + li] * m;
          cnt[gi] += m;
        }
  });
}
