import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { NodeRegistry } from '../../engine/registry/registry.ts';
import { ImageCompositeMasked } from '../../nodes/image/composite.ts';
import { LoadImage, LoadImageMask } from '../../nodes/image/load-image.ts';
import { SaveImage } from '../../nodes/image/save-image.ts';
import {
  EmptyImage,
  ImageBatch,
  ImageInvert,
  ImagePadForOutpaint,
  ImageScale,
  ImageScaleBy,
  nodes as transformNodes,
} from '../../nodes/image/transform.ts';
import { TestWorld } from './context.ts';
import { expectClose, t } from './references.ts';

const world = new TestWorld('image-nodes');
afterAll(() => world.remove());
const run = (def: Parameters<TestWorld['run']>[0], args: Record<string, unknown>) => world.run(def, args) as Promise<Tensor[]>;
const grey = (shape: number[], v: number): Tensor => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(v) });

describe('ImageScale / ImageScaleBy', () => {
  it('keeps the aspect ratio when one side is 0, rounding ties to even as Python', async () => {
    const [a] = await run(ImageScale, {
      image: grey([1, 2, 4, 3], 0.2),
      upscale_method: 'bilinear',
      width: 8,
      height: 0,
      crop: 'disabled',
    });
    expect(a.shape).toEqual([1, 4, 8, 3]);
    // 4 high, 5 wide, height 2 → width round(5·2/4) = round(2.5) = 2
    const [b] = await run(ImageScale, { image: grey([1, 4, 5, 3], 0.2), upscale_method: 'area', width: 0, height: 2, crop: 'disabled' });
    expect(b.shape).toEqual([1, 2, 2, 3]);
    const src = grey([1, 2, 2, 3], 0.7);
    const [same] = await run(ImageScale, { image: src, upscale_method: 'bicubic', width: 0, height: 0, crop: 'center' });
    expect(same).toBe(src);
  });

  it('nearest-exact doubles pixels', async () => {
    const [o] = await run(ImageScale, {
      image: t([1, 1, 2, 1], [0.1, 0.9]),
      upscale_method: 'nearest-exact',
      width: 4,
      height: 1,
      crop: 'disabled',
    });
    expectClose(o.data, [0.1, 0.1, 0.9, 0.9]);
  });

  it('ImageScaleBy multiplies both sides and rounds ties to even', async () => {
    // 5 wide, 2 high, ×0.5 → round(2.5) = 2 by round(1.0) = 1
    const [o] = await run(ImageScaleBy, { image: grey([1, 2, 5, 3], 0.4), upscale_method: 'area', scale_by: 0.5 });
    expect(o.shape).toEqual([1, 1, 2, 3]);
    expectClose(o.data, new Array(6).fill(0.4));
    await expect(run(ImageScaleBy, { image: grey([1, 1, 1, 3], 0), upscale_method: 'area', scale_by: 0.4 })).rejects.toThrow(/empty/);
  });
});

describe('ImageInvert, EmptyImage, ImageBatch', () => {
  it('ImageInvert inverts colour and keeps a fourth (alpha) channel', async () => {
    const [inv] = await run(ImageInvert, { image: t([1, 1, 1, 3], [0, 0.25, 1]) });
    expectClose(inv.data, [1, 0.75, 0]);
    const [inv4] = await run(ImageInvert, { image: t([1, 1, 1, 4], [0, 0.25, 1, 0.3]) });
    expectClose(inv4.data, [1, 0.75, 0, 0.3]);
  });

  it('EmptyImage fills with the 0xRRGGBB colour', async () => {
    const [e] = await run(EmptyImage, { width: 2, height: 1, batch_size: 2, color: 0xff8000 });
    expect(e.shape).toEqual([2, 1, 2, 3]);
    expectClose(e.data, [1, 128 / 255, 0, 1, 128 / 255, 0, 1, 128 / 255, 0, 1, 128 / 255, 0]);
  });

  it('ImageBatch resizes image2 to image1 (bilinear after a centre crop)', async () => {
    // 1×3 strip 0, .5, 1 → square crop keeps the middle pixel → 2×2 of 0.5
    const [b] = await run(ImageBatch, { image1: grey([1, 2, 2, 3], 0), image2: t([1, 1, 3, 3], [0, 0, 0, 0.5, 0.5, 0.5, 1, 1, 1]) });
    expect(b.shape).toEqual([2, 2, 2, 3]);
    expectClose(b.data.subarray(0, 12), new Array(12).fill(0));
    expectClose(b.data.subarray(12), new Array(12).fill(0.5));
  });

  it('ImageBatch gives an RGB image an opaque alpha to match RGBA', async () => {
    const [b] = await run(ImageBatch, { image1: t([1, 1, 1, 4], [0.1, 0.2, 0.3, 0.4]), image2: t([1, 1, 1, 3], [0.5, 0.6, 0.7]) });
    expect(b.shape).toEqual([2, 1, 1, 4]);
    expectClose(b.data, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1]);
  });
});

