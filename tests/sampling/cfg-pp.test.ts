import { describe, expect, it } from 'vitest';
import { getSampler } from '../../engine/sampling/samplers/index.ts';
import { exponentialCoeffs, stochasticAdamsCoeffs } from '../../engine/sampling/samplers/sa-solver.ts';
import type { Denoise, NoiseSampler, SamplerOptions } from '../../engine/sampling/samplers/types.ts';

/*
 * The CFG++ samplers and SA-Solver against direct float64 transcriptions of ComfyUI's
 * k_diffusion/sampling.py (2025) on a toy guider: two Gaussian denoisers as the cond and uncond
 * predictions, CFG scale 3, so uncond ≠ denoised and every CFG++ term matters. Noise is a fixed
 * per-call sequence. Tolerance: float32 storage of the sampler's state (1e-5 relative).
 */

const N = 6;
const X_T = Float64Array.from({ length: N }, (_, j) => 14 * Math.cos(0.9 * j + 0.4) + 0.1 * j);
const SIGMAS = [14.6, 7.1, 3.3, 1.6, 0.7, 0.3, 0.11, 0.04, 0];
const CFG = 3;
const gauss = (mu: number, s2: number) => (x: ArrayLike<number>, s: number) =>
  Float64Array.from(x, (v) => (s2 * v + s * s * mu) / (s2 + s * s));
const cond = gauss(0.3, 0.25);
const uncondOf = gauss(-0.2, 0.5);
const guided = (x: ArrayLike<number>, s: number): [Float64Array, Float64Array] => {
  const c = cond(x, s);
  const u = uncondOf(x, s);
  return [c.map((v, k) => u[k] + (v - u[k]) * CFG), u];
};

const denoise: Denoise = async (x, s, request) => {
  const [d, u] = guided(x.data, s);
  const out = { shape: x.shape, data: Float32Array.from(d) };
  return request?.uncond ? { ...out, uncond: { shape: x.shape, data: Float32Array.from(u) } } : out;
};

const noiseValue = (k: number, j: number) => 1.1 * Math.sin(1.3 * k + 0.7 * j + 0.2);
function callNoise(): NoiseSampler {
  let k = 0;
  return () => {
    const v = Float32Array.from({ length: N }, (_, j) => noiseValue(k, j));
    k++;
    return v;
  };
}
function refNoise(): () => Float64Array {
  let k = 0;
  return () => {
    const v = Float64Array.from({ length: N }, (_, j) => noiseValue(k, j));
    k++;
    return v;
  };
}

const add = (...terms: [number, ArrayLike<number>][]) =>
  Float64Array.from({ length: N }, (_, k) => terms.reduce((a, [c, v]) => a + c * v[k], 0));
function ancestral(from: number, to: number, eta: number): [number, number] {
  if (!eta) return [to, 0];
  const up = Math.min(to, eta * Math.sqrt((to ** 2 * (from ** 2 - to ** 2)) / from ** 2));
  return [Math.sqrt(to ** 2 - up ** 2), up];
}

// --- transcriptions (ε/VE: α = 1, λ = −log σ) ---

function refEulerAncestralCfgPp(eta: number, sNoise: number): Float64Array {
  const noise = refNoise();
  let x: Float64Array = X_T.slice();
  for (let i = 0; i < SIGMAS.length - 1; i++) {
    const [den, u] = guided(x, SIGMAS[i]);
    if (SIGMAS[i + 1] === 0) {
      x = den;
      continue;
    }
    const d = add([1 / SIGMAS[i], x], [-1 / SIGMAS[i], u]);
    const [down, up] = ancestral(SIGMAS[i], SIGMAS[i + 1], eta);
    x = add([1, den], [down, d]);
    if (eta > 0 && sNoise > 0) x = add([1, x], [sNoise * up, noise()]);
  }
  return x;
}

function refDpmpp2sAncestralCfgPp(eta: number): Float64Array {
  const noise = refNoise();
  let x: Float64Array = X_T.slice();
  for (let i = 0; i < SIGMAS.length - 1; i++) {
    const [den, u] = guided(x, SIGMAS[i]);
    const [down, up] = ancestral(SIGMAS[i], SIGMAS[i + 1], eta);
    if (down === 0) {
      x = add([1, den], [0, x]);
    } else {
      const t = -Math.log(SIGMAS[i]);
      const tn = -Math.log(down);
      const h = tn - t;
      const s = t + h / 2;
      const ratio = Math.exp(-s) / Math.exp(-t);
      const x2 = add([ratio, x], [ratio, den], [-ratio, u], [-Math.expm1(-h / 2), den]);
      const [den2, u2] = guided(x2, Math.exp(-s));
      const r2 = Math.exp(-tn) / Math.exp(-t);
      // temp[0] now holds the midpoint call's uncond
      x = add([r2, x], [r2, den], [-r2, u2], [-Math.expm1(-h), den2]);
    }
    if (SIGMAS[i + 1] > 0) x = add([1, x], [up, noise()]);
  }
  return x;
}

