import { describeShape, type ImageTensor } from '../../engine/core/tensor.ts';
import { MORPHOLOGY_OPERATIONS, morphology, type MorphologyOperation } from '../../engine/image/flat-morphology.ts';
import { nchwToNhwc, nhwcToNchw } from '../../engine/image/layout.ts';
import { defineNode } from '../../engine/registry/types.ts';

/** ComfyUI's comfy_extras/nodes_morphology.py: Morphology and the YCbCr split/join (kornia's constants). */

function expectImage(image: ImageTensor, what: string): void {
  if (image.shape.length !== 4) throw new Error(`${what} must be an IMAGE [B, H, W, C], got shape ${describeShape(image.shape)}`);
}

export const Morphology = defineNode({
  name: 'Morphology',
  displayName: 'Apply Morphology',
  category: 'image/filters',
  searchAliases: ['erode', 'dilate'],
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      operation: { type: 'COMBO', options: MORPHOLOGY_OPERATIONS },
      kernel_size: { type: 'INT', default: 3, min: 3, max: 999, step: 1 },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, operation, kernel_size }) {
    expectImage(image, 'image');
    return [nchwToNhwc(morphology(nhwcToNchw(image), operation as MorphologyOperation, kernel_size))];
  },
});

/** kornia.color.rgb_to_ycbcr: BT.601 luma, chroma offset by 0.5. */
export function rgbToYcbcr(r: number, g: number, b: number): [number, number, number] {
  const y = 0.299 * r + 0.587 * g + 0.114 * b;
  return [y, (b - y) * 0.564 + 0.5, (r - y) * 0.713 + 0.5];
}

/** kornia.color.ycbcr_to_rgb. */
export function ycbcrToRgb(y: number, cb: number, cr: number): [number, number, number] {
  const u = cb - 0.5;
  const v = cr - 0.5;
  return [y + 1.403 * v, y - 0.714 * v - 0.344 * u, y + 1.773 * u];
}

export const ImageRGBToYUV = defineNode({
  name: 'ImageRGBToYUV',
  displayName: 'Image RGB to YUV',
  category: 'image/color',
  searchAliases: ['color space conversion'],
  inputs: { required: { image: { type: 'IMAGE' } } },
  outputs: [
    { type: 'IMAGE', name: 'Y' },
    { type: 'IMAGE', name: 'U' },
    { type: 'IMAGE', name: 'V' },
  ],
  run({ image }) {
    expectImage(image, 'image');
    const [b, h, w, c] = image.shape;
    if (c < 3) throw new Error(`ImageRGBToYUV needs an RGB image, got ${c} channel(s)`);
    // Each component is returned as a grey RGB image (the channel repeated three times).
    const outs = [0, 1, 2].map(() => new Float32Array(b * h * w * 3));
    for (let p = 0; p < b * h * w; p++) {
      const yuv = rgbToYcbcr(image.data[p * c], image.data[p * c + 1], image.data[p * c + 2]);
      for (let k = 0; k < 3; k++) outs[k].fill(yuv[k], p * 3, p * 3 + 3);
    }
    const img = (data: Float32Array): ImageTensor => ({ shape: [b, h, w, 3], data });
    return [img(outs[0]), img(outs[1]), img(outs[2])];
  },
});

export const ImageYUVToRGB = defineNode({
  name: 'ImageYUVToRGB',
  displayName: 'Image YUV to RGB',
  category: 'image/color',
  searchAliases: ['color space conversion'],
  inputs: { required: { Y: { type: 'IMAGE' }, U: { type: 'IMAGE' }, V: { type: 'IMAGE' } } },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ Y, U, V }) {
    const parts = [Y, U, V];
    parts.forEach((t, i) => expectImage(t, ['Y', 'U', 'V'][i]));
    const [b, h, w] = Y.shape;
    if (parts.some((t) => t.shape[0] !== b || t.shape[1] !== h || t.shape[2] !== w))
      throw new Error(`Y, U and V must have the same batch and size, got ${parts.map((t) => describeShape(t.shape)).join(', ')}`);
    // Each input is reduced to the mean of its first three channels.
    const mean = (t: ImageTensor, p: number): number => {
      const c = t.shape[3];
      const n = Math.min(3, c);
      let s = 0;
      for (let k = 0; k < n; k++) s += t.data[p * c + k];
      return s / n;
    };
    const out = new Float32Array(b * h * w * 3);
    for (let p = 0; p < b * h * w; p++) out.set(ycbcrToRgb(mean(Y, p), mean(U, p), mean(V, p)), p * 3);
    return [{ shape: [b, h, w, 3], data: out }];
  },
});

export const nodes = [Morphology, ImageRGBToYUV, ImageYUVToRGB];
