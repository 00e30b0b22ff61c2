import { describe, expect, it } from 'vitest';
import { ModelSamplingDiscrete, makeBetaSchedule } from '../../engine/sampling/model-sampling.ts';
import {
  KSAMPLER_SCHEDULERS,
  SCHEDULER_NAMES,
  betaCdf,
  betaPpf,
  calculateSigmas,
  isSchedulerName,
  ksamplerSigmas,
  linspaceF32,
  logGamma,
} from '../../engine/sampling/schedulers.ts';

const sd1 = new ModelSamplingDiscrete({
  prediction: 'eps',
  betaSchedule: 'scaled_linear',
  linearStart: 0.00085,
  linearEnd: 0.012,
  timesteps: 1000,
});
const sd1v = new ModelSamplingDiscrete({
  prediction: 'v_prediction',
  betaSchedule: 'scaled_linear',
  linearStart: 0.00085,
  linearEnd: 0.012,
  timesteps: 1000,
});

function expectRel(actual: number, expected: number, rel: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(rel * Math.abs(expected));
}

/** Independent float64 sigma for training index t (no float32 storage). */
function sigma64(t: number, start = 0.00085, end = 0.012, scaled = true): number {
  let ac = 1;
  for (let i = 0; i <= t; i++) {
    const beta = scaled ? (Math.sqrt(start) + ((Math.sqrt(end) - Math.sqrt(start)) * i) / 999) ** 2 : start + ((end - start) * i) / 999;
    ac *= 1 - beta;
  }
  return Math.sqrt((1 - ac) / ac);
}

describe('ModelSamplingDiscrete (SD1)', () => {
  it('has the SD1 sigma range, as float32', () => {
    // numpy float64 cumprod of linspace(√0.00085, √0.012, 1000)², cast to float32.
    expect(sd1.sigmaMin).toBe(0.029167158529162407);
    expect(sd1.sigmaMax).toBe(14.614641189575195);
    expect(sd1.sigmaMin).toBeCloseTo(0.0292, 4);
    expect(sd1.sigmaMax).toBeCloseTo(14.6146, 4);
    expect(sd1.sigmas).toBeInstanceOf(Float32Array);
    expect(sd1.sigmas.length).toBe(1000);
  });

  it('matches an independent float64 computation at interior indices', () => {
    for (const t of [1, 250, 499, 500, 998]) expectRel(sd1.sigmas[t], sigma64(t), 1e-6);
  });

  it('stores strictly increasing sigmas and log sigmas of the float64 values', () => {
    for (let i = 1; i < 1000; i++) expect(sd1.sigmas[i]).toBeGreaterThan(sd1.sigmas[i - 1]);
    expect(sd1.logSigmas[0]).toBe(Math.fround(Math.log(sigma64(0))));
  });

  it('maps integer timesteps through sigma and back exactly', () => {
    for (let t = 0; t < 1000; t++) expect(sd1.timestep(sd1.sigma(t))).toBe(t);
  });

  it('clamps timesteps of out-of-range sigmas to the ends', () => {
    expect(sd1.timestep(1000)).toBe(999);
    expect(sd1.timestep(1e-4)).toBe(0);
    expect(sd1.timestep(sd1.sigmaMax)).toBe(999);
    expect(sd1.timestep(sd1.sigmaMin)).toBe(0);
  });

  it('interpolates fractional timesteps log-linearly and clamps', () => {
    expectRel(sd1.sigma(499.5), Math.sqrt(sd1.sigmas[499] * sd1.sigmas[500]), 1e-6);
    expectRel(sd1.sigma(10.25), Math.exp(0.75 * Math.log(sd1.sigmas[10]) + 0.25 * Math.log(sd1.sigmas[11])), 1e-6);
    expect(sd1.sigma(-5)).toBe(sd1.sigma(0));
    expect(sd1.sigma(5000)).toBe(sd1.sigma(999));
    expectRel(sd1.sigma(999), sd1.sigmaMax, 1e-6);
  });

  it('converts percents to sigmas with ComfyUI sentinels at the ends', () => {
    expect(sd1.percentToSigma(0)).toBe(999999999.9);
    expect(sd1.percentToSigma(-0.5)).toBe(999999999.9);
    expect(sd1.percentToSigma(1)).toBe(0);
    expect(sd1.percentToSigma(1.2)).toBe(0);
    expect(sd1.percentToSigma(0.5)).toBe(sd1.sigma(499.5));
    let prev = Infinity;
    for (let p = 0.01; p < 1; p += 0.01) {
      const s = sd1.percentToSigma(p);
      expect(s).toBeLessThanOrEqual(prev);
      prev = s;
    }
    expectRel(sd1.percentToSigma(1e-9), sd1.sigmaMax, 1e-5);
  });

  it('builds the plain linear beta schedule differently from scaled_linear', () => {
    const lin = new ModelSamplingDiscrete({
      prediction: 'eps',
      betaSchedule: 'linear',
      linearStart: 0.0001,
      linearEnd: 0.02,
      timesteps: 1000,
    });
    expectRel(lin.sigmaMax, sigma64(999, 0.0001, 0.02, false), 1e-6);
    expectRel(lin.sigmaMin, Math.sqrt(0.0001 / (1 - 0.0001)), 1e-6);
    const betas = makeBetaSchedule('linear', 5, 0.1, 0.5);
    expect(betas[0]).toBe(0.1);
    expect(betas[4]).toBe(0.5);
    for (let i = 1; i < 4; i++) expectRel(betas[i], 0.1 * (i + 1), 1e-15);
    const scaled = makeBetaSchedule('scaled_linear', 3, 0.01, 0.09);
    expectRel(scaled[1], 0.04, 1e-15);
    expect(scaled[2]).toBeCloseTo(0.09, 15);
  });

  it('uses ComfyUI defaults and rejects bad timestep counts', () => {
    const def = new ModelSamplingDiscrete();
    expect(def.sigmaMax).toBe(sd1.sigmaMax);
    expect(def.prediction).toBe('eps');
    expect(() => new ModelSamplingDiscrete({ timesteps: 1 })).toThrow(RangeError);
  });
});

