import type { Latent } from '../../core/tensor.ts';
import type { NoiseKind } from '../samplers/index.ts';
import type { NoiseSampler } from '../samplers/types.ts';
import { brownianNoiseSampler } from './brownian.ts';
import { defaultNoiseSampler } from './default-sampler.ts';
import { prepareNoise } from './prepare-noise.ts';

/**
 * ComfyUI's NOISE values (RandomNoise, DisableNoise): the starting noise for a latent, and the seed
 * the run's ancestral/SDE noise samplers are seeded with.
 */
export interface LatentNoise {
  readonly seed: bigint;
  /** Noise shaped like the latent's samples (raw, unscaled), batch_index aware. */
  generate(latent: Latent): Float32Array;
}

/** ComfyUI's RandomNoise: prepare_noise(latent, seed, batch_index). */
export function randomNoise(seed: bigint): LatentNoise {
  return { seed, generate: (latent) => prepareNoise(latent.samples.shape, seed, latent.batchIndex) };
}

/**
 * No starting noise (KSamplerAdvanced add_noise = disable). The seed still seeds the samplers'
 * step noise, as common_ksampler passes it on; ComfyUI's DisableNoise node uses 0.
 */
export function disableNoise(seed = 0n): LatentNoise {
  return { seed, generate: (latent) => new Float32Array(latent.samples.data.length) };
}

/**
 * The step noise ComfyUI's sampler functions make for themselves from the run's seed: none, the
 * default seeded generator, or a Brownian tree over the schedule's [σ_min > 0, σ_max].
 */
export function samplerNoise(kind: NoiseKind, seed: bigint, shape: readonly number[], sigmas: ArrayLike<number>): NoiseSampler | undefined {
  if (kind === 'default') return defaultNoiseSampler(seed, shape);
  if (kind !== 'brownian') return undefined;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < sigmas.length; i++) {
    const s = sigmas[i];
    if (s > 0) lo = Math.min(lo, s);
    hi = Math.max(hi, s);
  }
  return brownianNoiseSampler(seed, shape, lo, hi);
}
