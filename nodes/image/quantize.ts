import { describeShape, type ImageTensor } from '../../engine/core/tensor.ts';
import { mapToPalette, medianCutPalette, paletteToRgb, type Palette } from '../../engine/image/pil-quantize.ts';
import { quantize8 } from '../../engine/image/quantize.ts';
import { defineNode } from '../../engine/registry/types.ts';

/** ComfyUI's ImageQuantize (comfy_extras/nodes_post_processing.py): Pillow's median-cut palette, then dithering. */

export const QUANTIZE_DITHERS = ['none', 'floyd-steinberg', 'bayer-2', 'bayer-4', 'bayer-8', 'bayer-16'] as const;
export type QuantizeDither = (typeof QUANTIZE_DITHERS)[number];

/**
 * ComfyUI's normalized Bayer matrix of size 2^n, in float32 as numpy computes it (float32 arrays stay
 * float32 against Python scalars), scaled by the palette spread and offset by 0.5.
 */
export function bayerThresholds(order: number, numColors: number): Float32Array {
  const f = Math.fround;
  let m = new Float32Array([0]);
  let size = 1;
  for (let n = 1; 1 << n <= order; n++) {
    const q = 4 ** n;
    const next = new Float32Array(4 * size * size);
    const s2 = 2 * size;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const v = f(q * m[y * size + x]!);
        next[y * s2 + x] = f(f(v - 1.5) / q);
        next[y * s2 + x + size] = f(f(v + 0.5) / q);
        next[(y + size) * s2 + x] = f(f(v + 1.5) / q);
        next[(y + size) * s2 + x + size] = f(f(v - 0.5) / q);
      }
    }
    m = next;
    size = s2;
  }
  const spread = (2 * 256) / numColors;
  return m.map((v) => f(f(spread * v) + 0.5));
}

/** ComfyUI's bayer-N step on RGB bytes: add the tiled thresholds in float32, clamp, truncate to bytes. */
export function bayerOffset(rgb: Uint8Array, width: number, height: number, order: number, numColors: number): Uint8Array {
  const t = bayerThresholds(order, numColors);
  const out = new Uint8Array(rgb.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = t[(y % order) * order + (x % order)]!;
      for (let c = 0; c < 3; c++) {
        const i = (y * width + x) * 3 + c;
        const v = Math.fround(rgb[i]! + o);
        out[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
      }
    }
  }
  return out;
}

/** One RGB image (bytes) through ImageQuantize: the quantized RGB bytes. */
export function quantizeRgb(rgb: Uint8Array, width: number, height: number, colors: number, dither: QuantizeDither): Uint8Array {
  const palette: Palette = medianCutPalette(rgb, width * height, colors);
  if (dither === 'none' || dither === 'floyd-steinberg') {
    return paletteToRgb(mapToPalette(rgb, width, height, palette, dither === 'floyd-steinberg'), palette);
  }
  const order = Number(dither.slice('bayer-'.length));
  const offset = bayerOffset(rgb, width, height, order, palette.size);
  return paletteToRgb(mapToPalette(offset, width, height, palette, false), palette);
}

export function imageQuantize(image: ImageTensor, colors: number, dither: QuantizeDither): ImageTensor {
  if (image.shape.length !== 4 || image.shape[3] !== 3) {
    throw new Error(`ImageQuantize: image must be an RGB IMAGE [B, H, W, 3], got shape ${describeShape(image.shape)}`);
  }
  if (!Number.isInteger(colors) || colors < 1 || colors > 256)
    throw new Error(`ImageQuantize: colors must be an integer 1..256, got ${colors}`);
  if (!QUANTIZE_DITHERS.includes(dither)) throw new Error(`ImageQuantize: unknown dither '${String(dither)}'`);
  const [B, H, W] = image.shape as [number, number, number, number];
  const per = H * W * 3;
  const out = new Float32Array(B * per);
  const rgb = new Uint8Array(per);
  for (let b = 0; b < B; b++) {
    // ComfyUI: (image * 255).to(torch.uint8), a float32 product truncated (clamped here: torch leaves out-of-range values undefined).
    for (let i = 0; i < per; i++) rgb[i] = quantize8(image.data[b * per + i]!);
    const q = quantizeRgb(rgb, W, H, colors, dither);
    for (let i = 0; i < per; i++) out[b * per + i] = q[i]! / 255;
  }
  return { shape: [B, H, W, 3], data: out };
}

export const ImageQuantize = defineNode({
  name: 'ImageQuantize',
  displayName: 'Image Quantize',
  category: 'image/postprocessing',
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      colors: { type: 'INT', default: 256, min: 1, max: 256, step: 1 },
      dither: { type: 'COMBO', options: QUANTIZE_DITHERS },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, colors, dither }) {
    return [imageQuantize(image, colors, dither as QuantizeDither)];
  },
});

export const nodes = [ImageQuantize];
