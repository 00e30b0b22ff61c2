import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Latent } from '../../engine/core/tensor.ts';
import { Executor } from '../../engine/executor/executor.ts';
import type { ModelHandle } from '../../engine/models/handles.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import type { Guider } from '../../engine/sampling/guider.ts';
import { ksample } from '../../engine/sampling/ksampler.ts';
import { ModelSamplingDiscrete } from '../../engine/sampling/model-sampling.ts';
import type { LatentNoise } from '../../engine/sampling/noise/index.ts';
import type { SamplerObject } from '../../engine/sampling/samplers/index.ts';
import { calculateSigmas } from '../../engine/sampling/schedulers.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import '../../nodes/model/services.ts';
import * as custom from '../../nodes/sampling/custom-sampling.ts';
import * as select from '../../nodes/sampling/sampler-select.ts';
import * as sched from '../../nodes/sampling/schedulers.ts';
import { lcg, makeTiny, relErr } from '../models-onnx/tiny.ts';

/*
 * ComfyUI's custom-sampling nodes. Schedules are checked against their formulas written out here in
 * plain float64 (ComfyUI computes them in float32 torch ops, so they agree to float32 rounding,
 * ~1e-6 relative); the sampling nodes against ksample's latent on the tiny checkpoint, exactly.
 */

const ctx = { progress: () => {}, log: { info: () => {}, warn: () => {}, error: () => {} } } as unknown as NodeContext;
// The nodes' run functions are called directly here; their results are plain output tuples.
const call = async <T extends unknown[]>(
  node: { run: (i: never, c: NodeContext) => unknown },
  inputs: Record<string, unknown>,
): Promise<T> => (await node.run(inputs as never, ctx)) as T;
const sigmasOf = async (node: { run: (i: never, c: NodeContext) => unknown }, inputs: Record<string, unknown>): Promise<Float64Array> =>
  (await call<[Float64Array]>(node, inputs))[0];

const ms = new ModelSamplingDiscrete();
const tinySd1: Pick<ModelHandle, 'sampling'> = {
  sampling: { prediction: 'eps', betaSchedule: 'scaled_linear', linearStart: 0.00085, linearEnd: 0.012, timesteps: 1000 },
};

function expectClose(actual: ArrayLike<number>, expected: readonly number[], rel = 2e-6): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const tol = rel * Math.max(Math.abs(expected[i]), 1e-30);
    expect(Math.abs(actual[i] - expected[i]), `σ[${i}] = ${actual[i]} vs ${expected[i]}`).toBeLessThanOrEqual(tol);
  }
}

const ramp = (n: number, a: number, b: number): number[] =>
  Array.from({ length: n }, (_, i) => (n === 1 ? a : a + ((b - a) * i) / (n - 1)));

