import type { Latent } from '../core/tensor.ts';
import type { ModelHandle } from '../models/handles.ts';
import type { PreviewImage } from '../core/preview.ts';
import type { Conditioning } from './conditioning.ts';
import { cfgGuider } from './guider.ts';
import { disableNoise, randomNoise } from './noise/index.ts';
import { checkLatent, sampleLatent } from './run.ts';
import { samplerObject } from './samplers/index.ts';
import { ksamplerStepSigmas } from './sigmas.ts';

/**
 * ComfyUI's `common_ksampler` → `comfy.sample.sample` → `KSampler.sample` → `CFGGuider` →
 * `KSAMPLER.sample` path, step for step, so a workflow, checkpoint and seed give ComfyUI's latent,
 * composed of the pieces the custom-sampling nodes use: sigmas from the scheduler trimmed by denoise
 * and start/end steps (sigmas.ts), noise from the seed, batch_index aware (noise/latent-noise.ts),
 * the CFG guider (guider.ts), and the run with the inpaint wrapper and the ancestral/SDE noise
 * samplers seeded as ComfyUI seeds them (run.ts).
 */

export interface KSamplerArgs {
  model: ModelHandle;
  seed: bigint;
  steps: number;
  cfg: number;
  samplerName: string;
  scheduler: string;
  positive: Conditioning;
  negative: Conditioning;
  latent: Latent;
  denoise?: number;
  disableNoise?: boolean;
  startStep?: number;
  lastStep?: number;
  forceFullDenoise?: boolean;
  signal?: AbortSignal;
  /** Called after every step with a preview every `previewEvery` steps (0 = never). */
  onStep?: (step: number, total: number, preview?: PreviewImage) => void;
  previewEvery?: number;
}

/** A seed widget value (number, or digit string / bigint beyond 2^53) → ComfyUI's 64-bit seed. */
export function toSeed(v: unknown, what = 'seed'): bigint {
  let s: bigint;
  if (typeof v === 'bigint') s = v;
  else if (typeof v === 'number' && Number.isFinite(v)) s = BigInt(Math.trunc(v));
  else if (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v)) s = BigInt(v.trim());
  else throw new Error(`${what} must be an integer, got ${String(v)}`);
  if (s < 0n || s >= 2n ** 64n) throw new Error(`${what} ${s} is outside 0 … 2^64 − 1`);
  return s;
}

export async function ksample(a: KSamplerArgs): Promise<Latent> {
  checkLatent(a.latent, a.model);
  const guider = cfgGuider({ model: a.model, positive: a.positive, negative: a.negative, cfg: a.cfg });
  const sigmas = ksamplerStepSigmas(guider.modelSampling, { ...a, denoise: a.denoise ?? 1 });
  if (sigmas.length === 0) return { ...a.latent, samples: a.latent.samples };
  const noise = (a.disableNoise ? disableNoise(a.seed) : randomNoise(a.seed)).generate(a.latent);
  return sampleLatent({
    guider,
    sampler: samplerObject(a.samplerName),
    sigmas,
    noise,
    latent: a.latent,
    seed: a.seed,
    signal: a.signal,
    onStep: a.onStep,
    previewEvery: a.previewEvery,
  });
}
