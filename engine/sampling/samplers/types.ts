import type { Tensor } from '../../core/tensor.ts';

/**
 * The contract between samplers (k-diffusion's shape, as ComfyUI uses it) and what drives them.
 * A sampler is a pure function of (denoiser, x, sigmas, options); it knows nothing of UNets, CFG,
 * conditioning or seeds: those live in the denoiser and the noise sampler its caller passes in.
 */

/** What a sampler may ask of one denoiser call beyond the x0 prediction. */
export interface DenoiseRequest {
  /**
   * Also return the unconditional prediction (CFG++ samplers; ComfyUI's post_cfg_function reading
   * `uncond_denoised` with disable_cfg1_optimization, so it is computed even at cfg 1).
   */
  readonly uncond?: boolean;
}

/** A denoiser's x0 prediction, with the guider's unconditional prediction where it was asked for. */
export interface Denoised extends Tensor {
  readonly uncond?: Tensor;
}

/** x at noise level sigma → the model's prediction of the clean latent (k-diffusion's `model(x, sigma)`). */
export type Denoise = (x: Tensor, sigma: number, request?: DenoiseRequest) => Promise<Denoised>;

/**
 * Standard-normal noise shaped like x for the step from `sigma` to `sigmaNext` (ancestral and SDE
 * samplers). ComfyUI's default draws from a torch generator seeded with the seed; SDE samplers use a
 * Brownian tree so the noise depends on the interval, not the call order.
 */
export type NoiseSampler = (sigma: number, sigmaNext: number) => Float32Array;

export interface StepInfo {
  /** Step index, 0-based. */
  readonly i: number;
  readonly x: Tensor;
  readonly denoised: Tensor;
  readonly sigma: number;
  readonly sigmaHat: number;
  readonly totalSteps: number;
}

/** What a few samplers need of the model's sampling (SA-Solver's default stochastic interval). */
export interface SamplerModelSampling {
  percentToSigma(percent: number): number;
}

export interface SamplerContext {
  readonly denoise: Denoise;
  /** The run's model sampling (ComfyUI's model_sampling object), where the sampler reads it. */
  readonly modelSampling?: SamplerModelSampling;
  /** Defaults to an error when a sampler needs noise and none was given. */
  readonly noise?: NoiseSampler;
  /** Called once per step, after the step's denoised prediction (progress and previews hang here). */
  readonly callback?: (info: StepInfo) => void;
  /** Checked before every model call; an aborted signal ends sampling with InterruptedError. */
  readonly signal?: AbortSignal;
}

/** Sampler options as ComfyUI passes them (eta, s_noise, churn, ...); each sampler reads its own. */
export type SamplerOptions = Readonly<Record<string, number | boolean | undefined>>;

/** `sigmas` is the full schedule, last entry usually 0; returns the final x. */
export type Sampler = (ctx: SamplerContext, x: Tensor, sigmas: Float64Array, options?: SamplerOptions) => Promise<Tensor>;
