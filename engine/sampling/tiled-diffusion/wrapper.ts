import { InterruptedError } from '../../core/errors.ts';
import { pyRound } from '../../core/py-round.ts';
import type { Tensor } from '../../core/tensor.ts';
import { repeatToBatchSize } from '../../image/layout.ts';
import type { ControlResiduals, ModelApply, ModelCallArgs, ModelWrapper } from '../../models/handles.ts';
import { tileGrid, type TileBox, type TileGrid, type TiledDiffusionMethod } from './grid.ts';
import { roll, SPOT_SHIFT_METHODS, spotShifts, stepIndex, type SpotShiftMethod } from './spot-shifts.ts';

/**
 * ComfyUI-TiledDiffusion's model-function wrapper (MultiDiffusion, MixtureOfDiffusers, SpotDiffusion
 * in tiled_diffusion.py). It wraps ComfyUI's apply_model, so what is blended is the denoised
 * prediction (x0), not eps: the input is cut into the package's tile grid, tiles run in batches of
 * tile_batch_size through the inner call (conditioning repeated per tile, latent-shaped inputs and
 * ControlNet hints cropped per tile), and the predictions are averaged by tile count
 * (MultiDiffusion), summed with Gaussian weights normalised per pixel (Mixture of Diffusers), or
 * pasted over each other inside a window rolled by a seeded random shift per step (SpotDiffusion).
 */

export interface TiledDiffusionOptions {
  readonly method: TiledDiffusionMethod;
  /** The node's values, in image pixels. */
  readonly tileWidth: number;
  readonly tileHeight: number;
  readonly tileOverlap: number;
  readonly tileBatchSize: number;
  /** Image pixels per latent pixel (8; 4 for Stable Cascade in the package). */
  readonly compression?: number;
  /**
   * The shifts' seed (default: the run's seed) and order, where no SpotDiffusionParams node set them
   * in the model's wrapper options (SPOT_SEED, SPOT_SHIFT_METHOD), which take precedence.
   */
  readonly spot?: { readonly seed?: bigint; readonly shiftMethod?: SpotShiftMethod };
}

/** The package's model_options keys, which SpotDiffusionParams sets. */
export const SPOT_SEED = 'tiled_diffusion_seed';
export const SPOT_SHIFT_METHOD = 'tiled_diffusion_shift_method';

/** SpotDiffusion's seed and shift order for one model call: the model's options, then the wrapper's, then the run's seed. */
function spotSettings(o: TiledDiffusionOptions, args: ModelCallArgs): { seed: bigint; method: SpotShiftMethod } {
  const s = args.options?.[SPOT_SEED];
  const m = args.options?.[SPOT_SHIFT_METHOD];
  if (s !== undefined && typeof s !== 'bigint' && !(typeof s === 'number' && Number.isInteger(s)))
    throw new Error(`TiledDiffusion: the model option ${SPOT_SEED} must be an integer, got ${String(s)}`);
  if (m !== undefined && !SPOT_SHIFT_METHODS.includes(m as SpotShiftMethod))
    throw new Error(
      `TiledDiffusion: the model option ${SPOT_SHIFT_METHOD} must be one of ${SPOT_SHIFT_METHODS.join(', ')}, got ${String(m)}`,
    );
  const seed = s !== undefined ? BigInt(s) : (o.spot?.seed ?? args.run?.seed ?? 0n);
  return { seed, method: (m as SpotShiftMethod | undefined) ?? o.spot?.shiftMethod ?? 'random' };
}

/** The tiles of an NCHW tensor, concatenated tile-major (torch.cat([x[bbox.slicer] for bbox in bboxes])). */
function cutTiles(data: Float32Array, shape: readonly number[], boxes: readonly TileBox[]): Tensor {
  const [n, c, H, W] = shape;
  const { w, h } = boxes[0];
  const per = n * c * h * w;
  const out = new Float32Array(boxes.length * per);
  boxes.forEach((b, k) => {
    for (let p = 0; p < n * c; p++)
      for (let y = 0; y < h; y++) {
        const src = (p * H + b.y + y) * W + b.x;
        out.set(data.subarray(src, src + w), k * per + (p * h + y) * w);
      }
  });
  return { shape: [boxes.length * n, c, h, w], data: out };
}

