import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { medianCutPalette } from '../../engine/image/pil-quantize.ts';
import { ImageQuantize, QUANTIZE_DITHERS, quantizeRgb, type QuantizeDither } from '../../nodes/image/quantize.ts';

/**
 * ImageQuantize against Pillow 9.4 (tests/fixtures/quantize/pil.json.gz, written by
 * scripts/fixtures/quantize-pil.py): the median-cut palette and every dither mode, byte for byte.
 * The bayer modes are also checked against a float64 transcription of ComfyUI's torch code written here.
 */

interface Case {
  name: string;
  width: number;
  height: number;
  colors: number;
  rgb: number[];
  palette: number[];
  numColors: number;
  [mode: string]: unknown;
}

const url = new URL('../fixtures/quantize/pil.json.gz', import.meta.url);
interface LargeCase {
  width: number;
  height: number;
  colors: number;
  palette: number[];
  [mode: string]: unknown;
}
const fixture = JSON.parse(gunzipSync(readFileSync(fileURLToPath(url))).toString('utf8')) as {
  pillow: string;
  cases: Case[];
  large: LargeCase[];
};

function differing(a: Uint8Array, b: number[]): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

/** ComfyUI's Quantize.bayer in float64: normalized Bayer matrix, spread, tiled add, clamp, truncate, nearest palette colour. */
function bayerReference(c: Case, order: number, palette: number[]): number[] {
  const norm = (n: number): number[][] => {
    if (n === 0) return [[0]];
    const q = 4 ** n;
    const m = norm(n - 1).map((row) => row.map((v) => q * v));
    const s = m.length;
    const out: number[][] = [];
    for (let y = 0; y < 2 * s; y++) {
      out.push([]);
      for (let x = 0; x < 2 * s; x++) {
        const v = m[y % s]![x % s]!;
        const d = y < s ? (x < s ? -1.5 : 0.5) : x < s ? 1.5 : -0.5;
        out[y]!.push((v + d) / q);
      }
    }
    return out;
  };
  const nColors = palette.length / 3;
  const spread = (2 * 256) / nColors;
  const matrix = norm(Math.log2(order)).map((row) => row.map((v) => spread * v + 0.5));
  const out: number[] = [];
  for (let y = 0; y < c.height; y++) {
    for (let x = 0; x < c.width; x++) {
      const px = [0, 1, 2].map((ch) => {
        const v = c.rgb[(y * c.width + x) * 3 + ch]! + matrix[y % order]![x % order]!;
        return Math.trunc(Math.min(255, Math.max(0, v)));
      });
      // Pillow's mapping without dither: nearest entry to the colour with its two low bits cleared, first of equals.
      let best = 0;
      let bestD = Infinity;
      for (let i = 0; i < nColors; i++) {
        let d = 0;
        for (let ch = 0; ch < 3; ch++) d += ((px[ch]! & 0xfc) - palette[3 * i + ch]!) ** 2;
        if (d < bestD) {
          bestD = d;
          best = i;
        }
      }
      out.push(palette[3 * best]!, palette[3 * best + 1]!, palette[3 * best + 2]!);
    }
  }
  return out;
}

