import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SDXL_VARIANT_MARKERS } from '../../engine/models/families/sdxl/make.ts';
import { makeTinySdxlCheckpoint } from '../../engine/models/make-model.ts';
import { runCli } from '../workflows/run-cli.ts';

/** The SDXL example workflows run through the real CLI on the tiny SDXL base and refiner, steps cut down. */
let tmp: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-sdxl-workflows-'));
  await makeTinySdxlCheckpoint(path.join(tmp, 'models/checkpoints/weft-tiny-sdxl.safetensors'), { seed: 0 });
  await makeTinySdxlCheckpoint(path.join(tmp, 'models/checkpoints/weft-tiny-sdxl-refiner.safetensors'), { seed: 1, kind: 'refiner' });
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Steps and size cut down so the file stays quick (the workflow itself is 256², 20 steps). */
const SMALL = ['5.width=128', '5.height=128', '3.steps=2'];

const run = (file: string, sets: string[]): { filename: string; subfolder: string }[] =>
  runCli(tmp, file, sets, { ownCache: false, timeoutMs: 240_000 }).images;

async function pixels(img: { filename: string; subfolder: string }): Promise<{ width?: number; height?: number; data: Buffer }> {
  const file = path.join(tmp, 'output', img.subfolder, img.filename);
  const meta = await sharp(file).metadata();
  return { width: meta.width, height: meta.height, data: await sharp(file).raw().toBuffer() };
}

describe('SDXL example workflows on the tiny models', () => {
  it('sdxl-txt2img.json (CLIPTextEncodeSDXL + KSampler) saves an image (cut to 128², 2 steps) that depends on the size conditioning', async () => {
    const a = await pixels(run('sdxl-txt2img.json', SMALL)[0]);
    expect([a.width, a.height]).toEqual([128, 128]);
    // Another target size changes y, hence the image.
    const b = await pixels(run('sdxl-txt2img.json', [...SMALL, '6.target_width=512'])[0]);
    expect(a.data.equals(b.data)).toBe(false);
  }, 300_000);

  it('sdxl-refiner.json: base KSamplerAdvanced hands its leftover noise to the refiner', async () => {
    const out = run('sdxl-refiner.json', [
      '5.width=128',
      '5.height=128',
      '3.steps=3',
      '13.steps=3',
      '3.end_at_step=2',
      '13.start_at_step=2',
    ]);
    const img = await pixels(out[0]);
    expect([img.width, img.height]).toEqual([128, 128]);
  }, 300_000);

  it('sdxl-txt2img.json on a Playground v2.5-style file (EDM, per-channel latents) loads, encodes, samples and decodes through the normal nodes', async () => {
    const name = 'weft-tiny-sdxl-playground.safetensors';
    await makeTinySdxlCheckpoint(path.join(tmp, 'models/checkpoints', name), { seed: 0, markers: SDXL_VARIANT_MARKERS.playground });
    const img = await pixels(run('sdxl-txt2img.json', [...SMALL, `4.ckpt_name=${name}`])[0]);
    expect([img.width, img.height]).toEqual([128, 128]);
  }, 300_000);
});
