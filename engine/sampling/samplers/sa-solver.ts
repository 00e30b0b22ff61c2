import type { Tensor } from '../../core/tensor.ts';
import { lc, num, Run, startX } from './common.ts';
import type { SamplerContext, SamplerOptions } from './types.ts';

/*
 * ComfyUI's SA-Solver (k_diffusion/sa_solver.py + sample_sa_solver; Xue et al., NeurIPS 2023): a
 * stochastic Adams predictor-corrector in half-log-SNR λ = −log σ (ε/VE case). The b coefficients
 * integrate the Lagrange basis through the last few λ's against e^{(1+τ²)λ}; ComfyUI solves that
 * Vandermonde system in float32 with LAPACK, here it is float64 Gaussian elimination, so results
 * agree to float32 round-off of the coefficients rather than bit for bit.
 */

/** lgamma(p + 1) = ln p! for the small integer orders used here. */
function logFactorial(p: number): number {
  let s = 0;
  for (let k = 2; k <= p; k++) s += Math.log(k);
  return s;
}

/**
 * compute_exponential_coeffs: (1 + τ²)·∫_s^t e^{(1+τ²)x}·x^p dx with e^{(1+τ²)t} factored out, for
 * p = 0 … order − 1, by the recursion of integration by parts.
 */
export function exponentialCoeffs(s: number, t: number, order: number, tau: number): Float64Array {
  const tauMul = 1 + tau * tau;
  const h = t - s;
  const decay = Math.exp(-tauMul * h);
  const product = Float64Array.from({ length: order }, (_, p) => t ** p - s ** p * decay);
  const out = new Float64Array(order);
  for (let i = 0; i < order; i++) {
    let acc = 0;
    for (let j = 0; j <= i; j++) {
      let logCoeff = logFactorial(i) - logFactorial(j);
      if (tau > 0) logCoeff -= (i - j) * Math.log(tauMul);
      acc += ((i - j) % 2 === 0 ? 1 : -1) * Math.exp(logCoeff) * product[j];
    }
    out[i] = acc;
  }
  return out;
}

/** Solves A·x = b (n×n, row-major) by Gaussian elimination with partial pivoting. */
function solve(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  const x = Float64Array.from(b);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]) > Math.abs(m[piv * n + c])) piv = r;
    if (m[piv * n + c] === 0) throw new Error('SA-Solver: singular Lagrange system (repeated σ in the schedule?)');
    if (piv !== c) {
      for (let k = 0; k < n; k++) [m[c * n + k], m[piv * n + k]] = [m[piv * n + k], m[c * n + k]];
      [x[c], x[piv]] = [x[piv], x[c]];
    }
    for (let r = c + 1; r < n; r++) {
      const f = m[r * n + c] / m[c * n + c];
      for (let k = c; k < n; k++) m[r * n + k] -= f * m[c * n + k];
      x[r] -= f * x[c];
    }
  }
  for (let r = n - 1; r >= 0; r--) {
    let acc = x[r];
    for (let k = r + 1; k < n; k++) acc -= m[r * n + k] * x[k];
    x[r] = acc / m[r * n + r];
  }
  return x;
}

/**
 * compute_stochastic_adams_b_coeffs: the weights of the last N predictions (oldest first) for the
 * step λ_s → λ_t, where N = lambdas.length; the simple order-2 forms of the paper's appendix D when
 * asked for and N = 2.
 */
export function stochasticAdamsCoeffs(
  sigmaNext: number,
  lambdas: readonly number[],
  lambdaS: number,
  lambdaT: number,
  tau: number,
  simpleOrder2: boolean,
  corrector: boolean,
): Float64Array {
  const n = lambdas.length;
  const alphaT = sigmaNext * Math.exp(lambdaT);
  const tauMul = 1 + tau * tau;
  const h = lambdaT - lambdaS;
  if (simpleOrder2 && n === 2) {
    const full = alphaT * -Math.expm1(-h * tauMul);
    if (corrector) {
      const b1 = alphaT * (0.5 * tauMul * h);
      return Float64Array.of(full - b1, b1);
    }
    const b2 = (alphaT * (0.5 * tauMul * h * h)) / (lambdas[n - 2] - lambdaS);
    return Float64Array.of(b2, full - b2);
  }
  const integrals = exponentialCoeffs(lambdaS, lambdaT, n, tau);
  // Vandermondeᵀ: row p holds λ_k^p.
  const vt = new Float64Array(n * n);
  for (let p = 0; p < n; p++) for (let k = 0; k < n; k++) vt[p * n + k] = lambdas[k] ** p;
  return solve(vt, integrals, n).map((v) => alphaT * v);
}

/** get_tau_interval_func for η > 0: τ = η inside [end_sigma, start_sigma], else 0 (an ODE step). */
function tauFunction(startSigma: number, endSigma: number, eta: number): (sigma: number) => number {
  return (sigma) => (startSigma >= sigma && sigma >= endSigma ? eta : 0);
}

