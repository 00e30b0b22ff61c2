import type { Tensor } from '../../core/tensor.ts';
import { ancestralStep, lc, num, Run, startX, toD } from './common.ts';
import type { SamplerContext, SamplerOptions } from './types.ts';

/*
 * ComfyUI's own additions to k-diffusion's sampling.py: ddpm, lcm, res_multistep, gradient_estimation,
 * er_sde and SEEDS (with exp_heun_2_x0). As with the DPM++ SDEs, ComfyUI writes several of them through
 * half-log-SNR with α = 1 − σ for flow models; these implement the ε/VE case (α = 1, λ = −log σ),
 * the only one a σ-only denoiser can express.
 */

/**
 * ComfyUI sample_ddpm (generic_step_sampler + DDPMSampler_step): the ancestral DDPM posterior step
 * in VP variables with ᾱ = 1/(1+σ²), converted back to VE scale after each step.
 */
export async function sampleDdpm(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  let x = startX(x0);
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i];
    const sigmaPrev = sigmas[i + 1];
    const denoised = await run.model(x, sigma);
    run.report(i, x, denoised, sigma);
    const ac = 1 / (sigma * sigma + 1);
    const acPrev = 1 / (sigmaPrev * sigmaPrev + 1);
    const alpha = ac / acPrev;
    // mu = √(1/α)·(x_vp − (1−α)·ε/√(1−ᾱ)), x_vp = x/√(1+σ²), ε = (x − D)/σ
    const k = Math.sqrt(1 / alpha);
    const epsCoef = (1 - alpha) / Math.sqrt(1 - ac) / sigma;
    const xCoef = k * (1 / Math.sqrt(1 + sigma * sigma) - epsCoef);
    const dCoef = k * epsCoef;
    let mu = lc([xCoef, dCoef], [x, denoised]);
    if (sigmaPrev > 0) {
      mu = run.addNoise(mu, sigma, sigmaPrev, Math.sqrt(((1 - alpha) * (1 - acPrev)) / (1 - ac)));
    }
    x = sigmaPrev !== 0 ? lc([Math.sqrt(1 + sigmaPrev * sigmaPrev)], [mu]) : mu;
  }
  return run.tensor(x);
}

/**
 * ComfyUI sample_lcm: jump to the prediction, re-noise to σ_{i+1} (ε noise scaling σ·n + x).
 * s_noise/s_noise_end ramp the noise linearly over the steps; noise_clip_std clamps it to ±k·std.
 */
export async function sampleLcm(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const sStart = num(opts, 's_noise', 1);
  const sEnd = num(opts, 's_noise_end', sStart);
  const clipStd = num(opts, 'noise_clip_std', 0);
  const nSteps = Math.max(1, sigmas.length - 1);
  let x = startX(x0);
  for (let i = 0; i < sigmas.length - 1; i++) {
    const denoised = await run.model(x, sigmas[i]);
    run.report(i, x, denoised, sigmas[i]);
    x = denoised;
    if (sigmas[i + 1] > 0) {
      const t = nSteps > 1 ? i / (nSteps - 1) : 0;
      const sI = sStart + (sEnd - sStart) * t;
      const weight = sI !== 1 ? sI * sigmas[i + 1] : sigmas[i + 1];
      let noise = run.noise(sigmas[i], sigmas[i + 1], weight);
      if (noise && clipStd > 0) noise = clipNoise(noise, clipStd);
      if (noise) x = lc([1, weight], [denoised, noise]);
    }
  }
  return run.tensor(x);
}

/** torch's std is the unbiased (n − 1) one. */
function clipNoise(noise: Float32Array, k: number): Float32Array {
  const n = noise.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += noise[i];
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (noise[i] - mean) ** 2;
  const clip = k * Math.sqrt(ss / Math.max(1, n - 1));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(clip, Math.max(-clip, noise[i]));
  return out;
}

/**
 * ComfyUI res_multistep (RES second-order multistep, Zhang et al. 2023, arXiv 2308.02157) with
 * optional ancestral noise (eta). Plain res_multistep is eta = 0.
 */
