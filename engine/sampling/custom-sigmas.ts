import { GITS_NOISE_LEVELS } from './gits-levels.ts';
import type { ModelSampling } from './model-sampling.ts';
import { calculateSigmas, linspaceF32, roundHalfEven } from './schedulers.ts';

/**
 * The schedules and σ-list operations of ComfyUI's custom-sampling nodes (comfy_extras/
 * nodes_custom_sampler.py, nodes_align_your_steps.py, k-diffusion's get_sigmas_*), in the precision
 * ComfyUI computes them: float32 torch ops mirrored with Math.fround (transcendentals are float64
 * libm rounded to float32, which can differ from torch's float32 kernels by one ulp), the AYS
 * interpolation in float64 (numpy) rounded to float32 at the end as torch.FloatTensor does.
 */

const f32 = Math.fround;

function appendZero(values: Float32Array): Float64Array {
  const out = new Float64Array(values.length + 1);
  out.set(values);
  return out;
}

/** BasicScheduler: the scheduler's σs for ⌊steps/denoise⌋ steps, the last steps+1 of them; empty for denoise ≤ 0. */
export function basicSchedulerSigmas(ms: ModelSampling, scheduler: string, steps: number, denoise: number): Float64Array {
  let total = steps;
  if (denoise < 1) {
    if (denoise <= 0) return new Float64Array(0);
    total = Math.trunc(steps / denoise);
  }
  const s = calculateSigmas(ms, scheduler, total);
  return s.slice(Math.max(0, s.length - (steps + 1)));
}

/** k-diffusion get_sigmas_polyexponential: exp(ramp^ρ·(ln σmax − ln σmin) + ln σmin), ramp from 1 to 0. */
export function polyexponentialSigmas(n: number, sigmaMin: number, sigmaMax: number, rho = 1): Float64Array {
  const ramp = linspaceF32(1, 0, n);
  const span = f32(Math.log(sigmaMax) - Math.log(sigmaMin));
  const logMin = f32(Math.log(sigmaMin));
  const r = f32(rho);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // torch's pow with exponent 1 is the identity; other exponents go through powf.
    const p = r === 1 ? ramp[i] : f32(Math.pow(ramp[i], r));
    out[i] = Math.exp(f32(f32(p * span) + logMin));
  }
  return appendZero(out);
}

/**
 * k-diffusion get_sigmas_laplace (Tiankai et al. 2024): exp(μ − β·sign(½ − x)·ln(1 − 2|½ − x| + 1e-5))
 * clamped to [σmin, σmax]. ComfyUI appends no final zero here, so a SamplerCustom run on it stops at σmin.
 */
export function laplaceSigmas(n: number, sigmaMin: number, sigmaMax: number, mu = 0, beta = 0.5): Float64Array {
  const x = linspaceF32(0, 1, n);
  const eps = f32(1e-5);
  const b = f32(beta);
  const m = f32(mu);
  const lo = f32(sigmaMin);
  const hi = f32(sigmaMax);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const d = f32(0.5 - x[i]);
    const sign = d > 0 ? 1 : d < 0 ? -1 : 0;
    const log = f32(Math.log(f32(f32(1 - f32(2 * Math.abs(d))) + eps)));
    const lmb = f32(m - f32(f32(b * sign) * log));
    out[i] = Math.min(Math.max(f32(Math.exp(lmb)), lo), hi);
  }
  return out;
}

/** k-diffusion get_sigmas_vp: √(expm1(β_d·t²/2 + β_min·t)) for t from 1 to eps_s. */
export function vpSigmas(n: number, betaD = 19.9, betaMin = 0.1, epsS = 1e-3): Float64Array {
  const t = linspaceF32(1, epsS, n);
  const bd = f32(betaD);
  const bm = f32(betaMin);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = f32(f32(bd * f32(t[i] * t[i])) / 2);
    out[i] = Math.sqrt(f32(Math.expm1(f32(a + f32(bm * t[i])))));
  }
  return appendZero(out);
}

