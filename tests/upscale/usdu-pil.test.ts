import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { compositeOverOpaque, gaussianBlur, type Gray8 } from '../../engine/image/usdu/pil-ops.ts';
import { bandPassGradients, cornerGradient, halfTileGradients } from '../../engine/image/usdu/seam-masks.ts';

/*
 * The Pillow operations of Ultimate SD Upscale's masks, byte for byte against Pillow 9.4's outputs
 * (tests/fixtures/usdu/pil.json.gz, from scripts/fixtures/usdu-pil.py): GaussianBlur, the seam-fix
 * gradients (BICUBIC resizes of linear/radial gradients, rotations, pastes) and the paste-back.
 */

interface Fixture {
  blur: { w: number; h: number; src: number[]; radius: number; out: number[] }[];
  halfTile: { tw: number; th: number; row: number[]; col: number[] }[];
  corners: { tw: number; th: number; mask: number[] }[];
  band: { iw: number; ih: number; width: number; row: number[]; col: number[] }[];
  composite: {
    w: number;
    h: number;
    tw: number;
    th: number;
    x: number;
    y: number;
    init: number[];
    tile: number[];
    mask: number[];
    out: number[];
  }[];
}

const fx = JSON.parse(gunzipSync(readFileSync('tests/fixtures/usdu/pil.json.gz')).toString()) as Fixture;
const bytes = (g: Gray8): number[] => [...g.data];

describe('Pillow operations of Ultimate SD Upscale (exact bytes)', () => {
  it('GaussianBlur(radius) of rectangles and noise, radii 1 to 13', () => {
    expect(fx.blur.length).toBe(15);
    for (const c of fx.blur)
      expect(bytes(gaussianBlur({ w: c.w, h: c.h, data: Uint8Array.from(c.src) }, c.radius)), `${c.w}x${c.h} r=${c.radius}`).toEqual(c.out);
  });

  it('half-tile row/column gradients, the inverted radial gradient of the intersections and the band-pass gradients', () => {
    for (const c of fx.halfTile) {
      const g = halfTileGradients(c.tw, c.th);
      expect(bytes(g.row), `row ${c.tw}x${c.th}`).toEqual(c.row);
      expect(bytes(g.col), `col ${c.tw}x${c.th}`).toEqual(c.col);
    }
    for (const c of fx.corners) expect(bytes(cornerGradient(c.tw, c.th)), `corner ${c.tw}x${c.th}`).toEqual(c.mask);
    for (const c of fx.band) {
      const g = bandPassGradients(c.iw, c.ih, c.width);
      expect(bytes(g.row)).toEqual(c.row);
      expect(bytes(g.col)).toEqual(c.col);
    }
  });

  it('paste-back: the tile under the mask as alpha, alpha_composite over the image, as RGB', () => {
    for (const c of fx.composite) {
      const out = Uint8Array.from(c.init);
      for (let y = 0; y < c.h; y++)
        for (let x = 0; x < c.w; x++) {
          const tx = x - c.x;
          const ty = y - c.y;
          if (tx < 0 || ty < 0 || tx >= c.tw || ty >= c.th) continue;
          const a = c.mask[y * c.w + x];
          for (let k = 0; k < 3; k++)
            out[(y * c.w + x) * 3 + k] = compositeOverOpaque(c.tile[(ty * c.tw + tx) * 3 + k], a, c.init[(y * c.w + x) * 3 + k]);
        }
      expect([...out]).toEqual(c.out);
    }
  });
});
