import type { ContinuousPrediction, DiscretePrediction, ModelSamplingConfig } from '../models/handles.ts';
import {
  epsDenoised,
  epsInput,
  epsNoiseScaling,
  isMaxDenoise,
  ModelSamplingDiscrete,
  vDenoised,
  type ModelSampling,
  type ModelSamplingObject,
} from './model-sampling.ts';

/**
 * The model samplings ComfyUI's ModelSamplingDiscrete / ModelSamplingContinuousEDM /
 * ModelSamplingContinuousV nodes put on a model (comfy/model_sampling.py and
 * comfy_extras/nodes_model_advanced.py): a σ schedule (the family's discrete table, LCM's 50-step
 * distilled subset of it, or a continuous log-uniform range) combined with a prediction mixin (how
 * the UNet's output becomes x0). Float32 torch ops are mirrored with Math.fround as in
 * model-sampling.ts.
 */

const f32 = Math.fround;

/** The prediction half of a model sampling (ComfyUI's EPS / V_PREDICTION / EDM / X0 / IMG_TO_IMG / LCM / COSMOS_RFLOW). */
interface Prediction {
  calculateInput(sigma: number, x: Float32Array): Float32Array;
  calculateDenoised(sigma: number, modelOutput: Float32Array, modelInput: Float32Array): Float32Array;
  noiseScaling(sigma: number, noise: Float32Array, latent: Float32Array, maxDenoise?: boolean): Float32Array;
  inverseNoiseScaling(sigma: number, latent: Float32Array): Float32Array;
}

/** A σ schedule whose prediction is given separately. */
class CompositeModelSampling implements ModelSamplingObject {
  private readonly prediction: Prediction;
  constructor(
    private readonly schedule: ModelSampling,
    readonly sigmaData: number,
    makePrediction: (ms: CompositeModelSampling) => Prediction,
  ) {
    this.prediction = makePrediction(this);
  }
  get sigmas(): Float32Array {
    return this.schedule.sigmas;
  }
  get sigmaMin(): number {
    return this.schedule.sigmaMin;
  }
  get sigmaMax(): number {
    return this.schedule.sigmaMax;
  }
  timestep(sigma: number): number {
    return this.schedule.timestep(sigma);
  }
  sigma(timestep: number): number {
    return this.schedule.sigma(timestep);
  }
  percentToSigma(percent: number): number {
    return this.schedule.percentToSigma(percent);
  }
  isMaxDenoise(firstSigma: number): boolean {
    return isMaxDenoise(this.sigmaMax, firstSigma);
  }
  calculateInput(sigma: number, x: Float32Array): Float32Array {
    return this.prediction.calculateInput(sigma, x);
  }
  calculateDenoised(sigma: number, modelOutput: Float32Array, modelInput: Float32Array): Float32Array {
    return this.prediction.calculateDenoised(sigma, modelOutput, modelInput);
  }
  noiseScaling(sigma: number, noise: Float32Array, latent: Float32Array, maxDenoise = false): Float32Array {
    return this.prediction.noiseScaling(sigma, noise, latent, maxDenoise);
  }
  inverseNoiseScaling(sigma: number, latent: Float32Array): Float32Array {
    return this.prediction.inverseNoiseScaling(sigma, latent);
  }
}

const identity = (_sigma: number, latent: Float32Array): Float32Array => latent;

function epsLike(ms: ModelSamplingObject, denoised: Prediction['calculateDenoised']): Prediction {
  return {
    calculateInput: (sigma, x) => epsInput(sigma, ms.sigmaData, x),
    calculateDenoised: denoised,
    noiseScaling: epsNoiseScaling,
    inverseNoiseScaling: identity,
  };
}

/** X0 and IMG_TO_IMG: the UNet predicts x0 itself; IMG_TO_IMG also feeds x unscaled. */
const x0Prediction =
  (unscaledInput: boolean) =>
  (ms: ModelSamplingObject): Prediction => ({
    ...epsLike(ms, (_sigma, out) => out),
    ...(unscaledInput ? { calculateInput: (_sigma: number, x: Float32Array) => x } : {}),
  });

/**
 * ComfyUI's LCM mixin: the eps x0 blended with the input by the LCM boundary conditions at the
 * model's (integer) timestep × 10, σ_data 0.5.
 */
function lcmPrediction(ms: ModelSamplingObject): Prediction {
  return epsLike(ms, (sigma, out, input) => {
    const x0 = epsDenoised(sigma, out, input);
    // timestep() is an int64 index, so ×10.0 is exact; the rest is float32 torch arithmetic.
    const t = f32(ms.timestep(f32(sigma)) * 10.0);
    const t2 = f32(f32(t * t) + 0.25);
    const cSkip = f32(0.25 / t2);
    const cOut = f32(t / f32(Math.sqrt(t2)));
    const res = new Float32Array(x0.length);
    for (let i = 0; i < res.length; i++) res[i] = f32(cOut * x0[i]) + f32(cSkip * input[i]);
    return res;
  });
}

