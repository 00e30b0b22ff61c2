import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { PLAYGROUND_V25_LATENT_FORMAT, SDXL_LATENT_FORMAT } from '../../engine/models/families/sdxl/latent.ts';
import { SDXL_VARIANT_MARKERS } from '../../engine/models/families/sdxl/make.ts';
import type { CheckpointParts } from '../../engine/models/families/family.ts';
import type { ModelHandle } from '../../engine/models/handles.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { makeTinySdxlCheckpoint } from '../../engine/models/make-model.ts';
import { ksample } from '../../engine/sampling/ksampler.ts';
import { modelSamplingFromConfig } from '../../engine/sampling/model-sampling-advanced.ts';
import { ksamplerStepSigmas } from '../../engine/sampling/sigmas.ts';
import * as msNodes from '../../nodes/model/model-sampling.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { karras, ksampleBesideReference } from './reference-loop.ts';
import { makeTinySdxl, type TinySdxl } from './tiny.ts';

/**
 * The SDXL variants ComfyUI's SDXL.model_type tells apart by marker keys, sampled through KSampler on
 * the tiny SDXL and held to a plain float64 loop over the reference UNet written from ComfyUI's
 * formulas (comfy/model_sampling.py EDM / V_PREDICTION over ModelSamplingContinuousEDM, and
 * latent_formats.SDXL_Playground_2_5's process_in/out).
 */

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const SEED = 14;
let playground: TinySdxl;
let cosxl: TinySdxl;
let plainFile: string;
beforeAll(async () => {
  playground = await makeTinySdxl(SEED, 'base', SDXL_VARIANT_MARKERS.playground);
  cosxl = await makeTinySdxl(SEED, 'base', SDXL_VARIANT_MARKERS.cosxl);
  // The same weights without markers (the generator draws them from the seed alone).
  plainFile = join(dirname(playground.file), 'weft-tiny-sdxl-plain.safetensors');
  await makeTinySdxlCheckpoint(plainFile, { seed: SEED });
}, 120_000);
afterAll(() => {
  for (const t of [playground, cosxl]) if (t) rmSync(t.dir, { recursive: true, force: true });
});

const load = (t: TinySdxl, file = t.file): Promise<CheckpointParts> =>
  new ModelManager({ cacheDir: join(t.dir, 'cache'), device: 'cpu', log: quiet }).loadCheckpoint(file);

describe('Playground v2.5 (edm_mean + edm_std): EDM with its per-channel latent format', () => {
  it('loads with the Playground latent format and ModelSamplingContinuousEDM edm, σ 0.002…80, σ_data 0.5', async () => {
    const parts = await load(playground);
    expect(playground.cfg.prediction).toBe('edm');
    expect(parts.model.latentFormat).toEqual(PLAYGROUND_V25_LATENT_FORMAT);
    expect(parts.model.sampling.override).toEqual({
      kind: 'continuous_edm',
      prediction: 'edm',
      sigmaMin: 0.002,
      sigmaMax: 80,
      sigmaData: 0.5,
    });
    const ms = modelSamplingFromConfig(parts.model.sampling);
    expect(ms.sigmaMin).toBeCloseTo(0.002, 9);
    expect(ms.sigmaMax / 80 - 1).toBeLessThan(1e-6);
    expect(ms.sigmaData).toBe(0.5);
  }, 120_000);

  it('KSampler euler/karras, 2 steps, cfg 4, from a non-empty latent: within 1e-4 of the float64 loop (process_in/out per channel)', async () => {
    const parts = await load(playground);
    const latent: Tensor = { shape: [1, 4, 4, 4], data: lcg(64, 5, 6) };
    const sigmas = karras(2, 0.002, 80);
    const mean = [-1.6574, 1.886, -1.383, 2.5155];
    const std = [8.4927, 5.9022, 6.5498, 5.2299];
    const ms = modelSamplingFromConfig(parts.model.sampling);
    const got = ksamplerStepSigmas(ms, { steps: 2, scheduler: 'karras', samplerName: 'euler', denoise: 1 });
    expect(relErr(got, sigmas)).toBeLessThan(1e-6);
    const { samples, expected } = await ksampleBesideReference(
      {
        tiny: playground,
        parts,
        latent,
        sigmas,
        cfg: 4,
        sigmaData: 0.5,
        sign: 1,
        processIn: (v, c) => ((v - mean[c]) * 0.5) / std[c],
        processOut: (v, c) => (v * std[c]) / 0.5 + mean[c],
      },
      { positive: 'a lighthouse at dusk', negative: 'blurry' },
      3n,
    );
    expect(samples.shape).toEqual([1, 4, 4, 4]);
    expect(relErr(samples.data, expected)).toBeLessThan(1e-4);
  }, 180_000);

  it('ModelSamplingContinuousEDM edm_playground_v2.5 (σ 80 / 0.002) on the same weights without markers gives the detected file’s latent bit for bit', async () => {
    const { model: detected, clip } = await load(playground);
    const plain = (await load(playground, plainFile)).model;
    expect(plain.latentFormat).toEqual(SDXL_LATENT_FORMAT);
    const [patched] = (await msNodes.ModelSamplingContinuousEDM.run(
      { model: plain, sampling: 'edm_playground_v2.5', sigma_max: 80, sigma_min: 0.002 },
      {} as NodeContext,
    )) as [ModelHandle];
    expect(patched.latentFormat).toEqual(PLAYGROUND_V25_LATENT_FORMAT);
    const pos = await clip.encodeText('a boat');
    const neg = await clip.encodeText('');
    const latent = { samples: { shape: [1, 4, 4, 4], data: lcg(64, 9, 4) } };
    const run = (model: ModelHandle) =>
      ksample({
        model,
        seed: 11n,
        steps: 2,
        cfg: 3,
        samplerName: 'euler',
        scheduler: 'karras',
        denoise: 0.8,
        positive: [pos],
        negative: [neg],
        latent,
      });
    const a = await run(detected);
    const b = await run(patched);
    expect(Array.from(b.samples.data)).toEqual(Array.from(a.samples.data));
    // and the plain model, ε over the discrete schedule, gives something else
    expect(relErr((await run(plain)).samples.data, a.samples.data)).toBeGreaterThan(1e-2);
  }, 180_000);
});

describe('CosXL (edm_vpred.sigma_max / sigma_min): v prediction over a continuous σ range read from the file', () => {
  it('detection reads the σ range from the tensors; KSampler euler/karras, 2 steps, cfg 5, empty latent: within 1e-4 of the float64 loop', async () => {
    expect(cosxl.cfg).toMatchObject({ prediction: 'v_prediction_edm', edmSigmas: { sigmaMin: Math.fround(0.002), sigmaMax: 120 } });
    const parts = await load(cosxl);
    expect(parts.model.latentFormat).toEqual(SDXL_LATENT_FORMAT);
    expect(parts.model.sampling.override).toMatchObject({
      kind: 'continuous_edm',
      prediction: 'v_prediction',
      sigmaMax: 120,
      sigmaData: 1,
    });
    const latent: Tensor = { shape: [1, 4, 4, 4], data: new Float32Array(64) };
    const k = 0.13025;
    const { samples, expected } = await ksampleBesideReference(
      {
        tiny: cosxl,
        parts,
        latent,
        sigmas: karras(2, 0.002, 120),
        cfg: 5,
        sigmaData: 1,
        sign: -1,
        processIn: (v) => v * k,
        processOut: (v) => v / k,
      },
      { positive: 'a red chair', negative: '' },
      21n,
    );
    expect(relErr(samples.data, expected)).toBeLessThan(1e-4);
  }, 180_000);
});
