import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { InterruptedError } from '../../engine/core/errors.ts';
import { ancestralStep } from '../../engine/sampling/samplers/common.ts';
import {
  SAMPLER_NAMES,
  UNSUPPORTED_SAMPLERS,
  getSampler,
  samplerNeedsNoise,
  samplerUsesBrownian,
} from '../../engine/sampling/samplers/index.ts';
import { deisCoefficients, linearMultistepCoeff } from '../../engine/sampling/samplers/multistep.ts';
import type { Denoise, NoiseSampler, SamplerContext, SamplerOptions, StepInfo } from '../../engine/sampling/samplers/types.ts';

/*
 * Samplers are checked against problems with exact answers:
 *  - a point mass x0 (D ≡ x0): the probability-flow ODE is x(σ) = x0 + (x_T − x0)·σ/σ_T, which every
 *    consistent deterministic solver reproduces exactly (the ODE is linear in σ along that path);
 *  - a Gaussian N(μ, s²): D(x, σ) = (s²x + σ²μ)/(s² + σ²), ODE x(σ) = μ + (x_T − μ)·√(s²+σ²)/√(s²+σ_T²),
 *    used for convergence orders, and for the SDE samplers' final variance ≈ s².
 */

// ---------------------------------------------------------------------------------------------
// helpers

/** mulberry32 + Box–Muller: reproducible standard normals. */
function normals(seed: number): (n: number) => Float32Array {
  let a = seed >>> 0;
  const u = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (n) => {
    const o = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const r = Math.sqrt(-2 * Math.log(u() || 1e-12));
      const th = 2 * Math.PI * u();
      o[i] = r * Math.cos(th);
      if (i + 1 < n) o[i + 1] = r * Math.sin(th);
    }
    return o;
  };
}

/** ComfyUI's default noise sampler shape: fresh normals per call, in call order. */
function callOrderNoise(seed: number, n: number): NoiseSampler {
  const g = normals(seed);
  return () => g(n);
}

/**
 * A Brownian path W(σ) sampled lazily by Brownian bridges (what torchsde's tree gives), normalised
 * like k-diffusion's BrownianTreeNoiseSampler: (W(σ_next) − W(σ))/√|σ_next − σ|. Overlapping
 * intervals get correlated noise, as the SDE samplers expect.
 */
function brownianNoise(seed: number, n: number, sigmaMin: number, sigmaMax: number): NoiseSampler {
  const g = normals(seed);
  const pts: { t: number; w: Float64Array }[] = [
    { t: sigmaMin, w: new Float64Array(n) },
    { t: sigmaMax, w: Float64Array.from(g(n), (v) => v * Math.sqrt(sigmaMax - sigmaMin)) },
  ];
  const at = (t: number): Float64Array => {
    if (t < sigmaMin - 1e-12 || t > sigmaMax + 1e-12) throw new Error(`Brownian query ${t} outside [${sigmaMin}, ${sigmaMax}]`);
    let j = 0;
    while (j < pts.length - 1 && pts[j + 1].t < t) j++;
    for (const p of [pts[j], pts[j + 1]]) if (Math.abs(p.t - t) <= 1e-12 * Math.max(1, t)) return p.w;
    const a = pts[j];
    const b = pts[j + 1];
    const z = g(n);
    const f = (t - a.t) / (b.t - a.t);
    const sd = Math.sqrt(((t - a.t) * (b.t - t)) / (b.t - a.t));
    const w = new Float64Array(n);
    for (let k = 0; k < n; k++) w[k] = a.w[k] + f * (b.w[k] - a.w[k]) + sd * z[k];
    pts.splice(j + 1, 0, { t, w });
    return w;
  };
  return (s, sn) => {
    const w0 = at(s);
    const w1 = at(sn);
    const inv = 1 / Math.sqrt(Math.abs(sn - s));
    return Float32Array.from(w1, (v, k) => (v - w0[k]) * inv);
  };
}

const constNoise =
  (n: number, v: number): NoiseSampler =>
  () =>
    new Float32Array(n).fill(v);

/*
 * The toy denoisers answer a CFG++ sampler's request for the unconditional prediction with the same
 * prediction (a guider at cfg 1 whose negative equals its positive), so CFG++ reduces to its base.
 */
const pointMass =
  (x0: Float32Array): Denoise =>
  async (x, _sigma, request) => {
    expect(x.data.length).toBe(x0.length);
    const out = { shape: x.shape, data: new Float32Array(x0) };
    return request?.uncond ? { ...out, uncond: out } : out;
  };

const gaussian =
  (mu: number, s2: number): Denoise =>
  async (x, sigma, request) => {
    const o = new Float32Array(x.data.length);
    for (let k = 0; k < o.length; k++) o[k] = (s2 * x.data[k] + sigma * sigma * mu) / (s2 + sigma * sigma);
    const out = { shape: x.shape, data: o };
    return request?.uncond ? { ...out, uncond: out } : out;
  };

