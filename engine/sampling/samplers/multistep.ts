import type { Tensor } from '../../core/tensor.ts';
import { lc, num, Run, startX, toD } from './common.ts';
import type { SamplerContext, SamplerOptions } from './types.ts';

/*
 * Linear multistep samplers on the σ-ODE dx/dσ = (x − D)/σ, reusing past derivatives: lms
 * (k-diffusion), and ipndm, ipndm_v, deis (ComfyUI, after zju-pi/diff-sampler).
 */

// 8-point Gauss–Legendre on [−1, 1]: exact for the ≤ 3rd-degree Lagrange polynomials lms integrates,
// where k-diffusion uses scipy's quad (to ~1e-4 relative at worst, exact in practice for polynomials).
const GL_X = [
  -0.9602898564975363, -0.7966664774136267, -0.525532409916329, -0.1834346424956498, 0.1834346424956498, 0.525532409916329,
  0.7966664774136267, 0.9602898564975363,
];
const GL_W = [
  0.1012285362903763, 0.2223810344533745, 0.3137066458778873, 0.362683783378362, 0.362683783378362, 0.3137066458778873, 0.2223810344533745,
  0.1012285362903763,
];

/** k-diffusion linear_multistep_coeff: ∫_{t_i}^{t_{i+1}} of the j-th Lagrange basis over t_i … t_{i−order+1}. */
export function linearMultistepCoeff(order: number, t: Float64Array, i: number, j: number): number {
  if (order - 1 > i) throw new Error(`Order ${order} too high for step ${i}`);
  const a = t[i];
  const b = t[i + 1];
  const half = (b - a) / 2;
  const mid = (a + b) / 2;
  let sum = 0;
  for (let q = 0; q < GL_X.length; q++) {
    const tau = mid + half * GL_X[q];
    let prod = 1;
    for (let k = 0; k < order; k++) {
      if (k === j) continue;
      prod *= (tau - t[i - k]) / (t[i - j] - t[i - k]);
    }
    sum += GL_W[q] * prod;
  }
  return sum * half;
}

/** k-diffusion sample_lms (order 4 by default); ComfyUI's version lands on D itself when σ_{i+1} = 0. */
export async function sampleLms(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const order = num(opts, 'order', 4);
  let x = startX(x0);
  const ds: Float32Array[] = [];
  for (let i = 0; i < sigmas.length - 1; i++) {
    const denoised = await run.model(x, sigmas[i]);
    ds.push(toD(x, sigmas[i], denoised));
    if (ds.length > order) ds.shift();
    run.report(i, x, denoised, sigmas[i]);
    if (sigmas[i + 1] === 0) {
      x = denoised;
    } else {
      const curOrder = Math.min(i + 1, order);
      const coefs = [1];
      const arrs = [x];
      for (let j = 0; j < curOrder; j++) {
        coefs.push(linearMultistepCoeff(curOrder, sigmas, i, j));
        arrs.push(ds[ds.length - 1 - j]);
      }
      x = lc(coefs, arrs);
    }
  }
  return run.tensor(x);
}

/** Keeps the last `max − 1` derivatives, newest last, the way the reference shifts its buffer. */
function pushHistory(buffer: Float32Array[], d: Float32Array, maxOrder: number): void {
  if (maxOrder <= 1) return;
  if (buffer.length === maxOrder - 1) {
    buffer.shift();
  }
  buffer.push(d);
}

/** ComfyUI sample_ipndm: Adams–Bashforth with fixed (uniform-step) coefficients, up to 4th order. */
export async function sampleIpndm(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const maxOrder = num(opts, 'max_order', 4);
  let x = startX(x0);
  const buf: Float32Array[] = [];
  for (let i = 0; i < sigmas.length - 1; i++) {
    const tCur = sigmas[i];
    const tNext = sigmas[i + 1];
    const denoised = await run.model(x, tCur);
    run.report(i, x, denoised, tCur);
    const d = toD(x, tCur, denoised);
    const order = Math.min(maxOrder, i + 1);
    const dt = tNext - tCur;
    const n = buf.length;
    if (tNext === 0) x = denoised;
    else if (order === 1) x = lc([1, dt], [x, d]);
    else if (order === 2) x = lc([1, (dt * 3) / 2, -dt / 2], [x, d, buf[n - 1]]);
    else if (order === 3) x = lc([1, (dt * 23) / 12, (-dt * 16) / 12, (dt * 5) / 12], [x, d, buf[n - 1], buf[n - 2]]);
    else x = lc([1, (dt * 55) / 24, (-dt * 59) / 24, (dt * 37) / 24, (-dt * 9) / 24], [x, d, buf[n - 1], buf[n - 2], buf[n - 3]]);
    pushHistory(buf, d, maxOrder);
  }
  return run.tensor(x);
}

