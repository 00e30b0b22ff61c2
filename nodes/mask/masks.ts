import type { MaskTensor } from '../../engine/image/tensor.ts';
import { defineNode } from '../../engine/registry/types.ts';

const R = 16384;

/** A mask as [B, H, W] whatever rank it arrived with ([H, W] masks are common in custom nodes). */
function asBatch(mask: MaskTensor): MaskTensor {
  return mask.shape.length === 2 ? { shape: [1, ...mask.shape], data: mask.data } : mask;
}

export const SolidMask = defineNode({
  name: 'SolidMask',
  category: 'mask',
  inputs: {
    required: {
      value: { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.01 },
      width: { type: 'INT', default: 512, min: 1, max: R, step: 1 },
      height: { type: 'INT', default: 512, min: 1, max: R, step: 1 },
    },
  },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  run: ({ value, width, height }) => [{ shape: [1, height, width], data: new Float32Array(width * height).fill(value) }],
});

export const InvertMask = defineNode({
  name: 'InvertMask',
  category: 'mask',
  inputs: { required: { mask: { type: 'MASK' } } },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  run: ({ mask }) => [{ shape: mask.shape, data: mask.data.map((v) => 1 - v) }],
});

/**
 * ComfyUI's GrowMask: |expand| passes of a 3×3 grey dilation (erosion when negative); the kernel is a
 * cross when tapered_corners, else a full square.
 */
export function growMask(mask: MaskTensor, expand: number, taperedCorners: boolean): MaskTensor {
  const m = asBatch(mask);
  const [b, h, w] = m.shape;
  let cur = new Float32Array(m.data);
  const next = new Float32Array(cur.length);
  const grow = expand > 0;
  for (let it = 0; it < Math.abs(expand); it++) {
    for (let n = 0; n < b; n++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          let v = cur[(n * h + y) * w + x];
          for (let dy = -1; dy <= 1; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              if (taperedCorners && dx !== 0 && dy !== 0) continue;
              const yy = y + dy;
              const xx = x + dx;
              // Outside the image counts as 0 (scipy grey morphology with mode='constant').
              const s = yy < 0 || yy >= h || xx < 0 || xx >= w ? 0 : cur[(n * h + yy) * w + xx];
              v = grow ? Math.max(v, s) : Math.min(v, s);
            }
          }
          next[(n * h + y) * w + x] = v;
        }
      }
    }
    cur = Float32Array.from(next);
  }
  return { shape: [b, h, w], data: cur };
}

export const GrowMask = defineNode({
  name: 'GrowMask',
  displayName: 'Grow Mask',
  category: 'mask',
  inputs: {
    required: {
      mask: { type: 'MASK' },
      expand: { type: 'INT', default: 0, min: -R, max: R, step: 1 },
      tapered_corners: { type: 'BOOLEAN', default: true },
    },
  },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  run: ({ mask, expand, tapered_corners }) => [growMask(mask, expand, tapered_corners)],
});

export const FeatherMask = defineNode({
  name: 'FeatherMask',
  displayName: 'Feather Mask',
  category: 'mask',
  inputs: {
    required: {
      mask: { type: 'MASK' },
      left: { type: 'INT', default: 0, min: 0, max: R, step: 1 },
      top: { type: 'INT', default: 0, min: 0, max: R, step: 1 },
      right: { type: 'INT', default: 0, min: 0, max: R, step: 1 },
      bottom: { type: 'INT', default: 0, min: 0, max: R, step: 1 },
    },
  },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  run({ mask, left, top, right, bottom }) {
    const m = asBatch(mask);
    const [b, h, w] = m.shape;
    const out = new Float32Array(m.data);
    const l = Math.min(left, w);
    const r = Math.min(right, w);
    const t = Math.min(top, h);
    const bt = Math.min(bottom, h);
    // ComfyUI multiplies each edge's first pixels by (1 + i) / n.
    for (let n = 0; n < b; n++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          let f = 1;
          if (x < l) f *= (1 + x) / l;
          if (x >= w - r) f *= (w - x) / r;
          if (y < t) f *= (1 + y) / t;
          if (y >= h - bt) f *= (h - y) / bt;
          out[(n * h + y) * w + x] *= f;
        }
      }
    }
    return [{ shape: [b, h, w], data: out }];
  },
});

export const MaskToImage = defineNode({
  name: 'MaskToImage',
  displayName: 'Convert Mask to Image',
  category: 'mask',
  inputs: { required: { mask: { type: 'MASK' } } },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ mask }) {
    const m = asBatch(mask);
    const data = new Float32Array(m.data.length * 3);
    for (let i = 0; i < m.data.length; i++) data[i * 3] = data[i * 3 + 1] = data[i * 3 + 2] = m.data[i];
    return [{ shape: [...m.shape, 3], data }];
  },
});

export const ImageToMask = defineNode({
  name: 'ImageToMask',
  displayName: 'Convert Image to Mask',
  category: 'mask',
  inputs: { required: { image: { type: 'IMAGE' }, channel: { type: 'COMBO', options: ['red', 'green', 'blue', 'alpha'] } } },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  run({ image, channel }) {
    const [b, h, w, c] = image.shape;
    const k = ['red', 'green', 'blue', 'alpha'].indexOf(channel);
    if (k >= c) throw new Error(`image has ${c} channels, no ${channel} channel`);
    const data = new Float32Array(b * h * w);
    for (let i = 0; i < data.length; i++) data[i] = image.data[i * c + k];
    return [{ shape: [b, h, w], data }];
  },
});

export const nodes = [SolidMask, InvertMask, GrowMask, FeatherMask, MaskToImage, ImageToMask];
