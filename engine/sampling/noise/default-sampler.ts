/**
 * ComfyUI's `default_noise_sampler(x, seed)` for ancestral samplers, as it behaves on CPU.
 *
 * ComfyUI adds 1 to the seed when x lives on the CPU (so the step noise is not the initial noise
 * again) and then returns successive `torch.randn(x.shape)` draws from one generator, ignoring the
 * sigmas. On a CUDA device ComfyUI uses the seed as is with torch's Philox generator, which this CPU
 * engine cannot reproduce anyway; we therefore follow the CPU behaviour.
 */

import type { NoiseSampler } from '../samplers/types.ts';
import { TorchGenerator } from './torch-randn.ts';

export function defaultNoiseSampler(seed: bigint, shape: readonly number[]): NoiseSampler {
  // torch would reject seed + 1 = 2^64; wrapping gives the same mt19937 state (only 32 bits are used).
  const gen = new TorchGenerator(BigInt.asUintN(64, seed + 1n));
  const dims = [...shape];
  return () => gen.randn(dims);
}
