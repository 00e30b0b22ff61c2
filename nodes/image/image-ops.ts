import { describeShape, type ImageTensor } from '../../engine/core/tensor.ts';
import { cropSpatial, flipSpatial, rotate90 } from '../../engine/image/orient.ts';
import { pyRound } from '../../engine/image/python-compat.ts';
import { upscaleImage, type ResizeMethod } from '../../engine/image/resize.ts';
import { toSeed } from '../../engine/sampling/ksampler.ts';
import { torchRandn } from '../../engine/sampling/noise/torch-randn.ts';
import { defineNode } from '../../engine/registry/types.ts';

/** ComfyUI's comfy_extras/nodes_images.py nodes that are tensor arithmetic (the file savers are elsewhere). */

const R = 16384;
const SEED_MAX = 0xffffffffffffffff;

function expectImage(image: ImageTensor, what: string): void {
  if (image.shape.length !== 4) throw new Error(`${what} must be an IMAGE [B, H, W, C], got shape ${describeShape(image.shape)}`);
}

export const ImageCrop = defineNode({
  name: 'ImageCrop',
  displayName: 'Crop Image (DEPRECATED)',
  category: 'image/transform',
  deprecated: true,
  searchAliases: ['trim'],
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      width: { type: 'INT', default: 512, min: 1, max: R, step: 1 },
      height: { type: 'INT', default: 512, min: 1, max: R, step: 1 },
      x: { type: 'INT', default: 0, min: 0, max: R, step: 1 },
      y: { type: 'INT', default: 0, min: 0, max: R, step: 1 },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, width, height, x, y }) {
    expectImage(image, 'image');
    // The corner is kept inside the image; the far side is cut at the border (a smaller result).
    const x0 = Math.min(x, image.shape[2] - 1);
    const y0 = Math.min(y, image.shape[1] - 1);
    return [cropSpatial(image, y0, y0 + height, x0, x0 + width, 'NHWC')];
  },
});

export const RepeatImageBatch = defineNode({
  name: 'RepeatImageBatch',
  displayName: 'Repeat Image Batch',
  category: 'image/batch',
  searchAliases: ['duplicate image', 'clone image'],
  inputs: { required: { image: { type: 'IMAGE' }, amount: { type: 'INT', default: 1, min: 1, max: 4096 } } },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, amount }) {
    expectImage(image, 'image');
    if (image.data.length * amount > 2 ** 31 - 1)
      throw new Error(`RepeatImageBatch: ${amount} copies of ${describeShape(image.shape)} are too large`);
    const out = new Float32Array(image.data.length * amount);
    for (let i = 0; i < amount; i++) out.set(image.data, i * image.data.length);
    return [{ shape: [image.shape[0] * amount, ...image.shape.slice(1)], data: out }];
  },
});

export const ImageFromBatch = defineNode({
  name: 'ImageFromBatch',
  displayName: 'Get Image from Batch',
  category: 'image/batch',
  searchAliases: ['select image', 'pick from batch', 'extract image'],
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      batch_index: { type: 'INT', default: 0, min: -R, max: R },
      length: { type: 'INT', default: 1, min: 1, max: 4096 },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, batch_index, length }) {
    expectImage(image, 'image');
    const b = image.shape[0];
    // Negative counts from the end; out-of-range indices are clamped to the batch.
    const start = Math.max(0, Math.min(b - 1, batch_index < 0 ? batch_index + b : batch_index));
    const n = Math.min(b - start, length);
    const per = image.data.length / b;
    return [{ shape: [n, ...image.shape.slice(1)], data: image.data.slice(start * per, (start + n) * per) }];
  },
});

export const ImageAddNoise = defineNode({
  name: 'ImageAddNoise',
  displayName: 'Add Noise to Image',
  category: 'image/filters',
  searchAliases: ['film grain'],
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      seed: {
        type: 'INT',
        default: 0,
        min: 0,
        max: SEED_MAX,
        controlAfterGenerate: true,
        tooltip: 'The random seed used for creating the noise.',
      },
      strength: { type: 'FLOAT', default: 0.5, min: 0.0, max: 1.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, seed, strength }) {
    expectImage(image, 'image');
    // torch.manual_seed(seed); clip(image + strength · randn(image.shape)) in float32 on the CPU.
    const noise = torchRandn(toSeed(seed), image.shape);
    const s = Math.fround(strength);
    const out = new Float32Array(image.data.length);
    for (let i = 0; i < out.length; i++) {
      const v = Math.fround(image.data[i] + Math.fround(s * noise[i]));
      out[i] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
    return [{ shape: [...image.shape], data: out }];
  },
});

