import type { Tensor } from '../../core/tensor.ts';
import { ancestralStep, lc, num, Run, startX } from './common.ts';
import type { SamplerContext, SamplerOptions } from './types.ts';

/*
 * ComfyUI's CFG++ samplers (k_diffusion/sampling.py, Chung et al. 2024): the step moves towards the
 * guided x0 but re-noises along the unconditional prediction's direction, so every model call also
 * returns the guider's uncond prediction (`Run.modelWithUncond`; ComfyUI's post_cfg_function, with
 * the cfg1 optimization off). ε/VE case: α = 1, λ = −log σ. res_multistep_cfg_pp and
 * gradient_estimation_cfg_pp are the cfgPp flag of their samplers in misc.ts.
 */

/** sample_euler_ancestral_cfg_pp: x = D + σ_down·(x − D_u)/σ, plus σ_up of noise where η and s_noise are > 0. */
export async function sampleEulerAncestralCfgPp(
  ctx: SamplerContext,
  x0: Tensor,
  sigmas: Float64Array,
  opts?: SamplerOptions,
): Promise<Tensor> {
  return eulerAncestralCfgPp(ctx, x0, sigmas, num(opts, 'eta', 1), num(opts, 's_noise', 1));
}

/** sample_euler_cfg_pp: the ancestral one with η = 0 and s_noise = 0. */
export async function sampleEulerCfgPp(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array): Promise<Tensor> {
  return eulerAncestralCfgPp(ctx, x0, sigmas, 0, 0);
}

async function eulerAncestralCfgPp(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, eta: number, sNoise: number): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  let x = startX(x0);
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i];
    const next = sigmas[i + 1];
    const { denoised, uncond } = await run.modelWithUncond(x, s);
    run.report(i, x, denoised, s);
    if (next === 0) {
      x = denoised;
      continue;
    }
    const [sigmaDown, sigmaUp] = ancestralStep(s, next, eta);
    const k = sigmaDown / s;
    x = lc([1, k, -k], [denoised, x, uncond]);
    if (eta > 0 && sNoise > 0) x = run.addNoise(x, s, next, sNoise * sigmaUp);
  }
  return run.tensor(x);
}

/**
 * sample_dpmpp_2s_ancestral_cfg_pp. As in ComfyUI, the second update's uncond is the one the
 * midpoint call left behind (its post_cfg_function overwrites the first call's).
 */
export async function sampleDpmpp2sAncestralCfgPp(
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
    const { denoised, uncond } = await run.modelWithUncond(x, s);
    const [sigmaDown, sigmaUp] = ancestralStep(s, sigmas[i + 1], eta);
    run.report(i, x, denoised, s);
    if (sigmaDown === 0) {
      // D + σ_down·(x − D_u)/σ with σ_down = 0
      x = denoised;
    } else {
      const t = -Math.log(s);
      const h = -Math.log(sigmaDown) - t;
      const sigmaMid = Math.exp(-(t + h / 2));
      const a = sigmaMid / s;
      // (σ_mid/σ)·(x + D − D_u) − expm1(−h/2)·D
      const x2 = lc([a, a - Math.expm1(-h / 2), -a], [x, denoised, uncond]);
      const second = await run.modelWithUncond(x2, sigmaMid);
      const b = sigmaDown / s;
      x = lc([b, b, -b, -Math.expm1(-h)], [x, denoised, second.uncond, second.denoised]);
    }
    if (sigmas[i + 1] > 0) x = run.addNoise(x, s, sigmas[i + 1], sNoise * sigmaUp);
  }
  return run.tensor(x);
}

/** sample_dpmpp_2m_cfg_pp: DPM-Solver++(2M) with the uncond history in place of the denoised one. */
export async function sampleDpmpp2mCfgPp(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  let x = startX(x0);
  let oldUncond: Float32Array | null = null;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i];
    const next = sigmas[i + 1];
    const { denoised, uncond } = await run.modelWithUncond(x, s);
    run.report(i, x, denoised, s);
    const t = -Math.log(s);
    const h = -Math.log(next) - t;
    const e = Math.exp(-h);
    if (oldUncond === null || next === 0) {
      // D − e^{−h}·D_u + e^{−h}·x
      x = lc([1, -e, e], [denoised, uncond, x]);
    } else {
      const r = (t + Math.log(sigmas[i - 1])) / h;
      const c = Math.expm1(-h) * (1 / (2 * r));
      x = lc([1 - c, -e, c, e], [denoised, uncond, oldUncond, x]);
    }
    oldUncond = uncond;
  }
  return run.tensor(x);
}
