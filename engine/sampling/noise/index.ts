export { MT19937 } from './mt19937.ts';
export { TorchGenerator, torchRandn } from './torch-randn.ts';
export { prepareNoise } from './prepare-noise.ts';
export { defaultNoiseSampler } from './default-sampler.ts';
export { BrownianTree, brownianNoiseSampler, pyRound6, type BrownianOptions } from './brownian.ts';
export { SeedSequence } from './seed-sequence.ts';
export { disableNoise, randomNoise, samplerNoise, type LatentNoise } from './latent-noise.ts';
