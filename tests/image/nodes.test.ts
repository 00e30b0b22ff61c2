import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPngTextChunks } from '../../engine/image/png-text.ts';
import { resizeNCHW, upscaleImage } from '../../engine/image/resize.ts';
import type { Tensor } from '../../engine/image/tensor.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { silentLogger, type NodeContext } from '../../engine/registry/context.ts';
import type { AnyNodeDefinition } from '../../engine/registry/types.ts';
import { LoadImage, LoadImageMask } from '../../nodes/image/load-image.ts';
import { PreviewImage, SaveImage, nextCounter } from '../../nodes/image/save-image.ts';
import { EmptyImage, ImageBatch, ImageCompositeMasked, ImageInvert, ImagePadForOutpaint, ImageScale } from '../../nodes/image/transform.ts';
import { FeatherMask, GrowMask, ImageToMask, InvertMask, MaskToImage, SolidMask } from '../../nodes/mask/masks.ts';

let base: string;
let paths: FolderPaths;
const ctx = (): NodeContext => ({
  nodeId: '1',
  classType: 'X',
  promptId: 'p',
  signal: new AbortController().signal,
  checkInterrupted: () => {},
  progress: () => {},
  prompt: { '1': { class_type: 'SaveImage', inputs: {} } },
  extraPngInfo: { workflow: { nodes: [] } },
  paths,
  services: {},
  log: silentLogger,
});
async function run(def: AnyNodeDefinition, args: Record<string, unknown>): Promise<unknown[]> {
  const r = (await def.run(args, ctx())) as unknown[] | { result?: unknown[] };
  return Array.isArray(r) ? r : (r.result ?? []);
}
const t = (shape: number[], values: number[]): Tensor => ({ shape, data: Float32Array.from(values) });
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(tol);
};

beforeAll(() => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-img-'));
  paths = new FolderPaths({ baseDir: base });
  fs.mkdirSync(paths.inputDir, { recursive: true });
});
afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

