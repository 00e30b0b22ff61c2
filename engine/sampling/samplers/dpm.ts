import type { Tensor } from '../../core/tensor.ts';
import { ancestralStep, churn, lc, num, Run, startX, toD } from './common.ts';
import type { SamplerContext, SamplerOptions } from './types.ts';

/** k-diffusion sample_dpm_2: DPM-Solver-2 midpoint in log σ, Karras-style churn, Euler onto σ = 0. */
export async function sampleDpm2(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const sNoise = num(opts, 's_noise', 1);
  let x = startX(x0);
  for (let i = 0; i < sigmas.length - 1; i++) {
    const c = churn(run, x, sigmas, i, opts, sNoise);
    x = c.x;
    const sh = c.sigmaHat;
    const denoised = await run.model(x, sh);
    run.report(i, x, denoised, sigmas[i], sh);
    const d = toD(x, sh, denoised);
    const next = sigmas[i + 1];
    if (next === 0) {
      x = lc([1, next - sh], [x, d]);
    } else {
      const sigmaMid = Math.exp((Math.log(sh) + Math.log(next)) / 2);
      const x2 = lc([1, sigmaMid - sh], [x, d]);
      const denoised2 = await run.model(x2, sigmaMid);
      const d2 = toD(x2, sigmaMid, denoised2);
      x = lc([1, next - sh], [x, d2]);
    }
  }
  return run.tensor(x);
}

/** k-diffusion sample_dpm_2_ancestral (ε/VE branch): DPM-Solver-2 down to σ_down, then noise up to σ_{i+1}. */
export async function sampleDpm2Ancestral(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const eta = num(opts, 'eta', 1);
  const sNoise = num(opts, 's_noise', 1);
  let x = startX(x0);
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i];
    const denoised = await run.model(x, s);
    const [sigmaDown, sigmaUp] = ancestralStep(s, sigmas[i + 1], eta);
    run.report(i, x, denoised, s);
    const d = toD(x, s, denoised);
    if (sigmaDown === 0) {
      x = lc([1, sigmaDown - s], [x, d]);
    } else {
      const sigmaMid = Math.exp((Math.log(s) + Math.log(sigmaDown)) / 2);
      const x2 = lc([1, sigmaMid - s], [x, d]);
      const denoised2 = await run.model(x2, sigmaMid);
      const d2 = toD(x2, sigmaMid, denoised2);
      x = lc([1, sigmaDown - s], [x, d2]);
      x = run.addNoise(x, s, sigmas[i + 1], sNoise * sigmaUp);
    }
  }
  return run.tensor(x);
}

/**
 * k-diffusion's DPMSolver (Lu et al. 2022) in ε-prediction with time t = −log σ. The ε cache keeps
 * the first evaluation of a step shared between the low- and high-order solutions.
 */
class DpmSolver {
  constructor(readonly run: Run) {}

  // Times and σ's are rounded to float32 as ComfyUI holds them in float32 tensors; dpm_adaptive's
  // accept/reject decisions, and so its whole path, follow from those exact values.
  sigma(t: number): number {
    return Math.fround(Math.exp(-t));
  }

  t(sigma: number): number {
    return Math.fround(-Math.log(sigma));
  }

  async eps(cache: Map<string, Float32Array>, key: string, x: Float32Array, t: number): Promise<Float32Array> {
    const hit = cache.get(key);
    if (hit) return hit;
    const s = this.sigma(t);
    const e = toD(x, s, await this.run.model(x, s));
    cache.set(key, e);
    return e;
  }

  async step1(x: Float32Array, t: number, tNext: number, cache: Map<string, Float32Array>): Promise<Float32Array> {
    const h = tNext - t;
    const eps = await this.eps(cache, 'eps', x, t);
    return lc([1, -this.sigma(tNext) * Math.expm1(h)], [x, eps]);
  }

  async step2(x: Float32Array, t: number, tNext: number, cache: Map<string, Float32Array>, r1 = 1 / 2): Promise<Float32Array> {
    const h = tNext - t;
    const eps = await this.eps(cache, 'eps', x, t);
    const s1 = t + r1 * h;
    const u1 = lc([1, -this.sigma(s1) * Math.expm1(r1 * h)], [x, eps]);
    const epsR1 = await this.eps(cache, 'eps_r1', u1, s1);
    const a = this.sigma(tNext) * Math.expm1(h);
    const b = (this.sigma(tNext) / (2 * r1)) * Math.expm1(h);
    return lc([1, -a + b, -b], [x, eps, epsR1]);
  }

