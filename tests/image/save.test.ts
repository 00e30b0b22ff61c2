import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { counterOf, expandPrefix, nextCounter, saveImageBatch } from '../../engine/image/output-files.ts';
import { readPngTextChunks } from '../../engine/image/png-text.ts';
import type { Tensor } from '../../engine/core/tensor.ts';
import { PreviewImage, SaveImage, tempSuffix } from '../../nodes/image/save-image.ts';
import { pngChunkTypes, TestWorld } from './context.ts';
import { t } from './references.ts';

const world = new TestWorld('save');
afterAll(() => world.remove());

interface UiResult {
  ui: { images: { filename: string; subfolder: string; type: string }[] };
  result: unknown[];
}

const solid = (v: number, b = 1): Tensor => ({ shape: [b, 2, 2, 3], data: new Float32Array(b * 12).fill(v) });

describe('output names (get_save_image_path)', () => {
  it('reads counters as ComfyUI does', () => {
    expect(counterOf('run_00003_.png', 'run')).toBe(3);
    expect(counterOf('run_00012_extra.png', 'run')).toBe(12);
    // int('00003.png') fails in Python: such a file counts as 0
    expect(counterOf('run_00003.png', 'run')).toBe(0);
    expect(counterOf('runner_00009_.png', 'run')).toBeUndefined();
    expect(counterOf('Run_00010_.png', 'run')).toBeUndefined();
  });

  it('counts 1 + the highest existing counter, 1 in an empty or missing folder', () => {
    const dir = path.join(world.paths.outputDir, 'count');
    expect(nextCounter(dir, 'run')).toBe(1);
    fs.mkdirSync(dir);
    for (const n of ['run_00001_.png', 'run_00002_.png', 'run_00003_.png', 'other_00009_.png', 'run_x.png'])
      fs.writeFileSync(path.join(dir, n), 'x');
    expect(nextCounter(dir, 'run')).toBe(4);
  });

  it('expands %width%, %height% and the local date and time', () => {
    const now = new Date(2024, 0, 5, 7, 8, 9);
    expect(expandPrefix('img_%width%x%height%/%year%-%month%-%day%_%hour%%minute%%second%', 640, 480, now)).toBe(
      'img_640x480/2024-01-05_070809',
    );
    expect(expandPrefix('plain', 1, 1, now)).toBe('plain');
  });
});

