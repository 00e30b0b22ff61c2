import type { ModelSampling } from './model-sampling.ts';
import { samplerDiscardsPenultimateSigma } from './samplers/index.ts';

/**
 * ComfyUI's sigma schedulers (comfy/samplers.py SCHEDULER_HANDLERS, plus k-diffusion's karras and
 * exponential) and KSampler's denoise trimming.
 *
 * ComfyUI returns float32 tensors and computes most schedules in float32 torch ops; the values
 * here are those float32 numbers held in a Float64Array (the sampler contract). Float32 arithmetic
 * is mirrored with `Math.fround` (see model-sampling.ts for why that is exact for + − × ÷ √).
 * Two places can still differ by a float32 ulp from a given ComfyUI install: transcendental
 * functions (exp, pow, tan: float64 libm then rounded, vs the C float32 libm) and torch.linspace,
 * whose CPU kernel switches to a SIMD form (base + k·step per vector lane, width depending on the
 * CPU) for longer outputs; the scalar form used here is what that kernel computes per element.
 */

const f32 = Math.fround;

/** ComfyUI's SCHEDULER_NAMES, in its order (the dict order of SCHEDULER_HANDLERS). */
export const SCHEDULER_NAMES = [
  'simple',
  'sgm_uniform',
  'karras',
  'exponential',
  'ddim_uniform',
  'beta',
  'normal',
  'linear_quadratic',
  'kl_optimal',
] as const;

export type SchedulerName = (typeof SCHEDULER_NAMES)[number];

/** KSampler.SCHEDULERS: the scheduler combo of KSampler / KSamplerAdvanced / BasicScheduler. */
export const KSAMPLER_SCHEDULERS: readonly SchedulerName[] = SCHEDULER_NAMES;

export function isSchedulerName(name: string): name is SchedulerName {
  return (SCHEDULER_NAMES as readonly string[]).includes(name);
}

// ---------------------------------------------------------------------------------------------
// float32 torch helpers

/** torch.linspace in float32 (default dtype), scalar CPU formula: the upper half counts back from `end`. */
export function linspaceF32(start: number, end: number, n: number): Float32Array {
  const out = new Float32Array(n);
  if (n <= 0) return out;
  const s = f32(start);
  const e = f32(end);
  if (n === 1) {
    out[0] = s;
    return out;
  }
  const step = f32(f32(e - s) / (n - 1));
  const halfway = Math.floor(n / 2);
  for (let i = 0; i < n; i++) {
    out[i] = i < halfway ? f32(s + f32(step * i)) : f32(e - f32(step * (n - i - 1)));
  }
  return out;
}

function withZero(values: ArrayLike<number>): Float64Array {
  const out = new Float64Array(values.length + 1);
  for (let i = 0; i < values.length; i++) out[i] = f32(values[i]);
  out[values.length] = 0;
  return out;
}

function isCloseToZero(x: number): boolean {
  return Math.abs(x) <= 1e-5;
}

// ---------------------------------------------------------------------------------------------
// Schedulers

/** k-diffusion get_sigmas_karras (rho = 7): uniform in σ^(1/ρ) from sigma_max to sigma_min. */
export function karrasSigmas(n: number, sigmaMin: number, sigmaMax: number, rho = 7): Float64Array {
  const ramp = linspaceF32(0, 1, n);
  // The exponents are Python floats (float64); they meet the float32 ramp as float32 scalars.
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  const span = f32(minInvRho - maxInvRho);
  const base = f32(maxInvRho);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.pow(f32(base + f32(ramp[i] * span)), f32(rho));
  return withZero(out);
}