describe('EPS / V prediction helpers', () => {
  const x0 = new Float32Array([0.5, -1.25, 2, 0]);
  const eps = new Float32Array([1, 0.5, -0.75, 2]);

  it('scales the UNet input by 1/√(σ²+1)', () => {
    const out = sd1.calculateInput(2, new Float32Array([5, -Math.sqrt(5)]));
    expectRel(out[0], 5 / Math.sqrt(5), 1e-6);
    expectRel(out[1], -1, 1e-6);
  });

  it('recovers x0 from an eps prediction', () => {
    const sigma = 3.5;
    const x = Float32Array.from(x0, (v, i) => v + sigma * eps[i]);
    const den = sd1.calculateDenoised(sigma, eps, x);
    for (let i = 0; i < x0.length; i++) expect(den[i]).toBeCloseTo(x0[i], 5);
  });

  it('recovers x0 from a v prediction', () => {
    const sigma = 2.25;
    const x = Float32Array.from(x0, (v, i) => v + sigma * eps[i]);
    const v = Float32Array.from(x0, (x0i, i) => (eps[i] - sigma * x0i) / Math.sqrt(sigma * sigma + 1));
    const den = sd1v.calculateDenoised(sigma, v, x);
    for (let i = 0; i < x0.length; i++) expect(den[i]).toBeCloseTo(x0[i], 5);
    // The same output read as eps gives something else: the prediction type matters.
    const wrong = sd1.calculateDenoised(sigma, v, x);
    expect(Math.abs(wrong[0] - x0[0])).toBeGreaterThan(0.1);
  });

  it('matches the V formula at σ = 1', () => {
    const den = sd1v.calculateDenoised(1, new Float32Array([2]), new Float32Array([4]));
    expectRel(den[0], 4 / 2 - 2 / Math.SQRT2, 1e-6);
  });

  it('scales noise by σ, or √(1+σ²) at max denoise, and adds the latent', () => {
    const noise = new Float32Array([1, -2]);
    const latent = new Float32Array([0.5, 0.25]);
    const partial = sd1.noiseScaling(3, noise, latent, false);
    expect(Array.from(partial)).toEqual([3.5, -5.75]);
    const full = sd1.noiseScaling(3, noise, latent, true);
    expectRel(full[0], Math.sqrt(10) + 0.5, 1e-6);
    expectRel(full[1], -2 * Math.sqrt(10) + 0.25, 1e-6);
    expect(() => sd1.noiseScaling(1, noise, new Float32Array(3))).toThrow(RangeError);
  });

  it('leaves latents alone on the way out', () => {
    const latent = new Float32Array([1, 2, 3]);
    expect(sd1.inverseNoiseScaling(0, latent)).toBe(latent);
  });

  it('detects max denoise as ComfyUI does (rel 1e-5 or above the top sigma)', () => {
    expect(sd1.isMaxDenoise(sd1.sigmaMax)).toBe(true);
    expect(sd1.isMaxDenoise(calculateSigmas(sd1, 'normal', 20)[0])).toBe(true);
    expect(sd1.isMaxDenoise(20)).toBe(true);
    expect(sd1.isMaxDenoise(14.5)).toBe(false);
  });
});

