import { InterruptedError } from '../../core/errors.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { NoiseSampler, SamplerContext, SamplerOptions } from './types.ts';

/**
 * Shared plumbing for the samplers: flat Float32Array arithmetic, the one place that calls the
 * model (so every model call honours the abort signal), option reading and k-diffusion's helpers.
 * Arrays handed to the callback or returned by the denoiser are never written to afterwards, so a
 * callback may keep what it is given.
 */

/** Linear combination Σ c_j·a_j into a fresh array; sums in float64, stores float32 like torch's per-op rounding would roughly. */
export function lc(coefs: readonly number[], arrs: readonly Float32Array[]): Float32Array {
  const n = arrs[0].length;
  const out = new Float32Array(n);
  const m = arrs.length;
  if (m === 1) {
    const c0 = coefs[0];
    const a0 = arrs[0];
    for (let k = 0; k < n; k++) out[k] = c0 * a0[k];
    return out;
  }
  if (m === 2) {
    const c0 = coefs[0];
    const c1 = coefs[1];
    const a0 = arrs[0];
    const a1 = arrs[1];
    for (let k = 0; k < n; k++) out[k] = c0 * a0[k] + c1 * a1[k];
    return out;
  }
  if (m === 3) {
    const [c0, c1, c2] = coefs;
    const [a0, a1, a2] = arrs;
    for (let k = 0; k < n; k++) out[k] = c0 * a0[k] + c1 * a1[k] + c2 * a2[k];
    return out;
  }
  for (let k = 0; k < n; k++) {
    let s = 0;
    for (let j = 0; j < m; j++) s += coefs[j] * arrs[j][k];
    out[k] = s;
  }
  return out;
}

/** k-diffusion's to_d: the probability-flow ODE derivative (x − D)/σ. */
export function toD(x: Float32Array, sigma: number, denoised: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  const inv = 1 / sigma;
  for (let k = 0; k < x.length; k++) out[k] = (x[k] - denoised[k]) * inv;
  return out;
}

export function num(opts: SamplerOptions | undefined, key: string, fallback: number): number {
  const v = opts?.[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || Number.isNaN(v)) throw new Error(`sampler option ${key} must be a number, got ${String(v)}`);
  return v;
}

/** k-diffusion's get_ancestral_step: where the deterministic part lands and how much fresh noise tops it up. */
export function ancestralStep(sigmaFrom: number, sigmaTo: number, eta: number): [sigmaDown: number, sigmaUp: number] {
  if (!eta) return [sigmaTo, 0];
  const sigmaUp = Math.min(sigmaTo, eta * Math.sqrt((sigmaTo ** 2 * (sigmaFrom ** 2 - sigmaTo ** 2)) / sigmaFrom ** 2));
  const sigmaDown = Math.sqrt(sigmaTo ** 2 - sigmaUp ** 2);
  return [sigmaDown, sigmaUp];
}

/** Karras churn: γ for this step (0 unless s_churn > 0 and σ inside [s_tmin, s_tmax]). */
function churnGamma(opts: SamplerOptions | undefined, sigma: number, nSigmas: number): number {
  const sChurn = num(opts, 's_churn', 0);
  if (!(sChurn > 0)) return 0;
  const sTmin = num(opts, 's_tmin', 0);
  const sTmax = num(opts, 's_tmax', Infinity);
  return sTmin <= sigma && sigma <= sTmax ? Math.min(sChurn / (nSigmas - 1), Math.SQRT2 - 1) : 0;
}

/**
 * Karras churn (euler, heun, heunpp2, dpm_2): raise σ_i to σ̂ = σ_i(1+γ) by adding fresh noise.
 * ComfyUI draws this from torch's global generator; here it comes from the context's noise sampler,
 * so churn needs one.
 */
export function churn(
  run: Run,
  x: Float32Array,
  sigmas: Float64Array,
  i: number,
  opts: SamplerOptions | undefined,
  sNoise: number,
): { x: Float32Array; sigmaHat: number } {
  const sigma = sigmas[i];
  const gamma = churnGamma(opts, sigma, sigmas.length);
  const sigmaHat = sigma * (gamma + 1);
  if (gamma > 0) x = run.addNoise(x, sigma, sigmaHat, sNoise * Math.sqrt(sigmaHat ** 2 - sigma ** 2));
  return { x, sigmaHat };
}

