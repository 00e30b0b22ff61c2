import type { Latent } from '../../engine/core/tensor.ts';
import { defineNode } from '../../engine/registry/types.ts';

export const MAX_RESOLUTION = 16384;

export const EmptyLatentImage = defineNode({
  name: 'EmptyLatentImage',
  displayName: 'Empty Latent Image',
  category: 'latent',
  description: 'Create a new batch of empty latent images to be denoised via sampling.',
  searchAliases: ['empty', 'empty latent', 'new latent', 'create latent', 'blank latent'],
  inputs: {
    required: {
      width: { type: 'INT', default: 512, min: 16, max: MAX_RESOLUTION, step: 8, tooltip: 'The width of the latent images in pixels.' },
      height: { type: 'INT', default: 512, min: 16, max: MAX_RESOLUTION, step: 8, tooltip: 'The height of the latent images in pixels.' },
      batch_size: { type: 'INT', default: 1, min: 1, max: 4096, tooltip: 'The number of latent images in the batch.' },
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', tooltip: 'The empty latent image batch.' }],
  run({ width, height, batch_size }) {
    // Integer division as ComfyUI: a width that is not a multiple of 8 loses its remainder.
    const h = Math.floor(height / 8);
    const w = Math.floor(width / 8);
    const n = batch_size * 4 * h * w;
    if (n > 2 ** 31 / 4) throw new Error(`latent of ${batch_size}×4×${h}×${w} is too large (${n} values)`);
    const latent: Latent = { samples: { shape: [batch_size, 4, h, w], data: new Float32Array(n) } };
    return [latent];
  },
});

export const nodes = [EmptyLatentImage];
