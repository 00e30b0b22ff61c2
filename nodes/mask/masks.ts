import { maskAsBatch } from '../../engine/image/layout.ts';
import { pyRound } from '../../engine/image/python-compat.ts';
import { featherMask, growMask } from '../../engine/image/morphology.ts';
import { saveImageBatch } from '../../engine/image/output-files.ts';
import { describeShape, type ImageTensor, type MaskTensor } from '../../engine/core/tensor.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { ImageCompositeMasked } from '../image/composite.ts';
import { metadataChunks, tempSuffix } from '../image/save-image.ts';

/** ComfyUI's MAX_RESOLUTION. */
const R = 16384;
const f32 = Math.fround;

/** torch.round rounds half to even, as Python's round. */
const roundHalfEven = pyRound;

/** MaskToImage: [B, H, W] → [B, H, W, 3] grey image. */
export function maskToImage(mask: MaskTensor): ImageTensor {
  const m = maskAsBatch(mask);
  const data = new Float32Array(m.data.length * 3);
  for (let i = 0; i < m.data.length; i++) data[i * 3] = data[i * 3 + 1] = data[i * 3 + 2] = m.data[i];
  return { shape: [...m.shape, 3], data };
}

export const MaskToImage = defineNode({
  name: 'MaskToImage',
  displayName: 'Convert Mask to Image',
  category: 'image/mask',
  searchAliases: ['convert mask'],
  inputs: { required: { mask: { type: 'MASK' } } },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run: ({ mask }) => [maskToImage(mask)],
});

const IMAGE_CHANNELS = ['red', 'green', 'blue', 'alpha'] as const;

export const ImageToMask = defineNode({
  name: 'ImageToMask',
  displayName: 'Convert Image to Mask',
  category: 'image/mask',
  searchAliases: ['extract channel', 'channel to mask'],
  inputs: { required: { image: { type: 'IMAGE' }, channel: { type: 'COMBO', options: IMAGE_CHANNELS } } },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  run({ image, channel }) {
    if (image.shape.length !== 4) throw new Error(`image must be an IMAGE [B, H, W, C], got shape ${describeShape(image.shape)}`);
    const [b, h, w, c] = image.shape;
    const k = IMAGE_CHANNELS.indexOf(channel as (typeof IMAGE_CHANNELS)[number]);
    if (k < 0) throw new Error(`ImageToMask: unknown channel '${channel}'`);
    if (k >= c) throw new Error(`ImageToMask: the image has ${c} channels, so it has no ${channel} channel`);
    const data = new Float32Array(b * h * w);
    for (let i = 0; i < data.length; i++) data[i] = image.data[i * c + k];
    return [{ shape: [b, h, w], data }];
  },
});

export const ImageColorToMask = defineNode({
  name: 'ImageColorToMask',
  displayName: 'Convert Image Color to Mask',
  category: 'image/mask',
  searchAliases: ['color keying', 'chroma key'],
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      color: { type: 'INT', default: 0, min: 0, max: 0xffffff, step: 1, display: 'number' },
    },
  },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  run({ image, color }) {
    if (image.shape.length !== 4 || image.shape[3] < 3) {
      throw new Error(`image must be an IMAGE [B, H, W, 3 or 4], got shape ${describeShape(image.shape)}`);
    }
    const [b, h, w, c] = image.shape;
    const byte = (v: number): number => roundHalfEven(f32(Math.min(1, Math.max(0, v)) * 255));
    const data = new Float32Array(b * h * w);
    for (let i = 0; i < data.length; i++) {
      const s = i * c;
      const v = (byte(image.data[s]) << 16) + (byte(image.data[s + 1]) << 8) + byte(image.data[s + 2]);
      data[i] = v === color ? 1 : 0;
    }
    return [{ shape: [b, h, w], data }];
  },
});

export const SolidMask = defineNode({
  name: 'SolidMask',
  displayName: 'Create Solid Mask',
  category: 'image/mask',
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
  displayName: 'Invert Mask',
  category: 'image/mask',
  searchAliases: ['reverse mask', 'flip mask'],
  inputs: { required: { mask: { type: 'MASK' } } },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  run: ({ mask }) => [{ shape: [...mask.shape], data: mask.data.map((v) => 1 - v) }],
});

export const CropMask = defineNode({
  name: 'CropMask',
  displayName: 'Crop Mask',
  category: 'image/mask',
  searchAliases: ['cut mask', 'extract mask region', 'mask slice'],
  inputs: {
    required: {
      mask: { type: 'MASK' },
      x: { type: 'INT', default: 0, min: 0, max: R, step: 1 },
      y: { type: 'INT', default: 0, min: 0, max: R, step: 1 },
      width: { type: 'INT', default: 512, min: 1, max: R, step: 1 },
      height: { type: 'INT', default: 512, min: 1, max: R, step: 1 },
    },
  },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  run({ mask, x, y, width, height }) {
    const m = maskAsBatch(mask);
    const [b, h, w] = m.shape;
    // Python slicing: the crop box is clipped to the mask.
    const x1 = Math.min(x + width, w);
    const y1 = Math.min(y + height, h);
    if (x >= w || y >= h) {
      throw new Error(`CropMask: the box at x=${x}, y=${y} starts outside the ${w}×${h} mask, so the crop would be empty`);
    }
    const cw = x1 - x;
    const ch = y1 - y;
    const out = new Float32Array(b * ch * cw);
    for (let n = 0; n < b; n++) {
      for (let r = 0; r < ch; r++) {
        const from = (n * h + y + r) * w + x;
        out.set(m.data.subarray(from, from + cw), (n * ch + r) * cw);
      }
    }
    return [{ shape: [b, ch, cw], data: out }];
  },
});

