import type { Tensor } from '../../core/tensor.ts';
import { ancestralStep, churn, lc, num, Run, startX, toD } from './common.ts';
import type { SamplerContext, SamplerOptions } from './types.ts';

/** k-diffusion sample_euler (Karras et al. 2022, Algorithm 2 with Euler steps). Also ComfyUI's "ddim". */
export async function sampleEuler(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const sNoise = num(opts, 's_noise', 1);
  let x = startX(x0);
  for (let i = 0; i < sigmas.length - 1; i++) {
    const c = churn(run, x, sigmas, i, opts, sNoise);
    x = c.x;
    const denoised = await run.model(x, c.sigmaHat);
    run.report(i, x, denoised, sigmas[i], c.sigmaHat);
    // x + d·dt with d = (x − D)/σ̂, written as one combination
    const r = (sigmas[i + 1] - c.sigmaHat) / c.sigmaHat;
    x = lc([1 + r, -r], [x, denoised]);
  }
  return run.tensor(x);
}

/** k-diffusion sample_euler_ancestral (the ε/VE branch; ComfyUI switches to an RF form only for flow models). */
export async function sampleEulerAncestral(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
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
      x = denoised;
    } else {
      const r = (sigmaDown - s) / s;
      x = lc([1 + r, -r], [x, denoised]);
      x = run.addNoise(x, s, sigmas[i + 1], sNoise * sigmaUp);
    }
  }
  return run.tensor(x);
}

/** k-diffusion sample_heun: Heun's method, Euler on the step that lands on σ = 0. */
export async function sampleHeun(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const sNoise = num(opts, 's_noise', 1);
  let x = startX(x0);
  for (let i = 0; i < sigmas.length - 1; i++) {
    const c = churn(run, x, sigmas, i, opts, sNoise);
    x = c.x;
    const sh = c.sigmaHat;
    const next = sigmas[i + 1];
    const denoised = await run.model(x, sh);
    run.report(i, x, denoised, sigmas[i], sh);
    const d = toD(x, sh, denoised);
    const dt = next - sh;
    if (next === 0) {
      x = lc([1, dt], [x, d]);
    } else {
      const x2 = lc([1, dt], [x, d]);
      const denoised2 = await run.model(x2, next);
      const d2 = toD(x2, next, denoised2);
      x = lc([1, dt / 2, dt / 2], [x, d, d2]);
    }
  }
  return run.tensor(x);
}

/**
 * ComfyUI's sample_heunpp2 (from sd-webui-samplers-scheduler): Heun with a third evaluation at
 * σ_{i+2}, its derivatives weighted by σ/σ_0. "End" is the schedule's last σ, not necessarily 0.
 */
export async function sampleHeunpp2(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmas);
  const sNoise = num(opts, 's_noise', 1);
  const sEnd = sigmas[sigmas.length - 1];
  let x = startX(x0);
  for (let i = 0; i < sigmas.length - 1; i++) {
    const c = churn(run, x, sigmas, i, opts, sNoise);
    x = c.x;
    const sh = c.sigmaHat;
    const denoised = await run.model(x, sh);
    run.report(i, x, denoised, sigmas[i], sh);
    const d = toD(x, sh, denoised);
    const dt = sigmas[i + 1] - sh;
    if (sigmas[i + 1] === sEnd) {
      x = lc([1, dt], [x, d]);
    } else if (sigmas[i + 2] === sEnd) {
      const x2 = lc([1, dt], [x, d]);
      const denoised2 = await run.model(x2, sigmas[i + 1]);
      const d2 = toD(x2, sigmas[i + 1], denoised2);
      const w2 = sigmas[i + 1] / (2 * sigmas[0]);
      const w1 = 1 - w2;
      x = lc([1, dt * w1, dt * w2], [x, d, d2]);
    } else {
      const x2 = lc([1, dt], [x, d]);
      const denoised2 = await run.model(x2, sigmas[i + 1]);
      const d2 = toD(x2, sigmas[i + 1], denoised2);
      const dt2 = sigmas[i + 2] - sigmas[i + 1];
      const x3 = lc([1, dt2], [x2, d2]);
      const denoised3 = await run.model(x3, sigmas[i + 2]);
      const d3 = toD(x3, sigmas[i + 2], denoised3);
      const w = 3 * sigmas[0];
      const w2 = sigmas[i + 1] / w;
      const w3 = sigmas[i + 2] / w;
      const w1 = 1 - w2 - w3;
      x = lc([1, dt * w1, dt * w2, dt * w3], [x, d, d2, d3]);
    }
  }
  return run.tensor(x);
}
