import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { cropConditioningMask, resizeNearest } from '../../engine/image/usdu/mask-crop.ts';
import type { Box } from '../../engine/image/usdu/geometry.ts';

/*
 * Ultimate SD Upscale's conditioning-mask crop (the port's crop_mask: 8-bit mask, BICUBIC to the
 * canvas, crop, resize_and_pad_image with edge fill, LANCZOS) byte for byte against Pillow 9.4
 * (tests/fixtures/usdu/mask-crop.json.gz, from scripts/fixtures/usdu-mask-crop.py), and Pillow's
 * NEAREST resize that the edge fill uses.
 */

interface Fixture {
  cases: { shape: number[]; mask: number[]; canvas: [number, number]; region: number[]; tile: [number, number]; bytes: number[] }[];
  nearest: { w: number; h: number; ow: number; oh: number; src: number[]; out: number[] }[];
}

const fx = JSON.parse(gunzipSync(readFileSync('tests/fixtures/usdu/mask-crop.json.gz')).toString('utf8')) as Fixture;

describe('Ultimate SD Upscale mask crop', () => {
  it('Pillow NEAREST resize, byte-exact', () => {
    expect(fx.nearest.length).toBeGreaterThan(0);
    for (const c of fx.nearest) {
      const out = resizeNearest({ w: c.w, h: c.h, data: Uint8Array.from(c.src) }, c.ow, c.oh);
      expect([out.w, out.h]).toEqual([c.ow, c.oh]);
      expect(Array.from(out.data)).toEqual(c.out);
    }
  });

  it('crop_mask equals the Pillow pipeline byte for byte (same-aspect, padded rows, padded columns, odd margins, batches, low-res masks)', () => {
    expect(fx.cases.length).toBeGreaterThan(5);
    for (const c of fx.cases) {
      const out = cropConditioningMask({ shape: c.shape, data: Float32Array.from(c.mask) }, c.canvas, c.region as unknown as Box, c.tile);
      expect(out.shape).toEqual([c.shape[0], c.tile[1], c.tile[0]]);
      const got = Array.from(out.data, (v) => v * 255);
      // Each value is a byte / 255 in float32: ×255 returns the byte within float32 rounding.
      let worst = 0;
      got.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - c.bytes[i]))));
      expect(worst, `case region ${c.region.join(',')} tile ${c.tile.join('x')}`).toBeLessThan(1e-4);
    }
  });

  it('a region covering a canvas-sized mask at the canvas size keeps the mask (up to its 8-bit rounding)', () => {
    const w = 24;
    const h = 16;
    const data = Float32Array.from({ length: w * h }, (_, i) => ((i * 37) % 101) / 100);
    const out = cropConditioningMask({ shape: [h, w], data }, [w, h], [0, 0, w, h], [w, h]);
    expect(out.shape).toEqual([1, h, w]);
    for (let i = 0; i < w * h; i++) expect(out.data[i]).toBe(Math.fround(Math.trunc(Math.fround(255 * data[i])) / 255));
  });
});
