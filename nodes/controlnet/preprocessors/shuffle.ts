import { randomBytes } from 'node:crypto';
import { contentShuffleDetector } from '../../../engine/image/preprocess/detectors.ts';
import { Pcg64, pcgSeedWords } from '../../../engine/image/preprocess/pcg64.ts';
import { defineNode } from '../../../engine/registry/types.ts';
import { SeedSequence } from '../../../engine/sampling/noise/seed-sequence.ts';
import { annotatorCall, CATEGORY, detectResolution, resolutionInput } from './annotator-call.ts';

/** numpy's `default_rng(seed)`: PCG64 seeded through SeedSequence. */
export function defaultRng(seed: bigint): Pcg64 {
  return new Pcg64(pcgSeedWords(new SeedSequence(seed).generateState(8)));
}

/**
 * comfyui_controlnet_aux's ShufflePreprocessor. The package seeds numpy's `default_rng(seed)` for a
 * non-zero seed, and draws from numpy's unseeded global generator for seed 0, so 0 gives a different
 * shuffle each run there: here seed 0 takes fresh entropy too. One generator serves the whole batch.
 */
export const ShufflePreprocessor = defineNode({
  name: 'ShufflePreprocessor',
  displayName: 'Content Shuffle',
  category: CATEGORY.t2i,
  inputs: {
    required: { image: { type: 'IMAGE' } },
    optional: { resolution: resolutionInput, seed: { type: 'INT', default: 0, min: 0, max: Number.MAX_SAFE_INTEGER, step: 1 } },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  async run({ image, resolution, seed }, ctx) {
    const res = detectResolution(resolution);
    const s = seed ? BigInt(seed) : randomBytes(16).reduce((a, b) => (a << 8n) | BigInt(b), 0n);
    const rng = defaultRng(s);
    return [await annotatorCall('ShufflePreprocessor', image, ctx, (m) => contentShuffleDetector(m, res, (n) => rng.uniform(0, 1, n)))];
  },
});

export const nodes = [ShufflePreprocessor] as const;
