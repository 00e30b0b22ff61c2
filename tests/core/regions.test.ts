import { describe, expect, it } from 'vitest';
import { cropRegion, featherMask, featherRamp, maskBoundingBox, pasteRegion, type Layout } from '../../engine/core/regions.ts';
import type { Tensor } from '../../engine/core/tensor.ts';

function random(shape: number[], seed: number): Tensor {
  let s = seed >>> 0;
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 2 ** 32;
  }
  return { shape, data };
}

/** Element (n, c, y, x) of a tensor in either layout. */
function at(t: Tensor, layout: Layout, n: number, c: number, y: number, x: number): number {
  const [, d1, d2, d3] = t.shape;
  return layout === 'NCHW' ? t.data[((n * d1 + c) * d2 + y) * d3 + x] : t.data[((n * d1 + y) * d2 + x) * d3 + c];
}

describe('cropRegion', () => {
  it.each(['NCHW', 'NHWC'] as const)('%s: takes exactly the region of every item and channel', (layout) => {
    const shape = layout === 'NCHW' ? [2, 3, 7, 9] : [2, 7, 9, 3];
    const t = random(shape, 1);
    const c = cropRegion(t, { x: 2, y: 1, width: 5, height: 4 }, layout);
    expect(c.shape).toEqual(layout === 'NCHW' ? [2, 3, 4, 5] : [2, 4, 5, 3]);
    for (let n = 0; n < 2; n++)
      for (let k = 0; k < 3; k++)
        for (let y = 0; y < 4; y++) for (let x = 0; x < 5; x++) expect(at(c, layout, n, k, y, x)).toBe(at(t, layout, n, k, y + 1, x + 2));
  });

  it('refuses a region that is not inside the image', () => {
    const t = random([1, 1, 4, 4], 2);
    expect(() => cropRegion(t, { x: 2, y: 0, width: 3, height: 2 })).toThrow('region 3x2 at (2, 0) is not inside the 4x4 image');
    expect(() => cropRegion(t, { x: -1, y: 0, width: 2, height: 2 })).toThrow(/not inside/);
    expect(() => cropRegion(t, { x: 0, y: 0, width: 0, height: 2 })).toThrow(/not inside/);
  });
});

describe('pasteRegion', () => {
  it.each(['NCHW', 'NHWC'] as const)('%s: crop → paste with a full mask round-trips exactly', (layout) => {
    const shape = layout === 'NCHW' ? [2, 3, 16, 12] : [2, 16, 12, 3];
    const image = random(shape, 3);
    const r = { x: 3, y: 5, width: 6, height: 8 };
    const crop = cropRegion(image, r, layout);
    const blank = { shape, data: new Float32Array(image.data.length).fill(0.25) };
    // Pasting the crop back over the original changes nothing, bit for bit.
    expect(pasteRegion(image, crop, r.x, r.y, layout).data).toEqual(image.data);
    const full = { shape: [r.height, r.width], data: new Float32Array(r.width * r.height).fill(1) };
    expect(pasteRegion(image, crop, r.x, r.y, layout, { mask: full }).data).toEqual(image.data);
    // Over another image, the region is the crop and the rest untouched.
    const pasted = pasteRegion(blank, crop, r.x, r.y, layout, { mask: full });
    expect(cropRegion(pasted, r, layout).data).toEqual(crop.data);
    let outside = 0;
    for (let n = 0; n < 2; n++)
      for (let y = 0; y < 16; y++)
        for (let x = 0; x < 12; x++) {
          if (x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height) continue;
          for (let k = 0; k < 3; k++) outside += at(pasted, layout, n, k, y, x) === 0.25 ? 0 : 1;
        }
    expect(outside).toBe(0);
    expect(blank.data.every((v) => v === 0.25)).toBe(true); // the destination is not written
  });

  it('feathered paste equals the hand-computed linear blend at the seam', () => {
    // A 1x1x6x10 destination of 0s, a 4x6 source of 1s pasted at (2, 1) with a 2-pixel feather:
    // weights along x are 1/2, 1, 1, 1, 1, 1/2 ... i.e. (t+1)/2 for the two pixels at each edge.
    const dest: Tensor = { shape: [1, 1, 6, 10], data: new Float32Array(60) };
    const src: Tensor = { shape: [1, 1, 4, 6], data: new Float32Array(24).fill(1) };
    const out = pasteRegion(dest, src, 2, 1, 'NCHW', { feather: 2 });
    const wy = [0.5, 1, 1, 0.5];
    const wx = [0.5, 1, 1, 1, 1, 0.5];
    for (let y = 0; y < 6; y++) {
      for (let x = 0; x < 10; x++) {
        const inside = y >= 1 && y < 5 && x >= 2 && x < 8;
        expect(out.data[y * 10 + x], `(${x}, ${y})`).toBe(inside ? wy[y - 1] * wx[x - 2] : 0);
      }
    }
    // Over a non-zero destination with a mask: m·src + (1 − m)·dest with m = mask · feather.
    const d2: Tensor = { shape: [1, 6, 10, 1], data: new Float32Array(60).fill(0.2) };
    const s2: Tensor = { shape: [1, 4, 6, 1], data: new Float32Array(24).fill(0.9) };
    const mask: Tensor = { shape: [1, 4, 6], data: new Float32Array(24).fill(0.5) };
    const o2 = pasteRegion(d2, s2, 2, 1, 'NHWC', { mask, feather: 2 });
    const f = Math.fround;
    const blend = (m: number) => f(f(m * f(0.9)) + f(f(1 - m) * f(0.2)));
    expect(o2.data[1 * 10 + 2]).toBe(blend(f(0.5 * 0.25))); // corner of the seam: both ramps at 1/2
    expect(o2.data[1 * 10 + 4]).toBe(blend(f(0.5 * 0.5))); // top edge, inside along x
    expect(o2.data[3 * 10 + 5]).toBe(blend(0.5)); // inside: the mask alone
    expect(o2.data[3 * 10 + 8]).toBe(f(0.2)); // just outside
  });

  it('clips a source that sticks out, broadcasts a batch-1 source, and checks shapes', () => {
    const dest: Tensor = { shape: [2, 1, 3, 3], data: new Float32Array(18) };
    const src: Tensor = { shape: [1, 1, 2, 2], data: Float32Array.from([1, 2, 3, 4]) };
    const out = pasteRegion(dest, src, 2, -1, 'NCHW');
    expect(Array.from(out.data)).toEqual([0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0]);
    expect(() => pasteRegion(dest, { shape: [1, 2, 2, 2], data: new Float32Array(8) }, 0, 0)).toThrow(
      'destination has 1 channels but source has 2',
    );
    expect(() => pasteRegion(dest, src, 0, 0, 'NCHW', { mask: { shape: [3, 3], data: new Float32Array(9) } })).toThrow(/does not fit/);
  });
});