describe('scheduler list', () => {
  it('is ComfyUI SCHEDULER_NAMES in order', () => {
    expect([...SCHEDULER_NAMES]).toEqual([
      'simple',
      'sgm_uniform',
      'karras',
      'exponential',
      'ddim_uniform',
      'beta',
      'normal',
      'linear_quadratic',
      'kl_optimal',
    ]);
    expect([...KSAMPLER_SCHEDULERS]).toEqual([...SCHEDULER_NAMES]);
    expect(isSchedulerName('karras')).toBe(true);
    expect(isSchedulerName('turbo')).toBe(false);
  });

  it('rejects unknown schedulers and non-positive steps', () => {
    expect(() => calculateSigmas(sd1, 'nope', 10)).toThrow(/invalid scheduler nope/);
    expect(() => calculateSigmas(sd1, 'normal', 0)).toThrow(RangeError);
    expect(() => calculateSigmas(sd1, 'normal', 2.5)).toThrow(RangeError);
  });
});

describe('every scheduler', () => {
  // Step counts where ddim_uniform's stride divides evenly, so all give steps+1 sigmas.
  for (const name of SCHEDULER_NAMES) {
    for (const steps of [1, 2, 3, 5, 10, 20, 25, 40]) {
      it(`${name} × ${steps}: steps+1 finite sigmas, non-increasing, ending in 0`, () => {
        const s = calculateSigmas(sd1, name, steps);
        expect(s).toBeInstanceOf(Float64Array);
        expect(s.length).toBe(steps + 1);
        expect(s[s.length - 1]).toBe(0);
        // ddim_uniform's single step starts at training index 1, as in ComfyUI.
        expect(s[0]).toBeGreaterThan(name === 'ddim_uniform' && steps === 1 ? 0.04 : 1);
        for (let i = 0; i < s.length; i++) {
          expect(Number.isFinite(s[i])).toBe(true);
          expect(Math.fround(s[i])).toBe(s[i]);
          if (i > 0) expect(s[i]).toBeLessThanOrEqual(s[i - 1]);
        }
        for (let i = 0; i < s.length - 1; i++) expect(s[i]).toBeGreaterThan(0);
      });
    }
  }
});

