import { beforeAll, describe, expect, it } from 'vitest';
import type { Latent } from '../../engine/core/tensor.ts';
import type { ModelHandle, ModelSamplingConfig, UNetRunArgs } from '../../engine/models/handles.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { cfgGuider } from '../../engine/sampling/guider.ts';
import { ksample } from '../../engine/sampling/ksampler.ts';
import { linspaceF32Vectorised, modelSamplingFromConfig } from '../../engine/sampling/model-sampling-advanced.ts';
import { ModelSamplingDiscrete } from '../../engine/sampling/model-sampling.ts';
import { rescaleCfg } from '../../engine/sampling/rescale-cfg.ts';
import { SAMPLER_NAMES } from '../../engine/sampling/samplers/index.ts';
import * as msNodes from '../../nodes/model/model-sampling.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { loadTinyParts } from './tiny-parts.ts';

/*
 * ModelSamplingDiscrete / ModelSamplingContinuousEDM / ModelSamplingContinuousV / RescaleCFG
 * (comfy/model_sampling.py, comfy_extras/nodes_model_advanced.py): the schedules and predictions
 * against their formulas written out here in float64 (ComfyUI's buffers are float32, so ~1e-6
 * relative), eps bit for bit against the model's own sampling, and KSampler runs on the tiny SD1
 * checkpoint that show the UNet gets the mode's timestep.
 */

const ctx = { progress: () => {}, log: { info: () => {}, warn: () => {}, error: () => {} } } as unknown as NodeContext;
const call = async (node: { run: (i: never, c: NodeContext) => unknown }, inputs: Record<string, unknown>): Promise<ModelHandle> =>
  ((await node.run(inputs as never, ctx)) as [ModelHandle])[0];
const SD1: ModelSamplingConfig = {
  prediction: 'eps',
  betaSchedule: 'scaled_linear',
  linearStart: 0.00085,
  linearEnd: 0.012,
  timesteps: 1000,
};
const relClose = (a: number, b: number, tol: number) =>
  expect(Math.abs(a - b), `${a} vs ${b}`).toBeLessThanOrEqual(tol * Math.max(Math.abs(b), 1e-30));

/** SD1's σ table in float64: ᾱ_t = Π(1 − β), β = linspace(√0.00085, √0.012)². */
function sd1Sigmas64(): Float64Array {
  const out = new Float64Array(1000);
  let ac = 1;
  for (let i = 0; i < 1000; i++) {
    const b = Math.sqrt(0.00085) + ((Math.sqrt(0.012) - Math.sqrt(0.00085)) * i) / 999;
    ac *= 1 - b * b;
    out[i] = Math.sqrt((1 - ac) / ac);
  }
  return out;
}

