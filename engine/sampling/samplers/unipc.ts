import type { Tensor } from '../../core/tensor.ts';
import { lc, Run, startX } from './common.ts';
import type { SamplerContext, SamplerOptions } from './types.ts';

/*
 * UniPC (Zhao et al. 2023) as ComfyUI's extra_samplers/uni_pc.py runs it: multistep, data
 * prediction, order min(3, len(sigmas) − 2), lower order at the end, B(h) = h (bh1) or e^h − 1 (bh2).
 * ComfyUI solves in VP variables, x_vp = x·α with α = 1/√(1+σ²), and builds α, σ_vp and λ from
 * log(1/(1+σ²)) in float32. For small σ that loses most digits (1 − 1/(1+σ²) cancels), so its λ and
 * σ_vp near the end of a schedule differ visibly from −log σ and σ·α; the conversions below repeat
 * that float32 arithmetic so results agree with ComfyUI, not just with the exact math. A final
 * σ = 0 becomes 0.001 and the result is divided by α(σ_last).
 */

const f32 = Math.fround;

/** ComfyUI SigmaConvert.marginal_log_mean_coeff: ½·log(1/(σ²+1)), in float32. */
const logMeanCoeff = (sigma: number): number => f32(0.5 * f32(Math.log(f32(1 / f32(f32(sigma * sigma) + 1)))));
const alphaOf = (sigma: number): number => f32(Math.exp(logMeanCoeff(sigma)));
/** 1 − e^{2·lmc}: the float32 cancellation that shapes σ_vp and λ. */
const oneMinusAlpha2 = (sigma: number): number => f32(1 - f32(Math.exp(f32(2 * logMeanCoeff(sigma)))));
const stdOf = (sigma: number): number => f32(Math.sqrt(oneMinusAlpha2(sigma)));
const lambdaOf = (sigma: number): number => f32(logMeanCoeff(sigma) - f32(0.5 * f32(Math.log(oneMinusAlpha2(sigma)))));

/** Small dense solve (Gaussian elimination with partial pivoting) for the ≤ 3×3 UniPC systems. */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, r) => [...row.slice(0, n), b[r]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r][c]) > Math.abs(m[p][c])) p = r;
    [m[c], m[p]] = [m[p], m[c]];
    for (let r = c + 1; r < n; r++) {
      const f = m[r][c] / m[c][c];
      for (let k = c; k <= n; k++) m[r][k] -= f * m[c][k];
    }
  }
  const out = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r][n];
    for (let k = r + 1; k < n; k++) s -= m[r][k] * out[k];
    out[r] = s / m[r][r];
  }
  return out;
}

interface History {
  models: Float32Array[];
  sigmas: number[];
}