/** ComfyUI's COSMOS_RFLOW: rectified-flow parametrisation over σ/(σ + 1), no max-denoise scaling. */
function cosmosPrediction(): Prediction {
  const t = (sigma: number): number => f32(f32(sigma) / f32(f32(sigma) + 1));
  return {
    calculateInput(sigma, x) {
      const k = f32(1 - t(sigma));
      return x.map((v) => v * k);
    },
    calculateDenoised(sigma, out, input) {
      const s = t(sigma);
      const k = f32(1 - s);
      const res = new Float32Array(input.length);
      for (let i = 0; i < res.length; i++) res[i] = f32(input[i] * k) - f32(out[i] * s);
      return res;
    },
    noiseScaling: (sigma, noise, latent) => epsNoiseScaling(sigma, noise, latent, false),
    inverseNoiseScaling: identity,
  };
}

function discretePrediction(p: DiscretePrediction): (ms: ModelSamplingObject) => Prediction {
  switch (p) {
    case 'eps':
      return (ms) => epsLike(ms, epsDenoised);
    case 'v_prediction':
      return (ms) => epsLike(ms, (sigma, out, input) => vDenoised(sigma, ms.sigmaData, out, input, -1));
    case 'lcm':
      return lcmPrediction;
    case 'x0':
      return x0Prediction(false);
    case 'img_to_img':
      return x0Prediction(true);
  }
}

function continuousPrediction(p: ContinuousPrediction): (ms: ModelSamplingObject) => Prediction {
  switch (p) {
    case 'eps':
      return (ms) => epsLike(ms, epsDenoised);
    case 'v_prediction':
      return (ms) => epsLike(ms, (sigma, out, input) => vDenoised(sigma, ms.sigmaData, out, input, -1));
    case 'edm':
      return (ms) => epsLike(ms, (sigma, out, input) => vDenoised(sigma, ms.sigmaData, out, input, 1));
    case 'cosmos_rflow':
      return cosmosPrediction;
  }
}

/** Log-linear interpolation in a float32 log-σ table at a fractional index (ComfyUI's sigma(timestep)). */
function interpolateLogSigma(logSigmas: Float32Array, t: number): number {
  const lo = Math.floor(t);
  const hi = Math.ceil(t);
  const w = f32(t - Math.trunc(t));
  return f32(Math.exp(f32(f32(f32(1 - w) * logSigmas[lo]) + f32(w * logSigmas[hi]))));
}

/** Index of the nearest float32 log σ (first on ties, as torch's argmin). */
function nearestLogSigma(logSigmas: Float32Array, sigma: number): number {
  const logSigma = f32(Math.log(f32(sigma)));
  let best = 0;
  let bestDist = Infinity;
  for (let i = 0; i < logSigmas.length; i++) {
    const d = Math.abs(f32(logSigma - logSigmas[i]));
    if (d < bestDist) {
      bestDist = d;
      best = i;
    }
  }
  return best;
}

/**
 * ModelSamplingDiscreteDistilled (LCM): every 20th σ of the full table, from the top, as its 50
 * entries; timesteps map back to the full table's indices (k·20 + 19).
 */
export class DistilledSchedule implements ModelSampling {
  static readonly ORIGINAL_TIMESTEPS = 50;
  readonly sigmas: Float32Array;
  readonly logSigmas: Float32Array;
  readonly skipSteps: number;

  constructor(full: ModelSamplingDiscrete) {
    const n = DistilledSchedule.ORIGINAL_TIMESTEPS;
    this.skipSteps = Math.trunc(full.numTimesteps / n);
    this.sigmas = new Float32Array(n);
    for (let x = 0; x < n; x++) this.sigmas[n - 1 - x] = full.sigmas[full.numTimesteps - 1 - x * this.skipSteps];
    // set_sigmas on float32 values: the log is taken of the rounded σ here.
    this.logSigmas = this.sigmas.map((s) => Math.log(s));
  }
  get sigmaMin(): number {
    return this.sigmas[0];
  }
  get sigmaMax(): number {
    return this.sigmas[this.sigmas.length - 1];
  }
  timestep(sigma: number): number {
    return nearestLogSigma(this.logSigmas, sigma) * this.skipSteps + (this.skipSteps - 1);
  }
  sigma(timestep: number): number {
    const t = Math.min(Math.max(f32(f32(f32(timestep) - (this.skipSteps - 1)) / this.skipSteps), 0), this.sigmas.length - 1);
    return interpolateLogSigma(this.logSigmas, t);
  }
  percentToSigma(percent: number): number {
    if (percent <= 0) return 999999999.9;
    if (percent >= 1) return 0;
    return this.sigma(f32((1 - percent) * 999.0));
  }
}