const OPERATIONS = ['multiply', 'add', 'subtract', 'and', 'or', 'xor'] as const;

/** MaskComposite: combine `source` into `destination` at (x, y), then clamp everything to 0..1. */
export function maskComposite(destination: MaskTensor, source: MaskTensor, x: number, y: number, operation: string): MaskTensor {
  const d = maskAsBatch(destination, 'destination');
  const s = maskAsBatch(source, 'source');
  const [b, H, W] = d.shape;
  const [sb, sh, sw] = s.shape;
  if (sb !== b && sb !== 1) {
    throw new Error(`MaskComposite: a source batch of ${sb} cannot combine with a destination batch of ${b}`);
  }
  if (!(OPERATIONS as readonly string[]).includes(operation)) {
    throw new Error(`MaskComposite: unknown operation '${operation}' (expected ${OPERATIONS.join(', ')})`);
  }
  const bool = (v: number): boolean => roundHalfEven(v) !== 0;
  const op = (a: number, c: number): number => {
    switch (operation) {
      case 'multiply':
        return f32(a * c);
      case 'add':
        return f32(a + c);
      case 'subtract':
        return f32(a - c);
      case 'and':
        return bool(a) && bool(c) ? 1 : 0;
      case 'or':
        return bool(a) || bool(c) ? 1 : 0;
      default:
        return bool(a) !== bool(c) ? 1 : 0;
    }
  };
  const out = new Float32Array(d.data);
  const right = Math.min(x + sw, W);
  const bottom = Math.min(y + sh, H);
  for (let n = 0; n < b; n++) {
    const sn = sb === 1 ? 0 : n;
    for (let yy = y; yy < bottom; yy++) {
      for (let xx = x; xx < right; xx++) {
        const i = (n * H + yy) * W + xx;
        out[i] = op(out[i], s.data[(sn * sh + yy - y) * sw + xx - x]);
      }
    }
  }
  for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, out[i]));
  return { shape: [b, H, W], data: out };
}

export const MaskComposite = defineNode({
  name: 'MaskComposite',
  displayName: 'Combine Masks',
  category: 'image/mask',
  searchAliases: ['combine masks', 'blend masks', 'layer masks', 'masks composition'],
  inputs: {
    required: {
      destination: { type: 'MASK' },
      source: { type: 'MASK' },
      x: { type: 'INT', default: 0, min: 0, max: R, step: 1 },
      y: { type: 'INT', default: 0, min: 0, max: R, step: 1 },
      operation: { type: 'COMBO', options: OPERATIONS },
    },
  },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  run: ({ destination, source, x, y, operation }) => [maskComposite(destination, source, x, y, operation)],
});

export const FeatherMask = defineNode({
  name: 'FeatherMask',
  displayName: 'Feather Mask',
  category: 'image/mask',
  searchAliases: ['soft edge mask', 'blur mask edges', 'gradient mask edge'],
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
  run: ({ mask, left, top, right, bottom }) => [featherMask(mask, left, top, right, bottom)],
});

export const GrowMask = defineNode({
  name: 'GrowMask',
  displayName: 'Grow Mask',
  category: 'image/mask',
  searchAliases: ['expand mask', 'shrink mask'],
  inputs: {
    required: {
      mask: { type: 'MASK' },
      expand: { type: 'INT', default: 0, min: -R, max: R, step: 1 },
      tapered_corners: { type: 'BOOLEAN', default: true, advanced: true },
    },
  },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  run: ({ mask, expand, tapered_corners }, ctx) => [growMask(mask, expand, tapered_corners, () => ctx.checkInterrupted())],
});

export const ThresholdMask = defineNode({
  name: 'ThresholdMask',
  displayName: 'Threshold Mask',
  category: 'image/mask',
  searchAliases: ['binary mask'],
  inputs: {
    required: {
      mask: { type: 'MASK' },
      value: { type: 'FLOAT', default: 0.5, min: 0.0, max: 1.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  run({ mask, value }) {
    // torch compares a float32 tensor with the value cast to float32.
    const v = f32(value);
    return [{ shape: [...mask.shape], data: mask.data.map((m) => (m > v ? 1 : 0)) }];
  },
});

export const MaskPreview = defineNode({
  name: 'MaskPreview',
  displayName: 'Preview Mask',
  category: 'image/mask',
  description: 'Preview the masks without saving them to the ComfyUI output directory.',
  searchAliases: ['preview', 'preview mask', 'show mask', 'view mask', 'inspect mask', 'debug mask'],
  inputs: {
    required: { mask: { type: 'MASK' } },
    hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
  },
  outputs: [{ type: 'MASK', name: 'mask' }],
  outputNode: true,
  async run({ mask, prompt, extra_pnginfo }, ctx) {
    const images = await saveImageBatch(maskToImage(mask), {
      root: ctx.paths.tempDir,
      prefix: `ComfyUI${tempSuffix()}`,
      type: 'temp',
      compressionLevel: 1,
      chunks: metadataChunks(prompt, extra_pnginfo, ctx),
      beforeEach: () => ctx.checkInterrupted(),
    });
    return { ui: { images }, result: [mask] };
  },
});

/** In ComfyUI's order; ImageCompositeMasked is defined in comfy_extras.nodes_mask there too. */
export const nodes = [
  ImageCompositeMasked,
  MaskToImage,
  ImageToMask,
  ImageColorToMask,
  SolidMask,
  InvertMask,
  CropMask,
  MaskComposite,
  FeatherMask,
  GrowMask,
  ThresholdMask,
  MaskPreview,
];
