import type { ModelSampling } from './model-sampling.ts';
import { ksamplerSigmas } from './schedulers.ts';

/** KSamplerAdvanced's step window: sample steps [startStep, lastStep] of the schedule. */
export interface StepWindow {
  startStep?: number;
  lastStep?: number;
  /** End on σ = 0 even when the window stops early (else the result keeps its leftover noise). */
  forceFullDenoise?: boolean;
}

/** KSampler.sample's cut of a schedule to a step window; empty when the window starts at or past its end (nothing to sample). */
export function windowSigmas(sigmas: Float64Array, w: StepWindow): Float64Array {
  let out = sigmas;
  if (w.lastStep !== undefined && w.lastStep < out.length - 1) out = out.slice(0, w.lastStep + 1);
  if (w.forceFullDenoise && out.length) {
    out = out.slice();
    out[out.length - 1] = 0;
  }
  if (w.startStep !== undefined) out = w.startStep < out.length - 1 ? out.slice(w.startStep) : new Float64Array(0);
  return out;
}

export interface KSamplerSigmaOptions extends StepWindow {
  scheduler: string;
  steps: number;
  denoise?: number;
  /** Some samplers (dpm_2, uni_pc, …) drop the schedule's penultimate σ, as ComfyUI does. */
  samplerName?: string;
}

/** KSampler's σ schedule: the scheduler's, shortened for denoise < 1, cut to the step window. */
export function ksamplerStepSigmas(ms: ModelSampling, o: KSamplerSigmaOptions): Float64Array {
  return windowSigmas(ksamplerSigmas(ms, o.scheduler, o.steps, o.denoise ?? 1, o.samplerName), o);
}