async function resMultistep(
  ctx: SamplerContext,
  x0: Tensor,
  sigmas: Float64Array,
  eta: number,
  opts: SamplerOptions | undefined,
  cfgPp = false,
): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const sNoise = num(opts, 's_noise', 1);
  const phi1 = (t: number): number => Math.expm1(t) / t;
  const phi2 = (t: number): number => (phi1(t) - 1) / t;
  const nanToZero = (v: number): number => (Number.isNaN(v) ? 0 : v);
  let x = startX(x0);
  let oldDenoised: Float32Array | null = null;
  let oldSigmaDown = NaN;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i];
    // CFG++ (ComfyUI's cfg_pp flag): steps re-noise along the uncond prediction, which is also the history.
    const { denoised, uncond } = cfgPp ? await run.modelWithUncond(x, s) : { denoised: await run.model(x, s), uncond: null };
    const [sigmaDown, sigmaUp] = ancestralStep(s, sigmas[i + 1], eta);
    run.report(i, x, denoised, s);
    if (sigmaDown === 0 || oldDenoised === null) {
      if (uncond) {
        const k = sigmaDown / s;
        x = lc([1, k, -k], [denoised, x, uncond]);
      } else {
        const r = (sigmaDown - s) / s;
        x = lc([1 + r, -r], [x, denoised]);
      }
    } else {
      const t = -Math.log(s);
      const tOld = -Math.log(oldSigmaDown);
      const tNext = -Math.log(sigmaDown);
      const tPrev = -Math.log(sigmas[i - 1]);
      const h = tNext - t;
      const c2 = (tPrev - tOld) / h;
      const p1 = phi1(-h);
      const p2 = phi2(-h);
      const b1 = nanToZero(p1 - p2 / c2);
      const b2 = nanToZero(p2 / c2);
      if (uncond) {
        const e = Math.exp(-h);
        // e^{−h}·(x + D − D_u) + h·(b1·D_u + b2·D_u,old)
        x = lc([e, e, h * b1 - e, h * b2], [x, denoised, uncond, oldDenoised]);
      } else {
        x = lc([Math.exp(-h), h * b1, h * b2], [x, denoised, oldDenoised]);
      }
    }
    if (sigmas[i + 1] > 0) x = run.addNoise(x, s, sigmas[i + 1], sNoise * sigmaUp);
    oldDenoised = uncond ?? denoised;
    oldSigmaDown = sigmaDown;
  }
  return run.tensor(x);
}