/** N+1 σ's uniform in log σ from σ_max to σ_min, plus a trailing 0 when asked. */
function logSchedule(sigmaMax: number, sigmaMin: number, n: number, zero: boolean): Float64Array {
  const out = new Float64Array(n + 1 + (zero ? 1 : 0));
  for (let i = 0; i <= n; i++) out[i] = Math.exp(Math.log(sigmaMax) + ((Math.log(sigmaMin) - Math.log(sigmaMax)) * i) / n);
  return out;
}

const tensorOf = (data: Float32Array, shape: readonly number[] = [data.length]): Tensor => ({ shape, data });

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k] - b[k]));
  return m;
}

async function run(name: string, ctx: SamplerContext, x: Float32Array, sigmas: Float64Array, opts?: SamplerOptions): Promise<Float32Array> {
  return (await getSampler(name)(ctx, tensorOf(x), sigmas, opts)).data;
}

/** ComfyUI's current KSampler.SAMPLERS, in order. */
const COMFY_SAMPLERS = [
  'euler', 'euler_cfg_pp', 'euler_ancestral', 'euler_ancestral_cfg_pp', 'heun', 'heunpp2', 'exp_heun_2_x0', 'exp_heun_2_x0_sde',
  'dpm_2', 'dpm_2_ancestral', 'lms', 'dpm_fast', 'dpm_adaptive', 'dpmpp_2s_ancestral', 'dpmpp_2s_ancestral_cfg_pp', 'dpmpp_sde',
  'dpmpp_sde_gpu', 'dpmpp_2m', 'dpmpp_2m_cfg_pp', 'dpmpp_2m_sde', 'dpmpp_2m_sde_gpu', 'dpmpp_2m_sde_heun', 'dpmpp_2m_sde_heun_gpu',
  'dpmpp_3m_sde', 'dpmpp_3m_sde_gpu', 'ddpm', 'lcm', 'ipndm', 'ipndm_v', 'deis', 'res_multistep', 'res_multistep_cfg_pp',
  'res_multistep_ancestral', 'res_multistep_ancestral_cfg_pp', 'gradient_estimation', 'gradient_estimation_cfg_pp', 'er_sde',
  'seeds_2', 'seeds_3', 'sa_solver', 'sa_solver_pece', 'ddim', 'uni_pc', 'uni_pc_bh2',
]; // prettier-ignore

/** Options turning each sampler deterministic (no noise drawn with nonzero weight). */
const DETERMINISTIC: Record<string, SamplerOptions | undefined> = {
  euler: undefined, ddim: undefined, heun: undefined, heunpp2: undefined, dpm_2: undefined, lms: undefined,
  dpmpp_2m: undefined, ipndm: undefined, ipndm_v: undefined, deis: undefined, res_multistep: undefined,
  gradient_estimation: undefined, exp_heun_2_x0: undefined, uni_pc: undefined, uni_pc_bh2: undefined,
  euler_ancestral: { eta: 0 }, dpm_2_ancestral: { eta: 0 }, dpmpp_2s_ancestral: { eta: 0 }, dpmpp_sde: { eta: 0 },
  dpmpp_sde_gpu: { eta: 0 }, dpmpp_2m_sde: { eta: 0 }, dpmpp_2m_sde_gpu: { eta: 0 }, dpmpp_2m_sde_heun: { eta: 0 },
  dpmpp_2m_sde_heun_gpu: { eta: 0 }, dpmpp_3m_sde: { eta: 0 }, dpmpp_3m_sde_gpu: { eta: 0 },
  res_multistep_ancestral: { eta: 0 }, seeds_2: { eta: 0 }, seeds_3: { eta: 0 }, exp_heun_2_x0_sde: { eta: 0 },
  euler_cfg_pp: undefined, dpmpp_2m_cfg_pp: undefined, res_multistep_cfg_pp: undefined, gradient_estimation_cfg_pp: undefined,
  euler_ancestral_cfg_pp: { eta: 0 }, dpmpp_2s_ancestral_cfg_pp: { eta: 0 }, res_multistep_ancestral_cfg_pp: { eta: 0 },
  sa_solver: { eta: 0 }, sa_solver_pece: { eta: 0 },
}; // prettier-ignore