function refDpmpp2mCfgPp(): Float64Array {
  let x: Float64Array = X_T.slice();
  let oldU: Float64Array | null = null;
  for (let i = 0; i < SIGMAS.length - 1; i++) {
    const [den, u] = guided(x, SIGMAS[i]);
    const t = -Math.log(SIGMAS[i]);
    const h = -Math.log(SIGMAS[i + 1]) - t;
    let mix: Float64Array;
    if (oldU === null || SIGMAS[i + 1] === 0) mix = add([-Math.exp(-h), u]);
    else {
      const r = (t + Math.log(SIGMAS[i - 1])) / h;
      mix = add([-Math.exp(-h), u], [-Math.expm1(-h) * (1 / (2 * r)), den], [Math.expm1(-h) * (1 / (2 * r)), oldU]);
    }
    x = add([1, den], [1, mix], [Math.exp(-h), x]);
    oldU = u;
  }
  return x;
}

function refResMultistepCfgPp(eta: number): Float64Array {
  const noise = refNoise();
  let x: Float64Array = X_T.slice();
  let old: Float64Array | null = null;
  let oldDown = 0;
  const phi1 = (t: number) => Math.expm1(t) / t;
  const phi2 = (t: number) => (phi1(t) - 1) / t;
  for (let i = 0; i < SIGMAS.length - 1; i++) {
    const [den, u] = guided(x, SIGMAS[i]);
    const [down, up] = ancestral(SIGMAS[i], SIGMAS[i + 1], eta);
    if (down === 0 || old === null) {
      const d = add([1 / SIGMAS[i], x], [-1 / SIGMAS[i], u]);
      x = add([1, den], [down, d]);
    } else {
      const t = -Math.log(SIGMAS[i]);
      const h = -Math.log(down) - t;
      const c2 = (-Math.log(SIGMAS[i - 1]) + Math.log(oldDown)) / h;
      const b1 = phi1(-h) - phi2(-h) / c2;
      const b2 = phi2(-h) / c2;
      x = add([1, x], [1, den], [-1, u]);
      x = add([Math.exp(-h), x], [h * b1, u], [h * b2, old]);
    }
    if (SIGMAS[i + 1] > 0) x = add([1, x], [up, noise()]);
    old = u;
    oldDown = down;
  }
  return x;
}

function refGradientEstimationCfgPp(gamma = 2): Float64Array {
  let x: Float64Array = X_T.slice();
  let oldD: Float64Array | null = null;
  for (let i = 0; i < SIGMAS.length - 1; i++) {
    const [den, u] = guided(x, SIGMAS[i]);
    const d = add([1 / SIGMAS[i], x], [-1 / SIGMAS[i], u]);
    const dt = SIGMAS[i + 1] - SIGMAS[i];
    if (SIGMAS[i + 1] === 0) x = den;
    else {
      x = add([1, den], [SIGMAS[i + 1], d]);
      if (i >= 1 && oldD) x = add([1, x], [(gamma - 1) * dt, d], [-(gamma - 1) * dt, oldD]);
    }
    oldD = d;
  }
  return x;
}

async function sample(name: string, opts?: SamplerOptions): Promise<Float32Array> {
  const out = await getSampler(name)(
    { denoise, noise: callNoise() },
    { shape: [1, N], data: Float32Array.from(X_T) },
    Float64Array.from(SIGMAS),
    opts,
  );
  return out.data;
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, rel = 1e-5): void {
  const scale = Math.max(1, ...Array.from(want, Math.abs));
  for (let k = 0; k < N; k++) expect(Math.abs(got[k] - want[k]), `${what}[${k}]`).toBeLessThanOrEqual(rel * scale);
}

