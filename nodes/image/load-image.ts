import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { decodeImageFile } from '../../engine/image/io.ts';
import type { ListingContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';

const IMAGE_EXT = /\.(png|jpe?g|webp|gif|bmp|tiff?|avif)$/i;

function inputImages(env: ListingContext): string[] {
  return env.paths.listInput((n) => IMAGE_EXT.test(n));
}

function fileHash(env: ListingContext, name: string): string {
  const p = env.paths.annotatedPath(name);
  return createHash('sha256').update(fs.readFileSync(p)).digest('hex');
}

function exists(env: ListingContext, name: string): true | string {
  try {
    return fs.statSync(env.paths.annotatedPath(name)).isFile() ? true : `Invalid image file: ${name}`;
  } catch (e) {
    return (e as Error).name === 'PathEscapeError' ? (e as Error).message : `Invalid image file: ${name}`;
  }
}

export const LoadImage = defineNode({
  name: 'LoadImage',
  displayName: 'Load Image',
  category: 'image',
  inputs: { required: { image: { type: 'COMBO', options: inputImages, imageUpload: true } } },
  outputs: [
    { type: 'IMAGE', name: 'IMAGE' },
    { type: 'MASK', name: 'MASK' },
  ],
  fingerprint: (inputs, env) => fileHash(env, String(inputs.image)),
  validateInputs: (inputs, _types, env) => exists(env, String(inputs.image)),
  async run({ image }, ctx) {
    const { image: pixels, alpha } = await decodeImageFile(ctx.paths.annotatedPath(image));
    const [b, h, w] = pixels.shape;
    if (!alpha) return [pixels, { shape: [1, 64, 64], data: new Float32Array(64 * 64) }];
    const mask = new Float32Array(b * h * w);
    for (let i = 0; i < mask.length; i++) mask[i] = 1 - alpha.data[i];
    return [pixels, { shape: [b, h, w], data: mask }];
  },
});

export const LoadImageMask = defineNode({
  name: 'LoadImageMask',
  displayName: 'Load Image (as Mask)',
  category: 'mask',
  inputs: {
    required: {
      image: { type: 'COMBO', options: inputImages, imageUpload: true },
      channel: { type: 'COMBO', options: ['alpha', 'red', 'green', 'blue'] },
    },
  },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  fingerprint: (inputs, env) => fileHash(env, String(inputs.image)),
  validateInputs: (inputs, _types, env) => exists(env, String(inputs.image)),
  async run({ image, channel }, ctx) {
    const { image: pixels, alpha } = await decodeImageFile(ctx.paths.annotatedPath(image));
    const [, h, w] = pixels.shape;
    const mask = new Float32Array(h * w);
    if (channel === 'alpha') {
      if (!alpha) return [{ shape: [1, 64, 64], data: new Float32Array(64 * 64) }];
      for (let i = 0; i < h * w; i++) mask[i] = 1 - alpha.data[i];
    } else {
      const c = channel === 'red' ? 0 : channel === 'green' ? 1 : 2;
      for (let i = 0; i < h * w; i++) mask[i] = pixels.data[i * 3 + c];
    }
    return [{ shape: [1, h, w], data: mask }];
  },
});

export const nodes = [LoadImage, LoadImageMask];