describe('scheduler nodes against their formulas', () => {
  const MAX = 14.614642;
  const MIN = 0.0291675;

  it('KarrasScheduler: (σmax^(1/ρ) + t·(σmin^(1/ρ) − σmax^(1/ρ)))^ρ, then 0', async () => {
    for (const [n, rho] of [
      [10, 7],
      [3, 3.5],
      [1, 7],
    ] as const) {
      const want = ramp(n, 0, 1).map((t) => (MAX ** (1 / rho) + t * (MIN ** (1 / rho) - MAX ** (1 / rho))) ** rho);
      expectClose(await sigmasOf(sched.KarrasScheduler, { steps: n, sigma_max: MAX, sigma_min: MIN, rho }), [...want, 0], 5e-6);
    }
  });

  it('ExponentialScheduler: uniform in ln σ, then 0', async () => {
    const want = ramp(8, Math.log(MAX), Math.log(MIN)).map(Math.exp);
    expectClose(await sigmasOf(sched.ExponentialScheduler, { steps: 8, sigma_max: MAX, sigma_min: MIN }), [...want, 0], 5e-6);
  });

  it('PolyexponentialScheduler: exp(r^ρ·(ln σmax − ln σmin) + ln σmin) for r from 1 to 0, then 0; ρ = 1 is the exponential schedule', async () => {
    for (const rho of [1, 2.5, 0.5]) {
      const want = ramp(9, 1, 0).map((r) => Math.exp(r ** rho * (Math.log(MAX) - Math.log(MIN)) + Math.log(MIN)));
      expectClose(await sigmasOf(sched.PolyexponentialScheduler, { steps: 9, sigma_max: MAX, sigma_min: MIN, rho }), [...want, 0], 5e-6);
    }
    const exp = await sigmasOf(sched.ExponentialScheduler, { steps: 9, sigma_max: MAX, sigma_min: MIN });
    expectClose(await sigmasOf(sched.PolyexponentialScheduler, { steps: 9, sigma_max: MAX, sigma_min: MIN, rho: 1 }), [...exp], 5e-6);
  });

  it('LaplaceScheduler: exp(μ − β·sign(½ − x)·ln(1 − 2|½ − x| + 1e-5)) clamped, no trailing 0 (as ComfyUI)', async () => {
    const [mu, beta] = [0.3, 0.7];
    const want = ramp(7, 0, 1).map((x) => {
      const s = Math.exp(mu - beta * Math.sign(0.5 - x) * Math.log(1 - 2 * Math.abs(0.5 - x) + 1e-5));
      return Math.min(Math.max(s, MIN), MAX);
    });
    const got = await sigmasOf(sched.LaplaceScheduler, { steps: 7, sigma_max: MAX, sigma_min: MIN, mu, beta });
    expectClose(got, want, 5e-6);
    // Hand-derived from ComfyUI's code with the defaults: the ends are clamped, the middle is e^μ = 1.
    const d = await sigmasOf(sched.LaplaceScheduler, { steps: 5, sigma_max: MAX, sigma_min: MIN, mu: 0, beta: 0.5 });
    expect(d.length).toBe(5);
    expect([d[0], d[2], d[4]]).toEqual([Math.fround(MAX), 1, Math.fround(MIN)]);
  });

  it('VPScheduler: √(exp(β_d·t²/2 + β_min·t) − 1) for t from 1 to eps_s, then 0', async () => {
    const want = ramp(6, 1, 1e-3).map((t) => Math.sqrt(Math.expm1((19.9 * t * t) / 2 + 0.1 * t)));
    expectClose(await sigmasOf(sched.VPScheduler, { steps: 6, beta_d: 19.9, beta_min: 0.1, eps_s: 1e-3 }), [...want, 0], 1e-5);
  });

  it("SDTurboScheduler: σ at timesteps 999, 899, … (the model's training σs), from 10 − ⌊10·denoise⌋, then 0", async () => {
    // ComfyUI's sigma(t) at an integer t is exp(log_sigmas[t]) in float32, which can be an ulp off sigmas[t].
    const at = (ts: number[]) => [...ts.map((t) => Math.fround(Math.exp(ms.logSigmas[t]))), 0];
    expect(Array.from(await sigmasOf(sched.SDTurboScheduler, { model: tinySd1, steps: 1, denoise: 1 }))).toEqual(at([999]));
    expect(Array.from(await sigmasOf(sched.SDTurboScheduler, { model: tinySd1, steps: 4, denoise: 1 }))).toEqual(at([999, 899, 799, 699]));
    expect(Array.from(await sigmasOf(sched.SDTurboScheduler, { model: tinySd1, steps: 2, denoise: 0.5 }))).toEqual(at([499, 399]));
    expect(Array.from(await sigmasOf(sched.SDTurboScheduler, { model: tinySd1, steps: 10, denoise: 0.3 }))).toEqual(at([299, 199, 99]));
  });

  it('BetaSamplingScheduler and BasicScheduler: the model-based schedules (BasicScheduler cuts the ⌊steps/denoise⌋ schedule)', async () => {
    const beta = await sigmasOf(sched.BetaSamplingScheduler, { model: tinySd1, steps: 12, alpha: 0.6, beta: 0.6 });
    expect(Array.from(beta)).toEqual(Array.from(calculateSigmas(ms, 'beta', 12)));
    const full = calculateSigmas(ms, 'karras', 25);
    expect(Array.from(await sigmasOf(sched.BasicScheduler, { model: tinySd1, scheduler: 'karras', steps: 10, denoise: 0.4 }))).toEqual(
      Array.from(full.slice(-11)),
    );
    expect(await sigmasOf(sched.BasicScheduler, { model: tinySd1, scheduler: 'normal', steps: 10, denoise: 0 })).toHaveLength(0);
    expect(Array.from(await sigmasOf(sched.BasicScheduler, { model: tinySd1, scheduler: 'normal', steps: 7, denoise: 1 }))).toEqual(
      Array.from(calculateSigmas(ms, 'normal', 7)),
    );
  });

  it("AlignYourStepsScheduler: NVIDIA's 10-step SD1 levels as published, log-linear interpolation otherwise, denoise keeps round(steps·denoise) steps", async () => {
    const SD1 = [
      14.6146412293, 6.4745760956, 3.8636745985, 2.694615152, 1.8841921177, 1.3943805092, 0.9642583904, 0.6523686016, 0.3977456272,
      0.1515232662, 0.0291671582,
    ];
    const ten = await sigmasOf(sched.AlignYourStepsScheduler, { model_type: 'SD1', steps: 10, denoise: 1 });
    expect(Array.from(ten)).toEqual([...SD1.slice(0, 10).map(Math.fround), 0]);
    // Interpolated: the i-th of n+1 points sits at 10·i/n along the table, linear in ln σ between entries.
    const n = 16;
    const want = Array.from({ length: n + 1 }, (_, i) => {
      const pos = (10 * i) / n;
      const j = Math.min(Math.floor(pos), 9);
      const f = pos - j;
      return Math.exp((1 - f) * Math.log(SD1[j]) + f * Math.log(SD1[j + 1]));
    });
    want[n] = 0;
    expectClose(await sigmasOf(sched.AlignYourStepsScheduler, { model_type: 'SD1', steps: n, denoise: 1 }), want, 1e-6);
    // round(10·0.25) = round(2.5) = 2 in Python: the last 3 levels, the final one replaced by 0.
    expect(Array.from(await sigmasOf(sched.AlignYourStepsScheduler, { model_type: 'SD1', steps: 10, denoise: 0.25 }))).toEqual(
      [SD1[8], SD1[9], 0].map(Math.fround),
    );
    expect(await sigmasOf(sched.AlignYourStepsScheduler, { model_type: 'SD1', steps: 10, denoise: 0 })).toHaveLength(0);
  });

  it("GITSScheduler: the table's schedule (values copied from ComfyUI's nodes_gits.py), interpolated past 20 steps, denoise and bad coefficients", async () => {
    const gits = async (coeff: number, steps: number, denoise = 1) =>
      Array.from(await sigmasOf(sched.GITSScheduler, { coeff, steps, denoise }));
    const row12x10 = [
      14.61464119, 5.85520077, 2.84484982, 1.67050016, 1.08895338, 0.74807048, 0.50118381, 0.32104823, 0.19894916, 0.09824532, 0,
    ];
    expect(await gits(1.2, 10)).toEqual(row12x10.map(Math.fround));
    expect(await gits(0.8, 2)).toEqual([14.61464119, 7.49001646, 0].map(Math.fround));
    expect(await gits(1.2, 10, 0.5)).toEqual(row12x10.slice(5).map(Math.fround));
    const last15 = [
      14.61464119, 2.45070267, 1.41535246, 0.95350921, 0.72133851, 0.57119018, 0.4783645, 0.43325692, 0.38853383, 0.36617002, 0.34370604,
      0.32104823, 0.29807833, 0.27464288, 0.25053367, 0.22545385, 0.19894916, 0.17026083, 0.13792117, 0.09824532, 0.02916753,
    ];
    const n = 30;
    const want = Array.from({ length: n + 1 }, (_, i) => {
      const pos = (20 * i) / n;
      const j = Math.min(Math.floor(pos), 19);
      const f = pos - j;
      return Math.exp((1 - f) * Math.log(last15[j]) + f * Math.log(last15[j + 1]));
    });
    want[n] = 0;
    expectClose(await gits(1.5, n), want, 1e-6);
    await expect(gits(0.83, 10)).rejects.toThrow(/coeff/);
  });
});

