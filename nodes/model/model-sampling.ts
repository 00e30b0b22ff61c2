import type { ContinuousPrediction, DiscretePrediction, ModelHandle } from '../../engine/models/handles.ts';
import { PLAYGROUND_V25_LATENT_FORMAT } from '../../engine/models/families/sdxl/latent.ts';
import { withModelOptions } from '../../engine/models/model-wrappers.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { rescaleCfg } from '../../engine/sampling/rescale-cfg.ts';

/**
 * ComfyUI's model-sampling patches (comfy_extras/nodes_model_advanced.py): each returns the MODEL
 * with another model sampling (σ schedule + prediction type) or CFG function; the weights are
 * untouched. The sampling layer builds the object from `sampling.override`
 * (engine/sampling/model-sampling-advanced.ts), so KSampler, the schedulers, the custom-sampling
 * nodes and ControlNets all see it.
 */

const CATEGORY = 'advanced/model';
const MODEL_OUT = [{ type: 'MODEL', name: 'MODEL' }] as const;
const DISCRETE: readonly DiscretePrediction[] = ['eps', 'v_prediction', 'lcm', 'x0', 'img_to_img'];
const CONTINUOUS_EDM = ['v_prediction', 'edm', 'edm_playground_v2.5', 'eps', 'cosmos_rflow'] as const;
const sigmaInput = (def: number) => ({ type: 'FLOAT', default: def, min: 0.0, max: 1000.0, step: 0.001, round: false }) as const;

function withSampling(model: ModelHandle, override: NonNullable<ModelHandle['sampling']['override']>): ModelHandle {
  return withModelOptions(model, { sampling: { ...model.sampling, override } });
}

export const ModelSamplingDiscrete = defineNode({
  name: 'ModelSamplingDiscrete',
  category: CATEGORY,
  inputs: {
    required: {
      model: { type: 'MODEL' },
      sampling: { type: 'COMBO', options: [...DISCRETE] },
      zsnr: { type: 'BOOLEAN', default: false },
    },
  },
  outputs: MODEL_OUT,
  run: (i) => [withSampling(i.model, { kind: 'discrete', prediction: i.sampling as DiscretePrediction, zsnr: i.zsnr })],
});

export const ModelSamplingContinuousEDM = defineNode({
  name: 'ModelSamplingContinuousEDM',
  category: CATEGORY,
  inputs: {
    required: {
      model: { type: 'MODEL' },
      sampling: { type: 'COMBO', options: [...CONTINUOUS_EDM] },
      sigma_max: sigmaInput(120.0),
      sigma_min: sigmaInput(0.002),
    },
  },
  outputs: MODEL_OUT,
  run(i) {
    const playground = i.sampling === 'edm_playground_v2.5';
    // ComfyUI also swaps in Playground v2.5's latent format, which normalises SDXL VAE latents; Weft
    // does so only where the latents are SDXL's.
    if (playground && i.model.family !== 'sdxl') {
      throw new Error(
        `ModelSamplingContinuousEDM: sampling 'edm_playground_v2.5' needs the Playground v2.5 (SDXL) latent format; model family '${i.model.family}' has no such latent format`,
      );
    }
    const prediction: ContinuousPrediction = playground ? 'edm' : (i.sampling as ContinuousPrediction);
    const sigmaData = prediction === 'edm' ? 0.5 : 1.0;
    const override = { kind: 'continuous_edm', prediction, sigmaMin: i.sigma_min, sigmaMax: i.sigma_max, sigmaData } as const;
    if (playground)
      return [withModelOptions(i.model, { sampling: { ...i.model.sampling, override }, latentFormat: PLAYGROUND_V25_LATENT_FORMAT })];
    return [withSampling(i.model, override)];
  },
});

export const ModelSamplingContinuousV = defineNode({
  name: 'ModelSamplingContinuousV',
  category: CATEGORY,
  inputs: {
    required: {
      model: { type: 'MODEL' },
      sampling: { type: 'COMBO', options: ['v_prediction'] },
      sigma_max: sigmaInput(500.0),
      sigma_min: sigmaInput(0.03),
    },
  },
  outputs: MODEL_OUT,
  run: (i) => [
    withSampling(i.model, {
      kind: 'continuous_v',
      prediction: 'v_prediction',
      sigmaMin: i.sigma_min,
      sigmaMax: i.sigma_max,
      sigmaData: 1.0,
    }),
  ],
});

export const RescaleCFG = defineNode({
  name: 'RescaleCFG',
  category: CATEGORY,
  inputs: {
    required: {
      model: { type: 'MODEL' },
      multiplier: { type: 'FLOAT', default: 0.7, min: 0.0, max: 1.0, step: 0.01 },
    },
  },
  outputs: MODEL_OUT,
  run: (i) => [withModelOptions(i.model, { samplerCfgFunction: rescaleCfg(i.multiplier) })],
});

export const nodes = [ModelSamplingDiscrete, ModelSamplingContinuousEDM, ModelSamplingContinuousV, RescaleCFG];
