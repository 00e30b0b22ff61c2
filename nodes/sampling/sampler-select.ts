import { defineNode } from '../../engine/registry/types.ts';
import { SAMPLER_NAMES, samplerObject, type SamplerObject } from '../../engine/sampling/samplers/index.ts';
import { modelSamplingFromConfig } from '../../engine/sampling/model-sampling-advanced.ts';
import { erSdeWithScaler, sampleSeeds2Phi2 } from '../../engine/sampling/samplers/misc.ts';
import '../../engine/sampling/socket-types.ts';

/**
 * ComfyUI's SAMPLER nodes (comfy_extras/nodes_custom_sampler.py): KSamplerSelect and the samplers
 * with options. noise_device picks ComfyUI's _gpu or CPU variant, which differ only in where the
 * Brownian tree is built; here both are the same sampler with the same tree.
 */

const SAMPLER_OUT = [{ type: 'SAMPLER', name: 'SAMPLER' }] as const;
const CATEGORY = 'sampling/samplers';
const eta = { type: 'FLOAT', default: 1.0, min: 0.0, max: 100.0, step: 0.01, round: false, advanced: true } as const;
const sNoise = { type: 'FLOAT', default: 1.0, min: 0.0, max: 100.0, step: 0.01, round: false, advanced: true } as const;
const noiseDevice = { type: 'COMBO', options: ['gpu', 'cpu'], advanced: true } as const;
const withDevice = (name: string, device: string): string => (device === 'cpu' ? name : `${name}_gpu`);

export const KSamplerSelect = defineNode({
  name: 'KSamplerSelect',
  category: CATEGORY,
  inputs: { required: { sampler_name: { type: 'COMBO', options: [...SAMPLER_NAMES] } } },
  outputs: SAMPLER_OUT,
  run: (i) => [samplerObject(i.sampler_name)],
});

export const SamplerDPMPP_3M_SDE = defineNode({
  name: 'SamplerDPMPP_3M_SDE',
  category: CATEGORY,
  inputs: { required: { eta, s_noise: sNoise, noise_device: noiseDevice } },
  outputs: SAMPLER_OUT,
  run: (i) => [samplerObject(withDevice('dpmpp_3m_sde', i.noise_device), { eta: i.eta, s_noise: i.s_noise })],
});

export const SamplerDPMPP_2M_SDE = defineNode({
  name: 'SamplerDPMPP_2M_SDE',
  category: CATEGORY,
  inputs: { required: { solver_type: { type: 'COMBO', options: ['midpoint', 'heun'] }, eta, s_noise: sNoise, noise_device: noiseDevice } },
  outputs: SAMPLER_OUT,
  // dpmpp_2m_sde with solver_type "heun" is exactly ComfyUI's dpmpp_2m_sde_heun.
  run: (i) => [
    samplerObject(withDevice(i.solver_type === 'heun' ? 'dpmpp_2m_sde_heun' : 'dpmpp_2m_sde', i.noise_device), {
      eta: i.eta,
      s_noise: i.s_noise,
    }),
  ],
});

export const SamplerDPMPP_SDE = defineNode({
  name: 'SamplerDPMPP_SDE',
  category: CATEGORY,
  inputs: {
    required: {
      eta,
      s_noise: sNoise,
      r: { type: 'FLOAT', default: 0.5, min: 0.0, max: 100.0, step: 0.01, round: false, advanced: true },
      noise_device: noiseDevice,
    },
  },
  outputs: SAMPLER_OUT,
  run: (i) => [samplerObject(withDevice('dpmpp_sde', i.noise_device), { eta: i.eta, s_noise: i.s_noise, r: i.r })],
});

