import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { expect } from 'vitest';
import { makeTinyCheckpoint } from '../../engine/models/make-model.ts';
import { makeDemoUpscalers } from '../../engine/models/upscale/generate.ts';

/**
 * Running an example workflow through the real CLI (`weft run … --json`) in a throw-away base
 * folder that holds what the demo needs: input/example.png, the tiny SD1 checkpoint and the demo
 * upscalers, as `weft make-model tiny` writes them.
 */

export const ROOT = path.resolve(import.meta.dirname, '../..');

/** A new base folder with the example input, the tiny SD1 checkpoint and the demo upscalers; the caller removes it. */
export async function makeDemoBase(prefix: string): Promise<string> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.mkdirSync(path.join(base, 'input'));
  fs.copyFileSync(path.join(ROOT, 'input', 'example.png'), path.join(base, 'input', 'example.png'));
  await makeTinyCheckpoint(path.join(base, 'models/checkpoints/weft-tiny-sd1.safetensors'), { seed: 0 });
  makeDemoUpscalers(path.join(base, 'models'), 0);
  return base;
}

/**
 * `weft run workflows/<file> --set …` in `base` on the CPU with its own cache: expects no error line,
 * exit 0 and status success, and returns the size of the first image the output node saved.
 */
export async function runWorkflowCli(base: string, file: string, sets: readonly string[], outputNode = '9'): Promise<[number, number]> {
  const args = ['run', path.join(ROOT, 'workflows', file), '--json', '--disable-custom-nodes', '--device', 'cpu', '--cache-dir', path.join(base, 'cache')];
  for (const s of sets) args.push('--set', s);
  const r = spawnSync(process.execPath, [path.join(ROOT, 'cli/weft.js'), ...args], { cwd: base, encoding: 'utf8', timeout: 300_000 });
  expect(r.stderr.split('\n').filter((l) => /error/i.test(l))).toEqual([]);
  expect(r.status).toBe(0);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    status: string;
    outputs: Record<string, { images: { filename: string; subfolder: string }[] }>;
  };
  expect(out.status).toBe('success');
  const img = out.outputs[outputNode].images[0];
  const meta = await sharp(path.join(base, 'output', img.subfolder, img.filename)).metadata();
  return [meta.width!, meta.height!];
}
