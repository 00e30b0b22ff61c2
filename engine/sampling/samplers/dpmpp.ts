import type { Tensor } from '../../core/tensor.ts';
import { ancestralStep, lc, num, Run, sdeNoise, startX } from './common.ts';
import type { SamplerContext, SamplerOptions } from './types.ts';

const f32 = Math.fround;

/*
 * DPM-Solver++ family (Lu et al. 2022b) in data prediction with λ = −log σ. ComfyUI writes the SDE
 * variants through half-log-SNR so flow models (α = 1 − σ) fit too; for ε/VE models α = 1 and they
 * reduce to these forms. These samplers see only σ, so they implement the α = 1 case.
 */

/** k-diffusion sample_dpmpp_2s_ancestral (ε/VE branch): single-step 2nd order to σ_down, plus ancestral noise. */
export async function sampleDpmpp2sAncestral(
  ctx: SamplerContext,
  x0: Tensor,
  sigmas: Float64Array,
  opts?: SamplerOptions,
): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const eta = num(opts, 'eta', 1);
  const sNoise = num(opts, 's_noise', 1);
  let x = startX(x0);
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i];
    const denoised = await run.model(x, s);
    const [sigmaDown, sigmaUp] = ancestralStep(s, sigmas[i + 1], eta);
    run.report(i, x, denoised, s);
    if (sigmaDown === 0) {
      // Euler onto 0 lands exactly on the prediction
      const r = (sigmaDown - s) / s;
      x = lc([1 + r, -r], [x, denoised]);
    } else {
      const t = -Math.log(s);
      const tNext = -Math.log(sigmaDown);
      const h = tNext - t;
      const sMid = t + h / 2;
      const sigmaMid = Math.exp(-sMid);
      const x2 = lc([sigmaMid / s, -Math.expm1(-h / 2)], [x, denoised]);
      const denoised2 = await run.model(x2, sigmaMid);
      x = lc([sigmaDown / s, -Math.expm1(-h)], [x, denoised2]);
    }
    if (sigmas[i + 1] > 0) x = run.addNoise(x, s, sigmas[i + 1], sNoise * sigmaUp);
  }
  return run.tensor(x);
}

/**
 * k-diffusion/ComfyUI sample_dpmpp_sde: two stages per step (intermediate at λ_s + r·h), each an
 * ancestral DPM-Solver++ update. Expects a Brownian-tree noise sampler, as the noise is requested for
 * overlapping intervals (σ_i→σ_mid and σ_i→σ_{i+1}).
 *
 * The step's scalars are ComfyUI's 0-d float32 tensor arithmetic, op by op (λ = −log σ, h, λ_mid,
 * σ_mid = e^{−λ_mid}, the ancestral splits). That matters for σ_mid: it is both a model input and a
 * Brownian-tree query, and the tree quantises query times to 1e-6 (torchsde's tol), so a float64
 * σ_mid one float32 ulp away can land on the neighbouring grid point and take the tree down
 * another path (noise ~√1e-6 apart, ~2e-4 relative at the end of an 8-step run).
 */
