import { CROP_METHODS, IMAGE_UPSCALE_METHODS, upscaleImage, type CropMethod, type ResizeMethod } from '../../engine/image/resize.ts';
import { pyRound } from '../../engine/image/python-compat.ts';
import { describeShape, type ImageTensor } from '../../engine/core/tensor.ts';
import { defineNode } from '../../engine/registry/types.ts';

/** ComfyUI's MAX_RESOLUTION. */
const R = 16384;

function expectImage(image: ImageTensor, what: string): void {
  if (image.shape.length !== 4) throw new Error(`${what} must be an IMAGE [B, H, W, C], got shape ${describeShape(image.shape)}`);
}

export const ImageScale = defineNode({
  name: 'ImageScale',
  displayName: 'Upscale Image',
  category: 'image/upscaling',
  searchAliases: ['resize', 'resize image', 'scale image', 'image resize', 'zoom', 'zoom in', 'change size'],
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      upscale_method: { type: 'COMBO', options: IMAGE_UPSCALE_METHODS },
      width: { type: 'INT', default: 512, min: 0, max: R, step: 1 },
      height: { type: 'INT', default: 512, min: 0, max: R, step: 1 },
      crop: { type: 'COMBO', options: CROP_METHODS },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, upscale_method, width, height, crop }) {
    expectImage(image, 'image');
    if (width === 0 && height === 0) return [image];
    const [, h, w] = image.shape;
    // One side 0 keeps the aspect ratio (Python's round, ties to even).
    const W = width === 0 ? Math.max(1, pyRound((w * height) / h)) : width;
    const H = height === 0 ? Math.max(1, pyRound((h * width) / w)) : height;
    return [upscaleImage(image, W, H, upscale_method as ResizeMethod, crop as CropMethod)];
  },
});

export const ImageScaleBy = defineNode({
  name: 'ImageScaleBy',
  displayName: 'Upscale Image By',
  category: 'image/upscaling',
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      upscale_method: { type: 'COMBO', options: IMAGE_UPSCALE_METHODS },
      scale_by: { type: 'FLOAT', default: 1.0, min: 0.01, max: 8.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, upscale_method, scale_by }) {
    expectImage(image, 'image');
    const [, h, w] = image.shape;
    const W = pyRound(w * scale_by);
    const H = pyRound(h * scale_by);
    if (W < 1 || H < 1) throw new Error(`scale_by ${scale_by} turns a ${w}×${h} image into ${W}×${H}: a side would be empty`);
    return [upscaleImage(image, W, H, upscale_method as ResizeMethod, 'disabled')];
  },
});

export const ImageInvert = defineNode({
  name: 'ImageInvert',
  displayName: 'Invert Image Colors',
  category: 'image/color',
  searchAliases: ['reverse colors'],
  inputs: { required: { image: { type: 'IMAGE' } } },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image }) {
    expectImage(image, 'image');
    const c = image.shape[3];
    const out = new Float32Array(image.data.length);
    for (let i = 0; i < out.length; i++) out[i] = 1 - image.data[i];
    // A fourth channel is alpha, which stores transparency, not colour: ComfyUI keeps it.
    if (c === 4) for (let i = 3; i < out.length; i += 4) out[i] = image.data[i];
    return [{ shape: [...image.shape], data: out }];
  },
});

/** Add one channel of 1.0 (an opaque alpha) at the end of every pixel. */
function padChannel(image: ImageTensor): ImageTensor {
  const [b, h, w, c] = image.shape;
  const px = b * h * w;
  const out = new Float32Array(px * (c + 1));
  for (let i = 0; i < px; i++) {
    out.set(image.data.subarray(i * c, i * c + c), i * (c + 1));
    out[i * (c + 1) + c] = 1;
  }
  return { shape: [b, h, w, c + 1], data: out };
}

export const ImageBatch = defineNode({
  name: 'ImageBatch',
  displayName: 'Batch Images (DEPRECATED)',
  category: 'image/batch',
  deprecated: true,
  searchAliases: ['combine images', 'merge images', 'stack images'],
  inputs: { required: { image1: { type: 'IMAGE' }, image2: { type: 'IMAGE' } } },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image1, image2 }) {
    expectImage(image1, 'image1');
    expectImage(image2, 'image2');
    let a = image1;
    let b = image2;
    // ComfyUI pads the one with fewer channels by a single channel of 1 (RGB + opaque alpha).
    if (a.shape[3] > b.shape[3]) b = padChannel(b);
    else if (a.shape[3] < b.shape[3]) a = padChannel(a);
    if (a.shape[3] !== b.shape[3]) {
      throw new Error(`cannot batch images of ${image1.shape[3]} and ${image2.shape[3]} channels`);
    }
    const [, h, w, c] = a.shape;
    if (b.shape[1] !== h || b.shape[2] !== w) b = upscaleImage(b, w, h, 'bilinear', 'center');
    const data = new Float32Array(a.data.length + b.data.length);
    data.set(a.data);
    data.set(b.data, a.data.length);
    return [{ shape: [a.shape[0] + b.shape[0], h, w, c], data }];
  },
});