describe('ModelSamplingDiscrete', () => {
  it('eps (no zsnr) is the model’s own sampling, bit for bit', () => {
    const own = new ModelSamplingDiscrete(SD1);
    const patched = modelSamplingFromConfig({ ...SD1, override: { kind: 'discrete', prediction: 'eps', zsnr: false } });
    expect(patched.sigmas).toEqual(own.sigmas);
    const x = lcg(64, 1);
    const out = lcg(64, 2);
    for (const s of [14.6, 3.3, 0.5, 0.03]) {
      expect(patched.timestep(s)).toBe(own.timestep(s));
      expect(patched.calculateInput(s, x)).toEqual(own.calculateInput(s, x));
      expect(patched.calculateDenoised(s, out, x)).toEqual(own.calculateDenoised(s, out, x));
      expect(patched.noiseScaling(s, out, x, true)).toEqual(own.noiseScaling(s, out, x, true));
    }
    for (const p of [0, 0.2, 0.55, 1]) expect(patched.percentToSigma(p)).toBe(own.percentToSigma(p));
  });

  it('zsnr: √ᾱ shifted to 0 at the end and scaled to keep the start, the last ᾱ pinned to 4.8973451890853435e-08', () => {
    const ms = modelSamplingFromConfig({ ...SD1, override: { kind: 'discrete', prediction: 'v_prediction', zsnr: true } });
    const s64 = sd1Sigmas64();
    const r = Array.from(s64, (s) => 1 / Math.sqrt(s * s + 1));
    const [r0, rT] = [r[0], r[999]];
    for (const i of [0, 1, 100, 500, 900, 998]) {
      const a = (((r[i] - rT) * r0) / (r0 - rT)) ** 2;
      relClose(ms.sigmas[i], Math.sqrt((1 - a) / a), 1e-6);
    }
    relClose(ms.sigmaMax, Math.sqrt((1 - 4.8973451890853435e-8) / 4.8973451890853435e-8), 1e-6);
  });

  it('v_prediction: x0 = x·σ_d²/(σ²+σ_d²) − v·σ·σ_d/√(σ²+σ_d²)', () => {
    const ms = modelSamplingFromConfig({ ...SD1, override: { kind: 'discrete', prediction: 'v_prediction', zsnr: false } });
    const x = lcg(16, 3);
    const v = lcg(16, 4);
    const got = ms.calculateDenoised(2.5, v, x);
    for (let i = 0; i < 16; i++) relClose(got[i], (x[i] * 1) / (6.25 + 1) - (v[i] * 2.5) / Math.sqrt(7.25), 1e-5);
  });

  it('lcm: every 20th σ from the top, timesteps 20k + 19, and the LCM boundary blend of the eps x0', () => {
    const ms = modelSamplingFromConfig({ ...SD1, override: { kind: 'discrete', prediction: 'lcm', zsnr: false } });
    const full = sd1Sigmas64();
    expect(ms.sigmas.length).toBe(50);
    for (let k = 0; k < 50; k++) relClose(ms.sigmas[49 - k], full[999 - 20 * k], 1e-7);
    expect(ms.timestep(ms.sigmas[0])).toBe(19);
    expect(ms.timestep(ms.sigmaMax)).toBe(999);
    const sigma = ms.sigmas[30];
    const t = 30 * 20 + 19;
    const x = lcg(16, 5);
    const eps = lcg(16, 6);
    const got = ms.calculateDenoised(sigma, eps, x);
    const st = t * 10;
    const cSkip = 0.25 / (st * st + 0.25);
    const cOut = st / Math.sqrt(st * st + 0.25);
    for (let i = 0; i < 16; i++) relClose(got[i], cOut * (x[i] - eps[i] * sigma) + cSkip * x[i], 1e-5);
    // percent_to_sigma goes through the distilled sigma(): t = (percent·999 − 19)/20 into the 50-entry table
    const p = 0.3;
    const idx = ((1 - p) * 999 - 19) / 20;
    const lo = Math.floor(idx);
    const w = idx - lo;
    relClose(ms.percentToSigma(p), Math.exp((1 - w) * Math.log(ms.sigmas[lo]) + w * Math.log(ms.sigmas[lo + 1])), 1e-6);
  });

  it('x0 returns the UNet output; img_to_img also feeds the UNet x unscaled', () => {
    const x0 = modelSamplingFromConfig({ ...SD1, override: { kind: 'discrete', prediction: 'x0', zsnr: false } });
    const i2i = modelSamplingFromConfig({ ...SD1, override: { kind: 'discrete', prediction: 'img_to_img', zsnr: false } });
    const x = lcg(8, 7);
    const out = lcg(8, 8);
    expect(x0.calculateDenoised(3, out, x)).toEqual(out);
    expect(i2i.calculateDenoised(3, out, x)).toEqual(out);
    expect(i2i.calculateInput(3, x)).toEqual(x);
    for (let i = 0; i < 8; i++) relClose(x0.calculateInput(3, x)[i], x[i] / Math.sqrt(10), 1e-6);
  });
});