export async function sampleUniPcVariant(variant: 'bh1' | 'bh2', ctx: SamplerContext, x0: Tensor, sigmasIn: Float64Array): Promise<Tensor> {
  const run = new Run(ctx, x0, sigmasIn);
  const ts = Float64Array.from(sigmasIn, f32);
  if (ts[ts.length - 1] === 0) ts[ts.length - 1] = f32(0.001);
  const steps = ts.length - 1;
  const order = Math.min(3, ts.length - 2);

  // ComfyUI goes through ε: x = x_vp·√(σ²+1), ε = (x − D)/σ, x0 = (x_vp − σ_vp·ε)/α. With its float32
  // α and σ_vp that is not exactly D, so the same route is taken here.
  const dataPrediction = async (xvp: Float32Array, sigma: number): Promise<Float32Array> => {
    const xve = lc([f32(Math.sqrt(f32(f32(sigma * sigma) + 1)))], [xvp]);
    const d = await run.model(xve, sigma);
    const a = alphaOf(sigma);
    const sd = stdOf(sigma);
    const out = new Float32Array(xvp.length);
    for (let k = 0; k < out.length; k++) out[k] = (xvp[k] - sd * ((xve[k] - d[k]) / sigma)) / a;
    return out;
  };

  const report = (i: number, xvp: Float32Array, sigmaOfX: number, denoised: Float32Array, sigma: number): void => {
    run.report(i, lc([1 / alphaOf(sigmaOfX)], [xvp]), denoised, sigma);
  };

  /** One multistep_uni_pc_bh_update from the newest history point to σ_t; returns x_t and, with the corrector, D(x_t). */
  const update = async (
    x: Float32Array,
    hist: History,
    sigmaT: number,
    ord: number,
    useCorrector: boolean,
  ): Promise<{ x: Float32Array; model: Float32Array | null }> => {
    const sigmaPrev0 = hist.sigmas[hist.sigmas.length - 1];
    const m0 = hist.models[hist.models.length - 1];
    const lambdaPrev0 = lambdaOf(sigmaPrev0);
    const h = lambdaOf(sigmaT) - lambdaPrev0;
    const alphaT = alphaOf(sigmaT);

    const rks: number[] = [];
    const d1sCoefs: number[][] = []; // each D1_k = (m_k − m0)/r_k, kept as (array, 1/r_k)
    const d1sArrs: Float32Array[] = [];
    for (let i = 1; i < ord; i++) {
      const sigmaPrevI = hist.sigmas[hist.sigmas.length - 1 - i];
      const rk = (lambdaOf(sigmaPrevI) - lambdaPrev0) / h;
      rks.push(rk);
      d1sCoefs.push([1 / rk]);
      d1sArrs.push(hist.models[hist.models.length - 1 - i]);
    }
    rks.push(1);

    const hh = -h;
    const hPhi1 = Math.expm1(hh);
    let hPhiK = hPhi1 / hh - 1;
    let factorial = 1;
    const bH = variant === 'bh1' ? hh : Math.expm1(hh);
    const R: number[][] = [];
    const b: number[] = [];
    for (let i = 1; i <= ord; i++) {
      R.push(rks.map((r) => r ** (i - 1)));
      b.push((hPhiK * factorial) / bH);
      factorial *= i + 1;
      hPhiK = hPhiK / hh - 1 / factorial;
    }

    const nD1 = d1sArrs.length;
    let rhosP: number[] = [];
    if (nD1 > 0) {
      rhosP =
        ord === 2
          ? [0.5]
          : solve(
              R.slice(0, -1).map((row) => row.slice(0, -1)),
              b.slice(0, -1),
            );
    }
    const rhosC = useCorrector ? (ord === 1 ? [0.5] : solve(R, b)) : [];

    // x_t_ = (σ_t/σ_prev0)·x − α_t·hφ1·m0; the D1 terms expand into m_k and m0 with weights ρ_k/r_k
    const base = (): { coefs: number[]; arrs: Float32Array[] } => ({
      coefs: [stdOf(sigmaT) / stdOf(sigmaPrev0), -alphaT * hPhi1],
      arrs: [x, m0],
    });
    const addD1 = (t: { coefs: number[]; arrs: Float32Array[] }, rhos: number[], scale: number): void => {
      for (let k = 0; k < nD1; k++) {
        const w = scale * rhos[k] * d1sCoefs[k][0];
        t.coefs.push(w);
        t.arrs.push(d1sArrs[k]);
        t.coefs[1] -= w;
      }
    };

    const pred = base();
    if (nD1 > 0) addD1(pred, rhosP, -alphaT * bH);
    let xT = lc(pred.coefs, pred.arrs);
    let modelT: Float32Array | null = null;
    if (useCorrector) {
      modelT = await dataPrediction(xT, sigmaT);
      const corr = base();
      if (nD1 > 0) addD1(corr, rhosC, -alphaT * bH);
      const w = -alphaT * bH * rhosC[rhosC.length - 1];
      corr.coefs.push(w);
      corr.arrs.push(modelT);
      corr.coefs[1] -= w;
      xT = lc(corr.coefs, corr.arrs);
    }
    return { x: xT, model: modelT };
  };

  let x = lc([1 / f32(Math.sqrt(f32(1 + f32(ts[0] * ts[0]))))], [startX(x0)]);
  let sigmaOfX = ts[0];
  const hist: History = { models: [], sigmas: [] };
  for (let stepIndex = 0; stepIndex < steps; stepIndex++) {
    if (stepIndex === 0) {
      hist.models = [await dataPrediction(x, ts[0])];
      hist.sigmas = [ts[0]];
    } else if (stepIndex < order) {
      const r = await update(x, hist, ts[stepIndex], stepIndex, true);
      x = r.x;
      sigmaOfX = ts[stepIndex];
      hist.models.push(r.model ?? (await dataPrediction(x, ts[stepIndex])));
      hist.sigmas.push(ts[stepIndex]);
    } else {
      const last = stepIndex === steps - 1 ? 1 : 0;
      for (let step = stepIndex; step <= stepIndex + last; step++) {
        const stepOrder = Math.min(order, steps + 1 - step);
        const useCorrector = step !== steps;
        const r = await update(x, hist, ts[step], stepOrder, useCorrector);
        x = r.x;
        sigmaOfX = ts[step];
        // the reference shifts its fixed-length lists left and overwrites the newest slot
        for (let k = 0; k < order - 1; k++) {
          hist.sigmas[k] = hist.sigmas[k + 1];
          hist.models[k] = hist.models[k + 1];
        }
        hist.sigmas[hist.sigmas.length - 1] = ts[step];
        if (step < steps) {
          hist.models[hist.models.length - 1] = r.model ?? (await dataPrediction(x, ts[step]));
        }
        // Reported before the final corrector-free hop to σ_last so that x, σ and D describe one
        // point; ComfyUI reports after it (its callback only drives progress and previews).
        if (step === stepIndex) report(stepIndex, x, sigmaOfX, hist.models[hist.models.length - 1], ts[stepIndex]);
      }
      continue;
    }
    report(stepIndex, x, sigmaOfX, hist.models[hist.models.length - 1], ts[stepIndex]);
  }
  return run.tensor(lc([1 / alphaOf(ts[ts.length - 1])], [x]));
}

export const sampleUniPc = (ctx: SamplerContext, x: Tensor, sigmas: Float64Array, _opts?: SamplerOptions): Promise<Tensor> =>
  sampleUniPcVariant('bh1', ctx, x, sigmas);

export const sampleUniPcBh2 = (ctx: SamplerContext, x: Tensor, sigmas: Float64Array, _opts?: SamplerOptions): Promise<Tensor> =>
  sampleUniPcVariant('bh2', ctx, x, sigmas);
