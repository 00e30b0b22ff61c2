import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { JoinImageWithAlpha, PorterDuffImageComposite, SplitImageWithAlpha } from '../../nodes/image/alpha.ts';
import {
  GetImageSize,
  ImageAddNoise,
  ImageCrop,
  ImageFlip,
  ImageFromBatch,
  ImageRotate,
  ImageStitch,
  RepeatImageBatch,
  ResizeAndPadImage,
} from '../../nodes/image/image-ops.ts';
import { BLEND_MODES, ImageBlend, ImageBlur, ImageSharpen, ImageScaleToTotalPixels } from '../../nodes/image/post-processing.ts';

/**
 * The image nodes of ComfyUI's nodes_images.py, nodes_post_processing.py and nodes_compositing.py
 * against references written here from the formulas (float64 loops, explicit index maps).
 */

const ctx = {} as NodeContext;
type Run = (args: Record<string, unknown>, c: NodeContext) => unknown;
const call = (node: { run: unknown }, args: Record<string, unknown>): Tensor[] => (node.run as Run)(args, ctx) as Tensor[];

/** An image [B, H, W, C] whose value at (b, y, x, c) is f(b, y, x, c). */
function img(B: number, H: number, W: number, C: number, f: (b: number, y: number, x: number, c: number) => number): Tensor {
  const d = new Float32Array(B * H * W * C);
  for (let b = 0; b < B; b++)
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < C; c++) d[((b * H + y) * W + x) * C + c] = f(b, y, x, c);
  return { shape: [B, H, W, C], data: d };
}
const px = (t: Tensor, b: number, y: number, x: number, c: number): number => {
  const [, H, W, C] = t.shape;
  return t.data[((b * H + y) * W + x) * C + c];
};
/** Pseudo-random but fixed values in [0, 1). */
const noiseVal = (b: number, y: number, x: number, c: number): number =>
  ((Math.sin(b * 97 + y * 13.1 + x * 7.7 + c * 3.3) * 43758.5453) % 1) + (Math.sin(b * 97 + y * 13.1 + x * 7.7 + c * 3.3) < 0 ? 1 : 0);

/** ComfyUI's Gaussian kernel in float64: exp(−(x²+y²)/2σ²) on a [−1, 1]² grid, normalised. */
function refKernel(size: number, sigma: number): number[][] {
  const t = Array.from({ length: size }, (_, i) => (size === 1 ? -1 : -1 + (2 * i) / (size - 1)));
  const g = t.map((a) => t.map((b) => Math.exp(-(a * a + b * b) / (2 * sigma * sigma))));
  const s = g.flat().reduce((p, q) => p + q, 0);
  return g.map((r) => r.map((v) => v / s));
}