describe('individual schedulers', () => {
  it('normal: 1 step is [σ(999), 0]; 2 and 3 steps hit the ends and the middle timestep', () => {
    // exp(log_sigmas[999]) rounds to 14.6146402… in float32, one ulp below sigma_max itself.
    expect(Array.from(calculateSigmas(sd1, 'normal', 1))).toEqual([14.614640235900879, 0]);
    const two = calculateSigmas(sd1, 'normal', 2);
    expectRel(two[0], sd1.sigmaMax, 1e-6);
    expectRel(two[1], sd1.sigmaMin, 1e-6);
    const three = calculateSigmas(sd1, 'normal', 3);
    expect(three[1]).toBe(sd1.sigma(499.5));
  });

  it('normal: steps are uniform in timestep', () => {
    const s = calculateSigmas(sd1, 'normal', 10);
    for (let i = 0; i < 10; i++) expectRel(s[i], sd1.sigma(999 - (999 * i) / 9), 1e-5);
  });

  it('sgm_uniform: steps+1 uniform timesteps with the last dropped', () => {
    const s = calculateSigmas(sd1, 'sgm_uniform', 2);
    expect(s[0]).toBe(sd1.sigma(999));
    expect(s[1]).toBe(sd1.sigma(499.5));
    const t10 = calculateSigmas(sd1, 'sgm_uniform', 10);
    for (let i = 0; i < 10; i++) expectRel(t10[i], sd1.sigma(999 - (999 * i) / 10), 1e-5);
    expect(t10[9]).toBeGreaterThan(sd1.sigmaMin * 1.5);
  });

  it('karras: endpoints at the model range, uniform in σ^(1/7)', () => {
    const s = calculateSigmas(sd1, 'karras', 20);
    expectRel(s[0], sd1.sigmaMax, 1e-6);
    expectRel(s[19], sd1.sigmaMin, 1e-5);
    const root = Array.from(s.subarray(0, 20), (v) => v ** (1 / 7));
    const d0 = root[1] - root[0];
    expect(d0).toBeLessThan(0);
    for (let i = 1; i < 19; i++) expectRel(root[i + 1] - root[i], d0, 1e-4);
    expect(s[1]).toBeCloseTo(((sd1.sigmaMax ** (1 / 7) * 18 + sd1.sigmaMin ** (1 / 7)) / 19) ** 7, 4);
  });

  it('exponential: endpoints at the model range, uniform in log σ', () => {
    const s = calculateSigmas(sd1, 'exponential', 10);
    expectRel(s[0], sd1.sigmaMax, 1e-6);
    expectRel(s[9], sd1.sigmaMin, 1e-5);
    const ratio = s[1] / s[0];
    for (let i = 1; i < 9; i++) expectRel(s[i + 1] / s[i], ratio, 1e-5);
  });

  it('simple: every len/steps-th training sigma from the top', () => {
    expect(Array.from(calculateSigmas(sd1, 'simple', 1))).toEqual([sd1.sigmas[999], 0]);
    expect(Array.from(calculateSigmas(sd1, 'simple', 3))).toEqual([sd1.sigmas[999], sd1.sigmas[666], sd1.sigmas[333], 0]);
    expect(Array.from(calculateSigmas(sd1, 'simple', 4))).toEqual([sd1.sigmas[999], sd1.sigmas[749], sd1.sigmas[499], sd1.sigmas[249], 0]);
  });

  it('ddim_uniform: indices 1, 1+k, … reversed; keeps ComfyUI length quirk', () => {
    expect(Array.from(calculateSigmas(sd1, 'ddim_uniform', 1))).toEqual([sd1.sigmas[1], 0]);
    expect(Array.from(calculateSigmas(sd1, 'ddim_uniform', 3))).toEqual([sd1.sigmas[667], sd1.sigmas[334], sd1.sigmas[1], 0]);
    const s7 = calculateSigmas(sd1, 'ddim_uniform', 7);
    // stride ⌊1000/7⌋ = 142 lands 1, 143, …, 995: eight sigmas, then 0.
    expect(s7.length).toBe(9);
    expect(s7[0]).toBe(sd1.sigmas[995]);
    expect(s7[7]).toBe(sd1.sigmas[1]);
  });

  it('beta: scipy Beta(0.6, 0.6) quantile timesteps', () => {
    // numpy.rint(scipy.stats.beta.ppf(1 - linspace(0, 1, n, endpoint=False), 0.6, 0.6) * 999)
    const idx10 = [999, 959, 876, 765, 637, 500, 362, 234, 123, 40];
    expect(Array.from(calculateSigmas(sd1, 'beta', 10))).toEqual([...idx10.map((t) => sd1.sigmas[t]), 0]);
    const idx20 = [999, 986, 959, 922, 876, 823, 765, 703, 637, 569, 500, 430, 362, 296, 234, 176, 123, 77, 40, 13];
    expect(Array.from(calculateSigmas(sd1, 'beta', 20))).toEqual([...idx20.map((t) => sd1.sigmas[t]), 0]);
  });

  it('beta: repeated timesteps collapse at high step counts (scipy counts)', () => {
    expect(calculateSigmas(sd1, 'beta', 100).length).toBe(101);
    expect(calculateSigmas(sd1, 'beta', 200).length).toBe(200);
    const s = calculateSigmas(sd1, 'beta', 1000);
    expect(s.length).toBe(848);
    for (let i = 1; i < s.length; i++) expect(s[i]).toBeLessThan(s[i - 1]);
  });

  it('linear_quadratic: linear then quadratic in σ/σmax, pivot at 1 − 0.025', () => {
    const max = sd1.sigmaMax;
    const f = Math.fround;
    expect(Array.from(calculateSigmas(sd1, 'linear_quadratic', 1))).toEqual([max, 0]);
    expect(Array.from(calculateSigmas(sd1, 'linear_quadratic', 2))).toEqual([max, f(f(0.975) * max), 0]);
    const s = calculateSigmas(sd1, 'linear_quadratic', 20);
    for (let i = 0; i < 10; i++) expectRel(s[i], (1 - (0.025 * i) / 10) * max, 1e-6);
    expectRel(s[10], 0.975 * max, 1e-6);
    expect(s[19]).toBeGreaterThan(0);
    // Second differences of the quadratic part are constant.
    const d2 = s[12] - 2 * s[11] + s[10];
    for (let i = 11; i < 18; i++) expect(s[i + 2] - 2 * s[i + 1] + s[i]).toBeCloseTo(d2, 4);
  });

  it('kl_optimal: uniform in arctan σ; one step gives sigma_max, not NaN', () => {
    const s = calculateSigmas(sd1, 'kl_optimal', 8);
    expectRel(s[0], sd1.sigmaMax, 1e-5);
    expectRel(s[7], sd1.sigmaMin, 1e-5);
    const a = Array.from(s.subarray(0, 8), Math.atan);
    for (let i = 0; i < 7; i++) expectRel(a[i + 1] - a[i], (Math.atan(sd1.sigmaMin) - Math.atan(sd1.sigmaMax)) / 7, 1e-4);
    const one = calculateSigmas(sd1, 'kl_optimal', 1);
    expectRel(one[0], sd1.sigmaMax, 1e-5);
    expect(one[1]).toBe(0);
  });
});