  async step3(x: Float32Array, t: number, tNext: number, cache: Map<string, Float32Array>, r1 = 1 / 3, r2 = 2 / 3): Promise<Float32Array> {
    const h = tNext - t;
    const eps = await this.eps(cache, 'eps', x, t);
    const s1 = t + r1 * h;
    const s2 = t + r2 * h;
    const u1 = lc([1, -this.sigma(s1) * Math.expm1(r1 * h)], [x, eps]);
    const epsR1 = await this.eps(cache, 'eps_r1', u1, s1);
    const c2 = this.sigma(s2) * (r2 / r1) * (Math.expm1(r2 * h) / (r2 * h) - 1);
    const u2 = lc([1, -this.sigma(s2) * Math.expm1(r2 * h) + c2, -c2], [x, eps, epsR1]);
    const epsR2 = await this.eps(cache, 'eps_r2', u2, s2);
    const c3 = (this.sigma(tNext) / r2) * (Math.expm1(h) / h - 1);
    return lc([1, -this.sigma(tNext) * Math.expm1(h) + c3, -c3], [x, eps, epsR2]);
  }
}

/** ComfyUI's dpm_fast/dpm_adaptive take σ_min from the schedule's end, skipping a final 0. */
function scheduleRange(sigmas: Float64Array): [sigmaMin: number, sigmaMax: number] {
  let sigmaMin = sigmas[sigmas.length - 1];
  if (sigmaMin === 0) sigmaMin = sigmas[sigmas.length - 2];
  const sigmaMax = sigmas[0];
  if (!(sigmaMin > 0) || !(sigmaMax > 0)) throw new Error('sigma_min and sigma_max must not be 0');
  return [sigmaMin, sigmaMax];
}

/**
 * k-diffusion sample_dpm_fast with n = len(sigmas) − 1 model evaluations spread over ⌊n/3⌋+1 steps
 * uniform in t (orders 3…3 then 2,1 or n mod 3). Only the ends of the schedule matter. The callback
 * fires per solver step, not per evaluation.
 */
export async function sampleDpmFast(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  if (sigmas.length <= 1) return { shape: [...x0.shape], data: new Float32Array(x0.data) };
  const run = new Run(ctx, x0, sigmas);
  const [sigmaMin, sigmaMax] = scheduleRange(sigmas);
  const nfe = sigmas.length - 1;
  const eta = num(opts, 'eta', 0);
  const sNoise = num(opts, 's_noise', 1);
  const solver = new DpmSolver(run);
  const tStart = solver.t(sigmaMax);
  const tEnd = solver.t(sigmaMin);
  if (!(tEnd > tStart) && eta) throw new Error('eta must be 0 for reverse sampling');

  const m = Math.floor(nfe / 3) + 1;
  const ts = new Float64Array(m + 1);
  for (let k = 0; k <= m; k++) ts[k] = k === m ? tEnd : tStart + ((tEnd - tStart) * k) / m;
  const orders: number[] = [];
  if (nfe % 3 === 0) {
    for (let k = 0; k < m - 2; k++) orders.push(3);
    orders.push(2, 1);
  } else {
    for (let k = 0; k < m - 1; k++) orders.push(3);
    orders.push(nfe % 3);
  }

  let x = startX(x0);
  for (let i = 0; i < orders.length; i++) {
    const cache = new Map<string, Float32Array>();
    const t = ts[i];
    const tNext = ts[i + 1];
    let tNext_ = tNext;
    let su = 0;
    if (eta) {
      const [sd] = ancestralStep(solver.sigma(t), solver.sigma(tNext), eta);
      tNext_ = Math.min(tEnd, solver.t(sd));
      su = Math.sqrt(solver.sigma(tNext) ** 2 - solver.sigma(tNext_) ** 2);
    }
    const eps = await solver.eps(cache, 'eps', x, t);
    const denoised = lc([1, -solver.sigma(t)], [x, eps]);
    run.report(i, x, denoised, solver.sigma(t));
    if (orders[i] === 1) x = await solver.step1(x, t, tNext_, cache);
    else if (orders[i] === 2) x = await solver.step2(x, t, tNext_, cache);
    else x = await solver.step3(x, t, tNext_, cache);
    x = run.addNoise(x, solver.sigma(t), solver.sigma(tNext), su * sNoise);
  }
  return run.tensor(x);
}

