import { describe, expect, it } from 'vitest';
import { ModelSamplingDiscrete } from '../../engine/sampling/model-sampling.ts';
import { brownianNoiseSampler, pyRound6 } from '../../engine/sampling/noise/brownian.ts';
import { getSampler } from '../../engine/sampling/samplers/index.ts';
import type { Denoise, NoiseSampler } from '../../engine/sampling/samplers/types.ts';
import { calculateSigmas } from '../../engine/sampling/schedulers.ts';

/*
 * dpmpp_sde asks its Brownian tree for the noise over [σ_mid, σ_i], where ComfyUI computes
 * σ_mid = exp(−(λ_s + r·h)) on 0-d float32 tensors (λ = sigma.log().neg()). torchsde's BrownianTree
 * rounds query times to 6 decimals (tol 1e-6), so σ_mid must be those float32 bits exactly: on SD1's
 * 8-step normal schedule the float64 value rounds to the neighbouring 1e-6 grid point at step 0,
 * which moved the whole result by ~2e-4 relative.
 */

const f32 = Math.fround;

/** ComfyUI's σ_mid, transcribed op by op (log, neg, sub, mul by r, add, neg, exp, each float32). */
function comfyMidpoint(sigma: number, sigmaNext: number, r = 0.5): number {
  const ls = f32(-f32(Math.log(f32(sigma))));
  const lt = f32(-f32(Math.log(f32(sigmaNext))));
  const h = f32(lt - ls);
  return f32(Math.exp(-f32(ls + f32(r * h))));
}

const gaussian: Denoise = async (x, sigma) => ({
  shape: x.shape,
  data: x.data.map((v) => (0.25 * v + sigma * sigma * 0.3) / (0.25 + sigma * sigma)),
});

describe('dpmpp_sde midpoint queries', () => {
  const sigmas = calculateSigmas(new ModelSamplingDiscrete(), 'normal', 8);

  it("queries the tree and the model at ComfyUI's float32 σ_mid", async () => {
    const queries: [number, number][] = [];
    const modelSigmas: number[] = [];
    const spy: NoiseSampler = (s, sn) => {
      queries.push([s, sn]);
      return new Float32Array(4).fill(0.1);
    };
    const denoise: Denoise = async (x, s) => {
      modelSigmas.push(s);
      return gaussian(x, s);
    };
    await getSampler('dpmpp_sde')({ denoise, noise: spy }, { shape: [1, 4], data: Float32Array.of(3, -1, 2, 0.5) }, sigmas);
    const expected: [number, number][] = [];
    for (let i = 0; i < sigmas.length - 2; i++) {
      expected.push([sigmas[i], comfyMidpoint(sigmas[i], sigmas[i + 1])], [sigmas[i], sigmas[i + 1]]);
    }
    expect(queries).toEqual(expected);
    expect(modelSigmas.filter((_, k) => k % 2 === 1 && k < 2 * (sigmas.length - 2))).toEqual(
      expected.filter((_, k) => k % 2 === 0).map((q) => q[1]),
    );
  });

  it('the float64 midpoint would land on another 1e-6 grid point, and the tree gives visibly other noise there', () => {
    const s0 = sigmas[0];
    const s1 = sigmas[1];
    const mid32 = comfyMidpoint(s0, s1);
    const mid64 = f32(Math.exp(-(-Math.log(s0) + 0.5 * (-Math.log(s1) + Math.log(s0)))));
    expect(pyRound6(mid64)).not.toBe(pyRound6(mid32));
    const shape = [1, 4, 8, 8];
    const a = brownianNoiseSampler(42n, shape, sigmas[sigmas.length - 2], s0)(s0, mid32);
    const b = brownianNoiseSampler(42n, shape, sigmas[sigmas.length - 2], s0)(s0, mid64);
    let num = 0;
    let den = 0;
    for (let k = 0; k < a.length; k++) {
      num += (a[k] - b[k]) ** 2;
      den += a[k] ** 2;
    }
    // One grid step of a Brownian path over a ~4.7-long interval: ~√(1e-6/4.7) ≈ 5e-4 relative.
    expect(Math.sqrt(num / den)).toBeGreaterThan(1e-4);
  });
});