/** Sampler → options with noise at full strength (the defaults, plus churn for the Karras ones). */
const STOCHASTIC: Record<string, SamplerOptions | undefined> = {
  euler_ancestral: undefined, dpm_2_ancestral: undefined, dpmpp_2s_ancestral: undefined, dpmpp_sde: undefined,
  dpmpp_sde_gpu: undefined, dpmpp_2m_sde: undefined, dpmpp_2m_sde_gpu: undefined, dpmpp_2m_sde_heun: undefined,
  dpmpp_2m_sde_heun_gpu: undefined, dpmpp_3m_sde: undefined, dpmpp_3m_sde_gpu: undefined, ddpm: undefined, lcm: undefined,
  res_multistep_ancestral: undefined, er_sde: undefined, seeds_2: undefined, seeds_3: undefined, exp_heun_2_x0_sde: undefined,
  euler: { s_churn: 5 }, heun: { s_churn: 5 }, dpm_2: { s_churn: 5 }, heunpp2: { s_churn: 5 },
  dpm_fast: { eta: 1 }, dpm_adaptive: { eta: 1 },
  euler_ancestral_cfg_pp: undefined, dpmpp_2s_ancestral_cfg_pp: undefined, res_multistep_ancestral_cfg_pp: undefined,
  sa_solver: { sde_start_sigma: 1e3, sde_end_sigma: 0 }, sa_solver_pece: { sde_start_sigma: 1e3, sde_end_sigma: 0 },
}; // prettier-ignore

// ---------------------------------------------------------------------------------------------

describe('sampler registry', () => {
  it('lists every ComfyUI sampler in ComfyUI order', () => {
    expect(Object.keys(UNSUPPORTED_SAMPLERS)).toEqual([]);
    expect([...SAMPLER_NAMES]).toEqual(COMFY_SAMPLERS);
    // the brief's core list, as an ordered subsequence
    const core = [
      'euler', 'euler_ancestral', 'heun', 'heunpp2', 'dpm_2', 'dpm_2_ancestral', 'lms', 'dpm_fast', 'dpm_adaptive',
      'dpmpp_2s_ancestral', 'dpmpp_sde', 'dpmpp_sde_gpu', 'dpmpp_2m', 'dpmpp_2m_sde', 'dpmpp_2m_sde_gpu', 'dpmpp_3m_sde',
      'dpmpp_3m_sde_gpu', 'ddpm', 'lcm', 'ipndm', 'ipndm_v', 'deis', 'ddim', 'uni_pc', 'uni_pc_bh2',
    ]; // prettier-ignore
    const positions = core.map((n) => SAMPLER_NAMES.indexOf(n as (typeof SAMPLER_NAMES)[number]));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
  });

  it('rejects unknown names with the valid list', () => {
    expect(() => getSampler('nope')).toThrow(/unknown sampler "nope".*euler, euler_cfg_pp, euler_ancestral, euler_ancestral_cfg_pp, heun/);
    expect(() => samplerNeedsNoise('nope')).toThrow(/unknown sampler/);
  });

  it('maps ddim to euler and the _gpu variants to their base', () => {
    expect(getSampler('ddim')).toBe(getSampler('euler'));
    for (const n of SAMPLER_NAMES.filter((s) => s.endsWith('_gpu'))) expect(getSampler(n)).toBe(getSampler(n.slice(0, -4)));
  });

  it('says which samplers draw noise and which take a Brownian tree', () => {
    const brownian = SAMPLER_NAMES.filter(samplerUsesBrownian);
    expect(brownian).toEqual([
      'dpmpp_sde', 'dpmpp_sde_gpu', 'dpmpp_2m_sde', 'dpmpp_2m_sde_gpu', 'dpmpp_2m_sde_heun', 'dpmpp_2m_sde_heun_gpu',
      'dpmpp_3m_sde', 'dpmpp_3m_sde_gpu',
    ]); // prettier-ignore
    const noisy = SAMPLER_NAMES.filter(samplerNeedsNoise);
    expect(noisy).toEqual([
      'euler_ancestral', 'euler_ancestral_cfg_pp', 'exp_heun_2_x0_sde', 'dpm_2_ancestral', 'dpmpp_2s_ancestral',
      'dpmpp_2s_ancestral_cfg_pp', 'dpmpp_sde', 'dpmpp_sde_gpu', 'dpmpp_2m_sde', 'dpmpp_2m_sde_gpu', 'dpmpp_2m_sde_heun',
      'dpmpp_2m_sde_heun_gpu', 'dpmpp_3m_sde', 'dpmpp_3m_sde_gpu', 'ddpm', 'lcm', 'res_multistep_ancestral',
      'res_multistep_ancestral_cfg_pp', 'er_sde', 'seeds_2', 'seeds_3', 'sa_solver', 'sa_solver_pece',
    ]); // prettier-ignore
  });

  it('every sampler that claims to need noise fails without it, and every other one runs without it', async () => {
    const n = 4;
    const x = Float32Array.from([3, -2, 1, 5]);
    const sigmas = logSchedule(8, 0.2, 4, true);
    for (const name of SAMPLER_NAMES) {
      // sa_solver's default stochastic interval comes from the model sampling's percent_to_sigma.
      const p = run(name, { denoise: gaussian(0, 1), modelSampling: { percentToSigma: (q) => 8 * (1 - q) } }, x, sigmas);
      if (samplerNeedsNoise(name)) await expect(p, name).rejects.toThrow(/noise sampler/);
      else expect((await p).length, name).toBe(n);
    }
  });
});