/** SDTurboScheduler: σ at timesteps 999, 899, …, starting 10 − ⌊10·denoise⌋ entries in, `steps` of them, then 0. */
export function sdTurboSigmas(ms: ModelSampling, steps: number, denoise: number): Float64Array {
  const start = 10 - Math.trunc(10 * denoise);
  const timesteps: number[] = [];
  for (let k = 10; k >= 1; k--) timesteps.push(k * 100 - 1);
  const picked = timesteps.slice(start, start + steps);
  const out = new Float64Array(picked.length + 1);
  picked.forEach((t, i) => (out[i] = ms.sigma(t)));
  return out;
}

/** Align Your Steps noise levels (NVIDIA's published 10-step schedules), σmax first. */
export const AYS_NOISE_LEVELS = {
  SD1: [
    14.6146412293, 6.4745760956, 3.8636745985, 2.694615152, 1.8841921177, 1.3943805092, 0.9642583904, 0.6523686016, 0.3977456272,
    0.1515232662, 0.0291671582,
  ],
  SDXL: [
    14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141, 0.5550693289, 0.3798540708, 0.2332364134,
    0.1114188177, 0.0291671582,
  ],
  SVD: [700.0, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002],
} as const satisfies Record<string, readonly number[]>;

export type AysModelType = keyof typeof AYS_NOISE_LEVELS;

/** numpy.linspace(0, 1, n) in float64: i·(1/(n−1)), the last point exactly 1. */
function unitLinspace(n: number): number[] {
  if (n === 1) return [0];
  const step = 1 / (n - 1);
  return Array.from({ length: n }, (_, i) => (i === n - 1 ? 1 : i * step));
}

/** numpy.interp for increasing xs (values past the ends take the end values). */
function interp(x: number, xs: readonly number[], ys: readonly number[]): number {
  const last = xs.length - 1;
  if (x <= xs[0]) return ys[0];
  if (x >= xs[last]) return ys[last];
  let j = 0;
  while (xs[j + 1] <= x) j++;
  if (xs[j] === x) return ys[j];
  const slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j]);
  return slope * (x - xs[j]) + ys[j];
}

/** AYS loglinear_interp: the decreasing levels resampled to n points, linear in log σ. */
export function loglinearInterp(levels: readonly number[], n: number): number[] {
  const xs = unitLinspace(levels.length);
  const ys = [...levels].reverse().map(Math.log);
  return unitLinspace(n)
    .map((x) => Math.exp(interp(x, xs, ys)))
    .reverse();
}

/**
 * The table schedulers' denoise (AYS, GITS): the last round(steps·denoise)+1 σs of a float64 schedule
 * (all of it at denoise 1, none at ≤ 0), the final one set to 0, as float32.
 */
function lastStepsToZero(sigmas: () => number[], steps: number, denoise: number): Float64Array {
  let total = steps;
  if (denoise < 1) {
    if (denoise <= 0) return new Float64Array(0);
    total = roundHalfEven(steps * denoise);
  }
  const all = sigmas();
  const tail = all.slice(Math.max(0, all.length - (total + 1)));
  tail[tail.length - 1] = 0;
  return Float64Array.from(tail, f32);
}

/** AlignYourStepsScheduler: the model type's levels (interpolated unless steps = 10), the last round(steps·denoise)+1, ending in 0. */
export function alignYourStepsSigmas(modelType: AysModelType, steps: number, denoise: number): Float64Array {
  const levels: readonly number[] = AYS_NOISE_LEVELS[modelType];
  return lastStepsToZero(() => (steps + 1 !== levels.length ? loglinearInterp(levels, steps + 1) : [...levels]), steps, denoise);
}

/** SplitSigmas: [0, step] and [step, end] (sharing σ_step). */
export function splitSigmas(sigmas: Float64Array, step: number): [Float64Array, Float64Array] {
  return [sigmas.slice(0, step + 1), sigmas.slice(Math.min(step, sigmas.length))];
}

/** Python's a[-k:] and a[:-k] for k ≥ 0 (k = 0 gives all and nothing). */
const lastK = (a: Float64Array, k: number): Float64Array => (k === 0 ? a.slice() : a.slice(Math.max(0, a.length - k)));
const dropLastK = (a: Float64Array, k: number): Float64Array => (k === 0 ? new Float64Array(0) : a.slice(0, Math.max(0, a.length - k)));

