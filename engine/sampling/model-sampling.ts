import type { ModelSamplingConfig } from '../models/handles.ts';

/**
 * ComfyUI's ModelSamplingDiscrete with its EPS / V_PREDICTION mixins (comfy/model_sampling.py).
 *
 * ComfyUI keeps `sigmas` and `log_sigmas` as float32 buffers and does every lookup in float32
 * torch ops, so schedules and timesteps carry float32 rounding. To give the same numbers (not
 * merely close ones) each float32 op is mirrored with `Math.fround`: a float64 +, −, ×, ÷ or √ of
 * float32 operands rounded once to float32 equals the float32 op exactly, so the emulation is
 * bit-exact for those; exp/log/pow/tan go through the float64 libm and then round, which may
 * differ from the C float32 libm by one float32 ulp in rare cases.
 */

const f32 = Math.fround;

/** What schedulers and samplers need from a model's sampling object (ComfyUI's duck type). */
export interface ModelSampling {
  /** Float32 sigma per discrete training timestep, ascending (index 0 = least noise). */
  readonly sigmas: Float32Array;
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  timestep(sigma: number): number;
  sigma(timestep: number): number;
  percentToSigma(percent: number): number;
}

/**
 * The whole model-sampling object the guider, the model call, inpainting and ControlNets use
 * (ComfyUI's model_sampling: a σ schedule plus a prediction mixin).
 */
export interface ModelSamplingObject extends ModelSampling {
  readonly sigmaData: number;
  /** ComfyUI's Sampler.max_denoise: the schedule starts at (or above) the model's top sigma. */
  isMaxDenoise(firstSigma: number): boolean;
  /** The UNet's input at σ (EPS: x / √(σ² + σ_data²)). */
  calculateInput(sigma: number, x: Float32Array): Float32Array;
  /** The UNet's output at σ → the x0 prediction. */
  calculateDenoised(sigma: number, modelOutput: Float32Array, modelInput: Float32Array): Float32Array;
  /** The starting latent: noise scaled for σ plus the latent. */
  noiseScaling(sigma: number, noise: Float32Array, latent: Float32Array, maxDenoise?: boolean): Float32Array;
  inverseNoiseScaling(sigma: number, latent: Float32Array): Float32Array;
}

export type ModelSamplingOptions = Partial<ModelSamplingConfig> & {
  /** Rescale the schedule to zero terminal SNR (ComfyUI's zsnr, in float64 before the float32 buffers). */
  zsnr?: boolean;
};

/**
 * ComfyUI's rescale_zero_terminal_snr_sigmas in float64: √ᾱ shifted so the last step is 0 and
 * scaled so the first keeps its value; the last ᾱ is then pinned to 4.8973451890853435e-08 so its
 * σ stays finite (≈ 4518.8).
 */
export function rescaleZeroTerminalSnrSigmas(sigmas: Float64Array): Float64Array {
  const n = sigmas.length;
  const root = sigmas.map((s) => Math.sqrt(1 / (s * s + 1)));
  const first = root[0];
  const last = root[n - 1];
  const scale = first / (first - last);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = (root[i] - last) * scale;
    const alphaBar = i === n - 1 ? 4.8973451890853435e-8 : r * r;
    out[i] = Math.sqrt((1 - alphaBar) / alphaBar);
  }
  return out;
}

/** EPS's calculate_input in float32 ops: x / √(σ² + σ_data²). */
export function epsInput(sigma: number, sigmaData: number, x: Float32Array): Float32Array {
  const s = f32(sigma);
  const denom = f32(Math.sqrt(f32(f32(s * s) + f32(sigmaData * sigmaData))));
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] / denom;
  return out;
}

function checkSameLength(modelOutput: Float32Array, modelInput: Float32Array): void {
  if (modelOutput.length !== modelInput.length) {
    throw new RangeError(`model output has ${modelOutput.length} values but input has ${modelInput.length}`);
  }
}

/** EPS's calculate_denoised: x − σ·ε. */
export function epsDenoised(sigma: number, modelOutput: Float32Array, modelInput: Float32Array): Float32Array {
  checkSameLength(modelOutput, modelInput);
  const s = f32(sigma);
  const out = new Float32Array(modelInput.length);
  for (let i = 0; i < out.length; i++) out[i] = modelInput[i] - f32(modelOutput[i] * s);
  return out;
}

