import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDemoControlNet } from '../../engine/models/controlnet/generate.ts';
import { makeTinyCheckpoint } from '../../engine/models/make-model.ts';

/**
 * The ControlNet example workflows run through the real CLI on the demo model and demo ControlNet (as
 * `weft make-model tiny` writes them), steps cut to 3; each ControlNet visibly changes the image
 * (the same workflow with strength / weight 0 gives another one).
 */
const ROOT = path.resolve(import.meta.dirname, '../..');
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
  const args = [
    'run',
    path.join(ROOT, 'workflows', file),
    '--json',
    '--disable-custom-nodes',
    '--device',
    'cpu',
    '--cache-dir',
    path.join(tmp, 'cache'),
    '--set',
    '3.steps=3',
  ];
  for (const s of sets) args.push('--set', s);
  const r = spawnSync(process.execPath, [path.join(ROOT, 'cli/weft.js'), ...args], { cwd: tmp, encoding: 'utf8', timeout: 180_000 });
  expect(r.stderr.split('\n').filter((l) => /error/i.test(l))).toEqual([]);
  expect(r.status).toBe(0);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    status: string;
    outputs: Record<string, { images: { filename: string; subfolder: string }[] }>;
  };
  expect(out.status).toBe('success');
  const img = out.outputs['9'].images[0];
  const { data, info } = await sharp(path.join(tmp, 'output', img.subfolder, img.filename))
    .raw()
    .toBuffer({ resolveWithObject: true });
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
