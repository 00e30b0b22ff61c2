import { addModelWrapper, withModelOptions } from '../../engine/models/model-wrappers.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { toSeed } from '../../engine/sampling/ksampler.ts';
import type { TiledDiffusionMethod } from '../../engine/sampling/tiled-diffusion/grid.ts';
import { SPOT_SHIFT_METHODS } from '../../engine/sampling/tiled-diffusion/spot-shifts.ts';
import { SPOT_SEED, SPOT_SHIFT_METHOD, tiledDiffusionWrapper } from '../../engine/sampling/tiled-diffusion/wrapper.ts';

/**
 * ComfyUI-TiledDiffusion's TiledDiffusion node (tiled_diffusion.py): the MODEL with its model call
 * wrapped so every sampler, KSampler and the custom-sampling nodes sample the latent in overlapping
 * tiles. Sizes are image pixels, divided by 8 into latent pixels as the package does.
 */

const MAX_RESOLUTION = 8192;
const SEED_MAX = 0xffffffffffffffff;
const METHODS: readonly TiledDiffusionMethod[] = ['MultiDiffusion', 'Mixture of Diffusers', 'SpotDiffusion'];

export const TiledDiffusion = defineNode({
  name: 'TiledDiffusion',
  displayName: 'Tiled Diffusion',
  category: '_for_testing',
  inputs: {
    required: {
      model: { type: 'MODEL' },
      method: { type: 'COMBO', options: [...METHODS], default: 'Mixture of Diffusers' },
      tile_width: { type: 'INT', default: 96 * 8, min: 16, max: MAX_RESOLUTION, step: 16 },
      tile_height: { type: 'INT', default: 96 * 8, min: 16, max: MAX_RESOLUTION, step: 16 },
      tile_overlap: { type: 'INT', default: 8 * 8, min: 0, max: 256 * 8, step: 4 * 8 },
      tile_batch_size: { type: 'INT', default: 4, min: 1, max: MAX_RESOLUTION, step: 1 },
    },
  },
  outputs: [{ type: 'MODEL', name: 'MODEL' }] as const,
  run(i) {
    const wrapper = tiledDiffusionWrapper({
      method: i.method as TiledDiffusionMethod,
      tileWidth: i.tile_width,
      tileHeight: i.tile_height,
      tileOverlap: i.tile_overlap,
      tileBatchSize: i.tile_batch_size,
    });
    return [addModelWrapper(i.model, wrapper)];
  },
});

/**
 * The package's SpotDiffusionParams (display name "SpotDiffusion Parameters"): the seed and order of
 * SpotDiffusion's shifts, set as model options (the package's model_options) that the wrapper reads
 * at call time, so the node works before or after TiledDiffusion. Without it the shifts use the
 * sampler's noise seed in random order.
 */
export const SpotDiffusionParams = defineNode({
  name: 'SpotDiffusionParams_TiledDiffusion',
  displayName: 'SpotDiffusion Parameters',
  category: '_for_testing',
  inputs: {
    required: {
      model: { type: 'MODEL' },
      shift_method: {
        type: 'COMBO',
        options: [...SPOT_SHIFT_METHODS],
        default: 'random',
        tooltip: 'Samples a shift size over a uniform distribution to shift tiles.',
      },
      seed: { type: 'INT', default: 0, min: 0, max: SEED_MAX },
    },
  },
  outputs: [{ type: 'MODEL', name: 'MODEL' }] as const,
  run(i) {
    const wrapperOptions = { ...i.model.wrapperOptions, [SPOT_SEED]: toSeed(i.seed), [SPOT_SHIFT_METHOD]: i.shift_method };
    return [withModelOptions(i.model, { wrapperOptions })];
  },
});

export const nodes = [TiledDiffusion, SpotDiffusionParams];
