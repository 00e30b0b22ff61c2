import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDemoBase, runWorkflowCli } from '../workflows/run-cli.ts';

/**
 * workflows/tiled-diffusion-4x.json through the real CLI on the demo models (as `weft make-model
 * tiny` writes them): sizes cut so the tiny model runs it in seconds (a 64² input, ×4 → 256², tiles
 * of 128 with overlap 32, 2 steps), still several diffusion tiles and several Tiled VAE tiles.
 */
let tmp: string;

beforeAll(async () => {
  tmp = await makeDemoBase('weft-tiled-diffusion-workflow-');
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
    expect(await runWorkflowCli(tmp, 'tiled-diffusion-4x.json', sets)).toEqual([256, 256]);
  }, 300_000);
});