describe('point mass: deterministic samplers follow x(σ) = x0 + (x_T − x0)·σ/σ_T exactly', () => {
  const x0 = Float32Array.from([0.5, -1.25, 2, 0, -0.3, 1.7]);
  const z = normals(7)(x0.length);
  const sigmaT = 12;
  const xT = Float32Array.from(x0, (v, k) => v + sigmaT * z[k]);
  const exactAt = (sigma: number): Float32Array => Float32Array.from(x0, (v, k) => v + (xT[k] - v) * (sigma / sigmaT));

  for (const [name, opts] of Object.entries(DETERMINISTIC)) {
    it(name, async () => {
      const sigmas = logSchedule(sigmaT, 0.08, 9, true);
      const infos: StepInfo[] = [];
      const out = await run(name, { denoise: pointMass(x0), callback: (s) => infos.push(s) }, xT, sigmas, opts);
      // UniPC stops at 0.001 instead of 0 (ComfyUI replaces a final 0), so it ends just short of x0
      const end = name.startsWith('uni_pc') ? 0.001 : 0;
      // DEIS integrates its coefficients with a 10⁴-point rectangle rule, slightly off the exact Δσ;
      // UniPC repeats ComfyUI's float32 λ/σ_vp, which lose digits at σ = 0.001
      const tol = name === 'deis' ? 2e-3 : name.startsWith('uni_pc') ? 1e-4 : 2e-5;
      expect(maxAbsDiff(out, exactAt(end)), name).toBeLessThan(tol);
      expect(infos.length).toBe(sigmas.length - 1);
      for (const info of infos) {
        expect(info.sigmaHat).toBe(info.sigma);
        expect(maxAbsDiff(info.x.data, exactAt(info.sigma)), `${name} step ${info.i}`).toBeLessThan(tol * 10);
        expect(maxAbsDiff(info.denoised.data, x0)).toBeLessThan(name.startsWith('uni_pc') ? 1e-5 : 1e-12);
      }
    });
  }

  for (const name of ['dpm_fast', 'dpm_adaptive']) {
    it(`${name} integrates between the schedule's ends (σ_max, σ_min = sigmas[-2])`, async () => {
      const sigmas = logSchedule(sigmaT, 0.08, 9, true);
      const infos: StepInfo[] = [];
      const out = await run(name, { denoise: pointMass(x0), callback: (s) => infos.push(s) }, xT, sigmas);
      expect(maxAbsDiff(out, exactAt(0.08))).toBeLessThan(2e-5);
      expect(infos.length).toBeGreaterThan(0);
      if (name === 'dpm_fast') {
        for (const info of infos) expect(maxAbsDiff(info.x.data, exactAt(info.sigma))).toBeLessThan(1e-4);
      }
    });
  }
});