export function tiledDiffusionWrapper(o: TiledDiffusionOptions): ModelWrapper {
  const cf = o.compression ?? 8;
  const tileW = Math.floor(o.tileWidth / cf);
  const tileH = Math.floor(o.tileHeight / cf);
  const overlap = Math.floor(o.tileOverlap / cf);
  const grids = new Map<string, TileGrid>();
  const grid = (w: number, h: number, tw = tileW, th = tileH, ov = overlap): TileGrid => {
    const key = `${w}x${h}:${tw}x${th}:${ov}`;
    let g = grids.get(key);
    if (!g) {
      g = tileGrid({ w, h, tileW: tw, tileH: th, overlap: ov, tileBatchSize: o.tileBatchSize, method: o.method });
      grids.set(key, g);
    }
    return g;
  };
  let spot: { sigmas: ArrayLike<number>; seed: bigint; method: SpotShiftMethod; h: Int32Array; w: Int32Array } | undefined;

  const wrapper = async (apply: ModelApply, args: ModelCallArgs): Promise<Tensor> => {
    const { input, c } = args;
    if (input.shape.length !== 4) throw new Error(`TiledDiffusion: the model input must be [B, C, H, W], got [${input.shape.join(', ')}]`);
    const [N, C, H, W] = input.shape;
    const g = grid(W, H);
    let x = input.data;
    // SpotDiffusion: the step's shift; both axes only when one of them is zero, else one axis alternating by step.
    let shH = 0;
    let shW = 0;
    let rollY = 0;
    let rollX = 0;
    if (o.method === 'SpotDiffusion') {
      const sigmas = args.run?.sigmas;
      if (!sigmas || sigmas.length < 2)
        throw new Error('TiledDiffusion (SpotDiffusion) needs the sampler’s sigma schedule; this model call came without one');
      const { seed, method } = spotSettings(o, args);
      if (!spot || spot.sigmas !== sigmas || spot.seed !== seed || spot.method !== method) {
        spot = { sigmas, seed, method, ...spotShifts(seed, sigmas.length - 1, tileH, tileW, method) };
      }
      const i = stepIndex(sigmas, args.sigma);
      shH = i < spot.h.length ? spot.h[i] : 0;
      shW = i < spot.w.length ? spot.w[i] : 0;
      if (tileH >= H) shH = 0;
      if (tileW >= W) shW = 0;
      const rowsFirst = tileH > tileW ? i % 2 === 0 : i % 2 !== 0;
      if (shH === 0 || shW === 0) [rollY, rollX] = [shH, shW];
      else if (rowsFirst) rollY = shH;
      else rollX = shW;
      x = roll(x, input.shape, rollY, rollX);
    }

    const buffer = new Float32Array(x.length);
    const rescale = o.method === 'Mixture of Diffusers' ? g.weights.map((v) => Math.fround(1 / v)) : undefined;
    const batches = g.batches;
    for (let batchId = 0; batchId < batches.length; batchId++) {
      if (args.signal?.aborted) throw new InterruptedError();
      const boxes = batches[batchId];
      const xTile = cutTiles(x, input.shape, boxes);
      const rows = xTile.shape[0];
      const context = repeatToBatchSize(c.context, rows);
      let extra: Record<string, Tensor> | undefined;
      if (c.extra) {
        extra = {};
        for (const [name, v] of Object.entries(c.extra)) {
          let t = v;
          if (v.shape.length === 4) {
            let vBoxes = boxes;
            let [vy, vx] = [shH, shW];
            if (v.shape[2] !== H || v.shape[3] !== W) {
              // Another resolution than the latent: the same grid in its units (the package's get_grid_bbox).
              const f = Math.floor((W * cf) / v.shape[3]);
              const vg = grid(
                v.shape[3],
                v.shape[2],
                Math.floor(o.tileWidth / f),
                Math.floor(o.tileHeight / f),
                Math.floor(o.tileOverlap / f),
              );
              vBoxes = vg.batches[batchId];
              if (!vBoxes)
                throw new Error(`TiledDiffusion: input '${name}' of ${v.shape[3]}x${v.shape[2]} has fewer tile batches than the latent`);
              [vy, vx] = [pyRound((shH * cf) / f), pyRound((shW * cf) / f)];
            }
            // The package rolls these inputs on both axes even where it rolled x on one.
            const data = o.method === 'SpotDiffusion' ? roll(v.data, v.shape, vy, vx) : v.data;
            t = cutTiles(data, v.shape, vBoxes);
          }
          extra[name] = repeatToBatchSize(t, rows);
        }
      }
      let control: ControlResiduals | undefined;
      if (args.controlFor) {
        control = await args.controlFor({
          input: xTile,
          context,
          extra,
          tiles: { full: { h: H, w: W }, boxes, roll: { dy: rollY, dx: rollX } },
        });
      } else if (c.control) {
        throw new Error('TiledDiffusion: the control residuals were computed for the whole latent and cannot be cut into tiles');
      }
      const out = await apply({
        input: xTile,
        sigma: args.sigma,
        c: { context, control, extra },
        condOrUncond: boxes.flatMap(() => args.condOrUncond),
        signal: args.signal,
        run: args.run,
      });
      if (out.data.length !== xTile.data.length)
        throw new Error(`TiledDiffusion: the model returned ${out.data.length} values for a tile batch of ${xTile.data.length}`);
      blend(out.data, boxes, buffer, input.shape, g, rescale);
    }

    if (o.method === 'MultiDiffusion') {
      const plane = H * W;
      for (let i = 0; i < buffer.length; i++) {
        const wt = g.weights[i % plane];
        if (wt > 1) buffer[i] = buffer[i] / wt;
      }
    }
    const data = o.method === 'SpotDiffusion' ? roll(buffer, input.shape, -rollY, -rollX) : buffer;
    return { shape: [N, C, H, W], data };
  };

  /** One batch's predictions into the buffer: added (MultiDiffusion), added × Gaussian / Σ Gaussian (Mixture), or pasted (Spot). */
  const blend = (
    out: Float32Array,
    boxes: readonly TileBox[],
    buffer: Float32Array,
    shape: readonly number[],
    g: TileGrid,
    rescale?: Float32Array,
  ): void => {
    const [N, C, H, W] = shape;
    const { w, h } = boxes[0];
    const per = N * C * h * w;
    boxes.forEach((b, k) => {
      for (let p = 0; p < N * C; p++)
        for (let y = 0; y < h; y++)
          for (let xx = 0; xx < w; xx++) {
            const v = out[k * per + (p * h + y) * w + xx];
            const gi = (p * H + b.y + y) * W + b.x + xx;
            if (o.method === 'SpotDiffusion') buffer[gi] = v;
            else if (rescale && g.tileWeights) {
              const wt = Math.fround(g.tileWeights[y * w + xx] * rescale[(b.y + y) * W + b.x + xx]);
              buffer[gi] += Math.fround(v * wt);
            } else buffer[gi] += v;
          }
    });
  };

  return Object.assign(wrapper, { controlPerTile: true });
}
