import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDemoAdapters } from '../../engine/models/generate/demo-adapters.ts';
import { makeTinyCheckpoint } from '../../engine/models/make-model.ts';

/**
 * Every shipped example workflow runs through the real CLI on the tiny demo checkpoint (generated
 * here, as `weft make-model tiny` would), with steps cut to 3 to keep the suite quick.
 */
const ROOT = path.resolve(import.meta.dirname, '../..');
let tmp: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-examples-'));
  fs.mkdirSync(path.join(tmp, 'input'));
  for (const f of ['example.png', 'example-inpaint.png']) fs.copyFileSync(path.join(ROOT, 'input', f), path.join(tmp, 'input', f));
  const ckpt = path.join(tmp, 'models/checkpoints/weft-tiny-sd1.safetensors');
  await makeTinyCheckpoint(ckpt, { seed: 0 });
  makeDemoAdapters(ckpt, path.join(tmp, 'models'), 0);
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const EXPECT: Record<string, { size: [number, number]; samplers: string[] }> = {
  'txt2img.json': { size: [256, 256], samplers: ['3'] },
  'img2img.json': { size: [256, 256], samplers: ['3'] },
  'inpaint.json': { size: [256, 256], samplers: ['3'] },
  'outpaint.json': { size: [320, 192], samplers: ['3'] },
  'hires-fix.json': { size: [384, 384], samplers: ['3', '16'] },
  'lora-embedding.json': { size: [256, 256], samplers: ['3'] },
};

describe('example workflows on the demo model', () => {
  it('ships exactly the documented examples (plus the model-free one; the ControlNet ones run in tests/controlnet/workflows.test.ts)', () => {
    const files = fs.readdirSync(path.join(ROOT, 'workflows')).filter((f) => f.endsWith('.json')).sort();
    expect(files).toEqual([
      'adetailer.json',
      'controlnet-canny.json',
      'controlnet-multi.json',
      'controlnet-pose.json',
      'face-detailer.json',
      'hires-fix-esrgan.json',
      'hires-fix.json',
      'img2img.json',
      'inpaint.json',
      'invert-image.json',
      'lora-embedding.json',
      'outpaint.json',
      'sd2-v.json',
      'sdxl-refiner.json',
      'sdxl-txt2img.json',
      'tiled-diffusion-4x.json',
      'txt2img.json',
      'ultimate-sd-upscale.json',
      'upscale-esrgan.json',
    ]);
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    for (const f of Object.keys(EXPECT)) expect(readme).toContain(`workflows/${f}`);
  });

  it.each(Object.entries(EXPECT))('%s runs and saves an image of the expected size', async (file, { size, samplers }) => {
    const sets = samplers.flatMap((id) => ['--set', `${id}.steps=3`]);
    const r = spawnSync(process.execPath, [path.join(ROOT, 'cli/weft.js'), 'run', path.join(ROOT, 'workflows', file), '--json', '--disable-custom-nodes', '--device', 'cpu', ...sets], { cwd: tmp, encoding: 'utf8', timeout: 180_000 });
    expect(r.stderr.split('\n').filter((l) => /error/i.test(l))).toEqual([]);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { status: string; outputs: Record<string, { images: { filename: string; subfolder: string }[] }> };
    expect(out.status).toBe('success');
    const img = out.outputs['9'].images[0];
    const meta = await sharp(path.join(tmp, 'output', img.subfolder, img.filename)).metadata();
    expect([meta.width, meta.height]).toEqual(size);
  }, 200_000);
});