export async function sampleDpmppSde(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  if (sigmas.length <= 1) return { shape: [...x0.shape], data: new Float32Array(x0.data) };
  const run = new Run(ctx, x0, sigmas);
  const eta = num(opts, 'eta', 1);
  const sNoise = num(opts, 's_noise', 1);
  const r = num(opts, 'r', 1 / 2);
  const noisy = eta > 0 && sNoise > 0;
  const fac = 1 / (2 * r);
  let x = startX(x0);
  for (let i = 0; i < sigmas.length - 1; i++) {
    // ComfyUI's σ's are float32 already; model calls and noise queries take them as given.
    const s = sigmas[i];
    const next = sigmas[i + 1];
    const denoised = await run.model(x, s);
    run.report(i, x, denoised, s);
    if (next === 0) {
      x = denoised;
      continue;
    }
    const lambdaS = f32(-f32(Math.log(f32(s))));
    const lambdaT = f32(-f32(Math.log(f32(next))));
    const h = f32(lambdaT - lambdaS);
    const lambdaS1 = f32(lambdaS + f32(f32(r) * h));
    const sigmaS1 = f32(Math.exp(-lambdaS1));
    const alphaS = f32(f32(s) * f32(Math.exp(lambdaS)));
    const alphaS1 = f32(sigmaS1 * f32(Math.exp(lambdaS1)));
    const alphaT = f32(f32(next) * f32(Math.exp(lambdaT)));
    const sigmaOf = (lambda: number): number => f32(Math.exp(-lambda));

    let [sd, su] = ancestralStepF32(sigmaOf(lambdaS), sigmaOf(lambdaS1), eta);
    let h_ = f32(f32(-f32(Math.log(sd))) - lambdaS);
    let x2 = lc([f32(f32(alphaS1 / alphaS) * f32(Math.exp(-h_))), -f32(alphaS1 * f32(Math.expm1(-h_)))], [x, denoised]);
    if (noisy) x2 = run.addNoise(x2, s, sigmaS1, alphaS1 * sNoise * su);
    const denoised2 = await run.model(x2, sigmaS1);

    [sd, su] = ancestralStepF32(sigmaOf(lambdaS), sigmaOf(lambdaT), eta);
    h_ = f32(f32(-f32(Math.log(sd))) - lambdaS);
    const e = -f32(alphaT * f32(Math.expm1(-h_)));
    x = lc([f32(f32(alphaT / alphaS) * f32(Math.exp(-h_))), e * (1 - fac), e * fac], [x, denoised, denoised2]);
    if (noisy) x = run.addNoise(x, s, next, alphaT * sNoise * su);
  }
  return run.tensor(x);
}

/** get_ancestral_step on float32 0-d tensors (each power, product and root rounded). */
function ancestralStepF32(sigmaFrom: number, sigmaTo: number, eta: number): [sigmaDown: number, sigmaUp: number] {
  if (!eta) return [sigmaTo, 0];
  const from2 = f32(sigmaFrom * sigmaFrom);
  const to2 = f32(sigmaTo * sigmaTo);
  const up = f32(f32(eta) * f32(Math.sqrt(f32(f32(to2 * f32(from2 - to2)) / from2))));
  const sigmaUp = Math.min(sigmaTo, up);
  return [f32(Math.sqrt(f32(to2 - f32(sigmaUp * sigmaUp)))), sigmaUp];
}

/** k-diffusion sample_dpmpp_2m: multistep 2nd order; first step and the step onto 0 are 1st order. */
export async function sampleDpmpp2m(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  let x = startX(x0);
  let oldDenoised: Float32Array | null = null;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i];
    const next = sigmas[i + 1];
    const denoised = await run.model(x, s);
    run.report(i, x, denoised, s);
    const t = -Math.log(s);
    const tNext = -Math.log(next);
    const h = tNext - t;
    // σ_next/σ·x − expm1(−h)·D', with e^{−h} written as the σ ratio so σ_next = 0 stays exact
    const e = -Math.expm1(-h);
    if (oldDenoised === null || next === 0) {
      x = lc([next / s, e], [x, denoised]);
    } else {
      const hLast = t + Math.log(sigmas[i - 1]);
      const rr = hLast / h;
      const c = 1 / (2 * rr);
      x = lc([next / s, e * (1 + c), -e * c], [x, denoised, oldDenoised]);
    }
    oldDenoised = denoised;
  }
  return run.tensor(x);
}

/**
 * k-diffusion/ComfyUI sample_dpmpp_2m_sde, `solverType` "midpoint" (ComfyUI's default) or "heun"
 * (ComfyUI's dpmpp_2m_sde_heun). Brownian noise by default in ComfyUI.
 */
