import { addModelWrapper } from '../../engine/models/model-wrappers.ts';
import { defineNode } from '../../engine/registry/types.ts';
import type { TiledDiffusionMethod } from '../../engine/sampling/tiled-diffusion/grid.ts';
import { tiledDiffusionWrapper } from '../../engine/sampling/tiled-diffusion/wrapper.ts';

/**
 * ComfyUI-TiledDiffusion's TiledDiffusion node (tiled_diffusion.py): the MODEL with its model call
 * wrapped so every sampler, KSampler and the custom-sampling nodes sample the latent in overlapping
 * tiles. Sizes are image pixels, divided by 8 into latent pixels as the package does.
 */

const MAX_RESOLUTION = 8192;
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

export const nodes = [TiledDiffusion];