/** Reflect-pad (edge not repeated) one channel by building the padded plane explicitly, then a valid correlation. */
function refBlur(t: Tensor, r: number, sigma: number): Float64Array {
  const [B, H, W, C] = t.shape;
  const k = refKernel(2 * r + 1, sigma);
  const out = new Float64Array(t.data.length);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++) {
      const plane = Array.from({ length: H }, (_, y) => Array.from({ length: W }, (_, x) => px(t, b, y, x, c)));
      const rows = [...plane.slice(1, r + 1).reverse(), ...plane, ...plane.slice(H - r - 1, H - 1).reverse()];
      const padded = rows.map((row) => [...row.slice(1, r + 1).reverse(), ...row, ...row.slice(W - r - 1, W - 1).reverse()]);
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) {
          let s = 0;
          for (let i = 0; i <= 2 * r; i++) for (let j = 0; j <= 2 * r; j++) s += k[i][j] * padded[y + i][x + j];
          out[((b * H + y) * W + x) * C + c] = s;
        }
    }
  return out;
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('post-processing', () => {
  const image = img(2, 7, 9, 3, noiseVal);

  it('ImageBlur: ComfyUI kernel on a [−1, 1] grid, reflect border (within 1e-6 of float64)', () => {
    for (const [r, sigma] of [
      [1, 1.0],
      [3, 0.4],
      [6, 2.5],
    ] as const) {
      const [out] = call(ImageBlur, { image, blur_radius: r, sigma });
      expect(out.shape).toEqual(image.shape);
      expect(maxAbs(out.data, refBlur(image, r, sigma))).toBeLessThan(1e-6);
    }
  });

  it('ImageBlur refuses a radius as large as the image (torch reflect padding)', () => {
    expect(() => call(ImageBlur, { image: img(1, 3, 3, 3, noiseVal), blur_radius: 3, sigma: 1 })).toThrow(/radius of 3/);
  });

  it('ImageSharpen = clamp((1 + 10α)·x − 10α·blur(x)) (the kernel identity), within 1e-5', () => {
    for (const [r, sigma, alpha] of [
      [1, 1.0, 1.0],
      [2, 0.7, 0.3],
    ] as const) {
      const [out] = call(ImageSharpen, { image, sharpen_radius: r, sigma, alpha });
      const blur = refBlur(image, r, sigma);
      const want = Array.from(image.data, (v, i) => Math.min(1, Math.max(0, (1 + 10 * alpha) * v - 10 * alpha * blur[i])));
      expect(maxAbs(out.data, want)).toBeLessThan(1e-5);
    }
  });

  it('ImageBlend: every mode by its formula, factor-mixed and clamped; a batch of one broadcasts', () => {
    const a = img(2, 3, 4, 3, noiseVal);
    const b = img(1, 3, 4, 3, (n, y, x, c) => noiseVal(n + 5, y, x, c));
    const formulas: Record<string, (p: number, q: number) => number> = {
      normal: (_p, q) => q,
      multiply: (p, q) => p * q,
      screen: (p, q) => 1 - (1 - p) * (1 - q),
      overlay: (p, q) => (p <= 0.5 ? 2 * p * q : 1 - 2 * (1 - p) * (1 - q)),
      soft_light: (p, q) => {
        const g = p <= 0.25 ? ((16 * p - 12) * p + 4) * p : Math.sqrt(p);
        return q <= 0.5 ? p - (1 - 2 * q) * p * (1 - p) : p + (2 * q - 1) * (g - p);
      },
      difference: (p, q) => p - q,
    };
    expect(Object.keys(formulas).sort()).toEqual([...BLEND_MODES].sort());
    for (const mode of BLEND_MODES) {
      const [out] = call(ImageBlend, { image1: a, image2: b, blend_factor: 0.3, blend_mode: mode });
      const per = 3 * 4 * 3;
      const want = Array.from(a.data, (p, i) => Math.min(1, Math.max(0, p * 0.7 + formulas[mode](p, b.data[i % per]) * 0.3)));
      expect(maxAbs(out.data, want), mode).toBeLessThan(1e-6);
    }
  });

  it('ImageScaleToTotalPixels: √(MP·2²⁰/(w·h)) per side, rounded to resolution_steps', () => {
    const [out] = call(ImageScaleToTotalPixels, {
      image: img(1, 30, 40, 3, noiseVal),
      upscale_method: 'bilinear',
      megapixels: 0.01,
      resolution_steps: 8,
    });
    // scale = √(10485.76/1200) = 2.956…: 40·2.956 = 118.2 → 15·8 = 120, 30·2.956 = 88.7 → 11·8 = 88.
    expect(out.shape).toEqual([1, 88, 120, 3]);
  });
});