describe('ImagePadForOutpaint', () => {
  it('pads with grey 0.5 and marks the new area 1 in the mask', async () => {
    const img = grey([1, 4, 6, 3], 1);
    const [o, m] = await run(ImagePadForOutpaint, { image: img, left: 2, top: 1, right: 0, bottom: 0, feathering: 0 });
    expect(o.shape).toEqual([1, 5, 8, 3]);
    expect(m.shape).toEqual([1, 5, 8]);
    expectClose(o.data.subarray(0, 3), [0.5, 0.5, 0.5]); // (0, 0) padded
    expectClose(o.data.subarray((1 * 8 + 2) * 3, (1 * 8 + 2) * 3 + 3), [1, 1, 1]); // (1, 2) original
    expect([...m.data.subarray(0, 8)]).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    expect([...m.data.subarray(8, 16)]).toEqual([1, 1, 0, 0, 0, 0, 0, 0]);
  });

  it('feathers ((f − d) / f)² from padded sides only, and only when 2·f is below both sides', async () => {
    // 5×6 image, left 2, feathering 2: 4 < 5 and 4 < 6, d = column index → 1, ¼, 0, …
    const [, m] = await run(ImagePadForOutpaint, { image: grey([1, 5, 6, 3], 0), left: 2, top: 0, right: 0, bottom: 0, feathering: 2 });
    expect([...m.data.subarray(0, 8)]).toEqual([1, 1, 1, 0.25, 0, 0, 0, 0]);
    // 4×6 image: 2·2 is not below 4, so no feathering at all
    const [, m2] = await run(ImagePadForOutpaint, { image: grey([1, 4, 6, 3], 0), left: 2, top: 0, right: 0, bottom: 0, feathering: 2 });
    expect([...m2.data.subarray(0, 8)]).toEqual([1, 1, 0, 0, 0, 0, 0, 0]);
    // top and right padded, 7×7 image, feathering 3: pixel (row 1, col 5) has d = min(1, 7 − 5) = 1 → (2/3)²
    const [, m3] = await run(ImagePadForOutpaint, { image: grey([1, 7, 7, 3], 0), left: 0, top: 8, right: 8, bottom: 0, feathering: 3 });
    expect(m3.shape).toEqual([1, 15, 15]);
    expect(m3.data[(8 + 1) * 15 + 5]).toBeCloseTo((2 / 3) ** 2, 6);
    expect(m3.data[(8 + 6) * 15 + 0]).toBe(0); // far from both padded sides
    expect(m3.data[(8 + 0) * 15 + 0]).toBe(1); // on the top edge: d = 0
  });
});

