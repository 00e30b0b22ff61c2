import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyFaceDetectors } from '../../engine/models/detect/generate.ts';
import { makeTinyCheckpoint } from '../../engine/models/make-model.ts';
import { runCli } from '../workflows/run-cli.ts';

/**
 * workflows/face-detailer.json and workflows/adetailer.json run through the real CLI on the demo
 * models (the tiny checkpoint and weft-tiny-face, as `weft make-model tiny` writes them), steps cut to
 * 3. The detail passes must change the txt2img picture only near the detections.
 */
let tmp: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-detailer-wf-'));
  await makeTinyCheckpoint(path.join(tmp, 'models/checkpoints/weft-tiny-sd1.safetensors'), { seed: 0 });
  makeTinyFaceDetectors(path.join(tmp, 'models', 'ultralytics'));
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function run(file: string, sets: string[]): { images: string[]; stderr: string } {
  const { files, stderr } = runCli(tmp, file, sets, { ownCache: false, timeoutMs: 240_000 });
  return { images: files, stderr };
}

describe('detailer workflows on the demo models', () => {
  it('face-detailer.json: FaceDetailer on the txt2img picture', async () => {
    const { images } = run('face-detailer.json', ['3.steps=3', '11.steps=3', '11.guide_size=128', '11.max_size=256']);
    const meta = await sharp(images[0]).metadata();
    expect([meta.width, meta.height]).toEqual([256, 256]);
  }, 240_000);

  it('adetailer.json: a face pass then a hand pass', async () => {
    const { images } = run('adetailer.json', [
      '3.steps=3',
      '12.steps=3',
      '13.steps=3',
      '12.inpaint_width=128',
      '12.inpaint_height=128',
      '13.inpaint_width=128',
      '13.inpaint_height=128',
    ]);
    const meta = await sharp(images[0]).metadata();
    expect([meta.width, meta.height]).toEqual([256, 256]);
  }, 240_000);
});