describe('ksamplerSigmas (KSampler.set_steps)', () => {
  it('uses the full schedule at denoise 1, above 0.9999 or unset', () => {
    const full = calculateSigmas(sd1, 'karras', 12);
    expect(ksamplerSigmas(sd1, 'karras', 12, 1)).toEqual(full);
    expect(ksamplerSigmas(sd1, 'karras', 12, 0.99995)).toEqual(full);
    expect(ksamplerSigmas(sd1, 'karras', 12)).toEqual(full);
  });

  it('gives an empty schedule at denoise ≤ 0', () => {
    expect(ksamplerSigmas(sd1, 'normal', 20, 0).length).toBe(0);
    expect(ksamplerSigmas(sd1, 'normal', 20, -1).length).toBe(0);
  });

  it('keeps the tail of the ⌊steps/denoise⌋-step schedule', () => {
    const half = ksamplerSigmas(sd1, 'normal', 10, 0.5);
    expect(half).toEqual(calculateSigmas(sd1, 'normal', 20).slice(-11));
    const third = ksamplerSigmas(sd1, 'simple', 10, 0.3);
    expect(third.length).toBe(11);
    expect(third).toEqual(calculateSigmas(sd1, 'simple', 33).slice(-11));
    expect(third[0]).toBeLessThan(sd1.sigmaMax);
  });

  it('adds a step and drops the penultimate sigma for dpm_2 / uni_pc', () => {
    const s = ksamplerSigmas(sd1, 'karras', 10, 1, 'dpm_2');
    const more = calculateSigmas(sd1, 'karras', 11);
    expect(s.length).toBe(11);
    expect(Array.from(s)).toEqual([...Array.from(more.subarray(0, 10)), 0]);
    expect(ksamplerSigmas(sd1, 'karras', 10, 1, 'euler')).toEqual(calculateSigmas(sd1, 'karras', 10));
  });
});