/** Pad the batch to `n` by repeating the last image. */
function padBatch(t: ImageTensor, n: number): ImageTensor {
  const b = t.shape[0];
  if (b >= n) return t;
  const per = t.data.length / b;
  const out = new Float32Array(n * per);
  out.set(t.data);
  for (let i = b; i < n; i++) out.set(t.data.subarray((b - 1) * per), i * per);
  return { shape: [n, ...t.shape.slice(1)], data: out };
}

/** Constant padding of H (top, bottom) and W (left, right). */
function padHW(t: ImageTensor, top: number, bottom: number, left: number, right: number, value: number): ImageTensor {
  const [b, h, w, c] = t.shape;
  const H = h + top + bottom;
  const W = w + left + right;
  const out = new Float32Array(b * H * W * c).fill(value);
  for (let n = 0; n < b; n++)
    for (let y = 0; y < h; y++) out.set(t.data.subarray((n * h + y) * w * c, (n * h + y + 1) * w * c), ((n * H + y + top) * W + left) * c);
  return { shape: [b, H, W, c], data: out };
}

/** Extra channels of 1.0 up to `c`. */
function padChannels(t: ImageTensor, c: number): ImageTensor {
  const [b, h, w, c0] = t.shape;
  if (c0 >= c) return t;
  const out = new Float32Array(b * h * w * c).fill(1);
  for (let p = 0; p < b * h * w; p++) out.set(t.data.subarray(p * c0, (p + 1) * c0), p * c);
  return { shape: [b, h, w, c], data: out };
}

/** Concatenate along H (axis 1) or W (axis 2); the other axes must agree. */
function concatImages(parts: readonly ImageTensor[], axis: 1 | 2): ImageTensor {
  const [b, h0, w0, c] = parts[0].shape;
  for (const p of parts) {
    if (p.shape[0] !== b || p.shape[3] !== c || (axis === 1 ? p.shape[2] !== w0 : p.shape[1] !== h0))
      throw new Error(`cannot stitch images of shapes ${parts.map((q) => describeShape(q.shape)).join(' and ')}`);
  }
  const H = axis === 1 ? parts.reduce((s, p) => s + p.shape[1], 0) : h0;
  const W = axis === 2 ? parts.reduce((s, p) => s + p.shape[2], 0) : w0;
  const out = new Float32Array(b * H * W * c);
  for (let n = 0; n < b; n++) {
    let off = 0;
    for (const p of parts) {
      const [, h, w] = p.shape;
      for (let y = 0; y < h; y++) {
        const row = p.data.subarray((n * h + y) * w * c, (n * h + y + 1) * w * c);
        out.set(row, axis === 1 ? (n * H + off + y) * W * c : ((n * H + y) * W + off) * c);
      }
      off += axis === 1 ? h : w;
    }
  }
  return { shape: [b, H, W, c], data: out };
}

const STITCH_COLORS: Record<string, number | readonly [number, number, number]> = {
  white: 1.0,
  black: 0.0,
  red: [1, 0, 0],
  green: [0, 1, 0],
  blue: [0, 0, 1],
};

