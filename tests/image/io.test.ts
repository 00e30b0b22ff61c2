import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImageFile, encodeJpeg, encodePng, fromRgb8, imageToPreview, toRgb8 } from '../../engine/image/io.ts';
import { quantize8 } from '../../engine/image/quantize.ts';
import { expectClose, t } from './references.ts';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-image-io-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const file = (name: string): string => path.join(dir, name);

/** An uncompressed little-endian RGB TIFF with one page per entry (pages may differ in size). */
function multiPageTiff(pages: { w: number; h: number; rgb: number[] }[]): Buffer {
  const parts: Buffer[] = [];
  let offset = 8;
  const header = Buffer.alloc(8);
  header.write('II', 0, 'latin1');
  header.writeUInt16LE(42, 2);
  header.writeUInt32LE(8, 4);
  parts.push(header);
  pages.forEach((p, i) => {
    const entries = 10;
    const ifdSize = 2 + entries * 12 + 4;
    const bpsAt = offset + ifdSize;
    const dataAt = bpsAt + 6;
    const pixels = Buffer.from(p.rgb);
    const next = i === pages.length - 1 ? 0 : dataAt + pixels.length;
    const ifd = Buffer.alloc(ifdSize);
    ifd.writeUInt16LE(entries, 0);
    const tags: [number, number, number, number][] = [
      [256, 4, 1, p.w],
      [257, 4, 1, p.h],
      [258, 3, 3, bpsAt],
      [259, 3, 1, 1],
      [262, 3, 1, 2],
      [273, 4, 1, dataAt],
      [277, 3, 1, 3],
      [278, 4, 1, p.h],
      [279, 4, 1, pixels.length],
      [284, 3, 1, 1],
    ];
    tags.forEach(([tag, type, count, value], k) => {
      const o = 2 + k * 12;
      ifd.writeUInt16LE(tag, o);
      ifd.writeUInt16LE(type, o + 2);
      ifd.writeUInt32LE(count, o + 4);
      if (type === 3 && count === 1) ifd.writeUInt16LE(value, o + 8);
      else ifd.writeUInt32LE(value, o + 8);
    });
    ifd.writeUInt32LE(next, 2 + entries * 12);
    const bps = Buffer.alloc(6);
    for (let k = 0; k < 3; k++) bps.writeUInt16LE(8, k * 2);
    parts.push(ifd, bps, pixels);
    offset = dataAt + pixels.length;
  });
  return Buffer.concat(parts);
}

