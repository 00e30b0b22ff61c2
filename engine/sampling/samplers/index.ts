import { sampleDpm2, sampleDpm2Ancestral, sampleDpmAdaptive, sampleDpmFast } from './dpm.ts';
import {
  sampleDpmpp2m,
  sampleDpmpp2mSde,
  sampleDpmpp2mSdeHeun,
  sampleDpmpp2sAncestral,
  sampleDpmpp3mSde,
  sampleDpmppSde,
} from './dpmpp.ts';
import { sampleEuler, sampleEulerAncestral, sampleHeun, sampleHeunpp2 } from './euler.ts';
import {
  sampleDdpm,
  sampleErSde,
  sampleExpHeun2X0,
  sampleExpHeun2X0Sde,
  sampleGradientEstimation,
  sampleLcm,
  sampleResMultistep,
  sampleResMultistepAncestral,
  sampleSeeds2,
  sampleSeeds3,
} from './misc.ts';
import { sampleDeis, sampleIpndm, sampleIpndmV, sampleLms } from './multistep.ts';
import { sampleUniPc, sampleUniPcBh2 } from './unipc.ts';
import type { Sampler } from './types.ts';

export type { Denoise, NoiseSampler, Sampler, SamplerContext, SamplerOptions, StepInfo } from './types.ts';

/**
 * ComfyUI's KSampler.SAMPLERS in its order, less the ones that cannot be expressed as a function
 * of a single denoiser: the *_cfg_pp samplers need the unconditional prediction, and sa_solver /
 * sa_solver_pece take their stochastic interval from the model's percent→σ mapping.
 */
export const SAMPLER_NAMES = [
  'euler',
  'euler_ancestral',
  'heun',
  'heunpp2',
  'exp_heun_2_x0',
  'exp_heun_2_x0_sde',
  'dpm_2',
  'dpm_2_ancestral',
  'lms',
  'dpm_fast',
  'dpm_adaptive',
  'dpmpp_2s_ancestral',
  'dpmpp_sde',
  'dpmpp_sde_gpu',
  'dpmpp_2m',
  'dpmpp_2m_sde',
  'dpmpp_2m_sde_gpu',
  'dpmpp_2m_sde_heun',
  'dpmpp_2m_sde_heun_gpu',
  'dpmpp_3m_sde',
  'dpmpp_3m_sde_gpu',
  'ddpm',
  'lcm',
  'ipndm',
  'ipndm_v',
  'deis',
  'res_multistep',
  'res_multistep_ancestral',
  'gradient_estimation',
  'er_sde',
  'seeds_2',
  'seeds_3',
  'ddim',
  'uni_pc',
  'uni_pc_bh2',
] as const;

export type SamplerName = (typeof SAMPLER_NAMES)[number];

/** ComfyUI names this engine knows of but does not implement, with the reason, for clearer errors. */
export const UNSUPPORTED_SAMPLERS: Readonly<Record<string, string>> = {
  euler_cfg_pp: 'needs the unconditional prediction (CFG++)',
  euler_ancestral_cfg_pp: 'needs the unconditional prediction (CFG++)',
  dpmpp_2s_ancestral_cfg_pp: 'needs the unconditional prediction (CFG++)',
  dpmpp_2m_cfg_pp: 'needs the unconditional prediction (CFG++)',
  res_multistep_cfg_pp: 'needs the unconditional prediction (CFG++)',
  res_multistep_ancestral_cfg_pp: 'needs the unconditional prediction (CFG++)',
  gradient_estimation_cfg_pp: 'needs the unconditional prediction (CFG++)',
  sa_solver: "needs the model's percent-to-sigma mapping for its stochastic interval",
  sa_solver_pece: "needs the model's percent-to-sigma mapping for its stochastic interval",
};