describe('CFG++ samplers against k-diffusion transcriptions (toy guider, cfg 3)', () => {
  it('euler_cfg_pp', async () => expectClose(await sample('euler_cfg_pp'), refEulerAncestralCfgPp(0, 0), 'euler_cfg_pp'));
  it('euler_ancestral_cfg_pp (eta 1 and 0.5)', async () => {
    expectClose(await sample('euler_ancestral_cfg_pp'), refEulerAncestralCfgPp(1, 1), 'eta 1');
    expectClose(await sample('euler_ancestral_cfg_pp', { eta: 0.5, s_noise: 0.8 }), refEulerAncestralCfgPp(0.5, 0.8), 'eta 0.5');
  });
  it('dpmpp_2s_ancestral_cfg_pp (its second update uses the midpoint call’s uncond)', async () => {
    expectClose(await sample('dpmpp_2s_ancestral_cfg_pp'), refDpmpp2sAncestralCfgPp(1), 'eta 1');
    expectClose(await sample('dpmpp_2s_ancestral_cfg_pp', { eta: 0 }), refDpmpp2sAncestralCfgPp(0), 'eta 0');
  });
  it('dpmpp_2m_cfg_pp', async () => expectClose(await sample('dpmpp_2m_cfg_pp'), refDpmpp2mCfgPp(), 'dpmpp_2m_cfg_pp'));
  it('res_multistep_cfg_pp and res_multistep_ancestral_cfg_pp', async () => {
    expectClose(await sample('res_multistep_cfg_pp'), refResMultistepCfgPp(0), 'cfg_pp');
    expectClose(await sample('res_multistep_ancestral_cfg_pp'), refResMultistepCfgPp(1), 'ancestral_cfg_pp');
  });
  it('gradient_estimation_cfg_pp', async () => expectClose(await sample('gradient_estimation_cfg_pp'), refGradientEstimationCfgPp(), 'ge'));
  it('a denoiser without a guider behind it is refused with a clear error', async () => {
    const plain: Denoise = async (x, s) => ({ shape: x.shape, data: Float32Array.from(guided(x.data, s)[0]) });
    await expect(
      getSampler('euler_cfg_pp')({ denoise: plain }, { shape: [1, N], data: Float32Array.from(X_T) }, Float64Array.from(SIGMAS)),
    ).rejects.toThrow(/unconditional prediction/);
  });
});

// --- SA-Solver ---

/** Lagrange basis ℓ_k over `nodes` at x. */
const lagrange = (nodes: readonly number[], k: number, x: number) =>
  nodes.reduce((p, n, j) => (j === k ? p : (p * (x - n)) / (nodes[k] - n)), 1);

/** (1+τ²)∫_s^t e^{(1+τ²)(x−t)} ℓ_k(x) dx by composite Simpson (4000 panels): independent of the Vandermonde solve. */
function lagrangeIntegral(nodes: readonly number[], k: number, s: number, t: number, tau: number): number {
  const m = 1 + tau * tau;
  const n = 4000;
  const hh = (t - s) / n;
  let acc = 0;
  for (let i = 0; i <= n; i++) {
    const x = s + i * hh;
    const w = i === 0 || i === n ? 1 : i % 2 ? 4 : 2;
    acc += w * Math.exp(m * (x - t)) * lagrange(nodes, k, x);
  }
  return (m * acc * hh) / 3;
}

function refSaSolver(opts: { pece: boolean; start: number; end: number; eta: number; pOrder: number; cOrder: number }): Float64Array {
  const noise = refNoise();
  const lambdas = SIGMAS.map((s) => -Math.log(s));
  const tauOf = (s: number) => (opts.eta > 0 && opts.start >= s && s >= opts.end ? opts.eta : 0);
  const coeffs = (sigmaNext: number, nodes: number[], ls: number, lt: number, tau: number) =>
    nodes.map((_, k) => sigmaNext * Math.exp(lt) * lagrangeIntegral(nodes, k, ls, lt, tau));
  let xPred: Float64Array = X_T.slice();
  let x = xPred;
  let h = 0;
  let tau = 0;
  let nz: Float64Array = new Float64Array(N);
  let preds: Float64Array[] = [];
  const maxOrder = Math.max(opts.pOrder, opts.cOrder);
  for (let i = 0; i < SIGMAS.length - 1; i++) {
    let den = guided(xPred, SIGMAS[i])[0];
    preds = [...preds, den].slice(-maxOrder);
    let po = Math.min(opts.pOrder, preds.length);
    let co = i === 0 || (SIGMAS[i + 1] === 0 && !opts.pece) ? 0 : Math.min(opts.cOrder, preds.length);
    po = Math.min(po, SIGMAS.length - 2 - i);
    co = Math.min(co, SIGMAS.length - 1 - i);
    if (co === 0) x = xPred;
    else {
      const b = coeffs(SIGMAS[i], lambdas.slice(i - co + 1, i + 1), lambdas[i - 1], lambdas[i], tau);
      const used = preds.slice(-co);
      x = add([(SIGMAS[i] / SIGMAS[i - 1]) * Math.exp(-(tau ** 2) * h), x], ...b.map((c, k): [number, Float64Array] => [c, used[k]]));
      if (tau > 0) x = add([1, x], [1, nz]);
      if (opts.pece) {
        den = guided(x, SIGMAS[i])[0];
        preds[preds.length - 1] = den;
      }
    }
    if (SIGMAS[i + 1] === 0) {
      x = den;
      continue;
    }
    tau = tauOf(SIGMAS[i + 1]);
    const b = coeffs(SIGMAS[i + 1], lambdas.slice(i - po + 1, i + 1), lambdas[i], lambdas[i + 1], tau);
    h = lambdas[i + 1] - lambdas[i];
    const used = preds.slice(-po);
    xPred = add([(SIGMAS[i + 1] / SIGMAS[i]) * Math.exp(-(tau ** 2) * h), x], ...b.map((c, k): [number, Float64Array] => [c, used[k]]));
    if (tau > 0) {
      nz = add([SIGMAS[i + 1] * Math.sqrt(-Math.expm1(-2 * tau ** 2 * h)), noise()]);
      xPred = add([1, xPred], [1, nz]);
    }
  }
  return x;
}