describe('ModelSamplingContinuousEDM / ContinuousV', () => {
  const edm = (prediction: 'eps' | 'v_prediction' | 'edm' | 'cosmos_rflow', sigmaData = 1) =>
    modelSamplingFromConfig({ ...SD1, override: { kind: 'continuous_edm', prediction, sigmaMin: 0.002, sigmaMax: 120, sigmaData } });

  it('σ table log-uniform over [σ_min, σ_max]; timestep 0.25·ln σ and back; percent_to_sigma log-linear', () => {
    const ms = edm('v_prediction');
    expect(ms.sigmas.length).toBe(1000);
    for (const i of [0, 1, 499, 500, 501, 998, 999])
      relClose(ms.sigmas[i], Math.exp(Math.log(0.002) + ((Math.log(120) - Math.log(0.002)) * i) / 999), 2e-6);
    for (const s of [0.01, 1, 80]) {
      relClose(ms.timestep(s), 0.25 * Math.log(s), 1e-6);
      relClose(ms.sigma(ms.timestep(s)), s, 1e-6);
    }
    relClose(ms.percentToSigma(0.25), Math.exp((Math.log(ms.sigmaMax) - Math.log(ms.sigmaMin)) * 0.75 + Math.log(ms.sigmaMin)), 1e-12);
    expect(ms.percentToSigma(0)).toBe(999999999.9);
    expect(ms.percentToSigma(1)).toBe(0);
  });

  it("torch.linspace's float32 kernel: exact ends, steps within an ulp of start + i·step", () => {
    const v = linspaceF32Vectorised(Math.log(0.002), Math.log(120), 1000);
    expect(v[0]).toBe(Math.fround(Math.log(0.002)));
    expect(v[999]).toBe(Math.fround(Math.log(120)));
    const step = (Math.log(120) - Math.log(0.002)) / 999;
    for (let i = 0; i < 1000; i++) expect(Math.abs(v[i] - (Math.log(0.002) + i * step))).toBeLessThan(4e-6);
  });

  it('edm (σ_d 0.5): x0 = x·σ_d²/(σ²+σ_d²) + out·σ·σ_d/√(σ²+σ_d²); inputs scaled by 1/√(σ²+σ_d²)', () => {
    const ms = edm('edm', 0.5);
    const x = lcg(8, 9);
    const out = lcg(8, 10);
    const s = 1.7;
    const den = ms.calculateDenoised(s, out, x);
    const inp = ms.calculateInput(s, x);
    for (let i = 0; i < 8; i++) {
      relClose(den[i], (x[i] * 0.25) / (s * s + 0.25) + (out[i] * s * 0.5) / Math.sqrt(s * s + 0.25), 1e-5);
      relClose(inp[i], x[i] / Math.sqrt(s * s + 0.25), 1e-6);
    }
  });

  it('cosmos_rflow: timestep σ/(σ+1), input x·(1 − t), x0 = x·(1 − t) − out·t, no max-denoise scaling', () => {
    const ms = edm('cosmos_rflow');
    const s = 3;
    const t = s / (s + 1);
    relClose(ms.timestep(s), t, 1e-6);
    const x = lcg(8, 11);
    const out = lcg(8, 12);
    const den = ms.calculateDenoised(s, out, x);
    for (let i = 0; i < 8; i++) relClose(den[i], x[i] * (1 - t) - out[i] * t, 1e-5);
    const n = ms.noiseScaling(s, out, x, true);
    for (let i = 0; i < 8; i++) relClose(n[i], out[i] * s + x[i], 1e-6);
  });

  it('continuous V: timestep = 2/π·atan σ', () => {
    const ms = modelSamplingFromConfig({
      ...SD1,
      override: { kind: 'continuous_v', prediction: 'v_prediction', sigmaMin: 0.03, sigmaMax: 500, sigmaData: 1 },
    });
    for (const s of [0.05, 1, 300]) {
      relClose(ms.timestep(s), (Math.atan(s) / Math.PI) * 2, 1e-6);
      // tan near π/2 magnifies the float32 timestep's rounding: ~σ·ulp(1) relative at σ = 300
      relClose(ms.sigma(ms.timestep(s)), s, s > 10 ? 3e-5 * s : 1e-5);
    }
  });
});

describe('RescaleCFG', () => {
  it('matches the formula: CFG on the v view, std-rescaled to the positive, blended by multiplier', () => {
    const shape = [2, 4, 3, 3];
    const n = 72;
    const x = lcg(n, 13).map((v) => v * 5);
    const cp = lcg(n, 14);
    const up = lcg(n, 15).map((v) => v * 0.8 + 0.1);
    const sigma = 2.2;
    const scale = 6;
    const mult = 0.7;
    const cond = x.map((v, i) => v - cp[i]);
    const uncond = x.map((v, i) => v - up[i]);
    const got = rescaleCfg(mult)({
      cond: { shape, data: cond },
      uncond: { shape, data: uncond },
      condScale: scale,
      sigma,
      input: { shape, data: x },
      condDenoised: { shape, data: cp },
      uncondDenoised: { shape, data: up },
    });
    const per = n / 2;
    const std = (a: number[]) => {
      const m = a.reduce((s, v) => s + v, 0) / a.length;
      return Math.sqrt(a.reduce((s, v) => s + (v - m) ** 2, 0) / (a.length - 1));
    };
    for (let b = 0; b < 2; b++) {
      const idx = Array.from({ length: per }, (_, k) => b * per + k);
      const xs = idx.map((i) => x[i] / (sigma * sigma + 1));
      const v = (pred: ArrayLike<number>) => idx.map((i, k) => ((xs[k] - (x[i] - pred[i])) * Math.sqrt(sigma * sigma + 1)) / sigma);
      const vc = v(cond);
      const vu = v(uncond);
      const vcfg = vu.map((u, k) => u + scale * (vc[k] - u));
      const ratio = std(vc) / std(vcfg);
      idx.forEach((i, k) => {
        const final = mult * vcfg[k] * ratio + (1 - mult) * vcfg[k];
        relClose(got.data[i], x[i] - (xs[k] - (final * sigma) / Math.sqrt(sigma * sigma + 1)), 2e-5);
      });
    }
  });
});

