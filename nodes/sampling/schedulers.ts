import { defineNode } from '../../engine/registry/types.ts';
import {
  AYS_NOISE_LEVELS,
  alignYourStepsSigmas,
  basicSchedulerSigmas,
  extendIntermediateSigmas,
  flipSigmas,
  gitsSigmas,
  laplaceSigmas,
  parseManualSigmas,
  polyexponentialSigmas,
  sdTurboSigmas,
  setFirstSigma,
  splitSigmas,
  splitSigmasDenoise,
  vpSigmas,
  type AysModelType,
  type SigmaSpacing,
} from '../../engine/sampling/custom-sigmas.ts';
import { modelSamplingFromConfig } from '../../engine/sampling/model-sampling-advanced.ts';
import { betaSigmas, exponentialSigmas, karrasSigmas, SCHEDULER_NAMES } from '../../engine/sampling/schedulers.ts';
import '../../engine/sampling/socket-types.ts';

/** ComfyUI's SIGMAS nodes (comfy_extras/nodes_custom_sampler.py, nodes_align_your_steps.py): names, inputs, ranges as there. */

const SIGMAS_OUT = [{ type: 'SIGMAS', name: 'SIGMAS' }] as const;
const SPLIT_OUT = [
  { type: 'SIGMAS', name: 'high_sigmas' },
  { type: 'SIGMAS', name: 'low_sigmas' },
] as const;
const SCHEDULERS = 'sampling/schedulers';
const SIGMAS = 'sampling/sigmas';

const steps = { type: 'INT', default: 20, min: 1, max: 10000 } as const;
const sigmaMax = { type: 'FLOAT', default: 14.614642, min: 0.0, max: 5000.0, step: 0.01, round: false, advanced: true } as const;
const sigmaMin = { type: 'FLOAT', default: 0.0291675, min: 0.0, max: 5000.0, step: 0.01, round: false, advanced: true } as const;

export const BasicScheduler = defineNode({
  name: 'BasicScheduler',
  category: SCHEDULERS,
  inputs: {
    required: {
      model: { type: 'MODEL' },
      scheduler: { type: 'COMBO', options: [...SCHEDULER_NAMES] },
      steps,
      denoise: { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.01 },
    },
  },
  outputs: SIGMAS_OUT,
  run: (i) => [basicSchedulerSigmas(modelSamplingFromConfig(i.model.sampling), i.scheduler, i.steps, i.denoise)],
});

export const KarrasScheduler = defineNode({
  name: 'KarrasScheduler',
  category: SCHEDULERS,
  inputs: {
    required: {
      steps,
      sigma_max: sigmaMax,
      sigma_min: sigmaMin,
      rho: { type: 'FLOAT', default: 7.0, min: 0.0, max: 100.0, step: 0.01, round: false, advanced: true },
    },
  },
  outputs: SIGMAS_OUT,
  run: (i) => [karrasSigmas(i.steps, i.sigma_min, i.sigma_max, i.rho)],
});

export const ExponentialScheduler = defineNode({
  name: 'ExponentialScheduler',
  category: SCHEDULERS,
  inputs: { required: { steps, sigma_max: sigmaMax, sigma_min: sigmaMin } },
  outputs: SIGMAS_OUT,
  run: (i) => [exponentialSigmas(i.steps, i.sigma_min, i.sigma_max)],
});

export const PolyexponentialScheduler = defineNode({
  name: 'PolyexponentialScheduler',
  category: SCHEDULERS,
  inputs: {
    required: {
      steps,
      sigma_max: sigmaMax,
      sigma_min: sigmaMin,
      rho: { type: 'FLOAT', default: 1.0, min: 0.0, max: 100.0, step: 0.01, round: false, advanced: true },
    },
  },
  outputs: SIGMAS_OUT,
  run: (i) => [polyexponentialSigmas(i.steps, i.sigma_min, i.sigma_max, i.rho)],
});