describe('decodeImageFile', () => {
  it('reads RGB and alpha of an 8-bit RGBA PNG as v / 255', async () => {
    const px = [255, 0, 0, 255, 0, 128, 255, 0, 10, 20, 30, 64];
    await sharp(Buffer.from(px), { raw: { width: 3, height: 1, channels: 4 } })
      .png()
      .toFile(file('rgba.png'));
    const d = await decodeImageFile(file('rgba.png'));
    expect(d.frames.shape).toEqual([1, 1, 3, 3]);
    expectClose(
      d.frames.data,
      [255, 0, 0, 0, 128, 255, 10, 20, 30].map((v) => v / 255),
      1e-7,
    );
    expect(d.alpha?.shape).toEqual([1, 1, 3]);
    expectClose(d.alpha!.data, [1, 0, 64 / 255], 1e-7);
  });

  it('has no alpha for an RGB file and spreads grey to three channels', async () => {
    await sharp(Buffer.from([0, 51, 255, 7]), { raw: { width: 2, height: 2, channels: 1 } })
      .png()
      .toFile(file('grey.png'));
    const d = await decodeImageFile(file('grey.png'));
    expect(d.alpha).toBeUndefined();
    expectClose(
      d.frames.data,
      [0, 0, 0, 51, 51, 51, 255, 255, 255, 7, 7, 7].map((v) => v / 255),
      1e-7,
    );
  });

  it('scales 16-bit PNG samples by 1/65535', async () => {
    const v = [0, 1000, 65535, 32768, 12345, 65534];
    // sharp takes the sample depth of raw input from the typed array's type
    const png = await sharp(Uint16Array.from(v), { raw: { width: 2, height: 1, channels: 3 } })
      .toColourspace('rgb16')
      .png()
      .toBuffer();
    expect((await sharp(png).metadata()).depth).toBe('ushort');
    const d = await decodeImageFile(png);
    expectClose(
      d.frames.data,
      v.map((x) => x / 65535),
      1e-7,
    );
  });

  it('applies EXIF orientation 6 (rotate 90° clockwise)', async () => {
    // 16×8, left half black, right half white; rotated clockwise the left half ends up on top.
    const raw = Buffer.alloc(16 * 8 * 3);
    for (let y = 0; y < 8; y++) for (let x = 8; x < 16; x++) raw.fill(255, (y * 16 + x) * 3, (y * 16 + x) * 3 + 3);
    await sharp(raw, { raw: { width: 16, height: 8, channels: 3 } })
      .jpeg({ quality: 100 })
      .withMetadata({ orientation: 6 })
      .toFile(file('rot.jpg'));
    expect((await sharp(file('rot.jpg')).metadata()).orientation).toBe(6);
    const d = await decodeImageFile(file('rot.jpg'));
    expect(d.frames.shape).toEqual([1, 16, 8, 3]);
    const mean = (y0: number, y1: number): number => {
      let s = 0;
      for (let i = y0 * 8 * 3; i < y1 * 8 * 3; i++) s += d.frames.data[i];
      return s / ((y1 - y0) * 8 * 3);
    };
    expect(mean(0, 6)).toBeLessThan(0.05);
    expect(mean(10, 16)).toBeGreaterThan(0.95);
  });

  it('gives every frame of an animated GIF and WebP as a batch', async () => {
    const frames = await Promise.all(
      [0, 100, 200].map((v) =>
        sharp(Buffer.alloc(4 * 3 * 3, v), { raw: { width: 4, height: 3, channels: 3 } })
          .png()
          .toBuffer(),
      ),
    );
    for (const fmt of ['gif', 'webp'] as const) {
      const anim = sharp(frames, { join: { animated: true } });
      const buf = await (fmt === 'gif' ? anim.gif() : anim.webp({ lossless: true })).toBuffer();
      const d = await decodeImageFile(buf, { name: `anim.${fmt}` });
      expect(d.frames.shape, fmt).toEqual([3, 3, 4, 3]);
      for (let f = 0; f < 3; f++) expect(d.frames.data[f * 36], fmt).toBeCloseTo([0, 100, 200][f] / 255, 2);
      await expect(decodeImageFile(buf, { name: `anim.${fmt}`, maxFrames: 2 })).rejects.toThrow(
        new RegExp(`anim\\.${fmt}: has 3 frames, more than the 2`),
      );
    }
  });

  it('reports alpha of palette images (GIF) only when some pixel is transparent', async () => {
    const opaque = await sharp(Buffer.alloc(2 * 2 * 3, 90), { raw: { width: 2, height: 2, channels: 3 } })
      .gif()
      .toBuffer();
    expect((await decodeImageFile(opaque)).alpha).toBeUndefined();
    const px = Buffer.from([200, 0, 0, 255, 200, 0, 0, 0, 0, 200, 0, 255, 0, 200, 0, 255]);
    const holed = await sharp(px, { raw: { width: 2, height: 2, channels: 4 } })
      .gif()
      .toBuffer();
    const d = await decodeImageFile(holed);
    expectClose(d.alpha!.data, [1, 0, 1, 1], 1e-7);
  });

  it('skips frames whose size differs from the first, as ComfyUI does', async () => {
    const page = (w: number, h: number, v: number) => ({ w, h, rgb: new Array(w * h * 3).fill(v) });
    const tiff = multiPageTiff([page(4, 3, 10), page(2, 2, 20), page(4, 3, 30)]);
    fs.writeFileSync(file('pages.tif'), tiff);
    const d = await decodeImageFile(file('pages.tif'));
    expect(d.frames.shape).toEqual([2, 3, 4, 3]);
    expect(d.frames.data[0]).toBeCloseTo(10 / 255, 7);
    expect(d.frames.data[36]).toBeCloseTo(30 / 255, 7);
  });

  it('refuses oversize and broken files with the file named', async () => {
    await sharp(Buffer.alloc(30 * 20 * 3), { raw: { width: 30, height: 20, channels: 3 } })
      .png()
      .toFile(file('big.png'));
    await expect(decodeImageFile(file('big.png'), { maxPixels: 500 })).rejects.toThrow(/big\.png.*(pixel|exceeds)/);
    await expect(decodeImageFile(file('big.png'), { maxTotalPixels: 100 })).rejects.toThrow(/big\.png.*600 pixels, more than the 100/);
    fs.writeFileSync(file('broken.png'), Buffer.from('\x89PNG\r\n\x1a\nnot really'));
    await expect(decodeImageFile(file('broken.png'))).rejects.toThrow(/broken\.png/);
    await expect(decodeImageFile(file('missing.png'))).rejects.toThrow(/missing\.png/);
  });
});