/**
 * The DPM-Solver++ SDE noise update of the multistep samplers (2m_sde, 3m_sde):
 * x + noise(σ, σ_next)·σ_next·√(1 − e^{−2hη})·s_noise, skipped when the step is deterministic.
 */
export function sdeNoise(
  run: Run,
  x: Float32Array,
  sigma: number,
  sigmaNext: number,
  h: number,
  eta: number,
  sNoise: number,
): Float32Array {
  if (!(eta > 0 && sNoise > 0)) return x;
  return run.addNoise(x, sigma, sigmaNext, sigmaNext * Math.sqrt(-Math.expm1(-2 * h * eta)) * sNoise);
}

/** Per-run state: the input's shape, the model wrapper and the noise source. */
export class Run {
  readonly shape: readonly number[];
  readonly totalSteps: number;
  constructor(
    readonly ctx: SamplerContext,
    x: Tensor,
    sigmas: Float64Array,
  ) {
    this.shape = [...x.shape];
    this.totalSteps = Math.max(0, sigmas.length - 1);
  }

  /** The denoiser at σ, behind the abort check every model call must pass. */
  async model(x: Float32Array, sigma: number): Promise<Float32Array> {
    if (this.ctx.signal?.aborted) throw new InterruptedError();
    const out = await this.ctx.denoise({ shape: this.shape, data: x }, sigma);
    if (out.data.length !== x.length) {
      throw new Error(`denoiser returned ${out.data.length} elements for an input of ${x.length}`);
    }
    return out.data;
  }

  /**
   * The denoiser at σ with the guider's unconditional prediction (CFG++ samplers; ComfyUI's
   * post_cfg_function hook). A denoiser that cannot give it (no guider behind it) is an error.
   */
  async modelWithUncond(x: Float32Array, sigma: number): Promise<{ denoised: Float32Array; uncond: Float32Array }> {
    if (this.ctx.signal?.aborted) throw new InterruptedError();
    const out = await this.ctx.denoise({ shape: this.shape, data: x }, sigma, { uncond: true });
    if (!out.uncond)
      throw new Error('this CFG++ sampler needs the unconditional prediction, which its denoiser does not give (use a guider)');
    if (out.data.length !== x.length || out.uncond.data.length !== x.length) {
      throw new Error(`denoiser returned ${out.data.length} elements for an input of ${x.length}`);
    }
    return { denoised: out.data, uncond: out.uncond.data };
  }

  report(i: number, x: Float32Array, denoised: Float32Array, sigma: number, sigmaHat: number = sigma): void {
    this.ctx.callback?.({
      i,
      x: { shape: this.shape, data: x },
      denoised: { shape: this.shape, data: denoised },
      sigma,
      sigmaHat,
      totalSteps: this.totalSteps,
    });
  }

  /**
   * Noise for the interval σ→σ_next. ComfyUI draws even where the draw is scaled by zero, and a
   * stateful generator's later draws depend on that, so with a sampler present we always draw where
   * ComfyUI does; without one, a zero-weight draw is skipped instead of failing.
   */
  noise(sigma: number, sigmaNext: number, weight: number): Float32Array | null {
    const ns: NoiseSampler | undefined = this.ctx.noise;
    if (!ns) {
      if (weight === 0) return null;
      throw new Error('this sampler needs a noise sampler (ctx.noise) for its stochastic steps');
    }
    const n = ns(sigma, sigmaNext);
    if (n.length !== this.size) throw new Error(`noise sampler returned ${n.length} elements, expected ${this.size}`);
    return n;
  }

  get size(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }

  /** x + w·noise(σ, σ_next) as a fresh array (x itself when the draw was skipped). */
  addNoise(x: Float32Array, sigma: number, sigmaNext: number, weight: number): Float32Array {
    const n = this.noise(sigma, sigmaNext, weight);
    if (!n) return x;
    return lc([1, weight], [x, n]);
  }

  tensor(x: Float32Array): Tensor {
    return { shape: this.shape, data: x };
  }
}

/** Inputs are never mutated: samplers start from a private copy. */
export function startX(x: Tensor): Float32Array {
  return new Float32Array(x.data);
}