/**
 * V_PREDICTION's (sign −1) and EDM's (sign +1) calculate_denoised:
 * x·σ_d²/(σ² + σ_d²) ± out·σ·σ_d/√(σ² + σ_d²).
 */
export function vDenoised(
  sigma: number,
  sigmaData: number,
  modelOutput: Float32Array,
  modelInput: Float32Array,
  sign: 1 | -1 = -1,
): Float32Array {
  checkSameLength(modelOutput, modelInput);
  const s = f32(sigma);
  const out = new Float32Array(modelInput.length);
  const sd = sigmaData;
  const sd2 = f32(sd * sd);
  const denom = f32(f32(s * s) + sd2);
  const root = f32(Math.sqrt(denom));
  for (let i = 0; i < out.length; i++) {
    const skip = f32(f32(modelInput[i] * sd2) / denom);
    const scaled = f32(f32(f32(modelOutput[i] * s) * sd) / root);
    out[i] = sign < 0 ? skip - scaled : skip + scaled;
  }
  return out;
}

/**
 * EPS's noise_scaling. At full denoise ComfyUI scales by √(1 + σ²) rather than σ so an empty
 * latent's variance matches the model's top timestep (ᾱ-weighted signal plus noise).
 */
export function epsNoiseScaling(sigma: number, noise: Float32Array, latent: Float32Array, maxDenoise = false): Float32Array {
  if (noise.length !== latent.length) {
    throw new RangeError(`noise has ${noise.length} values but latent has ${latent.length}`);
  }
  const s = f32(sigma);
  const scale = maxDenoise ? f32(Math.sqrt(f32(1 + f32(s * s)))) : s;
  const out = new Float32Array(noise.length);
  for (let i = 0; i < out.length; i++) out[i] = f32(noise[i] * scale) + latent[i];
  return out;
}

/** Sampler.max_denoise: math.isclose(σ_max, σ_0, rel_tol=1e-5) or σ_0 > σ_max. */
export function isMaxDenoise(sigmaMax: number, firstSigma: number): boolean {
  return Math.abs(sigmaMax - firstSigma) <= 1e-5 * Math.max(Math.abs(sigmaMax), Math.abs(firstSigma)) || firstSigma > sigmaMax;
}

/**
 * Float64 linspace with torch's two-sided formula (the upper half counts back from `end`) so the
 * endpoints are exact, as `torch.linspace(..., dtype=torch.float64)` gives them.
 */
function linspace64(start: number, end: number, n: number): Float64Array {
  const out = new Float64Array(n);
  if (n === 1) {
    out[0] = start;
    return out;
  }
  const step = (end - start) / (n - 1);
  const halfway = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = i < halfway ? start + step * i : end - step * (n - i - 1);
  return out;
}

/**
 * Betas by diffusers' schedule names, which is what `ModelSamplingConfig` carries (it comes from
 * scheduler_config.json): diffusers' `scaled_linear` is ComfyUI's (and LDM's) "linear",
 * linspace(√start, √end)², and diffusers' `linear` is ComfyUI's "sqrt_linear", linspace(start, end).
 */
export function makeBetaSchedule(
  schedule: ModelSamplingConfig['betaSchedule'],
  timesteps: number,
  linearStart: number,
  linearEnd: number,
): Float64Array {
  if (schedule === 'scaled_linear') {
    const b = linspace64(Math.sqrt(linearStart), Math.sqrt(linearEnd), timesteps);
    for (let i = 0; i < b.length; i++) b[i] = b[i] * b[i];
    return b;
  }
  if (schedule === 'linear') return linspace64(linearStart, linearEnd, timesteps);
  throw new Error(`unknown beta schedule '${String(schedule)}'`);
}

export class ModelSamplingDiscrete implements ModelSamplingObject {
  readonly prediction: 'eps' | 'v_prediction';
  readonly sigmaData = 1.0;
  readonly numTimesteps: number;
  readonly linearStart: number;
  readonly linearEnd: number;
  readonly sigmas: Float32Array;
  readonly logSigmas: Float32Array;