export const SamplerDPMPP_2S_Ancestral = defineNode({
  name: 'SamplerDPMPP_2S_Ancestral',
  category: CATEGORY,
  inputs: {
    required: {
      eta: { type: 'FLOAT', default: 1.0, min: 0.0, max: 100.0, step: 0.01, round: false },
      s_noise: { type: 'FLOAT', default: 1.0, min: 0.0, max: 100.0, step: 0.01, round: false },
    },
  },
  outputs: SAMPLER_OUT,
  run: (i) => [samplerObject('dpmpp_2s_ancestral', { eta: i.eta, s_noise: i.s_noise })],
});

export const SamplerEulerAncestral = defineNode({
  name: 'SamplerEulerAncestral',
  category: CATEGORY,
  inputs: { required: { eta, s_noise: sNoise } },
  outputs: SAMPLER_OUT,
  run: (i) => [samplerObject('euler_ancestral', { eta: i.eta, s_noise: i.s_noise })],
});

export const SamplerLMS = defineNode({
  name: 'SamplerLMS',
  category: CATEGORY,
  inputs: { required: { order: { type: 'INT', default: 4, min: 1, max: 100, advanced: true } } },
  outputs: SAMPLER_OUT,
  run: (i) => [samplerObject('lms', { order: i.order })],
});

const adaptive = (d: number) => ({ type: 'FLOAT', default: d, min: 0.0, max: 100.0, step: 0.01, round: false, advanced: true }) as const;

export const SamplerDPMAdaptative = defineNode({
  name: 'SamplerDPMAdaptative',
  category: CATEGORY,
  inputs: {
    required: {
      order: { type: 'INT', default: 3, min: 2, max: 3, advanced: true },
      rtol: adaptive(0.05),
      atol: adaptive(0.0078),
      h_init: adaptive(0.05),
      pcoeff: adaptive(0.0),
      icoeff: adaptive(1.0),
      dcoeff: adaptive(0.0),
      accept_safety: adaptive(0.81),
      eta: adaptive(0.0),
      s_noise: adaptive(1.0),
    },
  },
  outputs: SAMPLER_OUT,
  run: (i) => [
    samplerObject('dpm_adaptive', {
      order: i.order,
      rtol: i.rtol,
      atol: i.atol,
      h_init: i.h_init,
      pcoeff: i.pcoeff,
      icoeff: i.icoeff,
      dcoeff: i.dcoeff,
      accept_safety: i.accept_safety,
      eta: i.eta,
      s_noise: i.s_noise,
    }),
  ],
});

export const SamplerER_SDE = defineNode({
  name: 'SamplerER_SDE',
  category: CATEGORY,
  inputs: {
    required: {
      solver_type: { type: 'COMBO', options: ['ER-SDE', 'Reverse-time SDE', 'ODE'] },
      max_stage: { type: 'INT', default: 3, min: 1, max: 3, advanced: true },
      eta: {
        ...eta,
        tooltip:
          "Stochastic strength of reverse-time SDE.\nWhen eta=0, it reduces to deterministic ODE. This setting doesn't apply to ER-SDE solver type.",
      },
      s_noise: sNoise,
    },
  },
  outputs: SAMPLER_OUT,
  run(i) {
    let { eta: e, s_noise: noise } = i;
    if (i.solver_type === 'ODE' || (i.solver_type === 'Reverse-time SDE' && e === 0)) e = noise = 0;
    const options = { s_noise: noise, max_stage: i.max_stage };
    if (i.solver_type === 'ER-SDE') return [samplerObject('er_sde', options)];
    const power = e + 1;
    const custom: SamplerObject = { name: 'er_sde', sample: erSdeWithScaler((v) => v ** power), noise: 'default', options };
    return [custom];
  },
});