export const sampleResMultistep = (ctx: SamplerContext, x: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> =>
  resMultistep(ctx, x, sigmas, 0, opts);

export const sampleResMultistepAncestral = (ctx: SamplerContext, x: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> =>
  resMultistep(ctx, x, sigmas, num(opts, 'eta', 1), opts);

export const sampleResMultistepCfgPp = (ctx: SamplerContext, x: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> =>
  resMultistep(ctx, x, sigmas, 0, opts, true);

export const sampleResMultistepAncestralCfgPp = (
  ctx: SamplerContext,
  x: Tensor,
  sigmas: Float64Array,
  opts?: SamplerOptions,
): Promise<Tensor> => resMultistep(ctx, x, sigmas, num(opts, 'eta', 1), opts, true);

/** ComfyUI sample_gradient_estimation (Permenter & Yuan): Euler plus (γ−1)·(d − d_prev)·dt, γ = ge_gamma = 2. */
export const sampleGradientEstimation = (ctx: SamplerContext, x: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> =>
  gradientEstimation(ctx, x, sigmas, opts, false);

/** gradient_estimation_cfg_pp: d from the uncond prediction, the Euler step taken from D to σ_next. */
export const sampleGradientEstimationCfgPp = (
  ctx: SamplerContext,
  x: Tensor,
  sigmas: Float64Array,
  opts?: SamplerOptions,
): Promise<Tensor> => gradientEstimation(ctx, x, sigmas, opts, true);

async function gradientEstimation(
  ctx: SamplerContext,
  x0: Tensor,
  sigmas: Float64Array,
  opts: SamplerOptions | undefined,
  cfgPp: boolean,
): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const geGamma = num(opts, 'ge_gamma', 2);
  let x = startX(x0);
  let oldD: Float32Array | null = null;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const { denoised, uncond } = cfgPp
      ? await run.modelWithUncond(x, sigmas[i])
      : { denoised: await run.model(x, sigmas[i]), uncond: null };
    const d = toD(x, sigmas[i], uncond ?? denoised);
    run.report(i, x, denoised, sigmas[i]);
    const dt = sigmas[i + 1] - sigmas[i];
    if (sigmas[i + 1] === 0) {
      x = denoised;
    } else if (uncond) {
      // D + d·σ_next, then the gradient-estimation term
      x =
        i >= 1 && oldD !== null
          ? lc([1, sigmas[i + 1] + (geGamma - 1) * dt, -(geGamma - 1) * dt], [denoised, d, oldD])
          : lc([1, sigmas[i + 1]], [denoised, d]);
    } else if (i >= 1 && oldD !== null) {
      x = lc([1, dt + (geGamma - 1) * dt, -(geGamma - 1) * dt], [x, d, oldD]);
    } else {
      x = lc([1, dt], [x, d]);
    }
    oldD = d;
  }
  return run.tensor(x);
}

/**
 * ComfyUI sample_er_sde (ER-SDE-Solver-3, Cui et al. 2023) with the default noise scaler
 * λ·(e^{λ^0.3} + 10); here er_λ = σ/α = σ. Stage integrals use the reference's 200-point rule.
 */
export const sampleErSde = (ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> =>
  erSde(ctx, x0, sigmas, opts, (v) => v * (Math.exp(v ** 0.3) + 10));

/** er_sde with another noise scaler (SamplerER_SDE's reverse-time SDE and ODE variants pass λ^(η+1)). */
export const erSdeWithScaler =
  (scaler: (lambda: number) => number) =>
  (ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> =>
    erSde(ctx, x0, sigmas, opts, scaler);

async function erSde(
  ctx: SamplerContext,
  x0: Tensor,
  sigmas: Float64Array,
  opts: SamplerOptions | undefined,
  scaler: (lambda: number) => number,
): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const sNoise = num(opts, 's_noise', 1);
  const maxStage = num(opts, 'max_stage', 3);
  const points = 200;
  const lam = sigmas;
  let x = startX(x0);
  let oldDenoised: Float32Array | null = null;
  let oldDenoisedD: Float32Array | null = null;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const denoised = await run.model(x, sigmas[i]);
    run.report(i, x, denoised, sigmas[i]);
    const stage = Math.min(maxStage, i + 1);
    if (sigmas[i + 1] === 0) {
      x = denoised;
    } else {
      const ls = lam[i];
      const lt = lam[i + 1];
      const r = scaler(lt) / scaler(ls);
      const coefs = [r, 1 - r];
      const arrs = [x, denoised];
      if (stage >= 2 && oldDenoised !== null) {
        const dt = lt - ls;
        const step = -dt / points;
        let sInt = 0;
        let sU = 0;
        for (let k = 0; k < points; k++) {
          const pos = lt + k * step;
          const sc = scaler(pos);
          sInt += 1 / sc;
          sU += (pos - ls) / sc;
        }
        sInt *= step;
        sU *= step;
        // denoised_d = (D − D_old)/(λ_s − λ_{i−1})
        const dd = lc([1 / (ls - lam[i - 1]), -1 / (ls - lam[i - 1])], [denoised, oldDenoised]);
        const c2 = dt + sInt * scaler(lt);
        coefs.push(c2);
        arrs.push(dd);
        if (stage >= 3 && oldDenoisedD !== null) {
          const du = lc([2 / (ls - lam[i - 2]), -2 / (ls - lam[i - 2])], [dd, oldDenoisedD]);
          coefs.push((dt * dt) / 2 + sU * scaler(lt));
          arrs.push(du);
        }
        oldDenoisedD = dd;
      }
      x = lc(coefs, arrs);
      if (sNoise > 0) {
        const amp = Math.sqrt(lt * lt - ls * ls * r * r);
        x = run.addNoise(x, sigmas[i], sigmas[i + 1], sNoise * (Number.isNaN(amp) ? 0 : amp));
      }
    }
    oldDenoised = denoised;
  }
  return run.tensor(x);
}

const eiPhi1 = (h: number): number => Math.expm1(h);
const eiPhi2 = (h: number): number => (Math.expm1(h) - h) / h;

/**
 * SEEDS' noise over one sub-interval [σ_from, σ_to] whose λ-span times η is −seg: the noise drawn so
 * far decays by e^{seg} and fresh noise tops it up to unit variance, so all sub-intervals of a step
 * lie on one Brownian path; x gains σ_to·s_noise of it.
 */
function seedsNoise(
  run: Run,
  x: Float32Array,
  sde: Float32Array | null,
  from: number,
  to: number,
  seg: number,
  sNoise: number,
): { x: Float32Array; sde: Float32Array | null } {
  const n = run.noise(from, to, 1);
  if (!n) return { x, sde };
  const fresh = Math.sqrt(-Math.expm1(2 * seg));
  const next = sde ? lc([Math.exp(seg), fresh], [sde, n]) : lc([fresh], [n]);
  return { x: lc([1, to * sNoise], [x, next]), sde: next };
}

/**
 * ComfyUI sample_seeds_2 (SEEDS-2, Gonzalez et al. 2023, data prediction). The noise of the two
 * sub-intervals is correlated the way the reference builds it, so the whole step's noise is
 * consistent with one Brownian path.
 */
async function seeds2(
  ctx: SamplerContext,
  x0: Tensor,
  sigmas: Float64Array,
  eta: number,
  sNoise: number,
  r: number,
  solverType: 'phi_1' | 'phi_2',
): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const inject = eta > 0 && sNoise > 0;
  const fac = 1 / (2 * r);
  let x = startX(x0);
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i];
    const next = sigmas[i + 1];
    const denoised = await run.model(x, s);
    run.report(i, x, denoised, s);
    if (next === 0) {
      x = denoised;
      continue;
    }
    const ls = -Math.log(s);
    const lt = -Math.log(next);
    const h = lt - ls;
    const hEta = h * (eta + 1);
    const sigmaS1 = Math.exp(-(ls + r * (lt - ls)));

    let x2 = lc([(sigmaS1 / s) * Math.exp(-r * h * eta), -eiPhi1(-r * hEta)], [x, denoised]);
    let sde: Float32Array | null = null;
    if (inject) ({ x: x2, sde } = seedsNoise(run, x2, null, s, sigmaS1, -r * h * eta, sNoise));
    const denoised2 = await run.model(x2, sigmaS1);

    const decay = (next / s) * Math.exp(-h * eta);
    if (solverType === 'phi_1') {
      const e = -eiPhi1(-hEta);
      x = lc([decay, e * (1 - fac), e * fac], [x, denoised, denoised2]);
    } else {
      const b2 = eiPhi2(-hEta) / r;
      const b1 = eiPhi1(-hEta) - b2;
      x = lc([decay, -b1, -b2], [x, denoised, denoised2]);
    }
    if (inject && sde) x = seedsNoise(run, x, sde, sigmaS1, next, (r - 1) * h * eta, sNoise).x;
  }
  return run.tensor(x);
}