/** ComfyUI's ImageStitch (from KJNodes): image2 beside image1 in `direction`, with optional spacing. */
export function stitchImages(
  image1: ImageTensor,
  image2: ImageTensor,
  direction: string,
  matchSize: boolean,
  spacingWidth: number,
  spacingColor: string,
): ImageTensor {
  expectImage(image1, 'image1');
  expectImage(image2, 'image2');
  const color = STITCH_COLORS[spacingColor];
  if (color === undefined) throw new Error(`unknown spacing_color '${spacingColor}'`);
  if (!['right', 'down', 'left', 'up'].includes(direction)) throw new Error(`unknown direction '${direction}' (right, down, left or up)`);
  const horizontal = direction === 'left' || direction === 'right';
  const nb = Math.max(image1.shape[0], image2.shape[0]);
  let a = padBatch(image1, nb);
  let b = padBatch(image2, nb);
  if (matchSize) {
    const [, h1, w1] = a.shape;
    const [, h2, w2] = b.shape;
    const aspect = w2 / h2;
    // int() truncates, as Python's int of a float.
    const [th, tw] = horizontal ? [h1, Math.trunc(h1 * aspect)] : [Math.trunc(w1 / aspect), w1];
    b = upscaleImage(b, tw, th, 'lanczos', 'disabled');
  } else {
    const pad = typeof color === 'number' ? color : 0;
    const [, h1, w1] = a.shape;
    const [, h2, w2] = b.shape;
    if (horizontal && h1 !== h2) {
      const t = Math.max(h1, h2);
      if (h1 < t) a = padHW(a, Math.floor((t - h1) / 2), t - h1 - Math.floor((t - h1) / 2), 0, 0, pad);
      if (h2 < t) b = padHW(b, Math.floor((t - h2) / 2), t - h2 - Math.floor((t - h2) / 2), 0, 0, pad);
    } else if (!horizontal && w1 !== w2) {
      const t = Math.max(w1, w2);
      if (w1 < t) a = padHW(a, 0, 0, Math.floor((t - w1) / 2), t - w1 - Math.floor((t - w1) / 2), pad);
      if (w2 < t) b = padHW(b, 0, 0, Math.floor((t - w2) / 2), t - w2 - Math.floor((t - w2) / 2), pad);
    }
  }
  const c = Math.max(a.shape[3], b.shape[3]);
  a = padChannels(a, c);
  b = padChannels(b, c);
  const parts = direction === 'left' || direction === 'up' ? [b, a] : [a, b];
  if (spacingWidth > 0) {
    const sw = spacingWidth + (spacingWidth % 2);
    const [sh, sww] = horizontal ? [Math.max(a.shape[1], b.shape[1]), sw] : [sw, Math.max(a.shape[2], b.shape[2])];
    const sp = new Float32Array(a.shape[0] * sh * sww * c);
    for (let p = 0; p < a.shape[0] * sh * sww; p++) {
      for (let k = 0; k < c; k++) {
        const v = typeof color === 'number' ? (k < 3 ? color : 0) : k < 3 ? color[k] : 0;
        sp[p * c + k] = c === 4 && k === 3 ? 1 : v;
      }
    }
    parts.splice(1, 0, { shape: [a.shape[0], sh, sww, c], data: sp });
  }
  return concatImages(parts, horizontal ? 2 : 1);
}

export const ImageStitch = defineNode({
  name: 'ImageStitch',
  displayName: 'Stitch Images',
  description:
    'Stitches image2 to image1 in the specified direction.\nIf image2 is not provided, returns image1 unchanged.\nOptional spacing can be added between images.',
  category: 'image/transform',
  searchAliases: ['combine images', 'join images', 'concatenate images', 'side by side'],
  inputs: {
    required: {
      image1: { type: 'IMAGE' },
      direction: { type: 'COMBO', options: ['right', 'down', 'left', 'up'], default: 'right' },
      match_image_size: { type: 'BOOLEAN', default: true },
      spacing_width: { type: 'INT', default: 0, min: 0, max: 1024, step: 2, advanced: true },
      spacing_color: { type: 'COMBO', options: ['white', 'black', 'red', 'green', 'blue'], default: 'white', advanced: true },
    },
    optional: { image2: { type: 'IMAGE' } },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image1, direction, match_image_size, spacing_width, spacing_color, image2 }) {
    if (!image2) return [image1];
    return [stitchImages(image1, image2, direction, match_image_size, spacing_width, spacing_color)];
  },
});