describe('ImageCompositeMasked', () => {
  const dest = grey([1, 3, 3, 3], 0);
  const pixel = (o: Tensor, y: number, x: number): number[] => [...o.data.subarray((y * 3 + x) * 3, (y * 3 + x) * 3 + 3)];

  it('pastes at (x, y) and clips to the destination', async () => {
    const [o] = await run(ImageCompositeMasked, { destination: dest, source: grey([1, 2, 2, 3], 1), x: 2, y: 1, resize_source: false });
    expect(pixel(o, 1, 2)).toEqual([1, 1, 1]);
    expect(pixel(o, 2, 2)).toEqual([1, 1, 1]);
    expect(pixel(o, 1, 1)).toEqual([0, 0, 0]);
    expect(dest.data.every((v) => v === 0)).toBe(true); // input untouched
  });

  it('blends mask·source + (1 − mask)·destination, the mask resized bilinearly to the source', async () => {
    const d2 = grey([1, 3, 3, 3], 0.2);
    const [o] = await run(ImageCompositeMasked, {
      destination: d2,
      source: grey([1, 2, 2, 3], 1),
      x: 0,
      y: 0,
      resize_source: false,
      mask: t([1, 2, 2], [1, 0.5, 0.25, 0]),
    });
    expectClose(pixel(o, 0, 0), [1, 1, 1]);
    expectClose(pixel(o, 0, 1), [0.6, 0.6, 0.6]);
    expectClose(pixel(o, 1, 0), [0.4, 0.4, 0.4]);
    expectClose(pixel(o, 1, 1), [0.2, 0.2, 0.2]);
    // a 1×1 mask of 0.5 covers the whole 2×2 source
    const [o2] = await run(ImageCompositeMasked, {
      destination: d2,
      source: grey([1, 2, 2, 3], 1),
      x: 1,
      y: 1,
      resize_source: false,
      mask: t([1, 1, 1], [0.5]),
    });
    expectClose(pixel(o2, 2, 2), [0.6, 0.6, 0.6]);
    expectClose(pixel(o2, 0, 0), [0.2, 0.2, 0.2]);
  });

  it('resize_source stretches the source over the destination; batches and alpha are matched', async () => {
    const [o] = await run(ImageCompositeMasked, {
      destination: grey([2, 3, 3, 4], 0),
      source: t([1, 1, 1, 3], [0.3, 0.6, 0.9]),
      x: 0,
      y: 0,
      resize_source: true,
    });
    expect(o.shape).toEqual([2, 3, 3, 4]);
    for (let i = 0; i < 18; i++) expectClose(o.data.subarray(i * 4, i * 4 + 4), [0.3, 0.6, 0.9, 1], 1e-6);
  });
});

