import { describeShape, type Latent } from '../../engine/core/tensor.ts';
import { compositeNCHW } from '../../engine/image/composite.ts';
import { cropSpatial, flipSpatial, rotate90 } from '../../engine/image/orient.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { MAX_RESOLUTION } from './empty-latent.ts';

/**
 * ComfyUI's LatentCrop, LatentRotate, LatentFlip (nodes.py) and LatentCompositeMasked
 * (comfy_extras/nodes_mask.py). As in ComfyUI, crop/rotate/flip leave a noise mask as it was.
 */

function samplesOf(l: Latent, what: string): Latent['samples'] {
  if (l.samples.shape.length !== 4) throw new Error(`${what} must hold [B, C, H, W] samples, got shape ${describeShape(l.samples.shape)}`);
  return l.samples;
}

export const LatentCrop = defineNode({
  name: 'LatentCrop',
  displayName: 'Crop Latent',
  category: 'latent/transform',
  inputs: {
    required: {
      samples: { type: 'LATENT' },
      width: { type: 'INT', default: 512, min: 64, max: MAX_RESOLUTION, step: 8 },
      height: { type: 'INT', default: 512, min: 64, max: MAX_RESOLUTION, step: 8 },
      x: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 8 },
      y: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 8 },
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples, width, height, x, y }) {
    const s = samplesOf(samples, 'samples');
    const [, , h, w] = s.shape;
    // Pixels to latent cells; the corner moves back so at least 8 cells (64 px) remain, then Python slicing.
    const lx = Math.min(Math.floor(x / 8), w - 8);
    const ly = Math.min(Math.floor(y / 8), h - 8);
    const out: Latent = { ...samples, samples: cropSpatial(s, ly, ly + Math.floor(height / 8), lx, lx + Math.floor(width / 8), 'NCHW') };
    return [out];
  },
});

export const LatentRotate = defineNode({
  name: 'LatentRotate',
  displayName: 'Rotate Latent',
  category: 'latent/transform',
  inputs: {
    required: { samples: { type: 'LATENT' }, rotation: { type: 'COMBO', options: ['none', '90 degrees', '180 degrees', '270 degrees'] } },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples, rotation }) {
    const k = rotation.startsWith('90') ? 1 : rotation.startsWith('180') ? 2 : rotation.startsWith('270') ? 3 : 0;
    const out: Latent = { ...samples, samples: rotate90(samplesOf(samples, 'samples'), k, 'NCHW') };
    return [out];
  },
});

export const LatentFlip = defineNode({
  name: 'LatentFlip',
  displayName: 'Flip Latent',
  category: 'latent/transform',
  inputs: {
    required: { samples: { type: 'LATENT' }, flip_method: { type: 'COMBO', options: ['x-axis: vertically', 'y-axis: horizontally'] } },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples, flip_method }) {
    const s = samplesOf(samples, 'samples');
    if (!flip_method.startsWith('x') && !flip_method.startsWith('y')) return [samples];
    const out: Latent = { ...samples, samples: flipSpatial(s, flip_method.startsWith('x'), 'NCHW') };
    return [out];
  },
});

export const LatentCompositeMasked = defineNode({
  name: 'LatentCompositeMasked',
  category: 'latent',
  inputs: {
    required: {
      destination: { type: 'LATENT' },
      source: { type: 'LATENT' },
      x: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 8 },
      y: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 8 },
      resize_source: { type: 'BOOLEAN', default: false },
    },
    optional: { mask: { type: 'MASK' } },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ destination, source, x, y, resize_source, mask }) {
    const d = samplesOf(destination, 'destination');
    const s = samplesOf(source, 'source');
    // Positions are in pixels, 8 per latent cell; the mask is resized (bilinear) to the source's latent size.
    const out: Latent = { ...destination, samples: compositeNCHW(d, s, x, y, { mask, multiplier: 8, resizeSource: resize_source }) };
    return [out];
  },
});

export const nodes = [LatentCrop, LatentRotate, LatentFlip];
export const maskNodes = [LatentCompositeMasked];
