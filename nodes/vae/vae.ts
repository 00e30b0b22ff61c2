import type { Latent } from '../../engine/core/tensor.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { decodeTiled, encodeTiled } from '../../engine/models/ort-vae.ts';

/**
 * ComfyUI's VAE nodes: decode/encode between LATENT and IMAGE, their tiled variants (bounded
 * memory for big images) and the standalone VAE loader. Inputs and order are ComfyUI's exactly.
 */

const TEMPORAL = {
  temporal_size: {
    type: 'INT',
    default: 64,
    min: 8,
    max: 4096,
    step: 4,
    tooltip: 'Only used for video VAEs: Amount of frames to decode at a time.',
  },
  temporal_overlap: {
    type: 'INT',
    default: 8,
    min: 4,
    max: 4096,
    step: 4,
    tooltip: 'Only used for video VAEs: Amount of frames to overlap.',
  },
} as const;

export const VAEDecode = defineNode({
  name: 'VAEDecode',
  displayName: 'VAE Decode',
  category: 'latent',
  description: 'Decodes latent images back into pixel space images.',
  searchAliases: ['decode', 'decode latent', 'latent to image', 'render latent'],
  inputs: {
    required: {
      samples: { type: 'LATENT', tooltip: 'The latent to be decoded.' },
      vae: { type: 'VAE', tooltip: 'The VAE model used for decoding the latent.' },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', tooltip: 'The decoded image.' }],
  async run({ samples, vae }, ctx) {
    return [await vae.decode(samples.samples, ctx.signal)];
  },
});

export const VAEEncode = defineNode({
  name: 'VAEEncode',
  displayName: 'VAE Encode',
  category: 'latent',
  searchAliases: ['encode', 'encode image', 'image to latent'],
  inputs: { required: { pixels: { type: 'IMAGE' }, vae: { type: 'VAE' } } },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  async run({ pixels, vae }, ctx) {
    // The handle centre-crops to its grid and uses the first three channels, as ComfyUI does.
    const latent: Latent = { samples: await vae.encode(pixels, ctx.signal) };
    return [latent];
  },
});

export const VAEDecodeTiled = defineNode({
  name: 'VAEDecodeTiled',
  displayName: 'VAE Decode (Tiled)',
  category: 'experimental',
  experimental: true,
  inputs: {
    required: {
      samples: { type: 'LATENT' },
      vae: { type: 'VAE' },
      tile_size: { type: 'INT', default: 512, min: 64, max: 4096, step: 32 },
      overlap: { type: 'INT', default: 64, min: 0, max: 4096, step: 32 },
      ...TEMPORAL,
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  async run({ samples, vae, tile_size, overlap }, ctx) {
    const image = await decodeTiled(vae, samples.samples, {
      tileSize: tile_size,
      overlap,
      signal: ctx.signal,
      onProgress: (done, total) => ctx.progress(done, total),
    });
    return [image];
  },
});

export const VAEEncodeTiled = defineNode({
  name: 'VAEEncodeTiled',
  displayName: 'VAE Encode (Tiled)',
  category: 'experimental',
  experimental: true,
  inputs: {
    required: {
      pixels: { type: 'IMAGE' },
      vae: { type: 'VAE' },
      tile_size: { type: 'INT', default: 512, min: 64, max: 4096, step: 64 },
      overlap: { type: 'INT', default: 64, min: 0, max: 4096, step: 32 },
      ...TEMPORAL,
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  async run({ pixels, vae, tile_size, overlap }, ctx) {
    const samples = await encodeTiled(vae, pixels, {
      tileSize: tile_size,
      overlap,
      signal: ctx.signal,
      onProgress: (done, total) => ctx.progress(done, total),
    });
    const latent: Latent = { samples };
    return [latent];
  },
});

export const nodes = [VAEDecode, VAEEncode, VAEDecodeTiled, VAEEncodeTiled];
