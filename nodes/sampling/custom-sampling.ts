import type { Latent, Tensor } from '../../engine/core/tensor.ts';
import { processLatentIn, processLatentOut } from '../../engine/models/latent-format.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { dualCfgGuider } from '../../engine/sampling/dual-cfg-guider.ts';
import { basicGuider, cfgGuider, type Guider } from '../../engine/sampling/guider.ts';
import { toSeed } from '../../engine/sampling/ksampler.ts';
import { modelSamplingFromConfig } from '../../engine/sampling/model-sampling-advanced.ts';
import { disableNoise, randomNoise, type LatentNoise } from '../../engine/sampling/noise/index.ts';
import { checkLatent, sampleLatent } from '../../engine/sampling/run.ts';
import type { SamplerObject } from '../../engine/sampling/samplers/index.ts';
import '../../engine/sampling/socket-types.ts';

/**
 * ComfyUI's custom-sampling nodes (comfy_extras/nodes_custom_sampler.py): SamplerCustom and
 * SamplerCustomAdvanced run `guider.sample` on a SIGMAS list with a SAMPLER and a NOISE; the guider
 * and noise nodes make those values. Both samplers give the final latent and the last step's x0
 * prediction (`denoised_output`, ComfyUI's x0_output), each a copy of the input latent (noise mask,
 * batch_index kept) with new samples; with nothing to sample, denoised_output is the output itself.
 */

const SEED_MAX = 0xffffffffffffffff;
const cfgInput = { type: 'FLOAT', default: 8.0, min: 0.0, max: 100.0, step: 0.1, round: 0.01 } as const;
const SAMPLE_OUT = [
  { type: 'LATENT', name: 'output' },
  { type: 'LATENT', name: 'denoised_output' },
] as const;

async function sampleCustom(
  ctx: NodeContext,
  a: { guider: Guider; noise: LatentNoise; seed: bigint; sampler: SamplerObject; sigmas: Float64Array; latent: Latent },
): Promise<[Latent, Latent]> {
  const { guider, latent } = a;
  checkLatent(latent, guider.model);
  let x0: Tensor | undefined;
  const out = await sampleLatent({
    guider,
    sampler: a.sampler,
    sigmas: a.sigmas,
    noise: a.noise.generate(latent),
    latent,
    seed: a.seed,
    signal: ctx.signal,
    onStep: (step, total, preview) => ctx.progress(step, total, preview),
    onDenoised: (d) => (x0 = d),
  });
  if (!x0) return [out, out];
  // process_latent_out: model space back to the VAE's (no inverse noise scaling, as ComfyUI).
  const denoised: Latent = { ...latent, samples: { shape: x0.shape, data: processLatentOut(guider.model.latentFormat, x0) } };
  return [out, denoised];
}

export const SamplerCustom = defineNode({
  name: 'SamplerCustom',
  category: 'sampling/custom_sampling',
  inputs: {
    required: {
      model: { type: 'MODEL' },
      add_noise: { type: 'BOOLEAN', default: true, advanced: true },
      noise_seed: { type: 'INT', default: 0, min: 0, max: SEED_MAX, controlAfterGenerate: true },
      cfg: cfgInput,
      positive: { type: 'CONDITIONING' },
      negative: { type: 'CONDITIONING' },
      sampler: { type: 'SAMPLER' },
      sigmas: { type: 'SIGMAS' },
      latent_image: { type: 'LATENT' },
    },
  },
  outputs: SAMPLE_OUT,
  async run(i, ctx) {
    const seed = toSeed(i.noise_seed, 'noise_seed');
    // sample_custom gets the seed for the step noise whether or not starting noise is added.
    const noise = i.add_noise ? randomNoise(seed) : disableNoise(seed);
    const guider = cfgGuider({ model: i.model, positive: i.positive, negative: i.negative, cfg: i.cfg });
    return sampleCustom(ctx, { guider, noise, seed, sampler: i.sampler, sigmas: i.sigmas, latent: i.latent_image });
  },
});

export const SamplerCustomAdvanced = defineNode({
  name: 'SamplerCustomAdvanced',
  category: 'sampling/custom_sampling',
  inputs: {
    required: {
      noise: { type: 'NOISE' },
      guider: { type: 'GUIDER' },
      sampler: { type: 'SAMPLER' },
      sigmas: { type: 'SIGMAS' },
      latent_image: { type: 'LATENT' },
    },
  },
  outputs: SAMPLE_OUT,
  run: (i, ctx) =>
    sampleCustom(ctx, {
      guider: i.guider,
      noise: i.noise,
      seed: i.noise.seed,
      sampler: i.sampler,
      sigmas: i.sigmas,
      latent: i.latent_image,
    }),
});

