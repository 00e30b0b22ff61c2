import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDemoControlNet } from '../../engine/models/controlnet/generate.ts';
import { makeTinyCheckpoint } from '../../engine/models/make-model.ts';
import { ROOT, runCli } from '../workflows/run-cli.ts';

/**
 * The ControlNet example workflows run through the real CLI on the demo model and demo ControlNet (as
 * `weft make-model tiny` writes them), steps cut to 3; each ControlNet visibly changes the image
 * (the same workflow with strength / weight 0 gives another one).
 */
let tmp: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-cn-examples-'));
  fs.mkdirSync(path.join(tmp, 'input'));
  for (const f of ['example.png', 'example-depth.png', 'example-pose.png'])
    fs.copyFileSync(path.join(ROOT, 'input', f), path.join(tmp, 'input', f));
  const ckpt = path.join(tmp, 'models/checkpoints/weft-tiny-sd1.safetensors');
  await makeTinyCheckpoint(ckpt, { seed: 0 });
  makeDemoControlNet(ckpt, path.join(tmp, 'models'), 0);
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function run(file: string, sets: string[]): Promise<{ pixels: Buffer; size: [number, number] }> {
  const { files } = runCli(tmp, file, ['3.steps=3', ...sets], { timeoutMs: 180_000 });
  const { data, info } = await sharp(files[0]).raw().toBuffer({ resolveWithObject: true });
  return { pixels: data, size: [info.width, info.height] };
}

const CASES: [string, string[]][] = [
  ['controlnet-canny.json', ['13.strength=0']],
  ['controlnet-multi.json', ['13.strength=0', '16.strength=0']],
  ['controlnet-pose.json', ['13.weight=0']],
];

describe('ControlNet example workflows on the demo model', () => {
  it.each(CASES)(
    '%s runs from the CLI, and its ControlNets change the image',
    async (file, off) => {
      const on = await run(file, []);
      expect(on.size).toEqual([256, 256]);
      const without = await run(file, off);
      expect(without.size).toEqual([256, 256]);
      let diff = 0;
      for (let i = 0; i < on.pixels.length; i++) diff += Math.abs(on.pixels[i] - without.pixels[i]);
      expect(diff / on.pixels.length).toBeGreaterThan(0.5);
    },
    300_000,
  );

  it('are listed in the README', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    for (const [f] of CASES) expect(readme).toContain(`workflows/${f}`);
  });
});
