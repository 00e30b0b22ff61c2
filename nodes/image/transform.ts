import { UPSCALE_METHODS, upscaleImage } from '../../engine/image/resize.ts';
import type { ImageTensor, MaskTensor } from '../../engine/image/tensor.ts';
import { defineNode } from '../../engine/registry/types.ts';

const R = 16384;

export const ImageScale = defineNode({
  name: 'ImageScale',
  displayName: 'Upscale Image',
  category: 'image/upscaling',
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      upscale_method: { type: 'COMBO', options: UPSCALE_METHODS },
      width: { type: 'INT', default: 512, min: 0, max: R, step: 1 },
      height: { type: 'INT', default: 512, min: 0, max: R, step: 1 },
      crop: { type: 'COMBO', options: ['disabled', 'center'] },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, upscale_method, width, height, crop }) {
    if (width === 0 && height === 0) return [image];
    const [, h, w] = image.shape;
    const W = width === 0 ? Math.max(1, Math.round((w * height) / h)) : width;
    const H = height === 0 ? Math.max(1, Math.round((h * width) / w)) : height;
    return [upscaleImage(image, W, H, upscale_method as (typeof UPSCALE_METHODS)[number], crop as 'disabled' | 'center')];
  },
});

export const ImageScaleBy = defineNode({
  name: 'ImageScaleBy',
  displayName: 'Upscale Image By',
  category: 'image/upscaling',
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      upscale_method: { type: 'COMBO', options: UPSCALE_METHODS },
      scale_by: { type: 'FLOAT', default: 1.0, min: 0.01, max: 8.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, upscale_method, scale_by }) {
    const [, h, w] = image.shape;
    const W = Math.max(1, Math.round(w * scale_by));
    const H = Math.max(1, Math.round(h * scale_by));
    return [upscaleImage(image, W, H, upscale_method as (typeof UPSCALE_METHODS)[number], 'disabled')];
  },
});

export const ImageInvert = defineNode({
  name: 'ImageInvert',
  displayName: 'Invert Image',
  category: 'image',
  inputs: { required: { image: { type: 'IMAGE' } } },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image }) {
    const out = new Float32Array(image.data.length);
    for (let i = 0; i < out.length; i++) out[i] = 1 - image.data[i];
    return [{ shape: image.shape, data: out }];
  },
});

export const ImageBatch = defineNode({
  name: 'ImageBatch',
  displayName: 'Batch Images',
  category: 'image',
  inputs: { required: { image1: { type: 'IMAGE' }, image2: { type: 'IMAGE' } } },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image1, image2 }) {
    const [, h, w, c] = image1.shape;
    let b = image2;
    if (image2.shape[1] !== h || image2.shape[2] !== w) b = upscaleImage(image2, w, h, 'bilinear', 'center');
    if (b.shape[3] !== c) throw new Error(`cannot batch images with ${c} and ${b.shape[3]} channels`);
    const data = new Float32Array(image1.data.length + b.data.length);
    data.set(image1.data);
    data.set(b.data, image1.data.length);
    return [{ shape: [image1.shape[0] + b.shape[0], h, w, c], data }];
  },
});

export const EmptyImage = defineNode({
  name: 'EmptyImage',
  displayName: 'EmptyImage',
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
    const rgb = [((color >> 16) & 0xff) / 255, ((color >> 8) & 0xff) / 255, (color & 0xff) / 255];
    const data = new Float32Array(batch_size * height * width * 3);
    for (let i = 0; i < data.length; i++) data[i] = rgb[i % 3];
    return [{ shape: [batch_size, height, width, 3], data }];
  },
});

