import type { Latent, Tensor } from '../../core/tensor.ts';
import type { ModelHandle } from '../../models/handles.ts';
import { processLatentOut } from '../../models/latent-format.ts';
import type { Conditioning } from '../conditioning.ts';
import { alignYourStepsSigmas, gitsSigmas, type AysModelType } from '../custom-sigmas.ts';
import { cfgGuider } from '../guider.ts';
import type { ModelSampling } from '../model-sampling.ts';
import { randomNoise } from '../noise/index.ts';
import { checkLatent, sampleLatent } from '../run.ts';
import { samplerDiscardsPenultimateSigma, samplerObject } from '../samplers/index.ts';
import { calculateSigmas, SCHEDULER_NAMES } from '../schedulers.ts';
import type { PreviewImage } from '../../core/preview.ts';
import { differentialInpaintGuider } from './differential.ts';

/**
 * The Impact Pack's `ksampler_wrapper` without a refiner (impact_sampling.py): the schedule for
 * ⌊steps/denoise⌋ steps sampled from step ⌊steps/denoise⌋ − steps on, seeded random noise, the
 * latent's noise mask as KSamplerX0Inpaint (with differential diffusion when asked), and the last
 * step's x0 prediction returned rather than the sampler's final latent (`separated_sample` returns
 * `out_denoised` when leftover noise is not kept).
 */

/** The Impact Pack's scheduler list: ComfyUI's plus Align Your Steps and GITS. */
export const IMPACT_SCHEDULERS: readonly string[] = [...SCHEDULER_NAMES, 'AYS SDXL', 'AYS SD1', 'AYS SVD', 'GITS[coeff=1.2]'];

/** impact_sampling.calculate_sigmas: the scheduler's full schedule, the penultimate σ dropped for dpm_2/uni_pc. */
export function impactSigmas(ms: ModelSampling, samplerName: string, scheduler: string, steps: number): Float64Array {
  const discard = samplerDiscardsPenultimateSigma(samplerName);
  const n = discard ? steps + 1 : steps;
  let s: Float64Array;
  if (scheduler.startsWith('AYS ')) {
    const type = scheduler.slice(4);
    if (type !== 'SD1' && type !== 'SDXL' && type !== 'SVD')
      throw new Error(`unknown Align Your Steps model type in scheduler "${scheduler}"`);
    s = alignYourStepsSigmas(type as AysModelType, n, 1);
  } else if (scheduler.startsWith('GITS[coeff=')) {
    s = gitsSigmas(Number(scheduler.slice(11, -1)), n, 1);
  } else s = calculateSigmas(ms, scheduler, n);
  if (!discard) return s;
  const out = new Float64Array(s.length - 1);
  out.set(s.subarray(0, s.length - 2));
  out[out.length - 1] = s[s.length - 1];
  return out;
}

export interface ImpactSampleArgs {
  model: ModelHandle;
  seed: bigint;
  steps: number;
  cfg: number;
  samplerName: string;
  scheduler: string;
  positive: Conditioning;
  negative: Conditioning;
  latent: Latent;
  denoise: number;
  /** The model has DifferentialDiffusion applied (the Impact Pack adds it when noise_mask_feather > 0). */
  differential?: boolean;
  /** Multiplies the starting noise (A1111's initial noise multiplier); 1 leaves it bit-identical. */
  noiseMultiplier?: number;
  /** The starting noise instead of the seed's (a batch of crops, each with its own seed's noise). */
  noise?: Float32Array;
  signal?: AbortSignal;
  onStep?: (step: number, total: number, preview?: PreviewImage) => void;
}

/** The σs this run samples: empty when the window starts past the end (the latent is returned as it is). */
export function impactRunSigmas(
  ms: ModelSampling,
  a: Pick<ImpactSampleArgs, 'samplerName' | 'scheduler' | 'steps' | 'denoise'>,
): Float64Array {
  const advanced = Math.floor(a.steps / a.denoise);
  const start = advanced - a.steps;
  const total = impactSigmas(ms, a.samplerName, a.scheduler, advanced);
  if (start >= total.length - 1) return new Float64Array(0);
  const sigmas = total.slice(start);
  return sigmas.length === 1 && sigmas[0] === 0 ? new Float64Array(0) : sigmas;
}

export async function impactSample(a: ImpactSampleArgs): Promise<Latent> {
  checkLatent(a.latent, a.model);
  let guider = cfgGuider({ model: a.model, positive: a.positive, negative: a.negative, cfg: a.cfg });
  const sigmas = impactRunSigmas(guider.modelSampling, a);
  if (sigmas.length === 0) return a.latent;
  let noise = a.noise ?? randomNoise(a.seed).generate(a.latent);
  const mult = a.noiseMultiplier ?? 1;
  if (mult !== 1) noise = noise.map((v) => v * mult);
  let latent = a.latent;
  if (a.differential && a.latent.noiseMask) {
    guider = differentialInpaintGuider(guider, a.latent.noiseMask, a.latent.samples, noise, a.model.latentFormat);
    latent = a.latent.batchIndex ? { samples: a.latent.samples, batchIndex: a.latent.batchIndex } : { samples: a.latent.samples };
  }
  let x0: Tensor | undefined;
  const out = await sampleLatent({
    guider,
    sampler: samplerObject(a.samplerName),
    sigmas,
    noise,
    latent,
    seed: a.seed,
    signal: a.signal,
    onStep: a.onStep,
    previewEvery: 0,
    onDenoised: (d) => (x0 = d),
  });
  if (!x0) return { ...out, noiseMask: a.latent.noiseMask };
  return { ...a.latent, samples: { shape: x0.shape, data: processLatentOut(a.model.latentFormat, x0) } };
}
