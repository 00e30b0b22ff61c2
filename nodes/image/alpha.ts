import { describeShape, type ImageTensor, type MaskTensor } from '../../engine/core/tensor.ts';
import { maskAsBatch } from '../../engine/image/layout.ts';
import { commonUpscale, resizeNCHW } from '../../engine/image/resize.ts';
import { defineNode } from '../../engine/registry/types.ts';

/** ComfyUI's comfy_extras/nodes_compositing.py: alpha as a MASK (1 − alpha) split off, joined back, and Porter-Duff compositing. */

function expectImage(image: ImageTensor, what: string): void {
  if (image.shape.length !== 4) throw new Error(`${what} must be an IMAGE [B, H, W, C], got shape ${describeShape(image.shape)}`);
}

export const SplitImageWithAlpha = defineNode({
  name: 'SplitImageWithAlpha',
  displayName: 'Split Image with Alpha',
  category: 'mask/compositing',
  inputs: { required: { image: { type: 'IMAGE' } } },
  outputs: [
    { type: 'IMAGE', name: 'IMAGE' },
    { type: 'MASK', name: 'MASK' },
  ],
  run({ image }) {
    expectImage(image, 'image');
    const [b, h, w, c] = image.shape;
    if (c < 3) throw new Error(`SplitImageWithAlpha needs at least 3 channels, got ${c}`);
    const px = b * h * w;
    const rgb = new Float32Array(px * 3);
    const mask = new Float32Array(px);
    for (let p = 0; p < px; p++) {
      for (let k = 0; k < 3; k++) rgb[p * 3 + k] = image.data[p * c + k];
      mask[p] = 1 - (c > 3 ? image.data[p * c + 3] : 1);
    }
    return [
      { shape: [b, h, w, 3], data: rgb },
      { shape: [b, h, w], data: mask },
    ];
  },
});

export const JoinImageWithAlpha = defineNode({
  name: 'JoinImageWithAlpha',
  displayName: 'Join Image with Alpha',
  category: 'mask/compositing',
  inputs: { required: { image: { type: 'IMAGE' }, alpha: { type: 'MASK' } } },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, alpha }) {
    expectImage(image, 'image');
    const [b, h, w, c] = image.shape;
    if (c < 3) throw new Error(`JoinImageWithAlpha needs at least 3 channels, got ${c}`);
    const m = maskAsBatch(alpha, 'alpha');
    // The mask is resized to the image (torch bilinear), the batch is the shorter of the two.
    const mr = resizeNCHW({ shape: [m.shape[0], 1, m.shape[1], m.shape[2]], data: m.data }, h, w, 'bilinear');
    const n = Math.min(b, m.shape[0]);
    const out = new Float32Array(n * h * w * 4);
    for (let p = 0; p < n * h * w; p++) {
      for (let k = 0; k < 3; k++) out[p * 4 + k] = image.data[p * c + k];
      out[p * 4 + 3] = 1 - mr.data[p];
    }
    return [{ shape: [n, h, w, 4], data: out }];
  },
});

export const PORTER_DUFF_MODES = [
  'ADD',
  'CLEAR',
  'DARKEN',
  'DST',
  'DST_ATOP',
  'DST_IN',
  'DST_OUT',
  'DST_OVER',
  'LIGHTEN',
  'MULTIPLY',
  'OVERLAY',
  'SCREEN',
  'SRC',
  'SRC_ATOP',
  'SRC_IN',
  'SRC_OUT',
  'SRC_OVER',
  'XOR',
] as const;
export type PorterDuffMode = (typeof PORTER_DUFF_MODES)[number];

const clamp01 = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);

/**
 * One premultiplied Porter-Duff operation: s, d are colour·alpha, sa, da the alphas. Returns
 * [colour, alpha] still premultiplied. DARKEN/LIGHTEN/OVERLAY are ComfyUI's own formulas.
 */
export function porterDuff(mode: PorterDuffMode, s: number, sa: number, d: number, da: number): [number, number] {
  switch (mode) {
    case 'ADD':
      return [clamp01(s + d), clamp01(sa + da)];
    case 'CLEAR':
      return [0, 0];
    case 'DARKEN':
      return [(1 - da) * s + (1 - sa) * d + Math.min(s, d), sa + da - sa * da];
    case 'DST':
      return [d, da];
    case 'DST_ATOP':
      return [sa * d + (1 - da) * s, sa];
    case 'DST_IN':
      return [d * sa, sa * da];
    case 'DST_OUT':
      return [(1 - sa) * d, (1 - sa) * da];
    case 'DST_OVER':
      return [d + (1 - da) * s, da + (1 - da) * sa];
    case 'LIGHTEN':
      return [(1 - da) * s + (1 - sa) * d + Math.max(s, d), sa + da - sa * da];
    case 'MULTIPLY':
      return [s * d, sa * da];
    case 'OVERLAY':
      return [2 * d < da ? 2 * s * d : sa * da - 2 * (da - s) * (sa - d), sa + da - sa * da];
    case 'SCREEN':
      return [s + d - s * d, sa + da - sa * da];
    case 'SRC':
      return [s, sa];
    case 'SRC_ATOP':
      return [da * s + (1 - sa) * d, da];
    case 'SRC_IN':
      return [s * da, sa * da];
    case 'SRC_OUT':
      return [(1 - da) * s, (1 - da) * sa];
    case 'SRC_OVER':
      return [s + (1 - sa) * d, sa + (1 - sa) * da];
    case 'XOR':
      return [(1 - da) * s + (1 - sa) * d, (1 - da) * sa + (1 - sa) * da];
  }
}