describe('sigma list nodes', () => {
  const s = Float64Array.from([10, 5, 2, 1, 0]);

  it('SplitSigmas: [0, step] and [step, end], sharing σ_step', async () => {
    const [hi, lo] = await call<[Float64Array, Float64Array]>(sched.SplitSigmas, { sigmas: s, step: 2 });
    expect([Array.from(hi), Array.from(lo)]).toEqual([
      [10, 5, 2],
      [2, 1, 0],
    ]);
    const [hi0, lo0] = await call<[Float64Array, Float64Array]>(sched.SplitSigmas, { sigmas: s, step: 0 });
    expect([Array.from(hi0), Array.from(lo0)]).toEqual([[10], [10, 5, 2, 1, 0]]);
    const [hiBig, loBig] = await call<[Float64Array, Float64Array]>(sched.SplitSigmas, { sigmas: s, step: 99 });
    expect([Array.from(hiBig), Array.from(loBig)]).toEqual([[10, 5, 2, 1, 0], []]);
  });

  it('SplitSigmasDenoise: the last round(steps·denoise) steps are low_sigmas (Python slicing at 0 included)', async () => {
    const split = async (denoise: number) =>
      (await call<[Float64Array, Float64Array]>(sched.SplitSigmasDenoise, { sigmas: s, denoise })).map((a) => Array.from(a));
    expect(await split(0.5)).toEqual([
      [10, 5, 2],
      [2, 1, 0],
    ]);
    expect(await split(0.75)).toEqual([
      [10, 5],
      [5, 2, 1, 0],
    ]);
    expect(await split(0.25)).toEqual([
      [10, 5, 2, 1],
      [1, 0],
    ]);
    // sigmas[:-4] of five keeps the first one.
    expect(await split(1)).toEqual([[10], [10, 5, 2, 1, 0]]);
    expect(await split(0)).toEqual([[], [0]]);
    // round(4·0.625) = round(2.5) = 2, round(4·0.875) = round(3.5) = 4
    expect(await split(0.625)).toEqual([
      [10, 5, 2],
      [2, 1, 0],
    ]);
    expect(await split(0.875)).toEqual([[10], [10, 5, 2, 1, 0]]);
  });

  it('FlipSigmas reverses and lifts a leading 0 to 1e-4; SetFirstSigma replaces σ_0 in a copy', async () => {
    expect(Array.from(await sigmasOf(sched.FlipSigmas, { sigmas: s }))).toEqual([Math.fround(1e-4), 1, 2, 5, 10]);
    expect(Array.from(await sigmasOf(sched.FlipSigmas, { sigmas: Float64Array.from([3, 1]) }))).toEqual([1, 3]);
    expect(await sigmasOf(sched.FlipSigmas, { sigmas: new Float64Array(0) })).toHaveLength(0);
    const set = await sigmasOf(sched.SetFirstSigma, { sigmas: s, sigma: 136 });
    expect(Array.from(set)).toEqual([136, 5, 2, 1, 0]);
    expect(s[0]).toBe(10);
  });
});