const GUIDER_OUT = [{ type: 'GUIDER', name: 'GUIDER' }] as const;

export const CFGGuider = defineNode({
  name: 'CFGGuider',
  displayName: 'CFG Guider',
  category: 'sampling/guiders',
  inputs: { required: { model: { type: 'MODEL' }, positive: { type: 'CONDITIONING' }, negative: { type: 'CONDITIONING' }, cfg: cfgInput } },
  outputs: GUIDER_OUT,
  run: (i) => [cfgGuider({ model: i.model, positive: i.positive, negative: i.negative, cfg: i.cfg })],
});

export const BasicGuider = defineNode({
  name: 'BasicGuider',
  displayName: 'Basic Guider',
  category: 'sampling/guiders',
  inputs: { required: { model: { type: 'MODEL' }, conditioning: { type: 'CONDITIONING' } } },
  outputs: GUIDER_OUT,
  run: (i) => [basicGuider({ model: i.model, conditioning: i.conditioning })],
});

export const DualCFGGuider = defineNode({
  name: 'DualCFGGuider',
  displayName: 'Dual CFG Guider',
  category: 'sampling/guiders',
  searchAliases: ['dual prompt guidance'],
  inputs: {
    required: {
      model: { type: 'MODEL' },
      cond1: { type: 'CONDITIONING' },
      cond2: { type: 'CONDITIONING' },
      negative: { type: 'CONDITIONING' },
      cfg_conds: cfgInput,
      cfg_cond2_negative: cfgInput,
      style: { type: 'COMBO', options: ['regular', 'nested'] },
    },
  },
  outputs: GUIDER_OUT,
  run: (i) => [
    dualCfgGuider({
      model: i.model,
      cond1: i.cond1,
      cond2: i.cond2,
      negative: i.negative,
      cfgConds: i.cfg_conds,
      cfgCond2Negative: i.cfg_cond2_negative,
      style: i.style === 'nested' ? 'nested' : 'regular',
    }),
  ],
});

const NOISE_OUT = [{ type: 'NOISE', name: 'NOISE' }] as const;

export const RandomNoise = defineNode({
  name: 'RandomNoise',
  category: 'sampling/noise',
  inputs: { required: { noise_seed: { type: 'INT', default: 0, min: 0, max: SEED_MAX, controlAfterGenerate: true } } },
  outputs: NOISE_OUT,
  run: (i) => [randomNoise(toSeed(i.noise_seed, 'noise_seed'))],
});

export const DisableNoise = defineNode({
  name: 'DisableNoise',
  category: 'sampling/noise',
  searchAliases: ['zero noise'],
  inputs: { required: {} },
  outputs: NOISE_OUT,
  run: () => [disableNoise(0n)],
});

export const AddNoise = defineNode({
  name: 'AddNoise',
  category: 'experimental/custom_sampling/noise',
  experimental: true,
  inputs: {
    required: { model: { type: 'MODEL' }, noise: { type: 'NOISE' }, sigmas: { type: 'SIGMAS' }, latent_image: { type: 'LATENT' } },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run(i) {
    const { sigmas, latent_image: latent } = i;
    if (sigmas.length === 0) return [latent];
    const f32 = Math.fround;
    const noise = i.noise.generate(latent);
    const ms = modelSamplingFromConfig(i.model.sampling);
    const scale = sigmas.length > 1 ? f32(Math.abs(f32(sigmas[0] - sigmas[sigmas.length - 1]))) : sigmas[0];
    const format = i.model.latentFormat;
    const samples = latent.samples.data;
    // ComfyUI leaves an all-zero (empty) latent unprocessed on the way in, but still processes the sum out.
    const latentIn = samples.some((v) => v !== 0) ? processLatentIn(format, latent.samples) : samples;
    const noisy = processLatentOut(format, { shape: latent.samples.shape, data: ms.noiseScaling(scale, noise, latentIn) }).map((v) =>
      Number.isFinite(v) ? v : 0,
    );
    return [{ ...latent, samples: { shape: latent.samples.shape, data: noisy } }];
  },
});

export const nodes = [SamplerCustom, SamplerCustomAdvanced, CFGGuider, BasicGuider, DualCFGGuider, RandomNoise, DisableNoise, AddNoise];