describe('SA-Solver against a transcription with quadrature Lagrange integrals', () => {
  it('exponential coefficients are (1+τ²)∫ e^{(1+τ²)(x−t)} x^p dx', () => {
    for (const tau of [0, 0.7]) {
      const got = exponentialCoeffs(-1.2, 0.4, 4, tau);
      for (let p = 0; p < 4; p++) {
        const m = 1 + tau * tau;
        let acc = 0;
        const n = 4000;
        const hh = 1.6 / n;
        for (let i = 0; i <= n; i++) {
          const x = -1.2 + i * hh;
          acc += (i === 0 || i === n ? 1 : i % 2 ? 4 : 2) * Math.exp(m * (x - 0.4)) * x ** p;
        }
        expect(got[p]).toBeCloseTo((m * acc * hh) / 3, 9);
      }
    }
  });

  it('simple order-2 coefficients are the paper appendix D forms', () => {
    const [lp, ls, lt, tau, sn] = [-2.1, -1.5, -0.9, 0.6, 0.4];
    const m = 1 + tau * tau;
    const h = lt - ls;
    const a = sn * Math.exp(lt);
    const pred = stochasticAdamsCoeffs(sn, [lp, ls], ls, lt, tau, true, false);
    const b2 = (a * 0.5 * m * h * h) / (lp - ls);
    expect(pred[0]).toBeCloseTo(b2, 14);
    expect(pred[1]).toBeCloseTo(a * -Math.expm1(-h * m) - b2, 14);
    const corr = stochasticAdamsCoeffs(sn, [ls, lt], ls, lt, tau, true, true);
    expect(corr[1]).toBeCloseTo(a * 0.5 * m * h, 14);
    expect(corr[0] + corr[1]).toBeCloseTo(a * -Math.expm1(-h * m), 14);
  });

  const cases: [string, SamplerOptions, Parameters<typeof refSaSolver>[0]][] = [
    ['sa_solver, ODE (eta 0)', { eta: 0 }, { pece: false, start: 0, end: 0, eta: 0, pOrder: 3, cOrder: 4 }],
    [
      'sa_solver, SDE inside [0.5, 5]',
      { sde_start_sigma: 5, sde_end_sigma: 0.5 },
      { pece: false, start: 5, end: 0.5, eta: 1, pOrder: 3, cOrder: 4 },
    ],
    [
      'sa_solver, orders 2/2, eta 0.6',
      { sde_start_sigma: 20, sde_end_sigma: 0.1, eta: 0.6, predictor_order: 2, corrector_order: 2 },
      { pece: false, start: 20, end: 0.1, eta: 0.6, pOrder: 2, cOrder: 2 },
    ],
    ['sa_solver_pece', { sde_start_sigma: 5, sde_end_sigma: 0.5 }, { pece: true, start: 5, end: 0.5, eta: 1, pOrder: 3, cOrder: 4 }],
  ];
  for (const [label, opts, ref] of cases) {
    it(label, async () => {
      const name = ref.pece ? 'sa_solver_pece' : 'sa_solver';
      expectClose(await sample(name, opts), refSaSolver(ref), label, 2e-5);
    });
  }

  it("takes its default interval from the model sampling's percent_to_sigma(0.2) and (0.8)", async () => {
    const seen: number[] = [];
    const ms = { percentToSigma: (p: number) => (seen.push(p), p === 0.2 ? 5 : 0.5) };
    const out = await getSampler('sa_solver')(
      { denoise, noise: callNoise(), modelSampling: ms },
      { shape: [1, N], data: Float32Array.from(X_T) },
      Float64Array.from(SIGMAS),
    );
    expect(seen).toEqual([0.2, 0.8]);
    expectClose(out.data, refSaSolver({ pece: false, start: 5, end: 0.5, eta: 1, pOrder: 3, cOrder: 4 }), 'default', 2e-5);
  });
});