describe('8-bit conversion as ComfyUI saves', () => {
  it('clip(255·x) truncated, with the product in float32', () => {
    expect([0, 1, 0.5, 0.999, 1.5, -1, Number.NaN, 254.5 / 255, 1e-9].map(quantize8)).toEqual([0, 255, 127, 254, 255, 0, 0, 254, 0]);
    // every byte survives v/255 in float32 and back (numpy gives the same for all 256 values)
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const img = fromRgb8(all, 256, 1, 1);
    expect(img.shape).toEqual([1, 1, 256, 1]);
    expect([...toRgb8(img).data]).toEqual([...all]);
  });

  it('toRgb8 picks one item of a batch and checks the index', () => {
    const img = t([2, 1, 1, 3], [0, 0, 0, 1, 0.5, 0.25]);
    expect([...toRgb8(img, 1).data]).toEqual([255, 127, 63]);
    expect(() => toRgb8(img, 2)).toThrow(/index 2 is outside a batch of 2/);
    expect(() => fromRgb8(new Uint8Array(5), 2, 1)).toThrow(/5 bytes/);
  });

  it('encodePng writes 8-bit RGB / RGBA that decodes to the quantised bytes', async () => {
    const rgb = t([2, 1, 2, 3], [0, 0.5, 1, 0.2, 0.4, 0.6, 1, 1, 1, 0, 0, 0]);
    const png = await encodePng(rgb, { compressionLevel: 4, index: 0 });
    const back = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect(back.info.channels).toBe(3);
    expect([...back.data]).toEqual([0, 127, 255, 51, 102, 153]);
    const rgba = t([1, 1, 1, 4], [1, 0, 0, 0.5]);
    const b2 = await sharp(await encodePng(rgba, { compressionLevel: 1 }))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([...b2.data]).toEqual([255, 0, 0, 127]);
  });

  it('previews as 8-bit RGB and JPEG', async () => {
    const grey = t([1, 2, 2, 1], [0, 0.5, 1, 0.25]);
    const p = imageToPreview(grey);
    expect([...p.rgb]).toEqual([0, 0, 0, 127, 127, 127, 255, 255, 255, 63, 63, 63]);
    const jpg = await encodeJpeg(p, 90);
    expect([jpg[0], jpg[1]]).toEqual([0xff, 0xd8]);
    expect((await sharp(jpg).metadata()).width).toBe(2);
    await expect(encodeJpeg({ width: 2, height: 2, rgb: new Uint8Array(3) })).rejects.toThrow(/needs 12 RGB bytes/);
  });
});