describe('feather helpers', () => {
  it('ramps linearly over the feather at both ends, all ones when the length is too small', () => {
    expect(Array.from(featherRamp(6, 3))).toEqual([1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3].map(Math.fround));
    expect(Array.from(featherRamp(3, 3))).toEqual([1, 1, 1]);
    expect(Array.from(featherMask(2, 3, 1))).toEqual([1, 1, 1, 1, 1, 1]);
    expect(Array.from(featherMask(3, 4, 2))).toEqual([0.25, 0.5, 0.5, 0.25, 0.5, 1, 1, 0.5, 0.25, 0.5, 0.5, 0.25]);
  });
});

describe('maskBoundingBox', () => {
  // A 10 (high) x 12 (wide) mask with pixels at rows 3..5, columns 4..6 (and one faint pixel).
  const mask: Tensor = { shape: [1, 10, 12], data: new Float32Array(120) };
  for (let y = 3; y <= 5; y++) for (let x = 4; x <= 6; x++) mask.data[y * 12 + x] = 1;
  mask.data[8 * 12 + 10] = 0.1;

  it('is the tight box of the pixels above the threshold', () => {
    expect(maskBoundingBox(mask, { threshold: 0.5 })).toEqual({ x: 4, y: 3, width: 3, height: 3 });
    expect(maskBoundingBox(mask)).toEqual({ x: 4, y: 3, width: 7, height: 6 });
    expect(maskBoundingBox({ shape: [4, 4], data: new Float32Array(16) })).toBeUndefined();
  });

  it('grows by the padding and clamps to the image', () => {
    expect(maskBoundingBox(mask, { threshold: 0.5, padding: 2 })).toEqual({ x: 2, y: 1, width: 7, height: 7 });
    // Padding 4 would reach x = 0, y = -1 and x = 11, y = 10: clamped to 0 and the edges.
    expect(maskBoundingBox(mask, { threshold: 0.5, padding: 4 })).toEqual({ x: 0, y: 0, width: 11, height: 10 });
    expect(maskBoundingBox(mask, { threshold: 0.5, padding: 20 })).toEqual({ x: 0, y: 0, width: 12, height: 10 });
  });

  it('rounds to a multiple, centred and kept inside the image', () => {
    // 7x7 at (2, 1) → 8x8: one more pixel, taken before (floor of half the growth is 0) → x 2, y 1.
    expect(maskBoundingBox(mask, { threshold: 0.5, padding: 2, multipleOf: 8 })).toEqual({ x: 2, y: 1, width: 8, height: 8 });
    // 3x3 at (4, 3) → 8x8 centred: x = 4 - 2 = 2, y = 3 - 2 = 1.
    expect(maskBoundingBox(mask, { threshold: 0.5, multipleOf: 8 })).toEqual({ x: 2, y: 1, width: 8, height: 8 });
    // 11x10 → 16 is wider than 12 and 16 taller than 10: shrunk to the largest multiple inside (8),
    // centred on the box: x = 0 + trunc(3 / 2) = 1, y = 0 + trunc(2 / 2) = 1.
    expect(maskBoundingBox(mask, { threshold: 0.5, padding: 4, multipleOf: 8 })).toEqual({ x: 1, y: 1, width: 8, height: 8 });
    // An image smaller than the multiple keeps its whole size.
    expect(maskBoundingBox({ shape: [3, 5], data: new Float32Array(15).fill(1) }, { multipleOf: 8 })).toEqual({
      x: 0,
      y: 0,
      width: 5,
      height: 3,
    });
    // Near the right edge the box shifts left to stay inside.
    const edge: Tensor = { shape: [10, 12], data: new Float32Array(120) };
    edge.data[5 * 12 + 11] = 1;
    expect(maskBoundingBox(edge, { multipleOf: 4 })).toEqual({ x: 8, y: 4, width: 4, height: 4 });
  });
});