describe('ExtendIntermediateSigmas, SamplingPercentToSigma, ManualSigmas', () => {
  it('ExtendIntermediateSigmas inserts steps − 1 σs in each gap whose upper σ lies in [end_at, start_at], at the spacing’s fractions', async () => {
    const s = Float64Array.from([14, 8, 4, 1, 0]);
    const ext = async (steps: number, start: number, end: number, spacing: string) =>
      Array.from(await sigmasOf(sched.ExtendIntermediateSigmas, { sigmas: s, steps, start_at_sigma: start, end_at_sigma: end, spacing }));
    expect(await ext(2, -1, 12, 'linear')).toEqual([14, 11, 8, 4, 1, 0]);
    expect(await ext(2, 9, 1, 'linear')).toEqual([14, 8, 6, 4, 2.5, 1, 0.5, 0]);
    expect(await ext(1, -1, 0, 'linear')).toEqual([14, 8, 4, 1, 0]);
    const cos = await ext(3, -1, 12, 'cosine');
    const sine = await ext(3, -1, 12, 'sine');
    const frac = [1 / 3, 2 / 3];
    expectClose(cos, [14, ...frac.map((x) => 14 - 6 * Math.sin((x * Math.PI) / 2)), 8, 4, 1, 0], 1e-6);
    expectClose(sine, [14, ...frac.map((x) => 14 - 6 * (1 - Math.cos((x * Math.PI) / 2))), 8, 4, 1, 0], 1e-6);
  });

  it("SamplingPercentToSigma: the model's σ at (1 − p)·999, ComfyUI's sentinels at 0 and 1 unless the actual σ is asked for", async () => {
    const at = async (p: number, actual = false) =>
      (await call<[number]>(sched.SamplingPercentToSigma, { model: tinySd1, sampling_percent: p, return_actual_sigma: actual }))[0];
    expect(await at(0)).toBe(999999999.9);
    expect(await at(1)).toBe(0);
    expect(await at(0, true)).toBe(ms.sigmaMax);
    expect(await at(1, true)).toBe(ms.sigmaMin);
    expect(await at(0.5)).toBe(ms.sigma(499.5));
  });

  it('ManualSigmas: the numbers of the text as float32', async () => {
    expect(Array.from(await sigmasOf(sched.ManualSigmas, { sigmas: '14.6, 7 ,1.5;0' }))).toEqual([14.6, 7, 1.5, 0].map(Math.fround));
    expect(Array.from(await sigmasOf(sched.ManualSigmas, { sigmas: '-1 +.5' }))).toEqual([-1, 0.5]);
    expect(await sigmasOf(sched.ManualSigmas, { sigmas: 'none' })).toHaveLength(0);
  });
});