export const ImagePadForOutpaint = defineNode({
  name: 'ImagePadForOutpaint',
  displayName: 'Pad Image for Outpainting',
  category: 'image',
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      left: { type: 'INT', default: 0, min: 0, max: R, step: 8 },
      top: { type: 'INT', default: 0, min: 0, max: R, step: 8 },
      right: { type: 'INT', default: 0, min: 0, max: R, step: 8 },
      bottom: { type: 'INT', default: 0, min: 0, max: R, step: 8 },
      feathering: { type: 'INT', default: 40, min: 0, max: R, step: 1 },
    },
  },
  outputs: [
    { type: 'IMAGE', name: 'IMAGE' },
    { type: 'MASK', name: 'MASK' },
  ],
  run({ image, left, top, right, bottom, feathering }) {
    const [b, h, w, c] = image.shape;
    const H = h + top + bottom;
    const W = w + left + right;
    const out = new Float32Array(b * H * W * c).fill(0.5);
    for (let n = 0; n < b; n++)
      for (let y = 0; y < h; y++)
        out.set(image.data.subarray(((n * h + y) * w) * c, ((n * h + y) * w + w) * c), ((n * H + y + top) * W + left) * c);
    const mask = new Float32Array(H * W).fill(1);
    // ComfyUI: inside the original area the mask is ((f - d) / f)^2 near padded edges, else 0.
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const dt = top !== 0 ? y : h;
        const db = bottom !== 0 ? h - y : h;
        const dl = left !== 0 ? x : w;
        const dr = right !== 0 ? w - x : w;
        const d = Math.min(dt, db, dl, dr);
        let v = 0;
        if (feathering > 0 && d < feathering) v = ((feathering - d) / feathering) ** 2;
        mask[(y + top) * W + x + left] = v;
      }
    }
    return [{ shape: [b, H, W, c], data: out }, { shape: [1, H, W], data: mask }];
  },
});

/** ComfyUI's composite(): paste `source` at (x, y) into `destination`, blended by an optional mask. */
export function compositeImages(dest: ImageTensor, source: ImageTensor, x: number, y: number, mask?: MaskTensor, resizeSource = false): ImageTensor {
  const [b, H, W, c] = dest.shape;
  let src = source;
  if (resizeSource && (source.shape[1] !== H || source.shape[2] !== W)) src = upscaleImage(source, W, H, 'bilinear', 'disabled');
  const [sb, sh, sw, sc] = src.shape;
  if (sc !== c) throw new Error(`destination has ${c} channels but source has ${sc}`);
  const out = new Float32Array(dest.data);
  const mb = mask ? mask.shape[0] : 1;
  const mh = mask ? mask.shape[1] : 0;
  const mw = mask ? mask.shape[2] : 0;
  for (let n = 0; n < b; n++) {
    for (let yy = 0; yy < sh; yy++) {
      const ty = y + yy;
      if (ty < 0 || ty >= H) continue;
      for (let xx = 0; xx < sw; xx++) {
        const tx = x + xx;
        if (tx < 0 || tx >= W) continue;
        let m = 1;
        if (mask) m = yy < mh && xx < mw ? mask.data[(Math.min(n, mb - 1) * mh + yy) * mw + xx] : 0;
        const si = ((Math.min(n, sb - 1) * sh + yy) * sw + xx) * c;
        const di = ((n * H + ty) * W + tx) * c;
        for (let k = 0; k < c; k++) out[di + k] = src.data[si + k] * m + out[di + k] * (1 - m);
      }
    }
  }
  return { shape: dest.shape, data: out };
}

export const ImageCompositeMasked = defineNode({
  name: 'ImageCompositeMasked',
  displayName: 'Image Composite Masked',
  category: 'image/compositing',
  inputs: {
    required: {
      destination: { type: 'IMAGE' },
      source: { type: 'IMAGE' },
      x: { type: 'INT', default: 0, min: 0, max: R, step: 1 },
      y: { type: 'INT', default: 0, min: 0, max: R, step: 1 },
      resize_source: { type: 'BOOLEAN', default: false },
    },
    optional: { mask: { type: 'MASK' } },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ destination, source, x, y, resize_source, mask }) {
    return [compositeImages(destination, source, x, y, mask, resize_source)];
  },
});

export const nodes = [ImageScale, ImageScaleBy, ImageInvert, ImageBatch, EmptyImage, ImagePadForOutpaint, ImageCompositeMasked];
