import type { Tensor } from '../core/tensor.ts';
import type { ModelHandle } from '../models/handles.ts';
import { cfgCombine } from './cfg.ts';
import { piece, resolve, type Piece, type ResolvedEntry } from './cond-areas.ts';
import { runPieces } from './cond-batch.ts';
import { controlsToUncond } from './control.ts';
import type { Conditioning } from './conditioning.ts';
import { modelCall } from './model-call.ts';
import { modelSamplingFromConfig } from './model-sampling-advanced.ts';
import type { ModelSamplingObject } from './model-sampling.ts';
import type { Denoise, Denoised, DenoiseRequest } from './samplers/types.ts';

/**
 * ComfyUI's CFG denoiser (`sampling_function` + `calc_cond_batch`): every conditioning entry is
 * evaluated on its area of the latent, weighted by strength, mask and the feathered area edges, and
 * the weighted predictions are averaged per pixel; then uncond + (cond − uncond)·cfg. Entries whose
 * inputs can share a model call run in one (cond and uncond together, as ComfyUI batches them), with
 * their named inputs batched alongside, their control chain's residuals, and the model's wrappers
 * around the call.
 */

export interface GuiderOptions {
  model: ModelHandle;
  modelSampling: ModelSamplingObject;
  positive: Conditioning;
  negative: Conditioning;
  cfg: number;
  signal?: AbortSignal;
  /** Largest batch (latent items) per UNet call; more entries are split across calls. */
  maxBatch?: number;
  /** The sampler's sigma schedule, for entries with a step range (A1111 prompt editing). */
  sigmas?: ArrayLike<number>;
  /** The run's seed, for the model's wrappers (SpotDiffusion). */
  seed?: bigint;
}

/**
 * The denoiser samplers call: x (scaled latent space) at sigma → CFG-combined x0 prediction.
 * With cfg = 1 the negative is skipped entirely, as ComfyUI does, unless the sampler asks for the
 * unconditional prediction (CFG++), which ComfyUI then computes anyway (disable_cfg1_optimization).
 */
export function cfgDenoiser(opts: GuiderOptions, latentShape: readonly number[]): Denoise {
  const { model, modelSampling: ms } = opts;
  const cfgFn = model.samplerCfgFunction;
  const preCfg = model.samplerPreCfgFunctions ?? [];
  const cfg1 = opts.cfg === 1;
  const pos = resolve(opts.positive, 0, latentShape, ms, model.extraConds);
  let negResolved: ResolvedEntry[] | undefined;
  const negative = (): ResolvedEntry[] => {
    if (!negResolved) {
      negResolved = resolve(opts.negative, 1, latentShape, ms, model.extraConds, 'negative');
      controlsToUncond(pos, negResolved);
    }
    return negResolved;
  };
  if (!cfg1) negative();
  const batching = {
    apply: modelCall(model, ms),
    modelSampling: ms,
    model,
    maxBatch: opts.maxBatch ?? 64,
    signal: opts.signal,
    sigmas: opts.sigmas,
    seed: opts.seed,
    deferControl: model.wrappers?.some((w) => w.controlPerTile) ?? false,
  };

  return async (x: Tensor, sigma: number, request?: DenoiseRequest): Promise<Denoised> => {
    const n = x.data.length;
    const withUncond = !cfg1 || request?.uncond === true;
    // A skipped negative leaves its prediction at zero, as calc_cond_batch leaves a None cond.
    const groups = withUncond || cfgFn || preCfg.length > 0 ? 2 : 1;
    const outs = Array.from({ length: groups }, () => new Float32Array(n));
    const counts = Array.from({ length: groups }, () => new Float32Array(n).fill(1e-37));
    const entries = withUncond ? [...pos, ...negative()] : pos;
    const pieces = entries.map((e) => piece(e, x.shape, sigma, opts.sigmas)).filter((p): p is Piece => p !== undefined);
    await runPieces(pieces, x, sigma, { outs, counts }, batching);
    const result = outs.map((o, g) => {
      const c = counts[g];
      for (let i = 0; i < n; i++) o[i] /= c[i];
      return o;
    });
    if (groups === 1) return { shape: x.shape, data: result[0] };
    let [cond, uncond] = result as [Float32Array, Float32Array];
    for (const fn of preCfg) {
      const r = fn({
        condsOut: [
          { shape: x.shape, data: cond },
          { shape: x.shape, data: uncond },
        ],
        condScale: opts.cfg,
        sigma,
        input: x,
      });
      [cond, uncond] = [Float32Array.from(r[0].data), Float32Array.from(r[1].data)];
      if (cond.length !== n || uncond.length !== n)
        throw new Error(`sampler_pre_cfg_function returned a prediction of the wrong size for a latent of ${n}`);
    }
    const data = cfgCombine(cfgFn, cond, uncond, opts.cfg, x, sigma);
    return request?.uncond ? { shape: x.shape, data, uncond: { shape: x.shape, data: uncond } } : { shape: x.shape, data };
  };
}

/** What a sampling run asks of its guider. */
export interface GuiderRun {
  /** The schedule being sampled (entries with a step range need it). */
  readonly sigmas?: ArrayLike<number>;
  readonly signal?: AbortSignal;
  /** The run's seed (SpotDiffusion's shifts). */
  readonly seed?: bigint;
}

/**
 * ComfyUI's guider objects (CFGGuider, BasicGuider): a model with its conditioning, giving the
 * denoiser for one sampling run (`predict_noise`). Detailers, tiled diffusion and the custom-sampling
 * nodes pass these around.
 */
export interface Guider {
  readonly model: ModelHandle;
  readonly modelSampling: ModelSamplingObject;
  /** The denoiser for a latent of `shape` (model space) over one run. */
  denoiser(shape: readonly number[], run?: GuiderRun): Denoise;
}

export interface CfgGuiderOptions {
  model: ModelHandle;
  positive: Conditioning;
  negative: Conditioning;
  cfg: number;
  maxBatch?: number;
}

/** ComfyUI's CFGGuider. */
export function cfgGuider(o: CfgGuiderOptions): Guider {
  const modelSampling = modelSamplingFromConfig(o.model.sampling);
  return {
    model: o.model,
    modelSampling,
    denoiser: (shape, run) =>
      cfgDenoiser(
        {
          model: o.model,
          modelSampling,
          positive: o.positive,
          negative: o.negative,
          cfg: o.cfg,
          maxBatch: o.maxBatch,
          sigmas: run?.sigmas,
          signal: run?.signal,
          seed: run?.seed,
        },
        shape,
      ),
  };
}

/** ComfyUI's BasicGuider: one conditioning, no CFG. */
export function basicGuider(o: { model: ModelHandle; conditioning: Conditioning; maxBatch?: number }): Guider {
  return cfgGuider({ model: o.model, positive: o.conditioning, negative: [], cfg: 1, maxBatch: o.maxBatch });
}