export const SamplerSEEDS2 = defineNode({
  name: 'SamplerSEEDS2',
  category: CATEGORY,
  searchAliases: ['sde', 'exp heun'],
  description:
    'This sampler node can represent multiple samplers:\n\nseeds_2\n- default setting\n\nexp_heun_2_x0\n- solver_type=phi_2, r=1.0, eta=0.0\n\nexp_heun_2_x0_sde\n- solver_type=phi_2, r=1.0, eta=1.0, s_noise=1.0',
  inputs: {
    required: {
      solver_type: { type: 'COMBO', options: ['phi_1', 'phi_2'] },
      eta: { ...eta, tooltip: 'Stochastic strength' },
      s_noise: { ...sNoise, tooltip: 'SDE noise multiplier' },
      r: {
        type: 'FLOAT',
        default: 0.5,
        min: 0.01,
        max: 1.0,
        step: 0.01,
        round: false,
        tooltip: 'Relative step size for the intermediate stage (c2 node)',
        advanced: true,
      },
    },
  },
  outputs: SAMPLER_OUT,
  run(i) {
    const options = { eta: i.eta, s_noise: i.s_noise, r: i.r };
    if (i.solver_type !== 'phi_2') return [samplerObject('seeds_2', options)];
    const phi2: SamplerObject = { name: 'seeds_2', sample: sampleSeeds2Phi2, noise: 'default', options };
    return [phi2];
  },
});

export const SamplerEulerAncestralCFGPP = defineNode({
  name: 'SamplerEulerAncestralCFGPP',
  displayName: 'SamplerEulerAncestralCFG++',
  category: CATEGORY,
  inputs: {
    required: {
      eta: { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.01, round: false },
      s_noise: { type: 'FLOAT', default: 1.0, min: 0.0, max: 10.0, step: 0.01, round: false },
    },
  },
  outputs: SAMPLER_OUT,
  run: (i) => [samplerObject('euler_ancestral_cfg_pp', { eta: i.eta, s_noise: i.s_noise })],
});

/**
 * ComfyUI's SamplerSASolver: the stochastic interval is fixed here from this node's model
 * (percent_to_sigma of the two percents), as ComfyUI binds its tau_func to it.
 */
export const SamplerSASolver = defineNode({
  name: 'SamplerSASolver',
  category: CATEGORY,
  inputs: {
    required: {
      model: { type: 'MODEL' },
      eta: { type: 'FLOAT', default: 1.0, min: 0.0, max: 10.0, step: 0.01, round: false },
      sde_start_percent: { type: 'FLOAT', default: 0.2, min: 0.0, max: 1.0, step: 0.001 },
      sde_end_percent: { type: 'FLOAT', default: 0.8, min: 0.0, max: 1.0, step: 0.001 },
      s_noise: { type: 'FLOAT', default: 1.0, min: 0.0, max: 100.0, step: 0.01, round: false },
      predictor_order: { type: 'INT', default: 3, min: 1, max: 6 },
      corrector_order: { type: 'INT', default: 4, min: 0, max: 6 },
      use_pece: { type: 'BOOLEAN', default: false },
      simple_order_2: { type: 'BOOLEAN', default: false },
    },
  },
  outputs: SAMPLER_OUT,
  run(i) {
    const ms = modelSamplingFromConfig(i.model.sampling);
    return [
      samplerObject('sa_solver', {
        eta: i.eta,
        sde_start_sigma: ms.percentToSigma(i.sde_start_percent),
        sde_end_sigma: ms.percentToSigma(i.sde_end_percent),
        s_noise: i.s_noise,
        predictor_order: i.predictor_order,
        corrector_order: i.corrector_order,
        use_pece: i.use_pece,
        simple_order_2: i.simple_order_2,
      }),
    ];
  },
});

export const nodes = [
  KSamplerSelect,
  SamplerEulerAncestral,
  SamplerEulerAncestralCFGPP,
  SamplerLMS,
  SamplerDPMPP_3M_SDE,
  SamplerDPMPP_2M_SDE,
  SamplerDPMPP_SDE,
  SamplerDPMPP_2S_Ancestral,
  SamplerDPMAdaptative,
  SamplerER_SDE,
  SamplerSEEDS2,
  SamplerSASolver,
];
