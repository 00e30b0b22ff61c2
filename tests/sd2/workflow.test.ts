import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../../engine/formats/safetensors.ts';
import { detectSd2 } from '../../engine/models/families/sd2/detect.ts';
import { ROOT, runCli } from '../workflows/run-cli.ts';

/** `weft make-model sd2-tiny [--v]` and workflows/sd2-v.json through the real CLI (steps and size cut to keep it quick). */
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
    const { images, files } = runCli(tmp, 'sd2-v.json', ['3.steps=2', '5.width=128', '5.height=96'], {
      ownCache: false,
      timeoutMs: 180_000,
    });
    expect(images[0].filename).toMatch(/^weft-sd2-v_\d+_\.png$/);
    const meta = await sharp(files[0]).metadata();
    expect([meta.width, meta.height]).toEqual([128, 96]);
  }, 200_000);
});