export const sampleSeeds2 = (ctx: SamplerContext, x: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> =>
  seeds2(ctx, x, sigmas, num(opts, 'eta', 1), num(opts, 's_noise', 1), num(opts, 'r', 0.5), 'phi_1');

/** seeds_2 with the phi_2 solver (SamplerSEEDS2's solver_type "phi_2"); eta, s_noise and r as options. */
export const sampleSeeds2Phi2 = (ctx: SamplerContext, x: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> =>
  seeds2(ctx, x, sigmas, num(opts, 'eta', 1), num(opts, 's_noise', 1), num(opts, 'r', 0.5), 'phi_2');

/** ComfyUI exp_heun_2_x0: SEEDS-2 with r = 1, φ₂ weights and no noise — deterministic exponential Heun. */
export const sampleExpHeun2X0 = (ctx: SamplerContext, x: Tensor, sigmas: Float64Array): Promise<Tensor> =>
  seeds2(ctx, x, sigmas, 0, 0, 1, 'phi_2');

export const sampleExpHeun2X0Sde = (ctx: SamplerContext, x: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> =>
  seeds2(ctx, x, sigmas, num(opts, 'eta', 1), num(opts, 's_noise', 1), 1, 'phi_2');

/** ComfyUI sample_seeds_3 (SEEDS-3, stages at r₁ = 1/3, r₂ = 2/3 of the λ step). */
export async function sampleSeeds3(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const eta = num(opts, 'eta', 1);
  const sNoise = num(opts, 's_noise', 1);
  const r1 = num(opts, 'r_1', 1 / 3);
  const r2 = num(opts, 'r_2', 2 / 3);
  const inject = eta > 0 && sNoise > 0;
  let x = startX(x0);
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i];
    const next = sigmas[i + 1];
    const denoised = await run.model(x, s);
    run.report(i, x, denoised, s);
    if (next === 0) {
      x = denoised;
      continue;
    }
    const ls = -Math.log(s);
    const lt = -Math.log(next);
    const h = lt - ls;
    const hEta = h * (eta + 1);
    const sigmaS1 = Math.exp(-(ls + r1 * h));
    const sigmaS2 = Math.exp(-(ls + r2 * h));

    let sde: Float32Array | null = null;
    let x2 = lc([(sigmaS1 / s) * Math.exp(-r1 * h * eta), -eiPhi1(-r1 * hEta)], [x, denoised]);
    if (inject) ({ x: x2, sde } = seedsNoise(run, x2, null, s, sigmaS1, -r1 * h * eta, sNoise));
    const denoised2 = await run.model(x2, sigmaS1);

    const a32 = (r2 / r1) * eiPhi2(-r2 * hEta);
    const a31 = eiPhi1(-r2 * hEta) - a32;
    let x3 = lc([(sigmaS2 / s) * Math.exp(-r2 * h * eta), -a31, -a32], [x, denoised, denoised2]);
    if (inject && sde) ({ x: x3, sde } = seedsNoise(run, x3, sde, sigmaS1, sigmaS2, (r1 - r2) * h * eta, sNoise));
    const denoised3 = await run.model(x3, sigmaS2);

    const b3 = eiPhi2(-hEta) / r2;
    const b1 = eiPhi1(-hEta) - b3;
    x = lc([(next / s) * Math.exp(-h * eta), -b1, -b3], [x, denoised, denoised3]);
    if (inject && sde) x = seedsNoise(run, x, sde, sigmaS2, next, (r2 - 1) * h * eta, sNoise).x;
  }
  return run.tensor(x);
}