export async function sampleDpmpp2mSdeWith(
  solverType: 'midpoint' | 'heun',
  ctx: SamplerContext,
  x0: Tensor,
  sigmas: Float64Array,
  opts?: SamplerOptions,
): Promise<Tensor> {
  if (sigmas.length <= 1) return { shape: [...x0.shape], data: new Float32Array(x0.data) };
  const run = new Run(ctx, x0, sigmas);
  const eta = num(opts, 'eta', 1);
  const sNoise = num(opts, 's_noise', 1);
  let x = startX(x0);
  let oldDenoised: Float32Array | null = null;
  let h = NaN;
  let hLast = NaN;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i];
    const next = sigmas[i + 1];
    const denoised = await run.model(x, s);
    run.report(i, x, denoised, s);
    if (next === 0) {
      x = denoised;
    } else {
      h = Math.log(s) - Math.log(next);
      const hEta = h * (eta + 1);
      const e = -Math.expm1(-hEta);
      const coefs = [(next / s) * Math.exp(-h * eta), e];
      const arrs = [x, denoised];
      if (oldDenoised !== null) {
        const rr = hLast / h;
        const c = solverType === 'heun' ? (e / -hEta + 1) / rr : (0.5 * e) / rr;
        coefs[1] += c;
        coefs.push(-c);
        arrs.push(oldDenoised);
      }
      x = lc(coefs, arrs);
      x = sdeNoise(run, x, s, next, h, eta, sNoise);
    }
    oldDenoised = denoised;
    hLast = h;
  }
  return run.tensor(x);
}

export const sampleDpmpp2mSde = (ctx: SamplerContext, x: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> =>
  sampleDpmpp2mSdeWith('midpoint', ctx, x, sigmas, opts);

export const sampleDpmpp2mSdeHeun = (ctx: SamplerContext, x: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> =>
  sampleDpmpp2mSdeWith('heun', ctx, x, sigmas, opts);

/** k-diffusion/ComfyUI sample_dpmpp_3m_sde: 3rd-order multistep (2nd order on its second step). */
export async function sampleDpmpp3mSde(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  if (sigmas.length <= 1) return { shape: [...x0.shape], data: new Float32Array(x0.data) };
  const run = new Run(ctx, x0, sigmas);
  const eta = num(opts, 'eta', 1);
  const sNoise = num(opts, 's_noise', 1);
  let x = startX(x0);
  let d1: Float32Array | null = null;
  let d2: Float32Array | null = null;
  let h = NaN;
  let h1 = NaN;
  let h2 = NaN;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i];
    const next = sigmas[i + 1];
    const denoised = await run.model(x, s);
    run.report(i, x, denoised, s);
    if (next === 0) {
      x = denoised;
    } else {
      h = Math.log(s) - Math.log(next);
      const hEta = h * (eta + 1);
      const coefs = [(next / s) * Math.exp(-h * eta), -Math.expm1(-hEta)];
      const arrs = [x, denoised];
      const phi2 = Math.expm1(-hEta) / hEta + 1;
      if (d2 !== null && d1 !== null) {
        const r0 = h1 / h;
        const r1 = h2 / h;
        const phi3 = phi2 / hEta - 0.5;
        // d1_0 = (D − D₁)/r0, d1_1 = (D₁ − D₂)/r1;
        // x += φ2·(d1_0 + (d1_0 − d1_1)·r0/(r0+r1)) − φ3·(d1_0 − d1_1)/(r0+r1), expanded per array
        const a = 1 + r0 / (r0 + r1);
        const b = r0 / (r0 + r1);
        const cD10 = phi2 * a - phi3 / (r0 + r1);
        const cD11 = -phi2 * b + phi3 / (r0 + r1);
        coefs[1] += cD10 / r0;
        coefs.push(-cD10 / r0 + cD11 / r1, -cD11 / r1);
        arrs.push(d1, d2);
      } else if (d1 !== null) {
        const r = h1 / h;
        coefs[1] += phi2 / r;
        coefs.push(-phi2 / r);
        arrs.push(d1);
      }
      x = lc(coefs, arrs);
      x = sdeNoise(run, x, s, next, h, eta, sNoise);
    }
    d2 = d1;
    d1 = denoised;
    h2 = h1;
    h1 = h;
  }
  return run.tensor(x);
}