describe('Gaussian data: convergence order of the ODE solvers', () => {
  const mu = 0.3;
  const s2 = 0.25;
  const n = 16;
  const xT = Float32Array.from({ length: n }, (_, k) => -20 + (40 * k) / (n - 1));
  const sigmaT = 10;
  const sigmaEnd = 0.05;
  const exactEnd = Float32Array.from(xT, (v) => mu + ((v - mu) * Math.sqrt(s2 + sigmaEnd ** 2)) / Math.sqrt(s2 + sigmaT ** 2));
  const errorAt = async (name: string, steps: number): Promise<number> =>
    maxAbsDiff(
      await run(name, { denoise: gaussian(mu, s2) }, xT, logSchedule(sigmaT, sigmaEnd, steps, false), DETERMINISTIC[name]),
      exactEnd,
    );

  // [name, N, lowest and highest accepted err(N)/err(2N)]. Expected ratios: 2 for first order, 4 for
  // second. Multistep methods bootstrap with a first-order step, which caps their global order at 2
  // asymptotically; at the N chosen their higher-order terms still dominate, hence the > 5 bounds.
  const cases: [string, number, number, number][] = [
    ['euler', 32, 1.85, 2.15],
    ['ddim', 32, 1.85, 2.15],
    ['heunpp2', 32, 1.85, 2.15],
    ['gradient_estimation', 32, 1.75, 2.25],
    ['heun', 32, 3.7, 4.3],
    ['dpm_2', 32, 3.7, 4.3],
    ['dpmpp_2m', 32, 3.6, 4.4],
    ['dpmpp_2m_sde', 32, 3.6, 4.4],
    ['dpmpp_2m_sde_heun', 32, 3.6, 4.4],
    ['res_multistep', 32, 3.6, 4.4],
    ['dpmpp_2s_ancestral', 32, 3.6, 4.4],
    ['dpmpp_sde', 32, 3.6, 4.4],
    ['seeds_2', 32, 3.6, 4.4],
    ['exp_heun_2_x0', 32, 3.6, 4.4],
    ['ipndm', 32, 3.6, 4.4],
    ['uni_pc', 32, 3.6, 4.4],
    ['uni_pc_bh2', 32, 3.6, 4.4],
    ['dpmpp_3m_sde', 16, 4.6, 9],
    ['lms', 16, 8, 16],
    ['deis', 16, 5.5, 9],
    ['ipndm_v', 32, 4.5, 8],
    ['seeds_3', 16, 6, 10],
  ];
  for (const [name, steps, lo, hi] of cases) {
    it(`${name}: err(${steps})/err(${2 * steps}) in [${lo}, ${hi}]`, async () => {
      const e1 = await errorAt(name, steps);
      const e2 = await errorAt(name, 2 * steps);
      expect(e1, name).toBeLessThan(0.1);
      expect(e1 / e2, name).toBeGreaterThanOrEqual(lo);
      expect(e1 / e2, name).toBeLessThanOrEqual(hi);
    });
  }

  it('dpm_fast is third order when its step pattern is kept (n ≡ 2 mod 3, steps doubling)', async () => {
    // n = 35 → 12 steps, n = 71 → 24 steps, both [3, …, 3, 2]
    const e1 = await errorAt('dpm_fast', 35);
    const e2 = await errorAt('dpm_fast', 71);
    expect(e1 / e2).toBeGreaterThan(7);
  });

  it('dpm_adaptive meets its tolerance and tightens with rtol/atol', async () => {
    const sigmas = logSchedule(sigmaT, sigmaEnd, 10, true);
    const loose = maxAbsDiff(await run('dpm_adaptive', { denoise: gaussian(mu, s2) }, xT, sigmas), exactEnd);
    const tight = maxAbsDiff(await run('dpm_adaptive', { denoise: gaussian(mu, s2) }, xT, sigmas, { rtol: 1e-4, atol: 1e-5 }), exactEnd);
    expect(loose).toBeLessThan(0.05);
    expect(tight).toBeLessThan(loose / 20);
  });
});

describe('samplers that reduce to one another', () => {
  const x = Float32Array.from(normals(3)(32), (v) => 9 * v);
  const sigmas = logSchedule(9, 0.05, 12, true);
  const den = gaussian(-0.2, 0.36);
  const pairs: [string, SamplerOptions | undefined, string, SamplerOptions | undefined][] = [
    ['euler_ancestral', { eta: 0 }, 'euler', undefined],
    ['dpm_2_ancestral', { eta: 0 }, 'dpm_2', undefined],
    ['dpmpp_2s_ancestral', { eta: 0 }, 'dpmpp_sde', { eta: 0 }],
    ['seeds_2', { eta: 0 }, 'dpmpp_sde', { eta: 0 }],
    ['dpmpp_2m_sde', { eta: 0 }, 'dpmpp_2m', undefined],
    ['res_multistep_ancestral', { eta: 0 }, 'res_multistep', undefined],
    // the exponential 2nd-order multistep in two independent writings
    ['dpmpp_2m_sde_heun', { eta: 0 }, 'res_multistep', undefined],
    ['exp_heun_2_x0_sde', { eta: 0 }, 'exp_heun_2_x0', undefined],
    ['ddim', undefined, 'euler', undefined],
  ];
  for (const [a, oa, b, ob] of pairs) {
    it(`${a} ${JSON.stringify(oa ?? {})} ≡ ${b}`, async () => {
      const ra = await run(a, { denoise: den }, x, sigmas, oa);
      const rb = await run(b, { denoise: den }, x, sigmas, ob);
      expect(maxAbsDiff(ra, rb)).toBeLessThan(1e-5);
    });
  }

  it('ddpm equals euler_ancestral given the same noise (both are the DDPM posterior step)', async () => {
    const ra = await run('ddpm', { denoise: den, noise: callOrderNoise(5, 32) }, x, sigmas);
    const rb = await run('euler_ancestral', { denoise: den, noise: callOrderNoise(5, 32) }, x, sigmas);
    expect(maxAbsDiff(ra, rb)).toBeLessThan(1e-4);
  });

  it('res_multistep_ancestral equals dpmpp_2m_sde_heun at eta = 1 given the same noise', async () => {
    const ra = await run('res_multistep_ancestral', { denoise: den, noise: callOrderNoise(6, 32) }, x, sigmas);
    const rb = await run('dpmpp_2m_sde_heun', { denoise: den, noise: callOrderNoise(6, 32) }, x, sigmas);
    expect(maxAbsDiff(ra, rb)).toBeLessThan(1e-4);
  });

  it('the noise actually matters: eta = 1 differs from eta = 0', async () => {
    const ra = await run('dpmpp_2m_sde', { denoise: den, noise: callOrderNoise(6, 32) }, x, sigmas);
    const rb = await run('dpmpp_2m_sde', { denoise: den }, x, sigmas, { eta: 0 });
    expect(maxAbsDiff(ra, rb)).toBeGreaterThan(1e-2);
  });
});