/**
 * torch.linspace(start, end, n) in float32 as its vectorised CPU kernel computes it: float step,
 * blocks of 8 from `start + step·i0` (first half) or `end − step·(n − i0 − 1)` (second half, chosen
 * by the block's first index) plus `j·step`; the tail that does not fill 16 goes element-wise.
 */
export function linspaceF32Vectorised(start: number, end: number, n: number): Float32Array {
  const out = new Float32Array(n);
  const a = f32(start);
  const b = f32(end);
  if (n === 1) {
    out[0] = a;
    return out;
  }
  const step = f32(f32(b - a) / (n - 1));
  const halfway = Math.trunc(n / 2);
  const scalar = (i: number): number => (i < halfway ? f32(a + f32(step * i)) : f32(b - f32(step * (n - i - 1))));
  const vecEnd = n - (n % 16);
  for (let i0 = 0; i0 < vecEnd; i0 += 8) {
    const base = i0 < halfway ? f32(a + f32(step * i0)) : f32(b - f32(step * (n - i0 - 1)));
    for (let j = 0; j < 8; j++) out[i0 + j] = f32(base + f32(j * step));
  }
  for (let i = vecEnd; i < n; i++) out[i] = scalar(i);
  return out;
}

/**
 * ModelSamplingContinuousEDM / ModelSamplingContinuousV / ModelSamplingCosmosRFlow: 1000 σ
 * log-uniform over [σ_min, σ_max] (for the schedulers that read the table); timestep 0.25·ln σ
 * (EDM), 2/π·atan σ (V) or σ/(σ + 1) (Cosmos).
 */
export class ContinuousSchedule implements ModelSampling {
  readonly sigmas: Float32Array;
  readonly logSigmas: Float32Array;
  constructor(
    readonly kind: 'edm' | 'v' | 'cosmos_rflow',
    sigmaMin: number,
    sigmaMax: number,
  ) {
    if (!(sigmaMin > 0 && sigmaMax > sigmaMin)) throw new RangeError(`need 0 < sigma_min < sigma_max, got ${sigmaMin} and ${sigmaMax}`);
    this.sigmas = linspaceF32Vectorised(Math.log(sigmaMin), Math.log(sigmaMax), 1000).map((v) => Math.exp(v));
    this.logSigmas = this.sigmas.map((s) => Math.log(s));
  }
  get sigmaMin(): number {
    return this.sigmas[0];
  }
  get sigmaMax(): number {
    return this.sigmas[this.sigmas.length - 1];
  }
  timestep(sigma: number): number {
    const s = f32(sigma);
    if (this.kind === 'edm') return f32(0.25 * f32(Math.log(s)));
    if (this.kind === 'v') return f32(f32(f32(Math.atan(s)) / f32(Math.PI)) * 2);
    return f32(s / f32(s + 1));
  }
  sigma(timestep: number): number {
    const t = f32(timestep);
    if (this.kind === 'edm') return f32(Math.exp(f32(t / 0.25)));
    if (this.kind === 'v') return f32(Math.tan(f32(f32(t * f32(Math.PI)) / 2)));
    const max = this.sigmaMax;
    if (t >= f32(max / f32(max + 1))) return max;
    return f32(t / f32(1 - t));
  }
  /** Log-linear in percent between the table's ends, in Python floats (not rounded to float32). */
  percentToSigma(percent: number): number {
    if (percent <= 0) return 999999999.9;
    if (percent >= 1) return 0;
    const p = 1 - percent;
    const logMin = Math.log(this.sigmaMin);
    return Math.exp((Math.log(this.sigmaMax) - logMin) * p + logMin);
  }
}

/**
 * The sampling object for a MODEL socket's config. Without an override, or with an eps/v_prediction
 * discrete one, it is ModelSamplingDiscrete itself, so those give exactly the family's numbers.
 */
export function modelSamplingFromConfig(config: ModelSamplingConfig): ModelSamplingObject {
  const o = config.override;
  if (!o) return new ModelSamplingDiscrete(config);
  if (o.kind === 'discrete') {
    if (o.prediction === 'eps' || o.prediction === 'v_prediction') {
      return new ModelSamplingDiscrete({ ...config, prediction: o.prediction, zsnr: o.zsnr });
    }
    const full = new ModelSamplingDiscrete({ ...config, zsnr: o.zsnr });
    const schedule = o.prediction === 'lcm' ? new DistilledSchedule(full) : full;
    return new CompositeModelSampling(schedule, 1.0, discretePrediction(o.prediction));
  }
  const kind = o.prediction === 'cosmos_rflow' ? 'cosmos_rflow' : o.kind === 'continuous_v' ? 'v' : 'edm';
  return new CompositeModelSampling(new ContinuousSchedule(kind, o.sigmaMin, o.sigmaMax), o.sigmaData, continuousPrediction(o.prediction));
}
