import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { unetForwardRef } from '../../engine/models/families/sd1/reference/unet.ts';
import type { SdxlClip } from '../../engine/models/families/sdxl/clip.ts';
import { sdxlAdmRef } from '../../engine/models/families/sdxl/reference/adm.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { ksample } from '../../engine/sampling/ksampler.ts';
import { modelSamplingFromConfig } from '../../engine/sampling/model-sampling-advanced.ts';
import { randomNoise } from '../../engine/sampling/noise/index.ts';
import { ksamplerStepSigmas } from '../../engine/sampling/sigmas.ts';
import { relErr } from '../models-onnx/tiny.ts';
import { makeTinySdxl, type TinySdxl } from './tiny.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
let tiny: TinySdxl;
beforeAll(async () => {
  tiny = await makeTinySdxl(8);
});
afterAll(() => tiny && rmSync(tiny.dir, { recursive: true, force: true }));

describe('KSampler on the tiny SDXL against a plain loop over the reference UNet', () => {
  it('euler, 2 steps, cfg 5: CLIPTextEncodeSDXL sizes in the positive y, latent-size defaults in the negative; latents within 1e-4', async () => {
    const parts = await new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet }).loadCheckpoint(tiny.file);
    const clip = parts.clip as SdxlClip;
    const pos = await clip.encodeSdxl('a red fox in snow', 'a fox');
    const neg = await clip.encodeText('blurry');
    const size = { width: 640, height: 512, cropW: 8, cropH: 0, targetWidth: 1024, targetHeight: 1024 };
    const latent = { samples: { shape: [1, 4, 8, 8], data: new Float32Array(256) } };
    const seed = 7n;
    const cfg = 5;
    const out = await ksample({
      model: parts.model,
      seed,
      steps: 2,
      cfg,
      samplerName: 'euler',
      scheduler: 'normal',
      positive: [{ ...pos, size }],
      negative: [neg],
      latent,
    });

    // The loop, written out: ComfyUI's KSampler with the euler sampler on an ε model.
    const ms = modelSamplingFromConfig(parts.model.sampling);
    const sigmas = ksamplerStepSigmas(ms, { steps: 2, scheduler: 'normal', samplerName: 'euler', denoise: 1 });
    const noise = randomNoise(seed).generate(latent);
    const scale = 0.13025;
    let x = Float32Array.from(noise, (n) => n * Math.sqrt(1 + sigmas[0] ** 2));
    const yPos = sdxlAdmRef(
      'base',
      pos.pooled.data,
      { width: 640, height: 512, crop_w: 8, crop_h: 0, target_width: 1024, target_height: 1024 },
      { width: 8, height: 8 },
      'positive',
      1,
    );
    const yNeg = sdxlAdmRef('base', neg.pooled.data, {}, { width: 8, height: 8 }, 'negative', 1);
    const eps = (xs: Float32Array, s: number, c: Tensor, y: Tensor): Float32Array => {
      const input: Tensor = { shape: [1, 4, 8, 8], data: xs.map((v) => v / Math.sqrt(s * s + 1)) };
      return unetForwardRef(tiny.cfg.unet, tiny.unet, input, Float32Array.of(ms.timestep(s)), c, undefined, { y }).data;
    };
    for (let i = 0; i < sigmas.length - 1; i++) {
      const s = sigmas[i];
      const ec = eps(x, s, pos.cond, yPos);
      const eu = eps(x, s, neg.cond, yNeg);
      const xs = x;
      const denoised = xs.map((v, k) => {
        const dc = v - s * ec[k];
        const du = v - s * eu[k];
        return du + (dc - du) * cfg;
      });
      x = xs.map((v, k) => v + ((v - denoised[k]) / s) * (sigmas[i + 1] - s));
    }
    const expected = x.map((v) => v / scale);
    expect(out.samples.shape).toEqual([1, 4, 8, 8]);
    expect(relErr(out.samples.data, expected)).toBeLessThan(1e-4);
  }, 120_000);
});
