import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../../engine/formats/safetensors.ts';
import { detectSd2 } from '../../engine/models/families/sd2/detect.ts';

/** `weft make-model sd2-tiny [--v]` and workflows/sd2-v.json through the real CLI (steps and size cut to keep it quick). */
const ROOT = path.resolve(import.meta.dirname, '../..');
let tmp: string;
const weft = (args: string[]) =>
  spawnSync(process.execPath, [path.join(ROOT, 'cli/weft.js'), ...args], { cwd: tmp, encoding: 'utf8', timeout: 180_000 });

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-sd2-cli-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('SD2 from the CLI', () => {
  it('make-model sd2-tiny writes the ε model, --v the v-prediction one, under models/checkpoints', () => {
    for (const [args, name, prediction] of [
      [[], 'weft-tiny-sd2.safetensors', 'eps'],
      [['--v'], 'weft-tiny-sd2-v.safetensors', 'v_prediction'],
    ] as const) {
      const r = weft(['make-model', 'sd2-tiny', ...args]);
      expect(r.status, r.stderr).toBe(0);
      const file = path.join(tmp, 'models', 'checkpoints', name);
      expect(r.stdout.trim()).toBe(file);
      expect(detectSd2(SafetensorsFile.open(file))?.prediction).toBe(prediction);
      expect(fs.existsSync(path.join(tmp, 'models', 'checkpoints', name.replace('.safetensors', '.tokenizer'), 'vocab.json'))).toBe(true);
    }
  }, 60_000);

  it('workflows/sd2-v.json runs on the 768-v tiny model and saves its image', async () => {
    const r = weft([
      'run',
      path.join(ROOT, 'workflows/sd2-v.json'),
      '--json',
      '--disable-custom-nodes',
      '--device',
      'cpu',
      '--set',
      '3.steps=2',
      '--set',
      '5.width=128',
      '--set',
      '5.height=96',
    ]);
    expect(r.stderr.split('\n').filter((l) => /error/i.test(l))).toEqual([]);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      status: string;
      outputs: Record<string, { images: { filename: string; subfolder: string }[] }>;
    };
    expect(out.status).toBe('success');
    const img = out.outputs['9'].images[0];
    expect(img.filename).toMatch(/^weft-sd2-v_\d+_\.png$/);
    const meta = await sharp(path.join(tmp, 'output', img.subfolder, img.filename)).metadata();
    expect([meta.width, meta.height]).toEqual([128, 96]);
  }, 200_000);
});