describe('node declarations as ComfyUI', () => {
  const info = createBuiltinRegistry().objectInfo({ paths: new FolderPaths({ baseDir: '/nonexistent-weft' }) });

  it('SamplerCustom and SamplerCustomAdvanced: inputs, outputs output/denoised_output, category', () => {
    expect(info.SamplerCustom.input_order.required).toEqual([
      'model',
      'add_noise',
      'noise_seed',
      'cfg',
      'positive',
      'negative',
      'sampler',
      'sigmas',
      'latent_image',
    ]);
    expect(info.SamplerCustom.output).toEqual(['LATENT', 'LATENT']);
    expect(info.SamplerCustom.output_name).toEqual(['output', 'denoised_output']);
    expect(info.SamplerCustom.category).toBe('sampling/custom_sampling');
    expect(info.SamplerCustomAdvanced.input.required).toEqual({
      noise: ['NOISE'],
      guider: ['GUIDER'],
      sampler: ['SAMPLER'],
      sigmas: ['SIGMAS'],
      latent_image: ['LATENT'],
    });
    expect(info.SamplerCustomAdvanced.python_module).toBe('comfy_extras.nodes_custom_sampler');
  });

  it('scheduler, sampler, guider and noise nodes: outputs and a few defaults', () => {
    expect(info.BasicScheduler.input.required.steps).toEqual(['INT', { default: 20, min: 1, max: 10000 }]);
    expect(info.SDTurboScheduler.input.required.steps).toEqual(['INT', { default: 1, min: 1, max: 10 }]);
    expect(info.SplitSigmas.output_name).toEqual(['high_sigmas', 'low_sigmas']);
    expect(info.KSamplerSelect.output).toEqual(['SAMPLER']);
    expect(info.CFGGuider.display_name).toBe('CFG Guider');
    expect(info.DisableNoise.output).toEqual(['NOISE']);
    expect(info.AddNoise.experimental).toBe(true);
    expect(info.AlignYourStepsScheduler.python_module).toBe('comfy_extras.nodes_align_your_steps');
    for (const n of [
      'KarrasScheduler',
      'ExponentialScheduler',
      'PolyexponentialScheduler',
      'LaplaceScheduler',
      'VPScheduler',
      'BetaSamplingScheduler',
    ])
      expect(info[n].output, n).toEqual(['SIGMAS']);
  });
});