describe('ImageQuantize against Pillow', () => {
  it('the fixture covers the cases the brief asks for', () => {
    expect(fixture.pillow).toBe('9.4.0');
    const colours = new Set(fixture.cases.map((c) => c.colors));
    for (const n of [2, 4, 16, 256]) expect(colours.has(n)).toBe(true);
    // One image with fewer distinct colours than asked.
    const distinct = (c: Case) => new Set(Array.from({ length: c.rgb.length / 3 }, (_, i) => c.rgb.slice(3 * i, 3 * i + 3).join())).size;
    expect(fixture.cases.some((c) => distinct(c) < c.colors)).toBe(true);
  });

  for (const c of fixture.cases) {
    it(`${c.name}, ${c.colors} colours: median-cut palette`, () => {
      const p = medianCutPalette(Uint8Array.from(c.rgb), c.width * c.height, c.colors);
      expect(p.size).toBe(c.palette.length / 3);
      expect(p.used).toBeLessThanOrEqual(c.colors);
      expect(Array.from(p.colors)).toEqual(c.palette);
    });
    it(`${c.name}, ${c.colors} colours: every dither mode equals Pillow byte for byte`, () => {
      for (const d of QUANTIZE_DITHERS) {
        const out = quantizeRgb(Uint8Array.from(c.rgb), c.width, c.height, c.colors, d);
        expect(differing(out, c[d] as number[]), d).toBe(0);
      }
    });
  }

  for (const c of fixture.large) {
    it(`${c.width}x${c.height} with ${c.width * c.height} distinct colours, ${c.colors} colours (histogram drops low bits)`, () => {
      // The fixture script's image: the low 24 bits of i * 2654435761 as R, G, B bytes.
      const n = c.width * c.height;
      const rgb = new Uint8Array(n * 3);
      for (let i = 0; i < n; i++) {
        const v = Math.imul(i, 2654435761) >>> 0;
        rgb[3 * i] = v & 255;
        rgb[3 * i + 1] = (v >>> 8) & 255;
        rgb[3 * i + 2] = (v >>> 16) & 255;
      }
      expect(Array.from(medianCutPalette(rgb, n, c.colors).colors)).toEqual(c.palette);
      for (const d of ['none', 'floyd-steinberg', 'bayer-4'] as const) {
        const out = quantizeRgb(rgb, c.width, c.height, c.colors, d);
        expect(createHash('sha256').update(out).digest('hex'), d).toBe(c[d]);
      }
    });
  }

  it('bayer modes match a float64 transcription of ComfyUI code', () => {
    let total = 0;
    let diff = 0;
    for (const c of fixture.cases) {
      for (const order of [2, 4, 8, 16]) {
        const ref = bayerReference(c, order, c.palette);
        const out = quantizeRgb(Uint8Array.from(c.rgb), c.width, c.height, c.colors, `bayer-${order}` as QuantizeDither);
        total += out.length;
        diff += differing(out, ref);
      }
    }
    // Pillow 9.4's quantized palette always has 256 entries, so ComfyUI's spread is 2 and its float32
    // thresholds are exact: float64 gives the same bytes.
    expect(total).toBeGreaterThan(0);
    expect(diff).toBe(0);
  });

  it('the node converts IMAGE floats as ComfyUI does and quantizes each batch item on its own', () => {
    const a = fixture.cases.find((c) => c.name.startsWith('gradient-9x13') && c.colors === 4)!;
    const b = fixture.cases.find((c) => c.name.startsWith('five-colours') && c.colors === 4)!;
    const H = a.height;
    const W = a.width;
    // Item 0 is case a; item 1 is case b cropped to a's size and goes through the node alone.
    const crop: number[] = [];
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let ch = 0; ch < 3; ch++) crop.push(b.rgb[(y * b.width + x) * 3 + ch]!);
    const data = new Float32Array(2 * H * W * 3);
    // v / 255 in float32 times 255 in float32 gives v back after truncation for every byte.
    a.rgb.forEach((v, i) => (data[i] = v / 255));
    crop.forEach((v, i) => (data[H * W * 3 + i] = v / 255));
    const image: Tensor = { shape: [2, H, W, 3], data };
    const run = ImageQuantize.run as unknown as (args: Record<string, unknown>, ctx: NodeContext) => Tensor[];
    const [out] = run({ image, colors: 4, dither: 'floyd-steinberg' }, {} as NodeContext);
    expect(out!.shape).toEqual([2, H, W, 3]);
    const first = Array.from(out!.data.subarray(0, H * W * 3), (v) => Math.round(v * 255));
    expect(first).toEqual(a['floyd-steinberg']);
    const second = quantizeRgb(Uint8Array.from(crop), W, H, 4, 'floyd-steinberg');
    expect(Array.from(out!.data.subarray(H * W * 3), (v) => Math.round(v * 255))).toEqual(Array.from(second));
    expect(out!.data[0]).toBe(Math.fround(a['floyd-steinberg'] !== undefined ? (a['floyd-steinberg'] as number[])[0]! / 255 : NaN));
  });

  it('rejects a non-RGB image and bad settings with clear errors', () => {
    const run = ImageQuantize.run as unknown as (args: Record<string, unknown>, ctx: NodeContext) => Tensor[];
    const rgba: Tensor = { shape: [1, 2, 2, 4], data: new Float32Array(16) };
    expect(() => run({ image: rgba, colors: 4, dither: 'none' }, {} as NodeContext)).toThrow(/RGB IMAGE \[B, H, W, 3\]/);
    const rgb: Tensor = { shape: [1, 2, 2, 3], data: new Float32Array(12) };
    expect(() => run({ image: rgb, colors: 0, dither: 'none' }, {} as NodeContext)).toThrow(/colors must be an integer 1..256/);
    expect(() => run({ image: rgb, colors: 4, dither: 'bayer-3' }, {} as NodeContext)).toThrow(/unknown dither 'bayer-3'/);
  });
});