/**
 * SplitSigmasDenoise: the last round(steps·denoise) steps go to low_sigmas, the rest to high_sigmas.
 * ComfyUI slices with negative indices, so denoise 0 gives an empty high half and a one-σ low half.
 */
export function splitSigmasDenoise(sigmas: Float64Array, denoise: number): [Float64Array, Float64Array] {
  const steps = Math.max(sigmas.length - 1, 0);
  const total = roundHalfEven(steps * denoise);
  return [dropLastK(sigmas, total), lastK(sigmas, total + 1)];
}

/** FlipSigmas: reversed, with a leading 0 replaced by 1e-4 (float32) so the first step has a noise level. */
export function flipSigmas(sigmas: Float64Array): Float64Array {
  const out = sigmas.slice().reverse();
  if (out.length && out[0] === 0) out[0] = f32(0.0001);
  return out;
}

/** SetFirstSigma: a copy with σ_0 replaced (stored as float32, as the tensor does). */
export function setFirstSigma(sigmas: Float64Array, sigma: number): Float64Array {
  const out = sigmas.slice();
  if (out.length === 0) throw new RangeError('SetFirstSigma needs at least one sigma');
  out[0] = f32(sigma);
  return out;
}

export type SigmaSpacing = 'linear' | 'cosine' | 'sine';

/**
 * ExtendIntermediateSigmas: after every σ_i with end_at ≤ σ_i ≤ start_at (start_at < 0 = no upper
 * bound), steps − 1 extra σs between σ_i and σ_i+1 at the spacing's fractions of the gap.
 */
export function extendIntermediateSigmas(
  sigmas: Float64Array,
  steps: number,
  startAt: number,
  endAt: number,
  spacing: SigmaSpacing,
): Float64Array {
  const hi = startAt < 0 ? Infinity : f32(startAt);
  const lo = f32(endAt);
  const pi = f32(Math.PI);
  const fractions = Array.from(linspaceF32(0, 1, steps + 1).subarray(1, steps), (x) => {
    if (spacing === 'linear') return x;
    const angle = f32(f32(x * pi) / 2);
    return spacing === 'cosine' ? f32(Math.sin(angle)) : f32(1 - f32(Math.cos(angle)));
  });
  const out: number[] = [];
  for (let i = 0; i < sigmas.length - 1; i++) {
    const cur = sigmas[i];
    out.push(cur);
    if (lo <= cur && cur <= hi) {
      const gap = f32(sigmas[i + 1] - cur);
      for (const fr of fractions) out.push(f32(f32(fr * gap) + cur));
    }
  }
  if (sigmas.length) out.push(sigmas[sigmas.length - 1]);
  return Float64Array.from(out, f32);
}

/** ManualSigmas: every number in the text (ComfyUI's pattern: digits, dots, digits; no exponents), as float32. */
export function parseManualSigmas(text: string): Float64Array {
  const found = text.match(/[-+]?(?:\d*\.*\d+)/g) ?? [];
  return Float64Array.from(found, (s) => {
    const v = Number(s);
    if (Number.isNaN(v)) throw new Error(`could not convert string to float: '${s}'`);
    return f32(v);
  });
}

/**
 * GITSScheduler: the table's schedule for the coefficient (a multiple of 0.05 in 0.80 … 1.50) and
 * steps ≤ 20, else its 20-step schedule log-linearly interpolated; denoise keeps round(steps·denoise)
 * steps; the last σ becomes 0.
 */
export function gitsSigmas(coeff: number, steps: number, denoise: number): Float64Array {
  return lastStepsToZero(
    () => {
      const table = GITS_NOISE_LEVELS[Math.round(coeff * 100)];
      if (!table) throw new Error(`GITSScheduler has no schedule for coeff ${coeff} (0.80 … 1.50 in steps of 0.05)`);
      return steps <= 20 ? [...table[steps - 2]] : loglinearInterp(table[table.length - 1], steps + 1);
    },
    steps,
    denoise,
  );
}
