import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { decodeImageFile, type DecodedImage } from '../../engine/image/io.ts';
import type { MaskTensor } from '../../engine/core/tensor.ts';
import type { ListingContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';

/** Extensions Python's mimetypes maps to image/* (ComfyUI lists input files by content type). */
const IMAGE_EXT = /\.(png|jpe?g|jpe|jfif|webp|gif|bmp|tiff?|avif|heic|heif|ico|svg|ppm|pgm|pbm|pnm|jxl)$/i;

/** The input folder's own image files, sorted (ComfyUI lists the top level only). */
export function inputImages(env: ListingContext): string[] {
  return env.paths.listInput((n) => !n.includes('/') && IMAGE_EXT.test(n));
}

function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function imageFingerprint(inputs: Readonly<Record<string, unknown>>, env: ListingContext): string {
  return sha256File(env.paths.annotatedPath(String(inputs.image)));
}

/** ComfyUI's VALIDATE_INPUTS: the (possibly annotated) name must be an existing file. */
function validateImage(
  inputs: Readonly<Record<string, unknown>>,
  _types: Readonly<Record<string, string>>,
  env: ListingContext,
): true | string {
  const name = String(inputs.image);
  try {
    return fs.statSync(env.paths.annotatedPath(name)).isFile() ? true : `Invalid image file: ${name}`;
  } catch (e) {
    return (e as Error).name === 'PathEscapeError' ? `Invalid image file: ${(e as Error).message}` : `Invalid image file: ${name}`;
  }
}

async function load(env: ListingContext, image: string): Promise<DecodedImage> {
  return decodeImageFile(env.paths.annotatedPath(image), { name: image });
}

/** MASK = 1 − alpha, or B×64×64 zeros when the file has no alpha (ComfyUI's placeholder). */
export function maskFromAlpha(decoded: DecodedImage): MaskTensor {
  const b = decoded.frames.shape[0];
  const alpha = decoded.alpha;
  if (!alpha) return { shape: [b, 64, 64], data: new Float32Array(b * 64 * 64) };
  const mask = new Float32Array(alpha.data.length);
  for (let i = 0; i < mask.length; i++) mask[i] = Math.fround(1 - alpha.data[i]);
  return { shape: [...alpha.shape], data: mask };
}

export const LoadImage = defineNode({
  name: 'LoadImage',
  displayName: 'Load Image',
  category: 'image',
  searchAliases: ['load image', 'open image', 'import image', 'image input', 'upload image', 'read image', 'image loader'],
  inputs: { required: { image: { type: 'COMBO', options: inputImages, imageUpload: true } } },
  outputs: [
    { type: 'IMAGE', name: 'IMAGE' },
    { type: 'MASK', name: 'MASK' },
  ],
  fingerprint: imageFingerprint,
  validateInputs: validateImage,
  async run({ image }, ctx) {
    const decoded = await load(ctx, image);
    return [decoded.frames, maskFromAlpha(decoded)];
  },
});

const CHANNELS = ['alpha', 'red', 'green', 'blue'] as const;

export const LoadImageMask = defineNode({
  name: 'LoadImageMask',
  displayName: 'Load Image (as Mask)',
  category: 'image',
  searchAliases: ['import mask', 'alpha mask', 'channel mask'],
  inputs: {
    required: {
      image: { type: 'COMBO', options: inputImages, imageUpload: true },
      channel: { type: 'COMBO', options: CHANNELS },
    },
  },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  fingerprint: imageFingerprint,
  validateInputs: validateImage,
  async run({ image, channel }, ctx) {
    const decoded = await load(ctx, image);
    if (channel === 'alpha') return [maskFromAlpha(decoded)];
    const k = CHANNELS.indexOf(channel as (typeof CHANNELS)[number]) - 1;
    if (k < 0) throw new Error(`LoadImageMask: unknown channel '${channel}' (expected alpha, red, green or blue)`);
    const [b, h, w] = decoded.frames.shape;
    const mask = new Float32Array(b * h * w);
    for (let i = 0; i < mask.length; i++) mask[i] = decoded.frames.data[i * 3 + k];
    return [{ shape: [b, h, w], data: mask }];
  },
});

export const nodes = [LoadImage, LoadImageMask];