/** k-diffusion's PIDStepSizeController. */
class PidController {
  private readonly b1: number;
  private readonly b2: number;
  private readonly b3: number;
  private errs: number[] = [];
  constructor(
    public h: number,
    pcoeff: number,
    icoeff: number,
    dcoeff: number,
    order: number,
    private readonly acceptSafety: number,
    private readonly eps = 1e-8,
  ) {
    this.b1 = (pcoeff + icoeff + dcoeff) / order;
    this.b2 = -(pcoeff + 2 * dcoeff) / order;
    this.b3 = dcoeff / order;
  }

  propose(error: number): boolean {
    const inv = 1 / (error + this.eps);
    if (this.errs.length === 0) this.errs = [inv, inv, inv];
    this.errs[0] = inv;
    let factor = this.errs[0] ** this.b1 * this.errs[1] ** this.b2 * this.errs[2] ** this.b3;
    // soft limiter: keeps the step-size change bounded
    factor = 1 + Math.atan(factor - 1);
    const accept = factor >= this.acceptSafety;
    if (accept) {
      this.errs[2] = this.errs[1];
      this.errs[1] = this.errs[0];
    }
    this.h *= factor;
    return accept;
  }
}

/**
 * k-diffusion sample_dpm_adaptive: embedded DPM-Solver-2/3 (or 1/2) pairs with PID step control.
 * The callback fires once per attempted step (accepted or not), as k-diffusion's info callback does;
 * `sigma` is where x stands after the attempt.
 */
export async function sampleDpmAdaptive(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  if (sigmas.length <= 1) return { shape: [...x0.shape], data: new Float32Array(x0.data) };
  const run = new Run(ctx, x0, sigmas);
  const [sigmaMin, sigmaMax] = scheduleRange(sigmas);
  const order = num(opts, 'order', 3);
  const rtol = num(opts, 'rtol', 0.05);
  const atol = num(opts, 'atol', 0.0078);
  const hInit = num(opts, 'h_init', 0.05);
  const pcoeff = num(opts, 'pcoeff', 0);
  const icoeff = num(opts, 'icoeff', 1);
  const dcoeff = num(opts, 'dcoeff', 0);
  const acceptSafety = num(opts, 'accept_safety', 0.81);
  const eta = num(opts, 'eta', 0);
  const sNoise = num(opts, 's_noise', 1);
  if (order !== 2 && order !== 3) throw new Error('order should be 2 or 3');

  const solver = new DpmSolver(run);
  const tStart = solver.t(sigmaMax);
  const tEnd = solver.t(sigmaMin);
  const forward = tEnd > tStart;
  if (!forward && eta) throw new Error('eta must be 0 for reverse sampling');
  const pid = new PidController(Math.abs(hInit) * (forward ? 1 : -1), pcoeff, icoeff, dcoeff, eta ? 1.5 : order, acceptSafety);

  let s = tStart;
  let x = startX(x0);
  let xPrev = x;
  let steps = 0;
  while (forward ? s < tEnd - 1e-5 : s > tEnd + 1e-5) {
    const cache = new Map<string, Float32Array>();
    const t = forward ? Math.min(tEnd, Math.fround(s + pid.h)) : Math.max(tEnd, Math.fround(s + pid.h));
    let t_ = t;
    let su = 0;
    if (eta) {
      const [sd] = ancestralStep(solver.sigma(s), solver.sigma(t), eta);
      t_ = Math.min(tEnd, solver.t(sd));
      su = Math.sqrt(solver.sigma(t) ** 2 - solver.sigma(t_) ** 2);
    }
    const eps = await solver.eps(cache, 'eps', x, s);
    const denoised = lc([1, -solver.sigma(s)], [x, eps]);
    let xLow: Float32Array;
    let xHigh: Float32Array;
    if (order === 2) {
      xLow = await solver.step1(x, s, t_, cache);
      xHigh = await solver.step2(x, s, t_, cache);
    } else {
      xLow = await solver.step2(x, s, t_, cache, 1 / 3);
      xHigh = await solver.step3(x, s, t_, cache);
    }
    let sq = 0;
    for (let k = 0; k < xLow.length; k++) {
      const delta = Math.max(atol, rtol * Math.max(Math.abs(xLow[k]), Math.abs(xPrev[k])));
      const e = (xLow[k] - xHigh[k]) / delta;
      sq += e * e;
    }
    const error = Math.sqrt(sq) / Math.sqrt(xLow.length);
    if (pid.propose(error)) {
      xPrev = xLow;
      x = run.addNoise(xHigh, solver.sigma(s), solver.sigma(t), su * sNoise);
      s = t;
    }
    steps++;
    run.report(steps - 1, x, denoised, solver.sigma(s));
  }
  return run.tensor(x);
}
