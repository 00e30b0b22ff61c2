import { sampleDpm2, sampleDpm2Ancestral, sampleDpmAdaptive, sampleDpmFast } from './dpm.ts';
import {
  sampleDpmpp2m,
  sampleDpmpp2mSde,
  sampleDpmpp2mSdeHeun,
  sampleDpmpp2sAncestral,
  sampleDpmpp3mSde,
  sampleDpmppSde,
} from './dpmpp.ts';
import { sampleDpmpp2mCfgPp, sampleDpmpp2sAncestralCfgPp, sampleEulerAncestralCfgPp, sampleEulerCfgPp } from './cfg-pp.ts';
import { sampleEuler, sampleEulerAncestral, sampleHeun, sampleHeunpp2 } from './euler.ts';
import {
  sampleDdpm,
  sampleErSde,
  sampleExpHeun2X0,
  sampleExpHeun2X0Sde,
  sampleGradientEstimation,
  sampleGradientEstimationCfgPp,
  sampleLcm,
  sampleResMultistep,
  sampleResMultistepAncestral,
  sampleResMultistepAncestralCfgPp,
  sampleResMultistepCfgPp,
  sampleSeeds2,
  sampleSeeds3,
} from './misc.ts';
import { sampleDeis, sampleIpndm, sampleIpndmV, sampleLms } from './multistep.ts';
import { sampleSaSolver, sampleSaSolverPece } from './sa-solver.ts';
import { sampleUniPc, sampleUniPcBh2 } from './unipc.ts';
import type { Sampler, SamplerOptions } from './types.ts';

export type { Denoise, NoiseSampler, Sampler, SamplerContext, SamplerOptions, StepInfo } from './types.ts';

/**
 * Which noise ComfyUI hands a sampler under its default options: none, its default sampler (torch
 * randn seeded with seed + 1, drawn in call order), or a Brownian tree over the schedule's
 * [σ_min > 0, σ_max] (SDE samplers, whose noise must depend on the interval, not the call order).
 * Options can make a "none" sampler stochastic (s_churn > 0 for euler/heun/dpm_2, eta > 0 for
 * dpm_fast/dpm_adaptive); it then needs a noise sampler from its caller.
 */
export type NoiseKind = 'none' | 'default' | 'brownian';

type Entry =
  | {
      readonly sample: Sampler;
      readonly noise: NoiseKind;
      /**
       * KSampler computes one extra step and drops the second-to-last σ (ComfyUI's
       * DISCARD_PENULTIMATE_SIGMA_SAMPLERS): the last step would otherwise be a second-order step
       * onto a tiny σ, which these samplers handle badly.
       */
      readonly discardPenultimateSigma?: true;
    }
  | { readonly unsupported: string };

/*
 * ComfyUI's KSampler.SAMPLERS in its order. The _gpu variants differ from their base only in where
 * ComfyUI builds the Brownian tree (CPU or device); the math is the same, and the tree is the
 * caller's noise sampler. The *_cfg_pp samplers ask the guider for its unconditional prediction
 * too (DenoiseRequest), so they need a guider behind their denoiser; sa_solver reads its default
 * stochastic interval from the run's model sampling.
 */
const TABLE = {
  euler: { sample: sampleEuler, noise: 'none' },
  euler_cfg_pp: { sample: (ctx, x, sigmas) => sampleEulerCfgPp(ctx, x, sigmas), noise: 'none' },
  euler_ancestral: { sample: sampleEulerAncestral, noise: 'default' },
  euler_ancestral_cfg_pp: { sample: sampleEulerAncestralCfgPp, noise: 'default' },
  heun: { sample: sampleHeun, noise: 'none' },
  heunpp2: { sample: sampleHeunpp2, noise: 'none' },
  exp_heun_2_x0: { sample: (ctx, x, sigmas) => sampleExpHeun2X0(ctx, x, sigmas), noise: 'none' },
  exp_heun_2_x0_sde: { sample: sampleExpHeun2X0Sde, noise: 'default' },
  dpm_2: { sample: sampleDpm2, noise: 'none', discardPenultimateSigma: true },
  dpm_2_ancestral: { sample: sampleDpm2Ancestral, noise: 'default', discardPenultimateSigma: true },
  lms: { sample: sampleLms, noise: 'none' },
  dpm_fast: { sample: sampleDpmFast, noise: 'none' },
  dpm_adaptive: { sample: sampleDpmAdaptive, noise: 'none' },
  dpmpp_2s_ancestral: { sample: sampleDpmpp2sAncestral, noise: 'default' },
  dpmpp_2s_ancestral_cfg_pp: { sample: sampleDpmpp2sAncestralCfgPp, noise: 'default' },
  dpmpp_sde: { sample: sampleDpmppSde, noise: 'brownian' },
  dpmpp_sde_gpu: { sample: sampleDpmppSde, noise: 'brownian' },
  dpmpp_2m: { sample: (ctx, x, sigmas) => sampleDpmpp2m(ctx, x, sigmas), noise: 'none' },
  dpmpp_2m_cfg_pp: { sample: (ctx, x, sigmas) => sampleDpmpp2mCfgPp(ctx, x, sigmas), noise: 'none' },
  dpmpp_2m_sde: { sample: sampleDpmpp2mSde, noise: 'brownian' },
  dpmpp_2m_sde_gpu: { sample: sampleDpmpp2mSde, noise: 'brownian' },
  dpmpp_2m_sde_heun: { sample: sampleDpmpp2mSdeHeun, noise: 'brownian' },
  dpmpp_2m_sde_heun_gpu: { sample: sampleDpmpp2mSdeHeun, noise: 'brownian' },
  dpmpp_3m_sde: { sample: sampleDpmpp3mSde, noise: 'brownian' },
  dpmpp_3m_sde_gpu: { sample: sampleDpmpp3mSde, noise: 'brownian' },
  ddpm: { sample: (ctx, x, sigmas) => sampleDdpm(ctx, x, sigmas), noise: 'default' },
  lcm: { sample: sampleLcm, noise: 'default' },
  ipndm: { sample: sampleIpndm, noise: 'none' },
  ipndm_v: { sample: sampleIpndmV, noise: 'none' },
  deis: { sample: sampleDeis, noise: 'none' },
  res_multistep: { sample: sampleResMultistep, noise: 'none' },
  res_multistep_cfg_pp: { sample: sampleResMultistepCfgPp, noise: 'none' },
  res_multistep_ancestral: { sample: sampleResMultistepAncestral, noise: 'default' },
  res_multistep_ancestral_cfg_pp: { sample: sampleResMultistepAncestralCfgPp, noise: 'default' },
  gradient_estimation: { sample: sampleGradientEstimation, noise: 'none' },
  gradient_estimation_cfg_pp: { sample: sampleGradientEstimationCfgPp, noise: 'none' },
  er_sde: { sample: sampleErSde, noise: 'default' },
  seeds_2: { sample: sampleSeeds2, noise: 'default' },
  seeds_3: { sample: sampleSeeds3, noise: 'default' },
  sa_solver: { sample: sampleSaSolver, noise: 'default' },
  sa_solver_pece: { sample: sampleSaSolverPece, noise: 'default' },
  // ComfyUI maps "ddim" to its Euler sampler (samplers.py sampler_object: ksampler("euler", ...)).
  ddim: { sample: sampleEuler, noise: 'none' },
  uni_pc: { sample: sampleUniPc, noise: 'none', discardPenultimateSigma: true },
  uni_pc_bh2: { sample: sampleUniPcBh2, noise: 'none', discardPenultimateSigma: true },
} as const satisfies Readonly<Record<string, Entry>>;