export const LaplaceScheduler = defineNode({
  name: 'LaplaceScheduler',
  category: SCHEDULERS,
  inputs: {
    required: {
      steps,
      sigma_max: sigmaMax,
      sigma_min: sigmaMin,
      mu: { type: 'FLOAT', default: 0.0, min: -10.0, max: 10.0, step: 0.1, round: false, advanced: true },
      beta: { type: 'FLOAT', default: 0.5, min: 0.0, max: 10.0, step: 0.1, round: false, advanced: true },
    },
  },
  outputs: SIGMAS_OUT,
  run: (i) => [laplaceSigmas(i.steps, i.sigma_min, i.sigma_max, i.mu, i.beta)],
});

export const SDTurboScheduler = defineNode({
  name: 'SDTurboScheduler',
  category: SCHEDULERS,
  inputs: {
    required: {
      model: { type: 'MODEL' },
      steps: { type: 'INT', default: 1, min: 1, max: 10 },
      denoise: { type: 'FLOAT', default: 1.0, min: 0, max: 1.0, step: 0.01 },
    },
  },
  outputs: SIGMAS_OUT,
  run: (i) => [sdTurboSigmas(modelSamplingFromConfig(i.model.sampling), i.steps, i.denoise)],
});

export const BetaSamplingScheduler = defineNode({
  name: 'BetaSamplingScheduler',
  category: SCHEDULERS,
  inputs: {
    required: {
      model: { type: 'MODEL' },
      steps,
      alpha: { type: 'FLOAT', default: 0.6, min: 0.0, max: 50.0, step: 0.01, round: false, advanced: true },
      beta: { type: 'FLOAT', default: 0.6, min: 0.0, max: 50.0, step: 0.01, round: false, advanced: true },
    },
  },
  outputs: SIGMAS_OUT,
  run: (i) => [betaSigmas(modelSamplingFromConfig(i.model.sampling), i.steps, i.alpha, i.beta)],
});

export const VPScheduler = defineNode({
  name: 'VPScheduler',
  category: SCHEDULERS,
  inputs: {
    required: {
      steps,
      beta_d: { type: 'FLOAT', default: 19.9, min: 0.0, max: 5000.0, step: 0.01, round: false, advanced: true },
      beta_min: { type: 'FLOAT', default: 0.1, min: 0.0, max: 5000.0, step: 0.01, round: false, advanced: true },
      eps_s: { type: 'FLOAT', default: 0.001, min: 0.0, max: 1.0, step: 0.0001, round: false, advanced: true },
    },
  },
  outputs: SIGMAS_OUT,
  run: (i) => [vpSigmas(i.steps, i.beta_d, i.beta_min, i.eps_s)],
});

export const AlignYourStepsScheduler = defineNode({
  name: 'AlignYourStepsScheduler',
  category: 'sampling/custom_sampling/schedulers',
  inputs: {
    required: {
      model_type: { type: 'COMBO', options: Object.keys(AYS_NOISE_LEVELS) },
      steps: { type: 'INT', default: 10, min: 1, max: 10000 },
      denoise: { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.01 },
    },
  },
  outputs: SIGMAS_OUT,
  run: (i) => [alignYourStepsSigmas(i.model_type as AysModelType, i.steps, i.denoise)],
});

export const GITSScheduler = defineNode({
  name: 'GITSScheduler',
  category: SCHEDULERS,
  inputs: {
    required: {
      coeff: { type: 'FLOAT', default: 1.2, min: 0.8, max: 1.5, step: 0.05, advanced: true },
      steps: { type: 'INT', default: 10, min: 2, max: 1000 },
      denoise: { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.01 },
    },
  },
  outputs: SIGMAS_OUT,
  run: (i) => [gitsSigmas(i.coeff, i.steps, i.denoise)],
});

export const SplitSigmas = defineNode({
  name: 'SplitSigmas',
  category: SIGMAS,
  inputs: { required: { sigmas: { type: 'SIGMAS' }, step: { type: 'INT', default: 0, min: 0, max: 10000 } } },
  outputs: SPLIT_OUT,
  run: (i) => splitSigmas(i.sigmas, i.step),
});