describe('on the tiny SD1 checkpoint', () => {
  let model: ModelHandle;
  let pos: Conditioning;
  let neg: Conditioning;
  beforeAll(async () => {
    ({ model, pos, neg } = await loadTinyParts());
  }, 60_000);
  const latent = (): Latent => ({ samples: { shape: [1, 4, 8, 8], data: new Float32Array(256) } });
  const run = (m: ModelHandle, samplerName = 'euler', cfg = 7) =>
    ksample({ model: m, seed: 5n, steps: 4, cfg, samplerName, scheduler: 'normal', positive: pos, negative: neg, latent: latent() });

  it('ModelSamplingDiscrete eps (zsnr off) gives the unpatched KSampler latent bit for bit; v_prediction and zsnr change it', async () => {
    const base = await run(model);
    const eps = await call(msNodes.ModelSamplingDiscrete, { model, sampling: 'eps', zsnr: false });
    expect((await run(eps)).samples.data).toEqual(base.samples.data);
    for (const [sampling, zsnr] of [
      ['v_prediction', false],
      ['eps', true],
      ['lcm', false],
      ['x0', false],
    ] as const) {
      const m = await call(msNodes.ModelSamplingDiscrete, { model, sampling, zsnr });
      const out = (await run(m)).samples.data;
      expect(out.every(Number.isFinite), sampling).toBe(true);
      expect(out, `${sampling} zsnr=${zsnr}`).not.toEqual(base.samples.data);
    }
  }, 120_000);

  it('ContinuousEDM: the UNet gets 0.25·ln σ as its timestep; discrete gets the table index', async () => {
    const seen: number[] = [];
    const spy = (m: ModelHandle): ModelHandle => ({
      ...m,
      unet: { ...m.unet, run: async (a: UNetRunArgs) => (seen.push(a.timesteps[0]), m.unet.run(a)) },
    });
    const edm = await call(msNodes.ModelSamplingContinuousEDM, { model, sampling: 'v_prediction', sigma_max: 120, sigma_min: 0.002 });
    await run(spy(edm), 'euler', 1);
    const guider = cfgGuider({ model: edm, positive: pos, negative: neg, cfg: 1 });
    expect(seen.length).toBe(4);
    const firstSigma = guider.modelSampling.sigmaMax;
    relClose(seen[0], 0.25 * Math.log(firstSigma), 1e-6);
    seen.length = 0;
    await run(spy(model), 'euler', 1);
    expect(seen[0]).toBe(999);
  }, 120_000);

  it('the patch survives a LoRA-style re-patch (withPatches) and RescaleCFG changes the result only with cfg ≠ 1', async () => {
    const edm = await call(msNodes.ModelSamplingContinuousEDM, { model, sampling: 'eps', sigma_max: 80, sigma_min: 0.01 });
    const again = edm.patching?.withPatches(edm.patching.patches);
    if (again) expect(again.sampling.override).toEqual(edm.sampling.override);
    const rescaled = await call(msNodes.RescaleCFG, { model, multiplier: 0.7 });
    const plain = await run(model);
    const r = await run(rescaled);
    expect(r.samples.data).not.toEqual(plain.samples.data);
    const zero = await call(msNodes.RescaleCFG, { model, multiplier: 0 });
    const z = (await run(zero)).samples.data;
    // multiplier 0 is plain CFG, through float32 x − (x − D) round trips at σ up to 14.6
    expect(relErr(z, plain.samples.data)).toBeLessThan(1e-4);
  }, 120_000);

  it('KSampler runs every new sampler on the tiny model, deterministic per seed', async () => {
    const names = [
      'euler_cfg_pp',
      'euler_ancestral_cfg_pp',
      'dpmpp_2s_ancestral_cfg_pp',
      'dpmpp_2m_cfg_pp',
      'res_multistep_cfg_pp',
      'res_multistep_ancestral_cfg_pp',
      'gradient_estimation_cfg_pp',
      'sa_solver',
      'sa_solver_pece',
    ];
    for (const name of names) {
      expect(SAMPLER_NAMES as readonly string[]).toContain(name);
      const a = (await run(model, name)).samples.data;
      const b = (await run(model, name)).samples.data;
      expect(a.every(Number.isFinite), name).toBe(true);
      expect(a, name).toEqual(b);
    }
    // CFG++ at cfg 1 still evaluates the negative (ComfyUI turns the cfg1 optimization off): twice the UNet rows
    let rows = 0;
    const counting: ModelHandle = {
      ...model,
      unet: { ...model.unet, run: async (a: UNetRunArgs) => ((rows += a.x.shape[0]), model.unet.run(a)) },
    };
    await run(counting, 'euler_cfg_pp', 1);
    expect(rows).toBe(8);
    rows = 0;
    await run(counting, 'euler', 1);
    expect(rows).toBe(4);
  }, 300_000);
});