describe('nodes_images', () => {
  // A 2×3 picture, value 10·y + x, two channels (second = −value) to follow channels through.
  const pic = img(1, 2, 3, 2, (_b, y, x, c) => (c === 0 ? 10 * y + x : -(10 * y + x)));
  const grid = (t: Tensor): number[][] =>
    Array.from({ length: t.shape[1] }, (_, y) => Array.from({ length: t.shape[2] }, (_, x) => px(t, 0, y, x, 0)));

  it('ImageRotate turns clockwise (torch.rot90 over dims [W, H])', () => {
    // Input rows: [0 1 2] / [10 11 12].
    expect(grid(call(ImageRotate, { image: pic, rotation: '90 degrees' })[0])).toEqual([
      [10, 0],
      [11, 1],
      [12, 2],
    ]);
    expect(grid(call(ImageRotate, { image: pic, rotation: '180 degrees' })[0])).toEqual([
      [12, 11, 10],
      [2, 1, 0],
    ]);
    const r270 = call(ImageRotate, { image: pic, rotation: '270 degrees' })[0];
    expect(grid(r270)).toEqual([
      [2, 12],
      [1, 11],
      [0, 10],
    ]);
    expect(px(r270, 0, 0, 1, 1)).toBe(-12);
    expect(call(ImageRotate, { image: pic, rotation: 'none' })[0]).toBe(pic);
  });

  it('ImageFlip: x-axis mirrors rows (vertically), y-axis columns', () => {
    expect(grid(call(ImageFlip, { image: pic, flip_method: 'x-axis: vertically' })[0])).toEqual([
      [10, 11, 12],
      [0, 1, 2],
    ]);
    expect(grid(call(ImageFlip, { image: pic, flip_method: 'y-axis: horizontally' })[0])).toEqual([
      [2, 1, 0],
      [12, 11, 10],
    ]);
  });

  it('ImageCrop keeps the corner inside the image and cuts at the border', () => {
    expect(grid(call(ImageCrop, { image: pic, width: 2, height: 1, x: 1, y: 1 })[0])).toEqual([[11, 12]]);
    // x beyond the image: clamped to the last column.
    expect(grid(call(ImageCrop, { image: pic, width: 512, height: 512, x: 99, y: 0 })[0])).toEqual([[2], [12]]);
  });

  it('RepeatImageBatch, ImageFromBatch (negative index from the end, clamped length), GetImageSize', () => {
    const batch = img(3, 1, 1, 1, (b) => b);
    const rep = call(RepeatImageBatch, { image: batch, amount: 2 })[0];
    expect(Array.from(rep.data)).toEqual([0, 1, 2, 0, 1, 2]);
    expect(Array.from(call(ImageFromBatch, { image: batch, batch_index: -1, length: 5 })[0].data)).toEqual([2]);
    expect(Array.from(call(ImageFromBatch, { image: batch, batch_index: 1, length: 5 })[0].data)).toEqual([1, 2]);
    expect(Array.from(call(ImageFromBatch, { image: batch, batch_index: 40, length: 1 })[0].data)).toEqual([2]);
    expect(call(GetImageSize, { image: pic })).toEqual([3, 2, 1]);
  });

  it('ImageAddNoise: clip(image + strength·torch.randn(seed)) against torch values', () => {
    const fx = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/torch_randn.json'), 'utf8')) as {
      cases: { seed: string; shape: number[]; values: number[] }[];
    };
    const c = fx.cases.find((k) => k.seed === '0' && k.shape.length === 1 && k.shape[0] === 16)!;
    const image = img(1, 2, 2, 4, (_b, y, x, ch) => 0.25 + (0.1 * (y * 8 + x * 4 + ch)) / 16);
    const [out] = call(ImageAddNoise, { image, seed: 0, strength: 0.2 });
    const want = Array.from(image.data, (v, i) => Math.min(1, Math.max(0, v + 0.2 * c.values[i])));
    // torch's AVX2 and scalar randn kernels differ by up to ~2e-6 (see the fixture's note).
    expect(maxAbs(out.data, want)).toBeLessThan(1e-5);
  });

  it('ImageStitch: right with spacing (even width, colour, opaque alpha), left, and padding without size matching', () => {
    const a = img(1, 2, 2, 3, () => 0.5);
    const b = img(2, 2, 1, 3, (n) => 0.1 * (n + 1));
    const [out] = call(ImageStitch, {
      image1: a,
      direction: 'right',
      match_image_size: false,
      spacing_width: 1,
      spacing_color: 'red',
      image2: b,
    });
    // Batch padded to 2 by repeating a's last item; spacing 1 → 2 columns.
    expect(out.shape).toEqual([2, 2, 5, 3]);
    expect([0, 1, 2, 3, 4].map((x) => px(out, 1, 0, x, 0))).toEqual([0.5, 0.5, 1, 1, Math.fround(0.2)]);
    expect(px(out, 1, 1, 2, 1)).toBe(0);
    const [left] = call(ImageStitch, {
      image1: a,
      direction: 'left',
      match_image_size: false,
      spacing_width: 0,
      spacing_color: 'white',
      image2: b,
    });
    expect([0, 1, 2].map((x) => px(left, 0, 0, x, 0))).toEqual([Math.fround(0.1), 0.5, 0.5]);
    // Down, image2 narrower: padded left/right with the colour (white = 1), floor(pad/2) on the left.
    const c = img(1, 1, 3, 3, () => 0.25);
    const d = img(1, 1, 1, 3, () => 0.75);
    const [down] = call(ImageStitch, {
      image1: c,
      direction: 'down',
      match_image_size: false,
      spacing_width: 0,
      spacing_color: 'white',
      image2: d,
    });
    expect(grid(down)).toEqual([
      [0.25, 0.25, 0.25],
      [1, 0.75, 1],
    ]);
    expect(call(ImageStitch, { image1: c, direction: 'down', match_image_size: true, spacing_width: 0, spacing_color: 'white' })[0]).toBe(
      c,
    );
  });

  it('ResizeAndPadImage: fit inside, centre, pad with the colour', () => {
    const [out] = call(ResizeAndPadImage, {
      image: img(1, 2, 4, 3, () => 0.5),
      target_width: 4,
      target_height: 4,
      padding_color: 'black',
      interpolation: 'nearest-exact',
    });
    expect(grid(out)).toEqual([
      [0, 0, 0, 0],
      [0.5, 0.5, 0.5, 0.5],
      [0.5, 0.5, 0.5, 0.5],
      [0, 0, 0, 0],
    ]);
  });
});