export const ResizeAndPadImage = defineNode({
  name: 'ResizeAndPadImage',
  displayName: 'Resize And Pad Image',
  category: 'image/transform',
  searchAliases: ['fit to size'],
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      target_width: { type: 'INT', default: 512, min: 1, max: R, step: 1 },
      target_height: { type: 'INT', default: 512, min: 1, max: R, step: 1 },
      padding_color: { type: 'COMBO', options: ['white', 'black'], advanced: true },
      interpolation: { type: 'COMBO', options: ['area', 'bicubic', 'nearest-exact', 'bilinear', 'lanczos'], advanced: true },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, target_width, target_height, padding_color, interpolation }) {
    expectImage(image, 'image');
    const [, h, w] = image.shape;
    const scale = Math.min(target_width / w, target_height / h);
    const nw = Math.trunc(w * scale);
    const nh = Math.trunc(h * scale);
    if (nw < 1 || nh < 1) throw new Error(`ResizeAndPadImage: ${w}×${h} scaled by ${scale} leaves an empty side`);
    const resized = upscaleImage(image, nw, nh, interpolation as ResizeMethod, 'disabled');
    const top = Math.floor((target_height - nh) / 2);
    const left = Math.floor((target_width - nw) / 2);
    const pad = padding_color === 'black' ? 0 : 1;
    return [padHW(resized, top, target_height - nh - top, left, target_width - nw - left, pad)];
  },
});

export const GetImageSize = defineNode({
  name: 'GetImageSize',
  displayName: 'Get Image Size',
  description: 'Returns width and height of the image, and passes it through unchanged.',
  category: 'image',
  searchAliases: ['dimensions', 'resolution', 'image info'],
  inputs: { required: { image: { type: 'IMAGE' } } },
  outputs: [
    { type: 'INT', name: 'width' },
    { type: 'INT', name: 'height' },
    { type: 'INT', name: 'batch_size' },
  ],
  run({ image }) {
    expectImage(image, 'image');
    return [image.shape[2], image.shape[1], image.shape[0]];
  },
});

export const ImageRotate = defineNode({
  name: 'ImageRotate',
  displayName: 'Rotate Image',
  category: 'image/transform',
  searchAliases: ['turn', 'flip orientation'],
  inputs: {
    required: { image: { type: 'IMAGE' }, rotation: { type: 'COMBO', options: ['none', '90 degrees', '180 degrees', '270 degrees'] } },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, rotation }) {
    expectImage(image, 'image');
    const k = rotation.startsWith('90') ? 1 : rotation.startsWith('180') ? 2 : rotation.startsWith('270') ? 3 : 0;
    return [rotate90(image, k, 'NHWC')];
  },
});

export const ImageFlip = defineNode({
  name: 'ImageFlip',
  displayName: 'Flip Image',
  category: 'image/transform',
  searchAliases: ['mirror', 'reflect'],
  inputs: {
    required: { image: { type: 'IMAGE' }, flip_method: { type: 'COMBO', options: ['x-axis: vertically', 'y-axis: horizontally'] } },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, flip_method }) {
    expectImage(image, 'image');
    if (flip_method.startsWith('x')) return [flipSpatial(image, true, 'NHWC')];
    if (flip_method.startsWith('y')) return [flipSpatial(image, false, 'NHWC')];
    return [image];
  },
});

export const ImageScaleToMaxDimension = defineNode({
  name: 'ImageScaleToMaxDimension',
  displayName: 'Scale Image to Max Dimension',
  category: 'image/upscaling',
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      // ComfyUI lists bilinear twice; the frontend shows the list as given.
      upscale_method: { type: 'COMBO', options: ['area', 'lanczos', 'bilinear', 'nearest-exact', 'bilinear', 'bicubic'] },
      largest_size: { type: 'INT', default: 512, min: 0, max: R, step: 1 },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, upscale_method, largest_size }) {
    expectImage(image, 'image');
    let [, h, w] = image.shape;
    if (h > w) [w, h] = [pyRound((w / h) * largest_size), largest_size];
    else if (w > h) [w, h] = [largest_size, pyRound((h / w) * largest_size)];
    else [w, h] = [largest_size, largest_size];
    if (w < 1 || h < 1) throw new Error(`ImageScaleToMaxDimension: largest_size ${largest_size} leaves an empty side`);
    return [upscaleImage(image, w, h, upscale_method as ResizeMethod, 'disabled')];
  },
});

export const nodes = [
  ImageCrop,
  RepeatImageBatch,
  ImageFromBatch,
  ImageAddNoise,
  ImageStitch,
  ResizeAndPadImage,
  GetImageSize,
  ImageRotate,
  ImageFlip,
  ImageScaleToMaxDimension,
];