// The _gpu variants differ from their base only in where ComfyUI builds the Brownian tree (CPU or
// device); the math is the same, and the tree is the caller's noise sampler here.
const SAMPLERS: Readonly<Record<SamplerName, Sampler>> = {
  euler: sampleEuler,
  euler_ancestral: sampleEulerAncestral,
  heun: sampleHeun,
  heunpp2: sampleHeunpp2,
  exp_heun_2_x0: (ctx, x, sigmas) => sampleExpHeun2X0(ctx, x, sigmas),
  exp_heun_2_x0_sde: sampleExpHeun2X0Sde,
  dpm_2: sampleDpm2,
  dpm_2_ancestral: sampleDpm2Ancestral,
  lms: sampleLms,
  dpm_fast: sampleDpmFast,
  dpm_adaptive: sampleDpmAdaptive,
  dpmpp_2s_ancestral: sampleDpmpp2sAncestral,
  dpmpp_sde: sampleDpmppSde,
  dpmpp_sde_gpu: sampleDpmppSde,
  dpmpp_2m: (ctx, x, sigmas) => sampleDpmpp2m(ctx, x, sigmas),
  dpmpp_2m_sde: sampleDpmpp2mSde,
  dpmpp_2m_sde_gpu: sampleDpmpp2mSde,
  dpmpp_2m_sde_heun: sampleDpmpp2mSdeHeun,
  dpmpp_2m_sde_heun_gpu: sampleDpmpp2mSdeHeun,
  dpmpp_3m_sde: sampleDpmpp3mSde,
  dpmpp_3m_sde_gpu: sampleDpmpp3mSde,
  ddpm: (ctx, x, sigmas) => sampleDdpm(ctx, x, sigmas),
  lcm: sampleLcm,
  ipndm: sampleIpndm,
  ipndm_v: sampleIpndmV,
  deis: sampleDeis,
  res_multistep: sampleResMultistep,
  res_multistep_ancestral: sampleResMultistepAncestral,
  gradient_estimation: sampleGradientEstimation,
  er_sde: sampleErSde,
  seeds_2: sampleSeeds2,
  seeds_3: sampleSeeds3,
  // ComfyUI maps "ddim" to its Euler sampler (samplers.py sampler_object: ksampler("euler", ...)).
  ddim: sampleEuler,
  uni_pc: sampleUniPc,
  uni_pc_bh2: sampleUniPcBh2,
};

export function isSamplerName(name: string): name is SamplerName {
  return Object.prototype.hasOwnProperty.call(SAMPLERS, name);
}

export function getSampler(name: string): Sampler {
  if (isSamplerName(name)) return SAMPLERS[name];
  const why = UNSUPPORTED_SAMPLERS[name];
  if (why) throw new Error(`sampler "${name}" is not supported: it ${why}. Valid samplers: ${SAMPLER_NAMES.join(', ')}`);
  throw new Error(`unknown sampler "${name}". Valid samplers: ${SAMPLER_NAMES.join(', ')}`);
}

/** SDE samplers whose ComfyUI default noise is a Brownian tree over [σ_min>0, σ_max] (noise depends on the interval). */
const BROWNIAN = new Set<SamplerName>([
  'dpmpp_sde',
  'dpmpp_sde_gpu',
  'dpmpp_2m_sde',
  'dpmpp_2m_sde_gpu',
  'dpmpp_2m_sde_heun',
  'dpmpp_2m_sde_heun_gpu',
  'dpmpp_3m_sde',
  'dpmpp_3m_sde_gpu',
]);

/** Samplers that draw noise under their default options, from ComfyUI's default (seeded, call-order) sampler. */
const DEFAULT_NOISE = new Set<SamplerName>([
  'euler_ancestral',
  'exp_heun_2_x0_sde',
  'dpm_2_ancestral',
  'dpmpp_2s_ancestral',
  'ddpm',
  'lcm',
  'res_multistep_ancestral',
  'er_sde',
  'seeds_2',
  'seeds_3',
]);

function known(name: string): SamplerName {
  if (!isSamplerName(name)) getSampler(name);
  return name as SamplerName;
}

/**
 * Whether the sampler draws noise with its default options (so ctx.noise must be given). Options
 * can change this: s_churn > 0 makes euler/heun/dpm_2 stochastic, eta > 0 does for dpm_fast/adaptive.
 */
export function samplerNeedsNoise(name: string): boolean {
  const n = known(name);
  return BROWNIAN.has(n) || DEFAULT_NOISE.has(n);
}

/** Whether ComfyUI gives this sampler a Brownian-tree noise sampler (seeded, over the schedule's σ range). */
export function samplerUsesBrownian(name: string): boolean {
  return BROWNIAN.has(known(name));
}