describe('LoadImage / LoadImageMask', () => {
  const input = (n: string): string => path.join(world.paths.inputDir, n);

  it('lists the input folder’s own image files, sorted', async () => {
    fs.writeFileSync(input('notes.txt'), 'x');
    fs.mkdirSync(input('sub'), { recursive: true });
    await sharp(Buffer.alloc(3), { raw: { width: 1, height: 1, channels: 3 } })
      .png()
      .toFile(input('sub/inner.png'));
    await sharp(Buffer.alloc(3), { raw: { width: 1, height: 1, channels: 3 } })
      .jpeg()
      .toFile(input('b.JPG'));
    await sharp(Buffer.alloc(3), { raw: { width: 1, height: 1, channels: 3 } })
      .png()
      .toFile(input('a.png'));
    const reg = new NodeRegistry();
    reg.registerAll([LoadImage, ...transformNodes]);
    const info = reg.objectInfo({ paths: world.paths }).LoadImage;
    expect(info.input.required.image).toEqual([['a.png', 'b.JPG'], { image_upload: true }]);
    expect(info.output).toEqual(['IMAGE', 'MASK']);
  });

  it('gives IMAGE and MASK = 1 − alpha', async () => {
    await sharp(Buffer.from([255, 0, 0, 255, 0, 255, 0, 0, 0, 0, 255, 51]), { raw: { width: 3, height: 1, channels: 4 } })
      .png()
      .toFile(input('rgba.png'));
    const [img, mask] = await run(LoadImage, { image: 'rgba.png' });
    expect(img.shape).toEqual([1, 1, 3, 3]);
    expectClose(img.data, [1, 0, 0, 0, 1, 0, 0, 0, 1]);
    expect(mask.shape).toEqual([1, 1, 3]);
    expectClose(mask.data, [0, 1, 1 - 51 / 255]);
  });

  it('gives a B×64×64 zero mask without alpha, one item per frame', async () => {
    const frames = await Promise.all(
      [10, 200].map((v) =>
        sharp(Buffer.alloc(2 * 2 * 3, v), { raw: { width: 2, height: 2, channels: 3 } })
          .png()
          .toBuffer(),
      ),
    );
    await sharp(frames, { join: { animated: true } })
      .gif()
      .toFile(input('anim.gif'));
    const [img, mask] = await run(LoadImage, { image: 'anim.gif' });
    expect(img.shape).toEqual([2, 2, 2, 3]);
    expect(mask.shape).toEqual([2, 64, 64]);
    expect(mask.data.every((v) => v === 0)).toBe(true);
  });

  it('loads annotated names from output/ and temp/', async () => {
    await sharp(Buffer.from([0, 0, 255]), { raw: { width: 1, height: 1, channels: 3 } })
      .png()
      .toFile(path.join(world.paths.outputDir, 'made.png'));
    const [img] = await run(LoadImage, { image: 'made.png [output]' });
    expectClose(img.data, [0, 0, 1]);
    expect(LoadImage.validateInputs!({ image: 'made.png [output]' }, {}, { paths: world.paths })).toBe(true);
    expect(LoadImage.validateInputs!({ image: 'made.png' }, {}, { paths: world.paths })).toBe('Invalid image file: made.png');
    expect(LoadImage.validateInputs!({ image: '../x.png' }, {}, { paths: world.paths })).toMatch(/^Invalid image file: refused path/);
  });

  it('fingerprints the file by its SHA-256', async () => {
    const bytes = fs.readFileSync(input('rgba.png'));
    expect(await LoadImage.fingerprint!({ image: 'rgba.png' }, { paths: world.paths })).toBe(
      createHash('sha256').update(bytes).digest('hex'),
    );
    expect(await LoadImageMask.fingerprint!({ image: 'rgba.png', channel: 'red' }, { paths: world.paths })).toBe(
      createHash('sha256').update(bytes).digest('hex'),
    );
  });

  it('LoadImageMask takes a colour channel, or 1 − alpha', async () => {
    const [r] = await run(LoadImageMask, { image: 'rgba.png', channel: 'red' });
    expect(r.shape).toEqual([1, 1, 3]);
    expectClose(r.data, [1, 0, 0]);
    const [b] = await run(LoadImageMask, { image: 'rgba.png', channel: 'blue' });
    expectClose(b.data, [0, 0, 1]);
    const [a] = await run(LoadImageMask, { image: 'rgba.png', channel: 'alpha' });
    expectClose(a.data, [0, 1, 1 - 51 / 255]);
    const [none] = await run(LoadImageMask, { image: 'a.png', channel: 'alpha' });
    expect(none.shape).toEqual([1, 64, 64]);
  });

  it('round-trips through SaveImage within 8-bit truncation', async () => {
    const n = 4 * 5 * 3;
    const img = { shape: [1, 4, 5, 3], data: Float32Array.from({ length: n }, (_, i) => ((i * 0.37) % 1) * 0.999) };
    const r = (await SaveImage.run({ images: img, filename_prefix: 'rt' }, world.ctx())) as { ui: { images: { filename: string }[] } };
    fs.copyFileSync(path.join(world.paths.outputDir, r.ui.images[0].filename), input('rt.png'));
    const [back] = await run(LoadImage, { image: 'rt.png' });
    expect(back.shape).toEqual(img.shape);
    for (let i = 0; i < n; i++) {
      // truncation: the loaded value is at most the original and less than one step below it
      expect(back.data[i]).toBeLessThanOrEqual(img.data[i] + 1e-7);
      expect(img.data[i] - back.data[i]).toBeLessThan(1 / 255);
    }
  });
});