/**
 * sample_sa_solver. Options: predictor_order (3), corrector_order (4), use_pece, simple_order_2,
 * s_noise, and the stochastic interval as SamplerSASolver makes it: eta (1) with sde_start_sigma /
 * sde_end_sigma, which default to the run's model sampling's percent_to_sigma(0.2) and (0.8).
 */
export async function sampleSaSolver(ctx: SamplerContext, x0: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> {
  if (sigmas.length <= 1) return { shape: [...x0.shape], data: new Float32Array(x0.data) };
  const run = new Run(ctx, x0, sigmas);
  const sNoise = num(opts, 's_noise', 1);
  const predictorOrder = num(opts, 'predictor_order', 3);
  const correctorOrder = num(opts, 'corrector_order', 4);
  const usePece = opts?.use_pece === true;
  const simpleOrder2 = opts?.simple_order_2 === true;
  const eta = num(opts, 'eta', 1);
  const tauOf = eta <= 0 ? () => 0 : tauFunction(...stochasticInterval(ctx, opts), eta);
  const lambdas = Array.from(sigmas, (s) => -Math.log(s));
  const maxOrder = Math.max(predictorOrder, correctorOrder);
  const lowerOrderToEnd = sigmas[sigmas.length - 1] === 0;

  let xPred = startX(x0);
  let x = xPred;
  let h = 0;
  let tau = 0;
  let noise: Float32Array | null = null;
  let preds: Float32Array[] = [];
  for (let i = 0; i < sigmas.length - 1; i++) {
    let denoised = await run.model(xPred, sigmas[i]);
    run.report(i, xPred, denoised, sigmas[i]);
    preds = [...preds, denoised].slice(-maxOrder);

    let predictorUsed = Math.min(predictorOrder, preds.length);
    let correctorUsed = i === 0 || (sigmas[i + 1] === 0 && !usePece) ? 0 : Math.min(correctorOrder, preds.length);
    if (lowerOrderToEnd) {
      predictorUsed = Math.min(predictorUsed, sigmas.length - 2 - i);
      correctorUsed = Math.min(correctorUsed, sigmas.length - 1 - i);
    }

    if (correctorUsed === 0) {
      x = xPred;
    } else {
      const b = stochasticAdamsCoeffs(
        sigmas[i],
        lambdas.slice(i - correctorUsed + 1, i + 1),
        lambdas[i - 1],
        lambdas[i],
        tau,
        simpleOrder2,
        true,
      );
      const used = preds.slice(-correctorUsed);
      x = lc([(sigmas[i] / sigmas[i - 1]) * Math.exp(-(tau * tau) * h), ...b], [x, ...used]);
      // The predictor's noise, added again to the corrected state.
      if (tau > 0 && sNoise > 0 && noise) x = lc([1, 1], [x, noise]);
      if (usePece) {
        denoised = await run.model(x, sigmas[i]);
        preds[preds.length - 1] = denoised;
      }
    }

    if (sigmas[i + 1] === 0) {
      x = denoised;
      continue;
    }
    tau = tauOf(sigmas[i + 1]);
    const b = stochasticAdamsCoeffs(
      sigmas[i + 1],
      lambdas.slice(i - predictorUsed + 1, i + 1),
      lambdas[i],
      lambdas[i + 1],
      tau,
      simpleOrder2,
      false,
    );
    h = lambdas[i + 1] - lambdas[i];
    xPred = lc([(sigmas[i + 1] / sigmas[i]) * Math.exp(-(tau * tau) * h), ...b], [x, ...preds.slice(-predictorUsed)]);
    if (tau > 0 && sNoise > 0) {
      const w = sigmas[i + 1] * Math.sqrt(-Math.expm1(-2 * tau * tau * h)) * sNoise;
      const n = run.noise(sigmas[i], sigmas[i + 1], w);
      noise = n ? lc([w], [n]) : null;
      if (noise) xPred = lc([1, 1], [xPred, noise]);
    }
  }
  return run.tensor(x);
}

/** sample_sa_solver_pece: the same with the corrected state evaluated again (Predict–Evaluate–Correct–Evaluate). */
export const sampleSaSolverPece = (ctx: SamplerContext, x: Tensor, sigmas: Float64Array, opts?: SamplerOptions): Promise<Tensor> =>
  sampleSaSolver(ctx, x, sigmas, { ...opts, use_pece: true });

function stochasticInterval(ctx: SamplerContext, opts: SamplerOptions | undefined): [start: number, end: number] {
  const given = opts?.sde_start_sigma !== undefined && opts?.sde_end_sigma !== undefined;
  if (given) return [num(opts, 'sde_start_sigma', 0), num(opts, 'sde_end_sigma', 0)];
  const ms = ctx.modelSampling;
  if (!ms)
    throw new Error("sa_solver needs sde_start_sigma/sde_end_sigma or the model's sampling (percent_to_sigma) for its stochastic interval");
  return [ms.percentToSigma(0.2), ms.percentToSigma(0.8)];
}