describe('the sampling nodes on the tiny checkpoint', () => {
  let model: ModelHandle;
  let pos: Conditioning;
  let neg: Conditioning;
  let tinyDir: string;
  let manager: ModelManager;
  const empty = (b = 1): Latent => ({ samples: { shape: [b, 4, 8, 8], data: new Float32Array(b * 256) } });
  const base = { seed: 42n, steps: 5, cfg: 6, scheduler: 'normal' } as const;

  beforeAll(async () => {
    const quiet = { info: () => {}, warn: () => {}, error: () => {} };
    const tiny = await makeTiny(7);
    tinyDir = tiny.dir;
    manager = new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet });
    const parts = await manager.loadCheckpoint(tiny.file);
    model = parts.model;
    pos = [await parts.clip.encodeText('a red fox in the snow')];
    neg = [await parts.clip.encodeText('blurry')];
  }, 120_000);

  const sigmas = (scheduler: string, steps: number, denoise = 1) => sigmasOf(sched.BasicScheduler, { model, scheduler, steps, denoise });
  const sampler = async (name: string) => (await call<[SamplerObject]>(select.KSamplerSelect, { sampler_name: name }))[0];
  const samplerCustom = (inputs: Record<string, unknown>) => call<[Latent, Latent]>(custom.SamplerCustom, inputs);
  const advanced = (inputs: Record<string, unknown>) => call<[Latent, Latent]>(custom.SamplerCustomAdvanced, inputs);
  const cfgGuider = async (cfg: number) => (await call<[Guider]>(custom.CFGGuider, { model, positive: pos, negative: neg, cfg }))[0];
  const noise = async (seed: number) => (await call<[LatentNoise]>(custom.RandomNoise, { noise_seed: seed }))[0];

  for (const samplerName of ['euler', 'euler_ancestral']) {
    it(`SamplerCustom (add_noise, cfg, ${samplerName}, BasicScheduler) is KSampler's latent exactly`, async () => {
      const lat = empty(2);
      const ref = await ksample({ ...base, model, samplerName, positive: pos, negative: neg, latent: lat });
      const [out] = await samplerCustom({
        model,
        add_noise: true,
        noise_seed: 42,
        cfg: 6,
        positive: pos,
        negative: neg,
        sampler: await sampler(samplerName),
        sigmas: await sigmas('normal', 5),
        latent_image: lat,
      });
      expect(out.samples.data).toEqual(ref.samples.data);
    });
  }

  it("SamplerCustomAdvanced(RandomNoise, CFGGuider, KSamplerSelect, BasicScheduler) is KSampler's latent exactly, img2img with a noise mask and batch_index too", async () => {
    const lat: Latent = {
      samples: { shape: [2, 4, 8, 8], data: lcg(512, 3) },
      noiseMask: { shape: [1, 1, 8, 8], data: new Float32Array(64).fill(1, 0, 40) },
      batchIndex: [3, 5],
    };
    const ref = await ksample({ ...base, model, samplerName: 'dpmpp_2m', positive: pos, negative: neg, latent: lat, denoise: 0.6 });
    const [out, denoised] = await advanced({
      noise: await noise(42),
      guider: await cfgGuider(6),
      sampler: await sampler('dpmpp_2m'),
      sigmas: await sigmas('normal', 5, 0.6),
      latent_image: lat,
    });
    expect(out.samples.data).toEqual(ref.samples.data);
    expect([out.noiseMask, out.batchIndex, denoised.noiseMask, denoised.batchIndex]).toEqual([
      lat.noiseMask,
      lat.batchIndex,
      lat.noiseMask,
      lat.batchIndex,
    ]);
  });

  it("SplitSigmas + two SamplerCustomAdvanced runs (the second with DisableNoise) give KSamplerAdvanced's two-pass latent exactly", async () => {
    const lat = empty();
    const args = { ...base, steps: 6, model, samplerName: 'euler', positive: pos, negative: neg };
    const first = await ksample({ ...args, latent: lat, startStep: 0, lastStep: 3, forceFullDenoise: false });
    const ref = await ksample({ ...args, latent: first, disableNoise: true, startStep: 3, lastStep: 10000, forceFullDenoise: true });
    const [high, low] = await call<[Float64Array, Float64Array]>(sched.SplitSigmas, { sigmas: await sigmas('normal', 6), step: 3 });
    const guider = await cfgGuider(6);
    const euler = await sampler('euler');
    const [mid, midDenoised] = await advanced({ noise: await noise(42), guider, sampler: euler, sigmas: high, latent_image: lat });
    expect(mid.samples.data).toEqual(first.samples.data);
    // Stopped at σ_3 > 0: the result still holds noise, the last step's x0 prediction does not.
    expect(relErr(midDenoised.samples.data, mid.samples.data)).toBeGreaterThan(1e-2);
    const [disabled] = await call<[LatentNoise]>(custom.DisableNoise, {});
    const [out, denoised] = await advanced({ noise: disabled, guider, sampler: euler, sigmas: low, latent_image: mid });
    expect(out.samples.data).toEqual(ref.samples.data);
    // Euler's last step onto σ = 0 lands on that step's x0: denoised_output is the output up to rounding.
    expect(relErr(denoised.samples.data, out.samples.data)).toBeLessThan(1e-5);
  });

  it('empty sigmas: both outputs are the input latent', async () => {
    const lat: Latent = { samples: { shape: [1, 4, 8, 8], data: lcg(256, 9) } };
    const [out, denoised] = await advanced({
      noise: await noise(1),
      guider: await cfgGuider(6),
      sampler: await sampler('euler'),
      sigmas: new Float64Array(0),
      latent_image: lat,
    });
    expect(out.samples.data).toEqual(lat.samples.data);
    expect(denoised).toBe(out);
  });

  it('SamplerEulerAncestral passes eta and s_noise: eta 1 is KSamplerSelect’s euler_ancestral, eta 0 is (up to rounding) euler', async () => {
    const run = async (s: SamplerObject) =>
      (
        await advanced({
          noise: await noise(7),
          guider: await cfgGuider(6),
          sampler: s,
          sigmas: await sigmas('karras', 4),
          latent_image: empty(),
        })
      )[0].samples.data;
    const [eta1] = await call<[SamplerObject]>(select.SamplerEulerAncestral, { eta: 1, s_noise: 1 });
    const [eta0] = await call<[SamplerObject]>(select.SamplerEulerAncestral, { eta: 0, s_noise: 1 });
    const ancestral = await run(await sampler('euler_ancestral'));
    expect(await run(eta1)).toEqual(ancestral);
    const plain = await run(await sampler('euler'));
    expect(relErr(await run(eta0), plain)).toBeLessThan(1e-5);
    expect(relErr(ancestral, plain)).toBeGreaterThan(1e-3);
  });

  it('SamplerSEEDS2 and SamplerER_SDE: their defaults are seeds_2 and er_sde; phi_2 with r 1, eta 0 is exp_heun_2_x0; ODE is deterministic', async () => {
    const run = async (s: SamplerObject, seed = 5) =>
      (
        await advanced({
          noise: await noise(seed),
          guider: await cfgGuider(6),
          sampler: s,
          sigmas: await sigmas('karras', 4),
          latent_image: empty(),
        })
      )[0].samples.data;
    const node = async (n: { run: (i: never, c: NodeContext) => unknown }, inputs: Record<string, unknown>) =>
      (await call<[SamplerObject]>(n, inputs))[0];
    expect(await run(await node(select.SamplerSEEDS2, { solver_type: 'phi_1', eta: 1, s_noise: 1, r: 0.5 }))).toEqual(
      await run(await sampler('seeds_2')),
    );
    const heun = await run(await sampler('exp_heun_2_x0'));
    expect(await run(await node(select.SamplerSEEDS2, { solver_type: 'phi_2', eta: 0, s_noise: 0, r: 1 }))).toEqual(heun);
    expect(relErr(await run(await node(select.SamplerSEEDS2, { solver_type: 'phi_2', eta: 0, s_noise: 0, r: 0.5 })), heun)).toBeGreaterThan(
      1e-4,
    );
    expect(await run(await node(select.SamplerER_SDE, { solver_type: 'ER-SDE', max_stage: 3, eta: 1, s_noise: 1 }))).toEqual(
      await run(await sampler('er_sde')),
    );
    const ode = await node(select.SamplerER_SDE, { solver_type: 'ODE', max_stage: 3, eta: 1, s_noise: 1 });
    expect(await run(ode, 5)).not.toEqual(await run(await sampler('er_sde')));
    // No noise enters an ODE run: the step noise's seed does not matter (the start noise is the same).
    const odeA = await advanced({
      noise: await noise(5),
      guider: await cfgGuider(6),
      sampler: ode,
      sigmas: await sigmas('karras', 4),
      latent_image: empty(),
    });
    const start = await noise(5);
    const otherStepSeed: LatentNoise = { seed: 99n, generate: (l) => start.generate(l) };
    const odeB = await advanced({
      noise: otherStepSeed,
      guider: await cfgGuider(6),
      sampler: ode,
      sigmas: await sigmas('karras', 4),
      latent_image: empty(),
    });
    expect(odeA[0].samples.data).toEqual(odeB[0].samples.data);
    const sdeB = await advanced({
      noise: otherStepSeed,
      guider: await cfgGuider(6),
      sampler: await sampler('er_sde'),
      sigmas: await sigmas('karras', 4),
      latent_image: empty(),
    });
    expect(relErr(sdeB[0].samples.data, await run(await sampler('er_sde')))).toBeGreaterThan(1e-4);
    const sde = await node(select.SamplerER_SDE, { solver_type: 'Reverse-time SDE', max_stage: 3, eta: 1, s_noise: 1 });
    expect(relErr(await run(sde), await run(ode))).toBeGreaterThan(1e-4);
  });

  it('DualCFGGuider: with cond2 = negative it is CFG at cfg_conds (both styles); cfg 1 and 1 is BasicGuider exactly', async () => {
    const run = async (guider: Guider) =>
      (
        await advanced({
          noise: await noise(3),
          guider,
          sampler: await sampler('euler'),
          sigmas: await sigmas('normal', 3),
          latent_image: empty(),
        })
      )[0].samples.data;
    const dual = async (cfg1: number, cfg2: number, style: string) =>
      (
        await call<[Guider]>(custom.DualCFGGuider, {
          model,
          cond1: pos,
          cond2: neg,
          negative: neg,
          cfg_conds: cfg1,
          cfg_cond2_negative: cfg2,
          style,
        })
      )[0];
    const cfg = await run(await cfgGuider(6));
    expect(relErr(await run(await dual(6, 3, 'regular')), cfg)).toBeLessThan(1e-5);
    expect(relErr(await run(await dual(6, 1, 'nested')), cfg)).toBeLessThan(1e-5);
    expect(relErr(await run(await dual(6, 3, 'nested')), cfg)).toBeGreaterThan(1e-3);
    const [basic] = await call<[Guider]>(custom.BasicGuider, { model, conditioning: pos });
    expect(await run(await dual(1, 1, 'regular'))).toEqual(await run(basic));
  });

  it('AddNoise: (latent·k + noise·|σ_0 − σ_last|)/k, an all-zero latent not scaled in', async () => {
    const s = await sigmas('normal', 4);
    const scale = Math.abs(s[0] - s[s.length - 1]);
    const k = model.latentFormat.scaleFactor;
    const nz = await noise(11);
    const lat: Latent = { samples: { shape: [1, 4, 8, 8], data: lcg(256, 2) }, batchIndex: [2] };
    const n = nz.generate(lat);
    const [out] = await call<[Latent]>(custom.AddNoise, { model, noise: nz, sigmas: s, latent_image: lat });
    expect(
      relErr(
        out.samples.data,
        lat.samples.data.map((v, i) => (v * k + n[i] * scale) / k),
      ),
    ).toBeLessThan(1e-6);
    expect(out.batchIndex).toEqual([2]);
    const [fromEmpty] = await call<[Latent]>(custom.AddNoise, { model, noise: nz, sigmas: s, latent_image: empty() });
    const n0 = nz.generate(empty());
    expect(
      relErr(
        fromEmpty.samples.data,
        n0.map((v) => (v * scale) / k),
      ),
    ).toBeLessThan(1e-6);
    const [same] = await call<[Latent]>(custom.AddNoise, { model, noise: nz, sigmas: new Float64Array(0), latent_image: lat });
    expect(same).toBe(lat);
  });

  it('a workflow of custom-sampling nodes runs through the Executor and gives KSampler’s latent', async () => {
    const captured: Record<string, Latent> = {};
    const registry = createBuiltinRegistry();
    registry.register(
      defineNode({
        name: 'TestCaptureLatent',
        inputs: { required: { samples: { type: 'LATENT' }, tag: { type: 'STRING' } } },
        outputs: [],
        outputNode: true,
        run: ({ samples, tag }) => {
          captured[tag] = samples;
          return [];
        },
      }),
    );
    const ex = new Executor(registry, { paths: new FolderPaths({ baseDir: tinyDir, modelsDir: tinyDir }), services: { models: manager } });
    const prompt = {
      ckpt: { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'weft-tiny-sd1.safetensors' } },
      pos: { class_type: 'CLIPTextEncode', inputs: { text: 'a red fox in the snow', clip: ['ckpt', 1] } },
      neg: { class_type: 'CLIPTextEncode', inputs: { text: 'blurry', clip: ['ckpt', 1] } },
      lat: { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
      noise: { class_type: 'RandomNoise', inputs: { noise_seed: 42 } },
      guider: { class_type: 'CFGGuider', inputs: { model: ['ckpt', 0], positive: ['pos', 0], negative: ['neg', 0], cfg: 6 } },
      sampler: { class_type: 'KSamplerSelect', inputs: { sampler_name: 'euler_ancestral' } },
      sigmas: { class_type: 'BasicScheduler', inputs: { model: ['ckpt', 0], scheduler: 'normal', steps: 5, denoise: 1 } },
      custom: {
        class_type: 'SamplerCustomAdvanced',
        inputs: { noise: ['noise', 0], guider: ['guider', 0], sampler: ['sampler', 0], sigmas: ['sigmas', 0], latent_image: ['lat', 0] },
      },
      ks: {
        class_type: 'KSampler',
        inputs: {
          model: ['ckpt', 0],
          seed: 42,
          steps: 5,
          cfg: 6,
          sampler_name: 'euler_ancestral',
          scheduler: 'normal',
          positive: ['pos', 0],
          negative: ['neg', 0],
          latent_image: ['lat', 0],
          denoise: 1,
        },
      },
      c1: { class_type: 'TestCaptureLatent', inputs: { samples: ['custom', 0], tag: 'custom' } },
      c2: { class_type: 'TestCaptureLatent', inputs: { samples: ['ks', 0], tag: 'ks' } },
    };
    const result = await ex.execute(prompt, { promptId: 'custom-sampling' });
    expect(result.error).toBeUndefined();
    expect(result.status).toBe('success');
    expect(captured.custom.samples.shape).toEqual([1, 4, 8, 8]);
    expect(captured.custom.samples.data).toEqual(captured.ks.samples.data);
  }, 120_000);
});
