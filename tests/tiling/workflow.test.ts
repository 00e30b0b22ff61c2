import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyCheckpoint } from '../../engine/models/make-model.ts';
import { makeDemoUpscalers } from '../../engine/models/upscale/generate.ts';

/**
 * workflows/tiled-diffusion-4x.json through the real CLI on the demo models (as `weft make-model
 * tiny` writes them): sizes cut so the tiny model runs it in seconds (a 64² input, ×4 → 256², tiles
 * of 128 with overlap 32, 2 steps), still several diffusion tiles and several Tiled VAE tiles.
 */
const ROOT = path.resolve(import.meta.dirname, '../..');
let tmp: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-tiled-diffusion-workflow-'));
  fs.mkdirSync(path.join(tmp, 'input'));
  fs.copyFileSync(path.join(ROOT, 'input', 'example.png'), path.join(tmp, 'input', 'example.png'));
  await makeTinyCheckpoint(path.join(tmp, 'models/checkpoints/weft-tiny-sd1.safetensors'), { seed: 0 });
  makeDemoUpscalers(path.join(tmp, 'models'), 0);
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('tiled-diffusion-4x.json', () => {
  it('runs from the CLI: ×4 model upscale, Tiled VAE encode, TiledDiffusion img2img, Tiled VAE decode', async () => {
    const sets = [
      '11.width=64',
      '11.height=64',
      '14.tile_size=256',
      '15.tile_width=128',
      '15.tile_height=128',
      '15.tile_overlap=32',
      '3.steps=2',
      '16.tile_size=384',
    ];
    const args = [
      'run',
      path.join(ROOT, 'workflows', 'tiled-diffusion-4x.json'),
      '--json',
      '--disable-custom-nodes',
      '--device',
      'cpu',
      '--cache-dir',
      path.join(tmp, 'cache'),
    ];
    for (const s of sets) args.push('--set', s);
    const r = spawnSync(process.execPath, [path.join(ROOT, 'cli/weft.js'), ...args], { cwd: tmp, encoding: 'utf8', timeout: 300_000 });
    expect(r.stderr.split('\n').filter((l) => /error/i.test(l))).toEqual([]);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      status: string;
      outputs: Record<string, { images: { filename: string; subfolder: string }[] }>;
    };
    expect(out.status).toBe('success');
    const img = out.outputs['9'].images[0];
    const meta = await sharp(path.join(tmp, 'output', img.subfolder, img.filename)).metadata();
    expect([meta.width, meta.height]).toEqual([256, 256]);
  }, 300_000);
});