describe('single steps by hand', () => {
  const x = Float32Array.from([4, -2]);
  const x0 = Float32Array.from([1, 0.5]);

  it('get_ancestral_step splits σ_next² into σ_down² + σ_up² with σ_up² = η²σ_next²(σ²−σ_next²)/σ²', () => {
    const [down, up] = ancestralStep(3, 1, 1);
    expect(down ** 2 + up ** 2).toBeCloseTo(1, 12);
    expect(up ** 2).toBeCloseTo((1 * (9 - 1)) / 9, 12);
    expect(ancestralStep(3, 1, 0)).toEqual([1, 0]);
    // η large: σ_up capped at σ_next, so σ_down = 0
    expect(ancestralStep(3, 1, 10)).toEqual([0, 1]);
  });

  it('euler_ancestral: x + d·(σ_down − σ) + noise·σ_up', async () => {
    const sigmas = Float64Array.from([3, 1]);
    const out = await run('euler_ancestral', { denoise: pointMass(x0), noise: constNoise(2, 0.7) }, x, sigmas);
    const [down, up] = ancestralStep(3, 1, 1);
    for (let k = 0; k < 2; k++) expect(out[k]).toBeCloseTo(x[k] + ((x[k] - x0[k]) / 3) * (down - 3) + 0.7 * up, 5);
  });

  it('dpmpp_2m_sde: σ_t/σ_s·e^{−ηh}x + (1 − e^{−(1+η)h})D + σ_t√(1 − e^{−2ηh})·s_noise·n', async () => {
    const sigmas = Float64Array.from([2, 0.5]);
    const out = await run('dpmpp_2m_sde', { denoise: pointMass(x0), noise: constNoise(2, -1.3) }, x, sigmas, { s_noise: 0.8 });
    const h = Math.log(2 / 0.5);
    for (let k = 0; k < 2; k++) {
      const want = (0.5 / 2) * Math.exp(-h) * x[k] + (1 - Math.exp(-2 * h)) * x0[k] + 0.5 * Math.sqrt(1 - Math.exp(-2 * h)) * 0.8 * -1.3;
      expect(out[k]).toBeCloseTo(want, 5);
    }
  });

  it('lcm: jump to D, re-noise to σ_next, D alone at the end', async () => {
    const sigmas = Float64Array.from([5, 2, 0.5, 0]);
    const infos: StepInfo[] = [];
    const out = await run('lcm', { denoise: pointMass(x0), noise: constNoise(2, 0.25), callback: (s) => infos.push(s) }, x, sigmas);
    expect(Array.from(out)).toEqual(Array.from(x0));
    expect(infos[1].x.data[0]).toBeCloseTo(x0[0] + 2 * 0.25, 6);
    expect(infos[2].x.data[1]).toBeCloseTo(x0[1] + 0.5 * 0.25, 6);
  });

  it('lcm: s_noise → s_noise_end ramps the noise linearly over the steps', async () => {
    const sigmas = Float64Array.from([5, 2, 1, 0.5]);
    const infos: StepInfo[] = [];
    await run('lcm', { denoise: pointMass(x0), noise: constNoise(2, 1), callback: (s) => infos.push(s) }, x, sigmas, {
      s_noise: 1,
      s_noise_end: 0,
    });
    // steps 0,1,2 use s_noise 1, 0.5, 0
    expect(infos[1].x.data[0]).toBeCloseTo(x0[0] + 2 * 1, 6);
    expect(infos[2].x.data[0]).toBeCloseTo(x0[0] + 1 * 0.5, 6);
  });

  it('lms coefficients integrate the Lagrange basis exactly', () => {
    const t = Float64Array.from([5, 3, 2, 1.2]);
    // order 1 is Euler: ∫ 1 = Δσ
    expect(linearMultistepCoeff(1, t, 0, 0)).toBeCloseTo(-2, 12);
    // order 2 at i = 1: basis over (t1, t0) on [t1, t2]
    const l0 = (tau: number): number => (tau - t[0]) / (t[1] - t[0]);
    const F0 = (tau: number): number => (tau - t[0]) ** 2 / 2 / (t[1] - t[0]);
    expect(linearMultistepCoeff(2, t, 1, 0)).toBeCloseTo(F0(t[2]) - F0(t[1]), 12);
    expect(linearMultistepCoeff(2, t, 1, 0) + linearMultistepCoeff(2, t, 1, 1)).toBeCloseTo(t[2] - t[1], 12);
    expect(l0(t[1])).toBe(1);
    expect(() => linearMultistepCoeff(3, t, 1, 0)).toThrow(/too high/);
  });

  it('deis coefficients sum to Δσ (Σ Lagrange basis = 1) up to the 10⁴-point rule', () => {
    const s = logSchedule(14, 0.1, 10, true);
    for (const i of [2, 5, 9]) {
      const c = deisCoefficients(s, i, 3);
      const sum = c[0] + c[1] + c[2];
      expect(Math.abs(sum - (s[i + 1] - s[i]))).toBeLessThan(2e-3 * Math.abs(s[i + 1] - s[i]));
    }
  });

  it('euler churn: σ̂ = σ(1+γ), γ = min(s_churn/N, √2 − 1), within [s_tmin, s_tmax] only', async () => {
    const sigmas = Float64Array.from([4, 2, 1, 0]);
    const infos: StepInfo[] = [];
    await run('euler', { denoise: pointMass(x0), noise: constNoise(2, 0), callback: (s) => infos.push(s) }, x, sigmas, {
      s_churn: 0.6,
      s_tmin: 1.5,
    });
    expect(infos[0].sigmaHat).toBeCloseTo(4 * 1.2, 12);
    expect(infos[1].sigmaHat).toBeCloseTo(2 * 1.2, 12);
    expect(infos[2].sigmaHat).toBe(1);
    await expect(run('euler', { denoise: pointMass(x0) }, x, sigmas, { s_churn: 0.6 })).rejects.toThrow(/noise sampler/);
  });

  it('uni_pc with one step keeps ComfyUI behaviour: its loop never moves x (order = 0)', async () => {
    const out = await run('uni_pc', { denoise: pointMass(x0) }, x, Float64Array.from([3, 0]));
    const scale = Math.sqrt(1 + 0.001 ** 2) / Math.sqrt(1 + 9);
    for (let k = 0; k < 2; k++) expect(out[k]).toBeCloseTo(x[k] * scale, 5);
  });
});