export const EmptyImage = defineNode({
  name: 'EmptyImage',
  displayName: 'Empty Image',
  category: 'image',
  inputs: {
    required: {
      width: { type: 'INT', default: 512, min: 1, max: R, step: 1 },
      height: { type: 'INT', default: 512, min: 1, max: R, step: 1 },
      batch_size: { type: 'INT', default: 1, min: 1, max: 4096 },
      color: { type: 'INT', default: 0, min: 0, max: 0xffffff, step: 1, display: 'color' },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ width, height, batch_size, color }) {
    const px = batch_size * height * width;
    if (px * 3 > 2 ** 31 - 1) throw new Error(`EmptyImage of ${batch_size}×${width}×${height} is too large to allocate`);
    const rgb = [((color >> 16) & 0xff) / 0xff, ((color >> 8) & 0xff) / 0xff, (color & 0xff) / 0xff];
    const data = new Float32Array(px * 3);
    for (let i = 0; i < px; i++) {
      data[i * 3] = rgb[0];
      data[i * 3 + 1] = rgb[1];
      data[i * 3 + 2] = rgb[2];
    }
    return [{ shape: [batch_size, height, width, 3], data }];
  },
});

/**
 * ImagePadForOutpaint's mask inside the original area: 0, except within `feathering` pixels of a
 * padded side, where it is ((feathering − d) / feathering)² with d the distance to the nearest padded
 * side. ComfyUI only feathers when 2·feathering is smaller than both sides of the image.
 */
export function outpaintMask(
  h: number,
  w: number,
  left: number,
  top: number,
  right: number,
  bottom: number,
  feathering: number,
): Float32Array {
  const H = h + top + bottom;
  const W = w + left + right;
  const mask = new Float32Array(H * W).fill(1);
  const feather = feathering > 0 && feathering * 2 < h && feathering * 2 < w;
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      let v = 0;
      if (feather) {
        const dt = top !== 0 ? i : h;
        const db = bottom !== 0 ? h - i : h;
        const dl = left !== 0 ? j : w;
        const dr = right !== 0 ? w - j : w;
        const d = Math.min(dt, db, dl, dr);
        if (d < feathering) {
          const f = (feathering - d) / feathering;
          v = f * f;
        }
      }
      mask[(i + top) * W + j + left] = v;
    }
  }
  return mask;
}

export const ImagePadForOutpaint = defineNode({
  name: 'ImagePadForOutpaint',
  displayName: 'Pad Image for Outpainting',
  category: 'image/transform',
  searchAliases: ['extend canvas', 'expand image'],
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      left: { type: 'INT', default: 0, min: 0, max: R, step: 8 },
      top: { type: 'INT', default: 0, min: 0, max: R, step: 8 },
      right: { type: 'INT', default: 0, min: 0, max: R, step: 8 },
      bottom: { type: 'INT', default: 0, min: 0, max: R, step: 8 },
      feathering: { type: 'INT', default: 40, min: 0, max: R, step: 1, advanced: true },
    },
  },
  outputs: [
    { type: 'IMAGE', name: 'IMAGE' },
    { type: 'MASK', name: 'MASK' },
  ],
  run({ image, left, top, right, bottom, feathering }) {
    expectImage(image, 'image');
    const [b, h, w, c] = image.shape;
    const H = h + top + bottom;
    const W = w + left + right;
    if (b * H * W * c > 2 ** 31 - 1) throw new Error(`padded image of ${b}×${W}×${H}×${c} is too large to allocate`);
    const out = new Float32Array(b * H * W * c).fill(0.5);
    for (let n = 0; n < b; n++) {
      for (let y = 0; y < h; y++) {
        const from = (n * h + y) * w * c;
        out.set(image.data.subarray(from, from + w * c), ((n * H + y + top) * W + left) * c);
      }
    }
    return [
      { shape: [b, H, W, c], data: out },
      { shape: [1, H, W], data: outpaintMask(h, w, left, top, right, bottom, feathering) },
    ];
  },
});

export const nodes = [ImageScale, ImageScaleBy, ImageInvert, ImageBatch, EmptyImage, ImagePadForOutpaint];
