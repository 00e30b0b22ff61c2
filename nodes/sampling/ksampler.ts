import type { Latent } from '../../engine/core/tensor.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { ksample, toSeed, type KSamplerArgs } from '../../engine/sampling/ksampler.ts';
import { SAMPLER_NAMES } from '../../engine/sampling/samplers/index.ts';
import { SCHEDULER_NAMES } from '../../engine/sampling/schedulers.ts';

/** ComfyUI's KSampler and KSamplerAdvanced: inputs, defaults and ranges as there. */

const SEED_MAX = 0xffffffffffffffff;

function run(ctx: NodeContext, args: Omit<KSamplerArgs, 'signal' | 'onStep'>): Promise<Latent> {
  return ksample({ ...args, signal: ctx.signal, onStep: (step, total, preview) => ctx.progress(step, total, preview) });
}

export const KSampler = defineNode({
  name: 'KSampler',
  displayName: 'KSampler',
  category: 'sampling',
  description: 'Uses the provided model, positive and negative conditioning to denoise the latent image.',
  searchAliases: ['sampler', 'sample', 'generate', 'denoise', 'diffusion', 'txt2img', 'img2img'],
  inputs: {
    required: {
      model: { type: 'MODEL', tooltip: 'The model used for denoising the input latent.' },
      seed: {
        type: 'INT',
        default: 0,
        min: 0,
        max: SEED_MAX,
        controlAfterGenerate: true,
        tooltip: 'The random seed used for creating the noise.',
      },
      steps: { type: 'INT', default: 20, min: 1, max: 10000, tooltip: 'The number of steps used in the denoising process.' },
      cfg: { type: 'FLOAT', default: 8.0, min: 0.0, max: 100.0, step: 0.1, round: 0.01, tooltip: 'The Classifier-Free Guidance scale.' },
      sampler_name: { type: 'COMBO', options: [...SAMPLER_NAMES], tooltip: 'The algorithm used when sampling.' },
      scheduler: {
        type: 'COMBO',
        options: [...SCHEDULER_NAMES],
        tooltip: 'The scheduler controls how noise is gradually removed to form the image.',
      },
      positive: { type: 'CONDITIONING', tooltip: 'The conditioning describing the attributes you want to include in the image.' },
      negative: { type: 'CONDITIONING', tooltip: 'The conditioning describing the attributes you want to exclude from the image.' },
      latent_image: { type: 'LATENT', tooltip: 'The latent image to denoise.' },
      denoise: { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.01, tooltip: 'The amount of denoising applied.' },
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', tooltip: 'The denoised latent.' }],
  async run(i, ctx) {
    const out = await run(ctx, {
      model: i.model,
      seed: toSeed(i.seed),
      steps: i.steps,
      cfg: i.cfg,
      samplerName: i.sampler_name,
      scheduler: i.scheduler,
      positive: i.positive,
      negative: i.negative,
      latent: i.latent_image,
      denoise: i.denoise,
    });
    return [out];
  },
});

export const KSamplerAdvanced = defineNode({
  name: 'KSamplerAdvanced',
  displayName: 'KSampler (Advanced)',
  category: 'sampling',
  searchAliases: ['advanced sampler', 'custom sampler', 'refiner'],
  inputs: {
    required: {
      model: { type: 'MODEL' },
      add_noise: { type: 'COMBO', options: ['enable', 'disable'] },
      noise_seed: { type: 'INT', default: 0, min: 0, max: SEED_MAX, controlAfterGenerate: true },
      steps: { type: 'INT', default: 20, min: 1, max: 10000 },
      cfg: { type: 'FLOAT', default: 8.0, min: 0.0, max: 100.0, step: 0.1, round: 0.01 },
      sampler_name: { type: 'COMBO', options: [...SAMPLER_NAMES] },
      scheduler: { type: 'COMBO', options: [...SCHEDULER_NAMES] },
      positive: { type: 'CONDITIONING' },
      negative: { type: 'CONDITIONING' },
      latent_image: { type: 'LATENT' },
      start_at_step: { type: 'INT', default: 0, min: 0, max: 10000 },
      end_at_step: { type: 'INT', default: 10000, min: 0, max: 10000 },
      return_with_leftover_noise: { type: 'COMBO', options: ['disable', 'enable'] },
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  async run(i, ctx) {
    const out = await run(ctx, {
      model: i.model,
      seed: toSeed(i.noise_seed, 'noise_seed'),
      steps: i.steps,
      cfg: i.cfg,
      samplerName: i.sampler_name,
      scheduler: i.scheduler,
      positive: i.positive,
      negative: i.negative,
      latent: i.latent_image,
      denoise: 1.0,
      disableNoise: i.add_noise === 'disable',
      startStep: i.start_at_step,
      lastStep: i.end_at_step,
      forceFullDenoise: i.return_with_leftover_noise !== 'enable',
    });
    return [out];
  },
});

export const nodes = [KSampler, KSamplerAdvanced];