describe('stochastic samplers on Gaussian data: final samples ~ N(μ, s²)', () => {
  const mu = 0.3;
  const s2 = 0.25;
  const n = 40000;
  const sigmaT = 14.6;
  const sigmaMin = 0.03;
  const z = normals(1234)(n);
  const xT = Float32Array.from(z, (v) => mu + Math.sqrt(s2 + sigmaT ** 2) * v);

  // [name, steps, variance tolerance]: second-order SDE solvers at 40 steps; first-order ones
  // (Euler-ancestral and its DDPM twin, whose variance bias is O(1/N)) at 200.
  const cases: [string, number, number][] = [
    ['dpm_2_ancestral', 40, 0.05],
    ['dpmpp_2s_ancestral', 40, 0.06],
    ['dpmpp_sde', 40, 0.05],
    ['dpmpp_2m_sde', 40, 0.05],
    ['dpmpp_2m_sde_heun', 40, 0.05],
    ['dpmpp_3m_sde', 40, 0.05],
    ['res_multistep_ancestral', 40, 0.05],
    ['er_sde', 40, 0.05],
    ['seeds_2', 40, 0.05],
    ['seeds_3', 40, 0.05],
    ['exp_heun_2_x0_sde', 40, 0.05],
    ['euler_ancestral', 200, 0.06],
    ['ddpm', 200, 0.06],
  ];
  for (const [name, steps, tol] of cases) {
    it(`${name} (${steps} steps): var within ${tol * 100}% of s², mean within 0.02 of μ`, async () => {
      const sigmas = logSchedule(sigmaT, sigmaMin, steps, true);
      const noise = samplerUsesBrownian(name) ? brownianNoise(99, n, sigmaMin, sigmaT) : callOrderNoise(99, n);
      const out = await run(name, { denoise: gaussian(mu, s2), noise }, xT, sigmas);
      let m = 0;
      for (const v of out) m += v;
      m /= n;
      let v2 = 0;
      for (const v of out) v2 += (v - m) ** 2;
      v2 /= n - 1;
      expect(Math.abs(m - mu), name).toBeLessThan(0.02);
      expect(Math.abs(v2 / s2 - 1), `${name} var ${v2}`).toBeLessThan(tol);
    });
  }

  it('without its noise, an SDE sampler does not sample the distribution (the check can fail)', async () => {
    const sigmas = logSchedule(sigmaT, sigmaMin, 40, true);
    const out = await run('er_sde', { denoise: gaussian(mu, s2) }, xT, sigmas, { s_noise: 0 });
    let m = 0;
    for (const v of out) m += v;
    m /= n;
    let v2 = 0;
    for (const v of out) v2 += (v - m) ** 2;
    v2 /= n - 1;
    expect(Math.abs(v2 / s2 - 1)).toBeGreaterThan(0.2);
  });
});

