import { describeShape, type ImageTensor } from '../../engine/core/tensor.ts';
import { comfyGaussianKernel, comfySharpenKernel, convolveReflect } from '../../engine/image/filters.ts';
import { pyRound } from '../../engine/image/python-compat.ts';
import { IMAGE_UPSCALE_METHODS, upscaleImage, type ResizeMethod } from '../../engine/image/resize.ts';
import { defineNode } from '../../engine/registry/types.ts';

/** ComfyUI's comfy_extras/nodes_post_processing.py: blend, blur, sharpen, scale to a pixel count. */

function expectImage(image: ImageTensor, what: string): void {
  if (image.shape.length !== 4) throw new Error(`${what} must be an IMAGE [B, H, W, C], got shape ${describeShape(image.shape)}`);
}

export const BLEND_MODES = ['normal', 'multiply', 'screen', 'overlay', 'soft_light', 'difference'] as const;
export type BlendMode = (typeof BLEND_MODES)[number];

/** One blend mode on a pair of values (a from image1, b from image2), as ComfyUI's Blend.blend_mode. */
export function blendValue(mode: BlendMode, a: number, b: number): number {
  switch (mode) {
    case 'normal':
      return b;
    case 'multiply':
      return a * b;
    case 'screen':
      return 1 - (1 - a) * (1 - b);
    case 'overlay':
      return a <= 0.5 ? 2 * a * b : 1 - 2 * (1 - a) * (1 - b);
    case 'soft_light': {
      // The W3C soft-light curve: g(a) = ((16a − 12)a + 4)a below 0.25, √a above.
      const g = a <= 0.25 ? ((16 * a - 12) * a + 4) * a : Math.sqrt(a);
      return b <= 0.5 ? a - (1 - 2 * b) * a * (1 - a) : a + (2 * b - 1) * (g - a);
    }
    case 'difference':
      // A signed difference, not |a − b|: ComfyUI's formula (the clamp afterwards drops negatives).
      return a - b;
  }
}

/** image1·(1 − f) + mode(image1, image2)·f, clamped to 0..1; image2 resized (bicubic, centre crop) to image1 first. */
export function blendImages(image1: ImageTensor, image2: ImageTensor, factor: number, mode: BlendMode): ImageTensor {
  expectImage(image1, 'image1');
  expectImage(image2, 'image2');
  if (!BLEND_MODES.includes(mode)) throw new Error(`unknown blend_mode '${mode}' (expected one of ${BLEND_MODES.join(', ')})`);
  const [b1, h, w, c] = image1.shape;
  let i2 = image2;
  if (i2.shape.some((d, k) => d !== image1.shape[k])) i2 = upscaleImage(i2, w, h, 'bicubic', 'center');
  const b2 = i2.shape[0];
  if (i2.shape[3] !== c) throw new Error(`image1 has ${c} channels and image2 ${i2.shape[3]}; ImageBlend needs the same number`);
  // torch broadcasting over the batch: a batch of 1 pairs with every image of the other.
  if (b1 !== b2 && b1 !== 1 && b2 !== 1)
    throw new Error(`image1 has a batch of ${b1} and image2 of ${b2}; they must be equal or one of them 1`);
  const B = Math.max(b1, b2);
  const per = h * w * c;
  const out = new Float32Array(B * per);
  for (let n = 0; n < B; n++) {
    const o1 = (b1 === 1 ? 0 : n) * per;
    const o2 = (b2 === 1 ? 0 : n) * per;
    for (let i = 0; i < per; i++) {
      const a = image1.data[o1 + i];
      const v = a * (1 - factor) + blendValue(mode, a, i2.data[o2 + i]) * factor;
      out[n * per + i] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
  return { shape: [B, h, w, c], data: out };
}

export const ImageBlend = defineNode({
  name: 'ImageBlend',
  displayName: 'Image Blend',
  category: 'image/postprocessing',
  inputs: {
    required: {
      image1: { type: 'IMAGE' },
      image2: { type: 'IMAGE' },
      blend_factor: { type: 'FLOAT', default: 0.5, min: 0.0, max: 1.0, step: 0.01 },
      blend_mode: { type: 'COMBO', options: BLEND_MODES },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image1, image2, blend_factor, blend_mode }) {
    return [blendImages(image1, image2, blend_factor, blend_mode as BlendMode)];
  },
});

export const ImageBlur = defineNode({
  name: 'ImageBlur',
  displayName: 'Image Blur',
  category: 'image/postprocessing',
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      blur_radius: { type: 'INT', default: 1, min: 1, max: 31, step: 1 },
      sigma: { type: 'FLOAT', default: 1.0, min: 0.1, max: 10.0, step: 0.1 },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, blur_radius, sigma }) {
    expectImage(image, 'image');
    if (blur_radius === 0) return [image];
    // Not clamped: a blur of 0..1 values stays within 0..1 anyway.
    return [convolveReflect(image, comfyGaussianKernel(2 * blur_radius + 1, sigma), blur_radius, true)];
  },
});

export const ImageSharpen = defineNode({
  name: 'ImageSharpen',
  displayName: 'Image Sharpen',
  category: 'image/postprocessing',
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      sharpen_radius: { type: 'INT', default: 1, min: 1, max: 31, step: 1 },
      sigma: { type: 'FLOAT', default: 1.0, min: 0.1, max: 10.0, step: 0.01 },
      alpha: { type: 'FLOAT', default: 1.0, min: 0.0, max: 5.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, sharpen_radius, sigma, alpha }) {
    expectImage(image, 'image');
    if (sharpen_radius === 0) return [image];
    const out = convolveReflect(image, comfySharpenKernel(2 * sharpen_radius + 1, sigma, alpha), sharpen_radius, true);
    const d = out.data as Float32Array;
    for (let i = 0; i < d.length; i++) d[i] = d[i] < 0 ? 0 : d[i] > 1 ? 1 : d[i];
    return [out];
  },
});

/** ImageScaleToTotalPixels' target size: √(megapixels·2²⁰ / (w·h)) times each side, rounded to `steps`. */
export function totalPixelsSize(w: number, h: number, megapixels: number, steps: number): [number, number] {
  const scale = Math.sqrt((megapixels * 1024 * 1024) / (w * h));
  return [pyRound((w * scale) / steps) * steps, pyRound((h * scale) / steps) * steps];
}

export const ImageScaleToTotalPixels = defineNode({
  name: 'ImageScaleToTotalPixels',
  displayName: 'Scale Image to Total Pixels',
  category: 'image/upscaling',
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      upscale_method: { type: 'COMBO', options: IMAGE_UPSCALE_METHODS },
      megapixels: { type: 'FLOAT', default: 1.0, min: 0.01, max: 16.0, step: 0.01 },
      resolution_steps: { type: 'INT', default: 1, min: 1, max: 256, advanced: true },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, upscale_method, megapixels, resolution_steps }) {
    expectImage(image, 'image');
    const [W, H] = totalPixelsSize(image.shape[2], image.shape[1], megapixels, resolution_steps ?? 1);
    if (W < 1 || H < 1)
      throw new Error(`ImageScaleToTotalPixels: ${megapixels} MP in steps of ${resolution_steps} gives ${W}×${H}: a side would be empty`);
    return [upscaleImage(image, W, H, upscale_method as ResizeMethod, 'disabled')];
  },
});

export const nodes = [ImageBlend, ImageBlur, ImageSharpen, ImageScaleToTotalPixels];