describe('SaveImage', () => {
  it('continues after existing files, in a subfolder, and returns the images and the ui list', async () => {
    const sub = path.join(world.paths.outputDir, 'sub');
    fs.mkdirSync(sub, { recursive: true });
    for (const n of ['run_00001_.png', 'run_00002_.png', 'run_00003_.png']) fs.writeFileSync(path.join(sub, n), 'old');
    const images = t([2, 1, 1, 3], [0, 0.5, 1, 1, 0.5, 0]);
    const r = (await SaveImage.run({ images, filename_prefix: 'sub/run' }, world.ctx())) as UiResult;
    expect(r.ui.images).toEqual([
      { filename: 'run_00004_.png', subfolder: 'sub', type: 'output' },
      { filename: 'run_00005_.png', subfolder: 'sub', type: 'output' },
    ]);
    expect(r.result).toEqual([images]);
    // the old files are untouched
    expect(fs.readFileSync(path.join(sub, 'run_00003_.png'), 'utf8')).toBe('old');
    const { data } = await sharp(path.join(sub, 'run_00005_.png')).raw().toBuffer({ resolveWithObject: true });
    expect([...data]).toEqual([255, 127, 0]);
    expect(SaveImage.outputs).toEqual([{ type: 'IMAGE', name: 'images' }]);
  });

  it('embeds prompt then each extra_pnginfo key as tEXt chunks in json.dumps form', async () => {
    const prompt = { '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'meta', images: ['8', 0] } } };
    const workflow = { nodes: [{ id: 9, type: 'SaveImage' }], version: 0.4 };
    const ctx = world.ctx();
    const r = (await SaveImage.run(
      { images: solid(0.25), filename_prefix: 'meta', prompt, extra_pnginfo: { workflow, other: 'é' } },
      ctx,
    )) as UiResult;
    const png = fs.readFileSync(path.join(world.paths.outputDir, r.ui.images[0].filename));
    const types = pngChunkTypes(png);
    expect(types.filter((x) => x === 'tEXt')).toHaveLength(3);
    expect(types.indexOf('tEXt')).toBeLessThan(types.indexOf('IDAT'));
    const chunks = readPngTextChunks(png);
    expect(Object.keys(chunks)).toEqual(['prompt', 'workflow', 'other']);
    expect(chunks.prompt).toBe('{"9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "meta", "images": ["8", 0]}}}');
    expect(chunks.workflow).toBe('{"nodes": [{"id": 9, "type": "SaveImage"}], "version": 0.4}');
    expect(chunks.other).toBe('"\\u00e9"');
    expect(JSON.parse(chunks.workflow)).toEqual(workflow);
  });

  it('skips extra_pnginfo keys that cannot be PNG keywords, with a warning', async () => {
    const r = (await SaveImage.run(
      { images: solid(0.5), filename_prefix: 'keys', prompt: {}, extra_pnginfo: { ['k'.repeat(80)]: 1, ok: 2 } },
      world.ctx(),
    )) as UiResult;
    const chunks = readPngTextChunks(fs.readFileSync(path.join(world.paths.outputDir, r.ui.images[0].filename)));
    expect(chunks).toEqual({ prompt: '{}', ok: '2' });
    expect(world.warnings.some((w) => w.includes('kkkk'))).toBe(true);
  });

  it('refuses prefixes that leave the output folder', async () => {
    for (const bad of ['../escape', 'a/../../escape', '/abs/x', 'C:/x']) {
      await expect(SaveImage.run({ images: solid(0), filename_prefix: bad }, world.ctx()) as Promise<unknown>).rejects.toThrow(
        /refused path/,
      );
    }
    expect(fs.existsSync(path.join(world.base, 'escape_00001_.png'))).toBe(false);
    await expect(SaveImage.run({ images: solid(0), filename_prefix: '.' }, world.ctx()) as Promise<unknown>).rejects.toThrow(
      /no file name part/,
    );
  });

  it('puts %batch_num% in each name and never reuses a counter', async () => {
    const r = (await SaveImage.run({ images: solid(0.1, 3), filename_prefix: 'b/frame%batch_num%' }, world.ctx())) as UiResult;
    expect(r.ui.images.map((i) => i.filename)).toEqual(['frame0_00001_.png', 'frame1_00002_.png', 'frame2_00003_.png']);
    const again = (await SaveImage.run({ images: solid(0.1, 2), filename_prefix: 'b/frame%batch_num%' }, world.ctx())) as UiResult;
    expect(again.ui.images.map((i) => i.filename)).toEqual(['frame0_00004_.png', 'frame1_00005_.png']);
  });

  it('writes %width%/%height% of the images into the name', async () => {
    const r = (await SaveImage.run(
      { images: t([1, 1, 3, 3], new Array(9).fill(0)), filename_prefix: 'size_%width%x%height%' },
      world.ctx(),
    )) as UiResult;
    expect(r.ui.images[0].filename).toBe('size_3x1_00001_.png');
  });

  it('ten concurrent saves of one prefix give ten files, none overwritten', async () => {
    const shades = Array.from({ length: 10 }, (_, i) => (i * 25) / 255);
    const results = (await Promise.all(
      shades.map((v) => SaveImage.run({ images: solid(v), filename_prefix: 'race' }, world.ctx())),
    )) as UiResult[];
    const names = results.map((r) => r.ui.images[0].filename);
    expect(new Set(names).size).toBe(10);
    // every file holds the shade of the save that reported it
    for (let i = 0; i < 10; i++) {
      const { data } = await sharp(path.join(world.paths.outputDir, names[i])).raw().toBuffer({ resolveWithObject: true });
      expect(data[0]).toBe(i * 25);
    }
    expect(fs.readdirSync(world.paths.outputDir).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('moves to the next counter when a name is taken between listing and writing', async () => {
    const dir = path.join(world.paths.outputDir, 'taken');
    fs.mkdirSync(dir);
    const out = await saveImageBatch(solid(1, 2), {
      root: world.paths.outputDir,
      prefix: 'taken/x',
      type: 'output',
      compressionLevel: 1,
      // a competing writer takes x_00002_ right after the folder was listed
      beforeEach: (i) => i === 1 && fs.writeFileSync(path.join(dir, 'x_00002_.png'), 'theirs'),
    });
    expect(out.map((o) => o.filename)).toEqual(['x_00001_.png', 'x_00003_.png']);
    expect(fs.readFileSync(path.join(dir, 'x_00002_.png'), 'utf8')).toBe('theirs');
  });

  it('checks interruption between images', async () => {
    const w = new TestWorld('save-int');
    try {
      w.abort.abort();
      await expect(SaveImage.run({ images: solid(0), filename_prefix: 'int' }, w.ctx()) as Promise<unknown>).rejects.toThrow(/interrupted/);
    } finally {
      w.remove();
    }
  });
});

describe('PreviewImage', () => {
  it('writes ComfyUI_temp_xxxxx_00001_.png into temp/ with compress level 1 and the metadata', async () => {
    const r = (await PreviewImage.run({ images: solid(0.5), prompt: { a: 1 }, extra_pnginfo: { workflow: {} } }, world.ctx())) as UiResult;
    const img = r.ui.images[0];
    // ComfyUI draws from "abcdefghijklmnopqrstupvxyz" (there is no w)
    expect(img.filename).toMatch(/^ComfyUI_temp_[a-vx-z]{5}_00001_\.png$/);
    expect(img).toMatchObject({ subfolder: '', type: 'temp' });
    const png = fs.readFileSync(path.join(world.paths.tempDir, img.filename));
    expect(readPngTextChunks(png)).toEqual({ prompt: '{"a": 1}', workflow: '{}' });
    expect(fs.existsSync(path.join(world.paths.outputDir, img.filename))).toBe(false);
  });

  it('draws its suffix letters from ComfyUI’s alphabet', () => {
    expect(tempSuffix(() => 0)).toBe('_temp_aaaaa');
    expect(tempSuffix(() => 0.9999)).toBe('_temp_zzzzz');
    expect(tempSuffix(() => 22 / 26)).toBe('_temp_vvvvv');
    expect(tempSuffix(() => 20.5 / 26)).toBe('_temp_uuuuu');
    expect(tempSuffix(() => 21.5 / 26)).toBe('_temp_ppppp');
  });
});