/** k-diffusion get_sigmas_exponential: uniform in log σ. */
export function exponentialSigmas(n: number, sigmaMin: number, sigmaMax: number): Float64Array {
  const logs = linspaceF32(Math.log(sigmaMax), Math.log(sigmaMin), n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.exp(logs[i]);
  return withZero(out);
}

/**
 * normal_scheduler: uniform in (fractional) timestep between the model's ends, mapped through
 * sigma(t). sgm_uniform spaces steps+1 points and drops the last, so it never lands on sigma_min
 * before the final 0. When the model's lowest sigma is ~0 (zero terminal SNR) the plain variant
 * takes one more point instead of appending a zero, since its last point already is one.
 */
export function normalSigmas(ms: ModelSampling, steps: number, sgm = false): Float64Array {
  const start = ms.timestep(ms.sigmaMax);
  const end = ms.timestep(ms.sigmaMin);
  let timesteps: Float32Array;
  let appendZero = true;
  if (sgm) {
    timesteps = linspaceF32(start, end, steps + 1).subarray(0, steps);
  } else {
    let n = steps;
    if (isCloseToZero(ms.sigma(end))) {
      n += 1;
      appendZero = false;
    }
    timesteps = linspaceF32(start, end, n);
  }
  const sigmas = new Float64Array(timesteps.length + (appendZero ? 1 : 0));
  for (let i = 0; i < timesteps.length; i++) sigmas[i] = ms.sigma(timesteps[i]);
  return sigmas;
}

/** simple_scheduler: every (len/steps)-th training sigma, from the top. */
export function simpleSigmas(ms: ModelSampling, steps: number): Float64Array {
  const n = ms.sigmas.length;
  const stride = n / steps;
  const out = new Float64Array(steps + 1);
  for (let x = 0; x < steps; x++) out[x] = ms.sigmas[n - 1 - Math.trunc(x * stride)];
  return out;
}

/**
 * ddim_scheduler: training sigmas 1, 1+k, 1+2k, … with k = ⌊len/steps⌋, reversed, then 0. The
 * count is ⌈(len−1)/k⌉, which is not always `steps` (e.g. 7 steps give 8 sigmas before the 0);
 * ComfyUI keeps that quirk.
 */
export function ddimUniformSigmas(ms: ModelSampling, steps: number): Float64Array {
  const n = ms.sigmas.length;
  const picked: number[] = [];
  let x = 1;
  let trailingZero = true;
  let count = steps;
  if (isCloseToZero(ms.sigmas[x])) {
    count += 1;
    trailingZero = false;
  }
  const stride = Math.max(Math.floor(n / count), 1);
  for (; x < n; x += stride) picked.push(ms.sigmas[x]);
  picked.reverse();
  if (trailingZero) picked.push(0);
  return Float64Array.from(picked);
}

/**
 * beta_scheduler (arXiv 2407.12173): timesteps at Beta(α, β) quantiles of 1 − i/steps, rounded
 * half-to-even to training indices (numpy.rint); repeated consecutive indices are dropped, so very
 * high step counts can give fewer than steps+1 sigmas, as in ComfyUI.
 */
export function betaSigmas(ms: ModelSampling, steps: number, alpha = 0.6, beta = 0.6): Float64Array {
  const total = ms.sigmas.length - 1;
  const step = 1 / steps;
  const out: number[] = [];
  let lastT = -1;
  for (let i = 0; i < steps; i++) {
    const t = roundHalfEven(betaPpf(1 - i * step, alpha, beta) * total);
    if (t !== lastT) out.push(ms.sigmas[t]);
    lastT = t;
  }
  out.push(0);
  return Float64Array.from(out);
}

/** linear_quadratic_schedule (Mochi): linear in the first half of steps, quadratic after. */
export function linearQuadraticSigmas(ms: ModelSampling, steps: number, thresholdNoise = 0.025, linearSteps?: number): Float64Array {
  let schedule: number[];
  if (steps === 1) {
    schedule = [1.0, 0.0];
  } else {
    const ls = linearSteps ?? Math.floor(steps / 2);
    const linear: number[] = [];
    for (let i = 0; i < ls; i++) linear.push((i * thresholdNoise) / ls);
    const thresholdNoiseStepDiff = ls - thresholdNoise * steps;
    const quadraticSteps = steps - ls;
    const quadraticCoef = thresholdNoiseStepDiff / (ls * quadraticSteps ** 2);
    const linearCoef = thresholdNoise / ls - (2 * thresholdNoiseStepDiff) / quadraticSteps ** 2;
    const constant = quadraticCoef * ls ** 2;
    const quadratic: number[] = [];
    for (let i = ls; i < steps; i++) quadratic.push(quadraticCoef * i ** 2 + linearCoef * i + constant);
    schedule = [...linear, ...quadratic, 1.0].map((v) => 1.0 - v);
  }
  // Built in float64, then made a FloatTensor and multiplied by the float32 sigma_max.
  const sigmaMax = f32(ms.sigmaMax);
  return Float64Array.from(schedule, (v) => f32(f32(v) * sigmaMax));
}

/**
 * kl_optimal_scheduler (AUTOMATIC1111 PR 15608): uniform in arctan σ. For n = 1 ComfyUI divides
 * 0 by 0 and returns a NaN first sigma; this returns sigma_max there (the n → 1 limit of its
 * first entry) so a one-step schedule stays usable.
 */
export function klOptimalSigmas(n: number, sigmaMin: number, sigmaMax: number): Float64Array {
  const atanMin = f32(Math.atan(sigmaMin));
  const atanMax = f32(Math.atan(sigmaMax));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const adj = n > 1 ? f32(i / (n - 1)) : 0;
    out[i] = Math.tan(f32(f32(adj * atanMin) + f32(f32(1 - adj) * atanMax)));
  }
  return withZero(out);
}