describe('nodes_compositing', () => {
  it('SplitImageWithAlpha gives RGB and 1 − alpha (ones for RGB input); JoinImageWithAlpha inverts it', () => {
    const rgba = img(1, 2, 2, 4, (_b, y, x, c) => (c === 3 ? 0.25 * (y * 2 + x) : 0.1 * (c + 1)));
    const [rgb, mask] = call(SplitImageWithAlpha, { image: rgba });
    expect(rgb.shape).toEqual([1, 2, 2, 3]);
    expect(Array.from(mask.data)).toEqual([1, 0.75, 0.5, 0.25]);
    const [back] = call(JoinImageWithAlpha, { image: rgb, alpha: mask });
    expect(Array.from(back.data)).toEqual(Array.from(rgba.data));
    const [, ones] = call(SplitImageWithAlpha, { image: rgb });
    expect(Array.from(ones.data)).toEqual([0, 0, 0, 0]);
  });

  it('JoinImageWithAlpha resizes the mask with torch bilinear (half-pixel centres, edge clamped)', () => {
    const rgb = img(1, 1, 4, 3, () => 0);
    const mask: Tensor = { shape: [1, 1, 2], data: Float32Array.of(0, 1) };
    const [out] = call(JoinImageWithAlpha, { image: rgb, alpha: mask });
    // Output x samples source (x + 0.5)/2 − 0.5 = −0.25, 0.25, 0.75, 1.25 → clamped to [0, 1]: 0, 0.25, 0.75, 1.
    expect([0, 1, 2, 3].map((x) => px(out, 0, 0, x, 3))).toEqual([1, 0.75, 0.25, 0]);
  });

  it('PorterDuffImageComposite: SRC_OVER and XOR by the premultiplied formulas; masks are 1 − alpha', () => {
    const src = img(1, 1, 2, 3, (_b, _y, x, c) => 0.2 + 0.1 * c + 0.3 * x);
    const dst = img(1, 1, 2, 3, (_b, _y, x, c) => 0.9 - 0.2 * c - 0.1 * x);
    const sm: Tensor = { shape: [1, 1, 2], data: Float32Array.of(0.4, 0) };
    const dm: Tensor = { shape: [1, 1, 2], data: Float32Array.of(0.5, 1) };
    for (const mode of ['SRC_OVER', 'XOR'] as const) {
      const [o, m] = call(PorterDuffImageComposite, { source: src, source_alpha: sm, destination: dst, destination_alpha: dm, mode });
      for (let x = 0; x < 2; x++) {
        const sa = 1 - sm.data[x];
        const da = 1 - dm.data[x];
        const oa = mode === 'SRC_OVER' ? sa + (1 - sa) * da : (1 - da) * sa + (1 - sa) * da;
        expect(m.data[x]).toBeCloseTo(1 - oa, 6);
        for (let c = 0; c < 3; c++) {
          const s = px(src, 0, 0, x, c) * sa;
          const d = px(dst, 0, 0, x, c) * da;
          const oc = mode === 'SRC_OVER' ? s + (1 - sa) * d : (1 - da) * s + (1 - sa) * d;
          expect(px(o, 0, 0, x, c)).toBeCloseTo(Math.min(1, Math.max(0, oa > 1e-5 ? oc / oa : 0)), 6);
        }
      }
    }
  });
});