  constructor(options: ModelSamplingOptions = {}) {
    this.prediction = options.prediction ?? 'eps';
    // ComfyUI's defaults are SD1's: "linear" (= scaled_linear here) 0.00085 … 0.012 over 1000.
    const betaSchedule = options.betaSchedule ?? 'scaled_linear';
    this.linearStart = options.linearStart ?? 0.00085;
    this.linearEnd = options.linearEnd ?? 0.012;
    const timesteps = options.timesteps ?? 1000;
    if (!Number.isInteger(timesteps) || timesteps < 2) throw new RangeError(`timesteps must be an integer ≥ 2, got ${timesteps}`);
    this.numTimesteps = timesteps;

    const betas = makeBetaSchedule(betaSchedule, timesteps, this.linearStart, this.linearEnd);
    // The cumulative product and sigma stay float64 (torch does them in the betas' dtype); only
    // the stored buffers are float32, and log_sigmas is the log of the float64 sigma, not of the
    // rounded one.
    let sigma64: Float64Array = new Float64Array(timesteps);
    let alphasCumprod = 1;
    for (let i = 0; i < timesteps; i++) {
      alphasCumprod *= 1 - betas[i];
      sigma64[i] = Math.sqrt((1 - alphasCumprod) / alphasCumprod);
    }
    if (options.zsnr) sigma64 = rescaleZeroTerminalSnrSigmas(sigma64);
    this.sigmas = Float32Array.from(sigma64);
    this.logSigmas = Float32Array.from(sigma64, Math.log);
  }

  get sigmaMin(): number {
    return this.sigmas[0];
  }

  get sigmaMax(): number {
    return this.sigmas[this.sigmas.length - 1];
  }

  /** Nearest discrete timestep in log-sigma (first index on ties, as torch's argmin). */
  timestep(sigma: number): number {
    const logSigma = f32(Math.log(f32(sigma)));
    let best = 0;
    let bestDist = Infinity;
    for (let i = 0; i < this.logSigmas.length; i++) {
      const d = Math.abs(f32(logSigma - this.logSigmas[i]));
      if (d < bestDist) {
        bestDist = d;
        best = i;
      }
    }
    return best;
  }

  /** Sigma at a (possibly fractional) timestep: log-linear between the neighbouring entries. */
  sigma(timestep: number): number {
    const last = this.sigmas.length - 1;
    const t = Math.min(Math.max(f32(timestep), 0), last);
    const lo = Math.floor(t);
    const hi = Math.ceil(t);
    const w = f32(t - Math.trunc(t));
    const logSigma = f32(f32(f32(1 - w) * this.logSigmas[lo]) + f32(w * this.logSigmas[hi]));
    return f32(Math.exp(logSigma));
  }

  /**
   * Sigma at which a given fraction of sampling has elapsed (start/end percent of conds and
   * ControlNets). The 0 and 1 sentinels are ComfyUI's: "before any sigma" and "after all of them".
   */
  percentToSigma(percent: number): number {
    if (percent <= 0) return 999999999.9;
    if (percent >= 1) return 0;
    // torch.tensor(python float) is float32, so the timestep is rounded before the lookup.
    return this.sigma(f32((1 - percent) * 999.0));
  }

  /** ComfyUI's Sampler.max_denoise: the schedule starts at (or above) the model's top sigma. */
  isMaxDenoise(firstSigma: number): boolean {
    return isMaxDenoise(this.sigmaMax, firstSigma);
  }

  /** UNet input scaling c_in = 1 / √(σ² + σ_data²). */
  calculateInput(sigma: number, x: Float32Array): Float32Array {
    return epsInput(sigma, this.sigmaData, x);
  }

  /** Model output → predicted clean latent (eps: x − σ·ε; v: c_skip·x − c_out·v). */
  calculateDenoised(sigma: number, modelOutput: Float32Array, modelInput: Float32Array): Float32Array {
    return this.prediction === 'eps'
      ? epsDenoised(sigma, modelOutput, modelInput)
      : vDenoised(sigma, this.sigmaData, modelOutput, modelInput);
  }

  /** Initial noisy latent (see epsNoiseScaling). */
  noiseScaling(sigma: number, noise: Float32Array, latent: Float32Array, maxDenoise = false): Float32Array {
    return epsNoiseScaling(sigma, noise, latent, maxDenoise);
  }

  /** Identity for EPS and V models (only flow models undo a scaling); returns the same array. */
  inverseNoiseScaling(_sigma: number, latent: Float32Array): Float32Array {
    return latent;
  }
}