/** ComfyUI's calculate_sigmas: `steps` sampling steps → sigmas, descending, normally ending in 0. */
export function calculateSigmas(ms: ModelSampling, schedulerName: string, steps: number): Float64Array {
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be an integer ≥ 1, got ${steps}`);
  const sigmaMin = ms.sigmaMin;
  const sigmaMax = ms.sigmaMax;
  switch (schedulerName) {
    case 'simple':
      return simpleSigmas(ms, steps);
    case 'sgm_uniform':
      return normalSigmas(ms, steps, true);
    case 'karras':
      return karrasSigmas(steps, sigmaMin, sigmaMax);
    case 'exponential':
      return exponentialSigmas(steps, sigmaMin, sigmaMax);
    case 'ddim_uniform':
      return ddimUniformSigmas(ms, steps);
    case 'beta':
      return betaSigmas(ms, steps);
    case 'normal':
      return normalSigmas(ms, steps, false);
    case 'linear_quadratic':
      return linearQuadraticSigmas(ms, steps);
    case 'kl_optimal':
      return klOptimalSigmas(steps, sigmaMin, sigmaMax);
    default:
      throw new Error(`error invalid scheduler ${schedulerName}`);
  }
}

/**
 * KSampler.calculate_sigmas + set_steps: the schedule KSampler samples with. Partial denoise
 * computes the schedule for ⌊steps/denoise⌋ steps and keeps its last steps+1 sigmas, so img2img
 * starts partway down the full-strength curve; denoise ≤ 0 gives an empty schedule (nothing to do).
 */
export function ksamplerSigmas(ms: ModelSampling, scheduler: string, steps: number, denoise?: number, samplerName?: string): Float64Array {
  const compute = (n: number): Float64Array => {
    if (samplerName !== undefined && samplerDiscardsPenultimateSigma(samplerName)) {
      const s = calculateSigmas(ms, scheduler, n + 1);
      const out = new Float64Array(s.length - 1);
      out.set(s.subarray(0, s.length - 2));
      out[out.length - 1] = s[s.length - 1];
      return out;
    }
    return calculateSigmas(ms, scheduler, n);
  };
  if (denoise === undefined || denoise > 0.9999) return compute(steps);
  if (denoise <= 0) return new Float64Array(0);
  const full = compute(Math.trunc(steps / denoise));
  return full.slice(Math.max(0, full.length - (steps + 1)));
}

// ---------------------------------------------------------------------------------------------
// Beta distribution quantile (scipy.stats.beta.ppf), float64

export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round takes .5 up; numpy.rint takes it to the even neighbour.
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const LANCZOS_G = 7;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7; ~1e-15 relative). */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new RangeError(`logGamma needs x > 0, got ${x}`);
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let sum = LANCZOS[0];
  for (let i = 1; i < LANCZOS.length; i++) sum += LANCZOS[i] / (z + i);
  const t = z + LANCZOS_G + 0.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

function logBeta(a: number, b: number): number {
  return logGamma(a) + logGamma(b) - logGamma(a + b);
}

/** Continued fraction for I_x(a, b) (modified Lentz); converges fast for x < (a+1)/(a+b+2). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return h;
}

/** Regularized incomplete beta I_x(a, b), the Beta(a, b) CDF. */
export function betaCdf(x: number, a: number, b: number): number {
  if (!(a > 0 && b > 0)) throw new RangeError(`Beta parameters must be > 0, got ${a}, ${b}`);
  if (Number.isNaN(x)) return NaN;
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lnFront = a * Math.log(x) + b * Math.log1p(-x) - logBeta(a, b);
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(lnFront) * betaContinuedFraction(a, b, x)) / a;
  return 1 - (Math.exp(lnFront) * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** Lower-tail root of I_x(a, b) = p for p ≤ 1/2: safeguarded Newton inside a shrinking bracket. */
function betaQuantileLower(p: number, a: number, b: number): number {
  const lnB = logBeta(a, b);
  let lo = 0;
  let hi = 1;
  // Start from the small-x asymptote I_x ≈ x^a / (a·B), clamped into the bracket.
  let x = Math.exp((Math.log(p * a) + lnB) / a);
  if (!(x > 0 && x < 1)) x = 0.5;
  for (let iter = 0; iter < 300; iter++) {
    const f = betaCdf(x, a, b) - p;
    if (f === 0) return x;
    if (f < 0) lo = x;
    else hi = x;
    const pdf = Math.exp((a - 1) * Math.log(x) + (b - 1) * Math.log1p(-x) - lnB);
    let next = x - f / pdf;
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    if (next === x || hi - lo <= 2 * Number.EPSILON * hi) return next;
    if (Math.abs(next - x) <= 0.5 * Number.EPSILON * next) return next;
    x = next;
  }
  return x;
}

/**
 * Beta(a, b) quantile, scipy.stats.beta.ppf. The upper half is solved as the lower tail of
 * Beta(b, a) at 1 − p (exact for p ≥ ½), which keeps full absolute precision near 1 and makes a
 * symmetric distribution's quantiles exactly symmetric.
 */
export function betaPpf(p: number, a: number, b: number): number {
  if (!(a > 0 && b > 0)) throw new RangeError(`Beta parameters must be > 0, got ${a}, ${b}`);
  if (Number.isNaN(p) || p < 0 || p > 1) return NaN;
  if (p === 0) return 0;
  if (p === 1) return 1;
  if (a === b && p === 0.5) return 0.5;
  if (p > 0.5) return 1 - betaQuantileLower(1 - p, b, a);
  return betaQuantileLower(p, a, b);
}