type Table = typeof TABLE;
export type SamplerName = { [K in keyof Table]: Table[K] extends { readonly sample: Sampler } ? K : never }[keyof Table];

const entries = Object.entries(TABLE) as [string, Entry][];

/** The samplers this engine runs, in ComfyUI's order. */
export const SAMPLER_NAMES: readonly SamplerName[] = entries.filter(([, e]) => 'sample' in e).map(([n]) => n as SamplerName);

/** ComfyUI names this engine knows of but does not implement, with the reason, for clearer errors. */
export const UNSUPPORTED_SAMPLERS: Readonly<Record<string, string>> = Object.fromEntries(
  entries.flatMap(([n, e]) => ('unsupported' in e ? [[n, e.unsupported]] : [])),
);

function lookup(name: string): Entry | undefined {
  return Object.prototype.hasOwnProperty.call(TABLE, name) ? (TABLE as Readonly<Record<string, Entry>>)[name] : undefined;
}

export function isSamplerName(name: string): name is SamplerName {
  const e = lookup(name);
  return !!e && 'sample' in e;
}

function entry(name: string): Extract<Entry, { readonly sample: Sampler }> {
  const e = lookup(name);
  if (e && 'sample' in e) return e;
  if (e) throw new Error(`sampler "${name}" is not supported: it ${e.unsupported}. Valid samplers: ${SAMPLER_NAMES.join(', ')}`);
  throw new Error(`unknown sampler "${name}". Valid samplers: ${SAMPLER_NAMES.join(', ')}`);
}

export function getSampler(name: string): Sampler {
  return entry(name).sample;
}

/** The noise ComfyUI gives this sampler under its default options. */
export function samplerNoiseKind(name: string): NoiseKind {
  return entry(name).noise;
}

/** Whether KSampler's schedule for this sampler drops its penultimate σ (false for names it does not know). */
export function samplerDiscardsPenultimateSigma(name: string): boolean {
  const e = lookup(name);
  return !!e && 'sample' in e && e.discardPenultimateSigma === true;
}

/** Whether the sampler draws noise with its default options (so ctx.noise must be given). */
export function samplerNeedsNoise(name: string): boolean {
  return samplerNoiseKind(name) !== 'none';
}

/** Whether ComfyUI gives this sampler a Brownian-tree noise sampler (seeded, over the schedule's σ range). */
export function samplerUsesBrownian(name: string): boolean {
  return samplerNoiseKind(name) === 'brownian';
}

/**
 * ComfyUI's SAMPLER value (`sampler_object` / KSamplerSelect → KSAMPLER): the sampler function, the
 * noise it is given, and the options (eta, s_noise, …) it runs with.
 */
export interface SamplerObject {
  readonly name: string;
  readonly sample: Sampler;
  readonly noise: NoiseKind;
  readonly options?: SamplerOptions;
}

/**
 * With options a "none" sampler may turn stochastic (s_churn, eta), so it gets the default seeded
 * noise sampler (ComfyUI draws churn from torch's unseeded global generator, which nothing can
 * repeat); a deterministic run draws nothing from it, or only noise weighted by zero.
 */
export function samplerObject(name: string, options?: SamplerOptions): SamplerObject {
  const e = entry(name);
  return { name, sample: e.sample, noise: options && e.noise === 'none' ? 'default' : e.noise, options };
}