/** ComfyUI sample_ipndm_v: variable-step Adams–Bashforth coefficients from the actual σ spacing. */
export async function sampleIpndmV(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const maxOrder = num(opts, 'max_order', 4);
  const t = sigmas;
  let x = startX(x0);
  const buf: Float32Array[] = [];
  for (let i = 0; i < sigmas.length - 1; i++) {
    const tCur = t[i];
    const tNext = t[i + 1];
    const denoised = await run.model(x, tCur);
    run.report(i, x, denoised, tCur);
    const d = toD(x, tCur, denoised);
    const order = Math.min(maxOrder, i + 1);
    const hn = tNext - tCur;
    const n = buf.length;
    if (tNext === 0) {
      x = denoised;
    } else if (order === 1) {
      x = lc([1, hn], [x, d]);
    } else if (order === 2) {
      const hn1 = tCur - t[i - 1];
      const c1 = (2 + hn / hn1) / 2;
      const c2 = -(hn / hn1) / 2;
      x = lc([1, hn * c1, hn * c2], [x, d, buf[n - 1]]);
    } else if (order === 3) {
      const hn1 = tCur - t[i - 1];
      const hn2 = t[i - 1] - t[i - 2];
      const temp = (1 - ((hn / (3 * (hn + hn1))) * (hn * (hn + hn1))) / (hn1 * (hn1 + hn2))) / 2;
      const c1 = (2 + hn / hn1) / 2 + temp;
      const c2 = -(hn / hn1) / 2 - (1 + hn1 / hn2) * temp;
      const c3 = (temp * hn1) / hn2;
      x = lc([1, hn * c1, hn * c2, hn * c3], [x, d, buf[n - 1], buf[n - 2]]);
    } else {
      const hn1 = tCur - t[i - 1];
      const hn2 = t[i - 1] - t[i - 2];
      const hn3 = t[i - 2] - t[i - 3];
      const temp1 = (1 - ((hn / (3 * (hn + hn1))) * (hn * (hn + hn1))) / (hn1 * (hn1 + hn2))) / 2;
      const temp2 =
        (((1 - hn / (3 * (hn + hn1))) / 2 + ((1 - hn / (2 * (hn + hn1))) * hn) / (6 * (hn + hn1 + hn2))) *
          (hn * (hn + hn1) * (hn + hn1 + hn2))) /
        (hn1 * (hn1 + hn2) * (hn1 + hn2 + hn3));
      const ratio = (hn1 * (hn1 + hn2)) / (hn2 * (hn2 + hn3));
      const c1 = (2 + hn / hn1) / 2 + temp1 + temp2;
      const c2 = -(hn / hn1) / 2 - (1 + hn1 / hn2) * temp1 - (1 + hn1 / hn2 + ratio) * temp2;
      const c3 = (temp1 * hn1) / hn2 + (hn1 / hn2 + ratio * (1 + hn2 / hn3)) * temp2;
      const c4 = (-temp2 * ratio * hn1) / hn2;
      x = lc([1, hn * c1, hn * c2, hn * c3, hn * c4], [x, d, buf[n - 1], buf[n - 2], buf[n - 3]]);
    }
    pushHistory(buf, d, maxOrder);
  }
  return run.tensor(x);
}

/**
 * DEIS 'tab' coefficients (ComfyUI deis.get_deis_coeff_list after zju-pi/diff-sampler): map σ to
 * the time of a VP-SDE fitted to σ ∈ [0.002, 80], and integrate dσ/dτ times each Lagrange basis
 * polynomial over the step with the reference's N-point rectangle rule. Coefficients are computed
 * only for the steps that use them (the step onto σ = 0 is Euler and its integrand is singular).
 */
export function deisCoefficients(sigmas: Float64Array, i: number, order: number, n = 10000): number[] {
  const epsS = 1e-3;
  const sigmaMin = 0.002;
  const sigmaMax = 80;
  const betaD = (2 * (Math.log(sigmaMin ** 2 + 1) / epsS - Math.log(sigmaMax ** 2 + 1))) / (epsS - 1);
  const betaMin = Math.log(sigmaMax ** 2 + 1) - 0.5 * betaD;
  const beta0 = betaMin;
  const beta1 = betaD + betaMin;
  const toT = (sigma: number): number => (Math.sqrt(betaMin ** 2 + 2 * betaD * Math.log(sigma ** 2 + 1)) - betaMin) / betaD;
  const tCur = toT(sigmas[i]);
  const tNext = toT(sigmas[i + 1]);
  const prevT: number[] = [];
  for (let k = 0; k < order; k++) prevT.push(toT(sigmas[i - k]));
  const dtau = (tNext - tCur) / n;
  const coeffs = new Array<number>(order).fill(0);
  for (let q = 0; q < n; q++) {
    // torch.linspace(t_cur, t_next, N): both ends included
    const tau = n === 1 ? tCur : tCur + ((tNext - tCur) * q) / (n - 1);
    const logAlpha = -0.5 * tau * tau * (beta1 - beta0) - tau * beta0;
    const alpha = Math.exp(logAlpha);
    const dLogAlpha = -tau * (beta1 - beta0) - beta0;
    const integrand = (-0.5 * dLogAlpha) / Math.sqrt(alpha * (1 - alpha));
    for (let j = 0; j < order; j++) {
      let poly = 1;
      for (let k = 0; k < order; k++) {
        if (k === j) continue;
        poly *= (tau - prevT[k]) / (prevT[j] - prevT[k]);
      }
      coeffs[j] += integrand * poly;
    }
  }
  return coeffs.map((c) => c * dtau);
}

/** ComfyUI sample_deis (tab mode, max_order 3). */
export async function sampleDeis(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const maxOrder = num(opts, 'max_order', 3);
  let x = startX(x0);
  const buf: Float32Array[] = [];
  for (let i = 0; i < sigmas.length - 1; i++) {
    const tCur = sigmas[i];
    const tNext = sigmas[i + 1];
    const denoised = await run.model(x, tCur);
    run.report(i, x, denoised, tCur);
    const d = toD(x, tCur, denoised);
    let order = Math.min(maxOrder, i + 1);
    if (tNext <= 0) order = 1;
    if (order === 1) {
      x = lc([1, tNext - tCur], [x, d]);
    } else {
      const c = deisCoefficients(sigmas, i, order);
      const coefs = [1, c[0]];
      const arrs = [x, d];
      for (let k = 1; k < order; k++) {
        coefs.push(c[k]);
        arrs.push(buf[buf.length - k]);
      }
      x = lc(coefs, arrs);
    }
    pushHistory(buf, d, maxOrder);
  }
  return run.tensor(x);
}
