/**
 * ComfyUI's `comfy.sample.prepare_noise(latent_image, seed, noise_inds)` on CPU float32.
 *
 * Without a batch index the whole [B, C, H, W] latent is one randn draw, so batch item k's noise
 * depends on the batch size. With a batch index (latents split out of a larger batch) ComfyUI
 * instead draws one [1, C, H, W] noise per index 0..max(index) from a single generator, keeps the
 * ones listed and hands each item the noise of its index: item noise then depends only on its
 * index, not on which other items are present. Note the two modes give different noise even for
 * index [0, 1, ..., B-1], because one big draw and B small draws consume the generator differently
 * (the vectorised kernel redraws the last 16 uniforms of each draw whose size is not a multiple of 16).
 */

import { TorchGenerator } from './torch-randn.ts';

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`prepareNoise: invalid shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

/**
 * Noise for a latent of `shape` ([B, ...]). With `batchIndex`, the result holds one item per entry
 * of `batchIndex` (ComfyUI concatenates per index, so its length follows the index list, which for
 * well-formed latents equals B).
 */
export function prepareNoise(shape: readonly number[], seed: bigint, batchIndex?: readonly number[]): Float32Array {
  const gen = new TorchGenerator(seed);
  if (batchIndex === undefined || batchIndex === null) return gen.randn(shape);
  if (shape.length === 0) throw new Error('prepareNoise: a batch index needs a batched shape');
  for (const i of batchIndex) {
    if (!Number.isInteger(i) || i < 0) throw new Error(`prepareNoise: invalid batch index ${i}`);
  }
  if (batchIndex.length === 0) return new Float32Array(0);
  const itemShape = [1, ...shape.slice(1)];
  const itemSize = numelOf(itemShape);
  const wanted = new Set(batchIndex);
  const max = Math.max(...batchIndex);
  const kept = new Map<number, Float32Array>();
  for (let i = 0; i <= max; i++) {
    // Every index up to the max must be drawn, listed or not, so that the generator advances the same.
    const noise = gen.randn(itemShape);
    if (wanted.has(i)) kept.set(i, noise);
  }
  const out = new Float32Array(batchIndex.length * itemSize);
  batchIndex.forEach((idx, k) => out.set(kept.get(idx) as Float32Array, k * itemSize));
  return out;
}
