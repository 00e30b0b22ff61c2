import { describe, expect, it } from 'vitest';
import type { ModelHandle, ModelSamplingConfig } from '../../engine/models/handles.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { ModelSamplingDiscrete } from '../../engine/sampling/model-sampling.ts';
import type { SamplerObject } from '../../engine/sampling/samplers/index.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import * as msNodes from '../../nodes/model/model-sampling.ts';
import * as select from '../../nodes/sampling/sampler-select.ts';

/* The new sampler and model-sampling nodes: ComfyUI's declarations, and what their values carry. */

const ctx = { progress: () => {}, log: { info: () => {}, warn: () => {}, error: () => {} } } as unknown as NodeContext;
const call = async <T>(node: { run: (i: never, c: NodeContext) => unknown }, inputs: Record<string, unknown>): Promise<T> =>
  ((await node.run(inputs as never, ctx)) as [T])[0];
const SD1: ModelSamplingConfig = {
  prediction: 'eps',
  betaSchedule: 'scaled_linear',
  linearStart: 0.00085,
  linearEnd: 0.012,
  timesteps: 1000,
};
const fakeModel = { id: 'm', family: 'sd1', sampling: SD1 } as unknown as ModelHandle;

describe('node declarations as ComfyUI', () => {
  const info = createBuiltinRegistry().objectInfo({ paths: new FolderPaths({ baseDir: '/nonexistent-weft' }) });

  it('ModelSamplingDiscrete / ContinuousEDM / ContinuousV / RescaleCFG', () => {
    expect(info.ModelSamplingDiscrete.input.required).toEqual({
      model: ['MODEL'],
      sampling: [['eps', 'v_prediction', 'lcm', 'x0', 'img_to_img']],
      zsnr: ['BOOLEAN', { default: false }],
    });
    expect(info.ModelSamplingContinuousEDM.input_order.required).toEqual(['model', 'sampling', 'sigma_max', 'sigma_min']);
    expect(info.ModelSamplingContinuousEDM.input.required.sampling).toEqual([
      ['v_prediction', 'edm', 'edm_playground_v2.5', 'eps', 'cosmos_rflow'],
    ]);
    expect(info.ModelSamplingContinuousEDM.input.required.sigma_max[1]).toMatchObject({ default: 120.0, min: 0, max: 1000 });
    expect(info.ModelSamplingContinuousEDM.input.required.sigma_min[1]).toMatchObject({ default: 0.002 });
    expect(info.ModelSamplingContinuousV.input.required.sigma_max[1]).toMatchObject({ default: 500.0 });
    expect(info.RescaleCFG.input.required.multiplier).toEqual(['FLOAT', { default: 0.7, min: 0, max: 1, step: 0.01 }]);
    for (const n of ['ModelSamplingDiscrete', 'ModelSamplingContinuousEDM', 'ModelSamplingContinuousV', 'RescaleCFG']) {
      expect(info[n].output).toEqual(['MODEL']);
      expect(info[n].category).toBe('advanced/model');
      expect(info[n].python_module).toBe('comfy_extras.nodes_model_advanced');
    }
  });

  it('SamplerEulerAncestralCFGPP and SamplerSASolver', () => {
    expect(info.SamplerEulerAncestralCFGPP.display_name).toBe('SamplerEulerAncestralCFG++');
    expect(info.SamplerEulerAncestralCFGPP.input.required.eta[1]).toMatchObject({ default: 1, min: 0, max: 1 });
    expect(info.SamplerEulerAncestralCFGPP.input.required.s_noise[1]).toMatchObject({ default: 1, min: 0, max: 10 });
    expect(info.SamplerSASolver.input_order.required).toEqual([
      'model',
      'eta',
      'sde_start_percent',
      'sde_end_percent',
      's_noise',
      'predictor_order',
      'corrector_order',
      'use_pece',
      'simple_order_2',
    ]);
    expect(info.SamplerSASolver.input.required.corrector_order).toEqual(['INT', { default: 4, min: 0, max: 6 }]);
    expect(info.SamplerSASolver.output).toEqual(['SAMPLER']);
  });
});

describe('sampler node values', () => {
  it('SamplerEulerAncestralCFGPP is euler_ancestral_cfg_pp with eta and s_noise', async () => {
    const s = await call<SamplerObject>(select.SamplerEulerAncestralCFGPP, { eta: 0.4, s_noise: 0.9 });
    expect(s.name).toBe('euler_ancestral_cfg_pp');
    expect(s.noise).toBe('default');
    expect(s.options).toEqual({ eta: 0.4, s_noise: 0.9 });
  });

  it("SamplerSASolver fixes its stochastic interval from its model's percent_to_sigma", async () => {
    const inputs = {
      eta: 0.8,
      sde_start_percent: 0.1,
      sde_end_percent: 0.7,
      s_noise: 1,
      predictor_order: 2,
      corrector_order: 3,
      use_pece: true,
      simple_order_2: false,
    };
    const s = await call<SamplerObject>(select.SamplerSASolver, { model: fakeModel, ...inputs });
    const ms = new ModelSamplingDiscrete(SD1);
    expect(s.name).toBe('sa_solver');
    expect(s.options).toEqual({
      eta: 0.8,
      sde_start_sigma: ms.percentToSigma(0.1),
      sde_end_sigma: ms.percentToSigma(0.7),
      s_noise: 1,
      predictor_order: 2,
      corrector_order: 3,
      use_pece: true,
      simple_order_2: false,
    });
    // under an EDM model sampling the same percents are its log-linear σ's
    const edm = await call<ModelHandle>(msNodes.ModelSamplingContinuousEDM, {
      model: fakeModel,
      sampling: 'eps',
      sigma_max: 80,
      sigma_min: 0.01,
    });
    const t = await call<SamplerObject>(select.SamplerSASolver, { model: edm, ...inputs });
    const lo = Math.log(Math.fround(0.01));
    const hi = Math.log(Math.fround(80));
    expect(Math.abs((t.options?.sde_start_sigma as number) - Math.exp((hi - lo) * 0.9 + lo))).toBeLessThan(1e-4);
  });

  it('ModelSamplingContinuousEDM refuses edm_playground_v2.5 for SD1, naming the latent format', async () => {
    await expect(
      call(msNodes.ModelSamplingContinuousEDM, { model: fakeModel, sampling: 'edm_playground_v2.5', sigma_max: 80, sigma_min: 0.002 }),
    ).rejects.toThrow(/Playground v2\.5.*latent format.*sd1/);
  });
});
