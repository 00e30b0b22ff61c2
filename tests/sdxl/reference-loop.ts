import type { Tensor } from '../../engine/core/tensor.ts';
import type { CheckpointParts } from '../../engine/models/families/family.ts';
import type { SdxlClip } from '../../engine/models/families/sdxl/clip.ts';
import { unetForwardRef } from '../../engine/models/families/sd1/reference/unet.ts';
import { sdxlAdmRef } from '../../engine/models/families/sdxl/reference/adm.ts';
import { ksample } from '../../engine/sampling/ksampler.ts';
import { randomNoise } from '../../engine/sampling/noise/index.ts';
import type { TinySdxl } from './tiny.ts';

/** Karras et al.'s schedule in float64 (ComfyUI's get_sigmas_karras, ρ = 7), with the final 0. */
export function karras(n: number, sigmaMin: number, sigmaMax: number): number[] {
  const lo = sigmaMin ** (1 / 7);
  const hi = sigmaMax ** (1 / 7);
  return [...Array.from({ length: n }, (_v, i) => (hi + (i / (n - 1)) * (lo - hi)) ** 7), 0];
}

export interface LoopArgs {
  tiny: TinySdxl;
  parts: CheckpointParts;
  /** Raw VAE-space start latent. */
  latent: Tensor;
  sigmas: readonly number[];
  cfg: number;
  sigmaData: number;
  /** EDM: x·σd²/(σ² + σd²) + out·σ·σd/√(σ² + σd²); v: the same with −. */
  sign: 1 | -1;
  processIn: (v: number, c: number) => number;
  processOut: (v: number, c: number) => number;
  /** The UNet's timestep at σ (default ModelSamplingContinuousEDM's 0.25·ln σ). */
  timestep?: (sigma: number) => number;
}

/** ComfyUI's KSampler with euler on an EDM / v model, written out in float64. */
export async function referenceLoop(
  a: LoopArgs,
  pos: { cond: Tensor; pooled: Tensor },
  neg: { cond: Tensor; pooled: Tensor },
  seed: bigint,
): Promise<Float64Array> {
  const [, C, H, W] = a.latent.shape;
  const plane = H * W;
  const channel = (k: number): number => Math.floor(k / plane) % C;
  const empty = a.latent.data.every((v) => v === 0);
  const latentIn = Float64Array.from(a.latent.data, (v, k) => (empty ? 0 : a.processIn(v, channel(k))));
  const noise = randomNoise(seed).generate({ samples: a.latent });
  const s0 = a.sigmas[0];
  // EPS.noise_scaling at full denoise (σ_0 is the model's σ_max): noise·√(1 + σ²) + latent.
  let x = Float64Array.from(noise, (n, k) => n * Math.sqrt(1 + s0 * s0) + latentIn[k]);
  const latentSize = { width: W, height: H };
  const yPos = sdxlAdmRef('base', pos.pooled.data, {}, latentSize, 'positive', 1);
  const yNeg = sdxlAdmRef('base', neg.pooled.data, {}, latentSize, 'negative', 1);
  const sd = a.sigmaData;
  const denoised = (xs: Float64Array, s: number, c: Tensor, y: Tensor): Float64Array => {
    const root = Math.sqrt(s * s + sd * sd);
    const input: Tensor = { shape: a.latent.shape, data: Float32Array.from(xs, (v) => v / root) };
    const t = a.timestep ? a.timestep(s) : 0.25 * Math.log(s);
    const out = unetForwardRef(a.tiny.cfg.unet, a.tiny.unet, input, Float32Array.of(t), c, undefined, { y }).data;
    return xs.map((v, k) => (v * sd * sd) / (s * s + sd * sd) + (a.sign * out[k] * s * sd) / root);
  };
  for (let i = 0; i < a.sigmas.length - 1; i++) {
    const s = a.sigmas[i];
    const dc = denoised(x, s, pos.cond, yPos);
    const du = denoised(x, s, neg.cond, yNeg);
    const xs = x;
    x = xs.map((v, k) => {
      const d = du[k] + (dc[k] - du[k]) * a.cfg;
      return v + ((v - d) / s) * (a.sigmas[i + 1] - s);
    });
  }
  return x.map((v, k) => a.processOut(v, channel(k)));
}

/**
 * KSampler euler/karras on the loaded tiny SDXL beside `referenceLoop` on the same prompts, latent and
 * seed, over as many steps as `a.sigmas` has intervals.
 */
export async function ksampleBesideReference(
  a: LoopArgs,
  prompts: { positive: string; negative: string },
  seed: bigint,
): Promise<{ samples: Tensor; expected: Float64Array }> {
  const clip = a.parts.clip as SdxlClip;
  const pos = await clip.encodeText(prompts.positive);
  const neg = await clip.encodeText(prompts.negative);
  const out = await ksample({
    model: a.parts.model,
    seed,
    steps: a.sigmas.length - 1,
    cfg: a.cfg,
    samplerName: 'euler',
    scheduler: 'karras',
    positive: [pos],
    negative: [neg],
    latent: { samples: a.latent },
  });
  return { samples: out.samples, expected: await referenceLoop(a, pos, neg, seed) };
}