export const SplitSigmasDenoise = defineNode({
  name: 'SplitSigmasDenoise',
  category: SIGMAS,
  inputs: { required: { sigmas: { type: 'SIGMAS' }, denoise: { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.01 } } },
  outputs: SPLIT_OUT,
  run: (i) => splitSigmasDenoise(i.sigmas, i.denoise),
});

export const FlipSigmas = defineNode({
  name: 'FlipSigmas',
  category: SIGMAS,
  inputs: { required: { sigmas: { type: 'SIGMAS' } } },
  outputs: SIGMAS_OUT,
  run: (i) => [flipSigmas(i.sigmas)],
});

export const SetFirstSigma = defineNode({
  name: 'SetFirstSigma',
  category: SIGMAS,
  inputs: {
    required: { sigmas: { type: 'SIGMAS' }, sigma: { type: 'FLOAT', default: 136.0, min: 0.0, max: 20000.0, step: 0.001, round: false } },
  },
  outputs: SIGMAS_OUT,
  run: (i) => [setFirstSigma(i.sigmas, i.sigma)],
});

export const ExtendIntermediateSigmas = defineNode({
  name: 'ExtendIntermediateSigmas',
  category: SIGMAS,
  searchAliases: ['interpolate sigmas'],
  inputs: {
    required: {
      sigmas: { type: 'SIGMAS' },
      steps: { type: 'INT', default: 2, min: 1, max: 100 },
      start_at_sigma: { type: 'FLOAT', default: -1.0, min: -1.0, max: 20000.0, step: 0.01, round: false },
      end_at_sigma: { type: 'FLOAT', default: 12.0, min: 0.0, max: 20000.0, step: 0.01, round: false },
      spacing: { type: 'COMBO', options: ['linear', 'cosine', 'sine'] },
    },
  },
  outputs: SIGMAS_OUT,
  run: (i) => [extendIntermediateSigmas(i.sigmas, i.steps, i.start_at_sigma, i.end_at_sigma, i.spacing as SigmaSpacing)],
});

export const SamplingPercentToSigma = defineNode({
  name: 'SamplingPercentToSigma',
  category: SIGMAS,
  inputs: {
    required: {
      model: { type: 'MODEL' },
      sampling_percent: { type: 'FLOAT', default: 0.0, min: 0.0, max: 1.0, step: 0.0001 },
      return_actual_sigma: {
        type: 'BOOLEAN',
        default: false,
        tooltip: 'Return the actual sigma value instead of the value used for interval checks.\nThis only affects results at 0.0 and 1.0.',
      },
    },
  },
  outputs: [{ type: 'FLOAT', name: 'sigma_value' }],
  run(i) {
    const ms = modelSamplingFromConfig(i.model.sampling);
    const p = i.sampling_percent;
    if (i.return_actual_sigma && p === 0) return [ms.sigmaMax];
    if (i.return_actual_sigma && p === 1) return [ms.sigmaMin];
    return [ms.percentToSigma(p)];
  },
});

export const ManualSigmas = defineNode({
  name: 'ManualSigmas',
  category: 'experimental/custom_sampling',
  experimental: true,
  searchAliases: ['custom noise schedule', 'define sigmas'],
  inputs: { required: { sigmas: { type: 'STRING', default: '1, 0.5', multiline: false } } },
  outputs: SIGMAS_OUT,
  run: (i) => [parseManualSigmas(i.sigmas)],
});

export const nodes = [
  BasicScheduler,
  KarrasScheduler,
  ExponentialScheduler,
  PolyexponentialScheduler,
  LaplaceScheduler,
  VPScheduler,
  BetaSamplingScheduler,
  SDTurboScheduler,
  SplitSigmas,
  SplitSigmasDenoise,
  FlipSigmas,
  SetFirstSigma,
  ExtendIntermediateSigmas,
  SamplingPercentToSigma,
  ManualSigmas,
];

/** comfy_extras/nodes_align_your_steps.py */
export const alignYourStepsNodes = [AlignYourStepsScheduler];

/** comfy_extras/nodes_gits.py */
export const gitsNodes = [GITSScheduler];