/** [1, C, H, W] ← one batch item of [B, H, W, C] (or [B, H, W] as one channel), for common_upscale. */
function itemNCHW(t: ImageTensor, i: number, channels: number): ImageTensor {
  const h = t.shape[1];
  const w = t.shape[2];
  const out = new Float32Array(channels * h * w);
  for (let p = 0; p < h * w; p++) for (let k = 0; k < channels; k++) out[k * h * w + p] = t.data[(i * h * w + p) * channels + k];
  return { shape: [1, channels, h, w], data: out };
}

export function porterDuffComposite(
  source: ImageTensor,
  sourceAlpha: MaskTensor,
  destination: ImageTensor,
  destinationAlpha: MaskTensor,
  mode: PorterDuffMode,
): [ImageTensor, MaskTensor] {
  expectImage(source, 'source');
  expectImage(destination, 'destination');
  if (!PORTER_DUFF_MODES.includes(mode))
    throw new Error(`unknown Porter-Duff mode '${mode}' (expected one of ${PORTER_DUFF_MODES.join(', ')})`);
  const sam = maskAsBatch(sourceAlpha, 'source_alpha');
  const dam = maskAsBatch(destinationAlpha, 'destination_alpha');
  const n = Math.min(source.shape[0], sam.shape[0], destination.shape[0], dam.shape[0]);
  const [, H, W, C] = destination.shape;
  if (source.shape[3] !== C) throw new Error(`source has ${source.shape[3]} channels and destination ${C}; they must match`);
  const img = new Float32Array(n * H * W * C);
  const msk = new Float32Array(n * H * W);
  for (let i = 0; i < n; i++) {
    // Each input brought to the destination's size as ComfyUI does: bicubic with a centre crop.
    let da = itemNCHW(dam, i, 1);
    if (da.shape[2] !== H || da.shape[3] !== W) da = commonUpscale(da, W, H, 'bicubic', 'center');
    let src = itemNCHW(source, i, C);
    if (src.shape[2] !== H || src.shape[3] !== W) src = commonUpscale(src, W, H, 'bicubic', 'center');
    let sa = itemNCHW(sam, i, 1);
    if (sa.shape[2] !== H || sa.shape[3] !== W) sa = commonUpscale(sa, W, H, 'bicubic', 'center');
    const dst = itemNCHW(destination, i, C);
    for (let p = 0; p < H * W; p++) {
      const a1 = 1 - sa.data[p];
      const a2 = 1 - da.data[p];
      let outA = 0;
      for (let k = 0; k < C; k++) {
        const [v, a] = porterDuff(mode, src.data[k * H * W + p] * a1, a1, dst.data[k * H * W + p] * a2, a2);
        outA = a;
        img[(i * H * W + p) * C + k] = clamp01(a > 1e-5 ? v / a : 0);
      }
      if (C === 0) outA = porterDuff(mode, 0, a1, 0, a2)[1];
      msk[i * H * W + p] = 1 - outA;
    }
  }
  return [
    { shape: [n, H, W, C], data: img },
    { shape: [n, H, W], data: msk },
  ];
}

export const PorterDuffImageComposite = defineNode({
  name: 'PorterDuffImageComposite',
  displayName: 'Porter-Duff Image Composite',
  category: 'mask/compositing',
  inputs: {
    required: {
      source: { type: 'IMAGE' },
      source_alpha: { type: 'MASK' },
      destination: { type: 'IMAGE' },
      destination_alpha: { type: 'MASK' },
      mode: { type: 'COMBO', options: PORTER_DUFF_MODES, default: 'DST' },
    },
  },
  outputs: [
    { type: 'IMAGE', name: 'IMAGE' },
    { type: 'MASK', name: 'MASK' },
  ],
  run({ source, source_alpha, destination, destination_alpha, mode }) {
    return porterDuffComposite(source, source_alpha, destination, destination_alpha, mode as PorterDuffMode);
  },
});

export const nodes = [PorterDuffImageComposite, SplitImageWithAlpha, JoinImageWithAlpha];