describe('beta distribution quantile', () => {
  it('puts the median of symmetric Beta(0.6, 0.6) at 1/2 and is symmetric', () => {
    expect(betaPpf(0.5, 0.6, 0.6)).toBe(0.5);
    for (let p = 0.01; p < 0.5; p += 0.0137) {
      expect(betaPpf(1 - p, 0.6, 0.6)).toBeCloseTo(1 - betaPpf(p, 0.6, 0.6), 14);
    }
  });

  it('matches closed forms', () => {
    for (const p of [1e-8, 0.001, 0.1, 0.3, 0.5, 0.77, 0.95, 0.999999]) {
      // arcsine law: Beta(½, ½) quantile = sin²(πp/2)
      expectRel(betaPpf(p, 0.5, 0.5), Math.sin((Math.PI * p) / 2) ** 2, 1e-12);
      expectRel(betaPpf(p, 2, 1), Math.sqrt(p), 1e-12);
      expectRel(betaPpf(p, 1, 3), -Math.expm1(Math.log1p(-p) / 3), 1e-11);
      expectRel(betaPpf(p, 1, 1), p, 1e-13);
    }
  });

  it('matches scipy.stats.beta.ppf values', () => {
    expectRel(betaPpf(0.05, 0.6, 0.6), 0.012554456873611399, 1e-13);
    expectRel(betaPpf(0.25, 0.6, 0.6), 0.17568037865269498, 1e-13);
    expectRel(betaPpf(0.9, 0.6, 0.6), 0.9604155944112192, 1e-14);
    expectRel(betaPpf(0.99, 0.6, 0.6), 0.9991387611784571, 1e-14);
    expectRel(betaPpf(0.001, 0.6, 0.6), 1.855873851745199e-5, 1e-12);
    expectRel(betaPpf(0.3, 2.5, 1.5), 0.5094974124283413, 1e-13);
  });

  it('handles the ends and invalid input', () => {
    expect(betaPpf(0, 0.6, 0.6)).toBe(0);
    expect(betaPpf(1, 0.6, 0.6)).toBe(1);
    expect(betaPpf(1.5, 0.6, 0.6)).toBeNaN();
    expect(betaPpf(Number.NaN, 0.6, 0.6)).toBeNaN();
    expect(() => betaPpf(0.5, 0, 1)).toThrow(RangeError);
  });

  it('inverts the CDF, which itself matches closed forms', () => {
    // P(Bin(4, 0.3) ≥ 2) = 1 − 0.7⁴ − 4·0.3·0.7³
    expectRel(betaCdf(0.3, 2, 3), 0.3483, 1e-13);
    expectRel(betaCdf(0.3, 0.6, 0.6), 0.35252651177214367, 1e-13);
    for (const p of [0.02, 0.2, 0.6, 0.97]) expectRel(betaCdf(betaPpf(p, 0.6, 0.6), 0.6, 0.6), p, 1e-13);
    expect(betaCdf(0, 2, 2)).toBe(0);
    expect(betaCdf(1, 2, 2)).toBe(1);
  });

  it('logGamma matches known values', () => {
    expectRel(logGamma(0.5), 0.5 * Math.log(Math.PI), 1e-14);
    expectRel(logGamma(5), Math.log(24), 1e-14);
    expectRel(logGamma(0.1), 2.252712651734206, 1e-14);
    expect(Math.abs(logGamma(1))).toBeLessThan(1e-15);
  });
});

describe('linspaceF32', () => {
  it('hits both endpoints exactly and counts back from the end in the upper half', () => {
    const t = linspaceF32(999, 0, 20);
    expect(t[0]).toBe(999);
    expect(t[19]).toBe(0);
    const step = Math.fround(-999 / 19);
    expect(t[3]).toBe(Math.fround(999 + Math.fround(step * 3)));
    expect(t[15]).toBe(Math.fround(-Math.fround(step * 4)));
    expect(Array.from(linspaceF32(3, 7, 1))).toEqual([3]);
    expect(linspaceF32(0, 1, 0).length).toBe(0);
  });
});