describe('resize (torch F.interpolate semantics)', () => {
  it('bilinear 2×2 → 4×4 matches the align_corners=False formula', () => {
    const src = t([1, 1, 2, 2], [0, 1, 2, 3]);
    const out = resizeNCHW(src, 4, 4, 'bilinear');
    // src coordinate = (dst + 0.5) / 2 − 0.5, clamped at 0: weights per axis [1,0],[.75,.25],[.25,.75],[0,1]
    const wts = [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]];
    const expected: number[] = [];
    for (const [y0, y1] of wts) for (const [x0, x1] of wts) expected.push(y0 * (x0 * 0 + x1 * 1) + y1 * (x0 * 2 + x1 * 3));
    close(out.data, expected);
  });
  it('area downscale is the block mean; nearest-exact picks floor((i + .5)·scale)', () => {
    const src = t([1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
    close(resizeNCHW(src, 1, 2, 'area').data, [(1 + 2 + 5 + 6) / 4, (3 + 4 + 7 + 8) / 4]);
    close(resizeNCHW(t([1, 1, 1, 3], [10, 20, 30]), 1, 2, 'nearest-exact').data, [10, 30]);
  });
  it('bicubic follows the Keys kernel with a = −0.75 and clamped borders', () => {
    const vals = [0, 3, 1, 4, 1, 5, 9, 2];
    const out = resizeNCHW(t([1, 1, 1, 8], vals), 1, 13, 'bicubic');
    const a = -0.75;
    const W = (x: number): number => {
      const d = Math.abs(x);
      return d <= 1 ? (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1 : d < 2 ? a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a : 0;
    };
    for (let x = 0; x < 13; x++) {
      const src = ((x + 0.5) * 8) / 13 - 0.5;
      const f = Math.floor(src);
      let e = 0;
      for (let k = f - 1; k <= f + 2; k++) e += vals[Math.min(7, Math.max(0, k))] * W(src - k);
      expect(out.data[x]).toBeCloseTo(e, 5);
    }
  });
  it('lanczos keeps a constant image constant and centre crop trims to the aspect', () => {
    const img = { shape: [1, 4, 8, 3], data: new Float32Array(96).fill(0.5) };
    const out = upscaleImage(img, 3, 3, 'lanczos', 'center');
    expect(out.shape).toEqual([1, 3, 3, 3]);
    for (const v of out.data) expect(v).toBeCloseTo(128 / 255, 6);
  });
});

describe('image nodes', () => {
  it('ImageInvert, EmptyImage colour, ImageBatch resizing image2', async () => {
    const [inv] = (await run(ImageInvert, { image: t([1, 1, 1, 3], [0, 0.25, 1]) })) as Tensor[];
    close(inv.data, [1, 0.75, 0]);
    const [e] = (await run(EmptyImage, { width: 2, height: 1, batch_size: 2, color: 0xff8000 })) as Tensor[];
    expect(e.shape).toEqual([2, 1, 2, 3]);
    close(e.data.subarray(0, 3), [1, 128 / 255, 0]);
    const [b] = (await run(ImageBatch, { image1: t([1, 2, 2, 3], new Array(12).fill(0)), image2: t([1, 1, 1, 3], [1, 1, 1]) })) as Tensor[];
    expect(b.shape).toEqual([2, 2, 2, 3]);
    close(b.data.subarray(12), new Array(12).fill(1));
  });

  it('ImageScale keeps aspect when one side is 0', async () => {
    const [s] = (await run(ImageScale, { image: t([1, 2, 4, 3], new Array(24).fill(0.2)), upscale_method: 'bilinear', width: 8, height: 0, crop: 'disabled' })) as Tensor[];
    expect(s.shape).toEqual([1, 4, 8, 3]);
  });

  it('ImagePadForOutpaint pads with grey and feathers the mask as ComfyUI', async () => {
    const [img, mask] = (await run(ImagePadForOutpaint, { image: t([1, 2, 4, 3], new Array(24).fill(1)), left: 2, top: 0, right: 0, bottom: 0, feathering: 2 })) as Tensor[];
    expect(img.shape).toEqual([1, 2, 6, 3]);
    close(img.data.subarray(0, 3), [0.5, 0.5, 0.5]);
    expect(mask.shape).toEqual([1, 2, 6]);
    // Padded columns 1; original column x at distance d = x from the left edge: ((2 − d) / 2)^2 for d < 2.
    close(mask.data.subarray(0, 6), [1, 1, 1, 0.25, 0, 0]);
  });

  it('ImageCompositeMasked pastes through the mask at an offset', async () => {
    const dest = t([1, 2, 2, 1].slice(0, 3).concat([3]), new Array(12).fill(0));
    const src = t([1, 1, 1, 3], [1, 1, 1]);
    const [o] = (await run(ImageCompositeMasked, { destination: dest, source: src, x: 1, y: 1, resize_source: false, mask: t([1, 1, 1], [0.5]) })) as Tensor[];
    close(o.data, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 0.5, 0.5]);
  });
});

describe('mask nodes', () => {
  const m = t([1, 3, 3], [0, 0, 0, 0, 1, 0, 0, 0, 0]);
  it('GrowMask dilates with a cross or a square, erodes when negative', async () => {
    close(((await run(GrowMask, { mask: m, expand: 1, tapered_corners: true })) as Tensor[])[0].data, [0, 1, 0, 1, 1, 1, 0, 1, 0]);
    close(((await run(GrowMask, { mask: m, expand: 1, tapered_corners: false })) as Tensor[])[0].data, new Array(9).fill(1));
    close(((await run(GrowMask, { mask: m, expand: -1, tapered_corners: true })) as Tensor[])[0].data, new Array(9).fill(0));
  });
  it('FeatherMask ramps (1 + i) / n from each feathered edge', async () => {
    const [f] = (await run(FeatherMask, { mask: t([1, 1, 4], [1, 1, 1, 1]), left: 2, top: 0, right: 0, bottom: 0 })) as Tensor[];
    close(f.data, [0.5, 1, 1, 1]);
  });
  it('SolidMask, InvertMask, MaskToImage, ImageToMask', async () => {
    const [s] = (await run(SolidMask, { value: 0.25, width: 2, height: 1 })) as Tensor[];
    close(s.data, [0.25, 0.25]);
    close(((await run(InvertMask, { mask: s })) as Tensor[])[0].data, [0.75, 0.75]);
    const [img] = (await run(MaskToImage, { mask: s })) as Tensor[];
    expect(img.shape).toEqual([1, 1, 2, 3]);
    const [back] = (await run(ImageToMask, { image: t([1, 1, 1, 3], [0.1, 0.2, 0.3]), channel: 'green' })) as Tensor[];
    close(back.data, [0.2]);
  });
});

describe('LoadImage / SaveImage', () => {
  it('loads RGB and the inverted alpha as MASK, with EXIF orientation applied', async () => {
    const rgba = Buffer.from([255, 0, 0, 255, 0, 255, 0, 0]);
    await sharp(rgba, { raw: { width: 2, height: 1, channels: 4 } }).png().toFile(path.join(paths.inputDir, 'rgba.png'));
    const [img, mask] = (await run(LoadImage, { image: 'rgba.png' })) as Tensor[];
    expect(img.shape).toEqual([1, 1, 2, 3]);
    close(img.data, [1, 0, 0, 0, 1, 0]);
    close(mask.data, [0, 1]);
    // A 2×1 JPEG marked "rotate 90° CW" (orientation 6) loads as 1×2.
    await sharp(Buffer.from([0, 0, 0, 255, 255, 255]), { raw: { width: 2, height: 1, channels: 3 } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toFile(path.join(paths.inputDir, 'rot.jpg'));
    const [rot, rotMask] = (await run(LoadImage, { image: 'rot.jpg' })) as Tensor[];
    expect(rot.shape).toEqual([1, 2, 1, 3]);
    expect(rotMask.shape).toEqual([1, 64, 64]);
    const [red] = (await run(LoadImageMask, { image: 'rgba.png', channel: 'red' })) as Tensor[];
    close(red.data, [1, 0]);
    expect(LoadImage.validateInputs!({ image: 'nope.png' }, {}, { paths })).toBe('Invalid image file: nope.png');
    expect(LoadImage.validateInputs!({ image: '../x.png' }, {}, { paths })).toMatch(/refused path/);
    expect(LoadImage.inputs!.required!.image.type).toBe('COMBO');
  });

  it('names outputs with the next counter, keeps subfolders inside output/, embeds prompt + workflow, never overwrites', async () => {
    const out = path.join(paths.outputDir, 'sub');
    fs.mkdirSync(out, { recursive: true });
    for (const n of ['run_00001_.png', 'run_00003_.png', 'other_00009_.png']) fs.writeFileSync(path.join(out, n), 'x');
    expect(nextCounter(out, 'run')).toBe(4);
    const img = t([2, 1, 1, 3], [0, 0.5, 1, 1, 0.5, 0]);
    const r = (await SaveImage.run({ images: img, filename_prefix: 'sub/run', prompt: { a: 1 }, extra_pnginfo: { workflow: { w: 2 } } }, ctx())) as { ui: { images: unknown[] } };
    expect(r.ui.images).toEqual([
      { filename: 'run_00004_.png', subfolder: 'sub', type: 'output' },
      { filename: 'run_00005_.png', subfolder: 'sub', type: 'output' },
    ]);
    const file = fs.readFileSync(path.join(out, 'run_00004_.png'));
    expect(readPngTextChunks(file)).toEqual({ prompt: '{"a":1}', workflow: '{"w":2}' });
    const { data } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
    expect([...data]).toEqual([0, 127, 255]);
    await expect(SaveImage.run({ images: img, filename_prefix: '../escape' }, ctx()) as Promise<unknown>).rejects.toThrow(/refused path/);
    // Ten concurrent saves of the same prefix produce ten distinct files.
    await Promise.all(Array.from({ length: 10 }, () => SaveImage.run({ images: t([1, 1, 1, 3], [1, 1, 1]), filename_prefix: 'race' }, ctx())));
    expect(fs.readdirSync(paths.outputDir).filter((f) => f.startsWith('race_')).length).toBe(10);
    const p = (await PreviewImage.run({ images: img }, ctx())) as { ui: { images: { filename: string; type: string }[] } };
    expect(p.ui.images[0].type).toBe('temp');
    expect(p.ui.images[0].filename).toMatch(/^ComfyUI_temp_[a-z]{5}_00001_\.png$/);
  });
});