describe('contract: callbacks, determinism, interruption, purity', () => {
  const size = 6;
  const x = Float32Array.from(normals(11)(size), (v) => 7 * v);
  const steps = 8;
  const sigmas = logSchedule(7, 0.1, steps - 1, true);
  const noiseFor = (name: string, seed: number): NoiseSampler =>
    samplerUsesBrownian(name) ? brownianNoise(seed, size, 0.1, 7) : callOrderNoise(seed, size);
  const optsFor = (name: string): SamplerOptions | undefined => (name in STOCHASTIC ? STOCHASTIC[name] : DETERMINISTIC[name]);

  // model evaluations per run of `steps` steps (the last one landing on σ = 0)
  const evals: Record<string, number> = {
    euler: steps, heun: 2 * steps - 1, dpm_2: 2 * steps - 1, lms: steps, dpm_fast: steps, dpmpp_2m: steps,
    dpmpp_sde: 2 * steps - 1, dpmpp_2s_ancestral: 2 * steps - 1, seeds_3: 3 * steps - 2, uni_pc: steps, heunpp2: 3 * steps - 3,
  }; // prettier-ignore

  for (const name of SAMPLER_NAMES) {
    it(`${name}: one callback per step with consistent StepInfo`, async () => {
      const infos: StepInfo[] = [];
      let calls = 0;
      const den = gaussian(0.1, 0.5);
      const out = await getSampler(name)(
        {
          denoise: async (t, s, r) => {
            calls++;
            expect(t.shape).toEqual([2, 3]);
            return den(t, s, r);
          },
          noise: noiseFor(name, 1),
          callback: (s) => infos.push(s),
        },
        tensorOf(x, [2, 3]),
        sigmas,
        optsFor(name),
      );
      expect(out.shape).toEqual([2, 3]);
      expect(out.data.every(Number.isFinite)).toBe(true);
      if (name === 'dpm_fast') expect(infos.length).toBe(Math.floor(steps / 3) + 1);
      else if (name === 'dpm_adaptive') expect(infos.length).toBeGreaterThan(0);
      else expect(infos.length).toBe(steps);
      infos.forEach((info, i) => {
        expect(info.i).toBe(i);
        expect(info.totalSteps).toBe(steps);
        expect(info.x.shape).toEqual([2, 3]);
        expect(info.denoised.data.length).toBe(size);
        expect(info.sigma).toBeGreaterThan(0);
      });
      if (name in evals) expect(calls, name).toBe(evals[name]);
    });

    it(`${name}: same noise → same result, other noise → other result`, async () => {
      const a = await run(name, { denoise: gaussian(0.1, 0.5), noise: noiseFor(name, 1) }, x, sigmas, optsFor(name));
      const b = await run(name, { denoise: gaussian(0.1, 0.5), noise: noiseFor(name, 1) }, x, sigmas, optsFor(name));
      expect(Array.from(a)).toEqual(Array.from(b));
      if (name in STOCHASTIC) {
        const c = await run(name, { denoise: gaussian(0.1, 0.5), noise: noiseFor(name, 2) }, x, sigmas, optsFor(name));
        expect(maxAbsDiff(a, c), name).toBeGreaterThan(1e-3);
      }
    });

    it(`${name}: abort → InterruptedError before the next model call; input untouched`, async () => {
      const before = Float32Array.from(x);
      const pre = new AbortController();
      pre.abort();
      let calls = 0;
      const count: Denoise = async (t, s, r) => {
        calls++;
        return gaussian(0.1, 0.5)(t, s, r);
      };
      await expect(
        run(name, { denoise: count, noise: noiseFor(name, 1), signal: pre.signal }, x, sigmas, optsFor(name)),
      ).rejects.toBeInstanceOf(InterruptedError);
      expect(calls).toBe(0);

      const mid = new AbortController();
      calls = 0;
      const abortAt3: Denoise = async (t, s, r) => {
        calls++;
        if (calls === 3) mid.abort();
        return gaussian(0.1, 0.5)(t, s, r);
      };
      await expect(
        run(name, { denoise: abortAt3, noise: noiseFor(name, 1), signal: mid.signal }, x, sigmas, optsFor(name)),
      ).rejects.toBeInstanceOf(InterruptedError);
      expect(calls).toBe(3);
      expect(Array.from(x)).toEqual(Array.from(before));
    });
  }
});
