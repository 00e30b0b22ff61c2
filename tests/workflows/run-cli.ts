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

/** What a CLI run saved: the output node's image records and their paths under `base/output`. */
export interface CliRun {
  images: { filename: string; subfolder: string }[];
  files: string[];
  stderr: string;
}

export interface CliRunOptions {
  /** The node whose saved images are returned (default '9'). */
  outputNode?: string;
  /** Give the run its own model cache under `base/cache` (default) rather than the user's cache. */
  ownCache?: boolean;
  timeoutMs?: number;
  /** Environment entries over the test process's own. */
  env?: NodeJS.ProcessEnv;
}

/**
 * `weft run workflows/<file> --set …` in `base` on the CPU: expects no error line, exit 0 and status
 * success, and returns what the output node saved.
 */
export function runCli(base: string, file: string, sets: readonly string[], opts: CliRunOptions = {}): CliRun {
  const args = ['run', path.join(ROOT, 'workflows', file), '--json', '--disable-custom-nodes', '--device', 'cpu'];
  if (opts.ownCache ?? true) args.push('--cache-dir', path.join(base, 'cache'));
  for (const s of sets) args.push('--set', s);
  const r = spawnSync(process.execPath, [path.join(ROOT, 'cli/weft.js'), ...args], {
    cwd: base,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 300_000,
    env: { ...process.env, ...opts.env },
  });
  expect(r.stderr.split('\n').filter((l) => /error/i.test(l))).toEqual([]);
  expect(r.status).toBe(0);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    status: string;
    outputs: Record<string, { images: { filename: string; subfolder: string }[] }>;
  };
  expect(out.status).toBe('success');
  const images = out.outputs[opts.outputNode ?? '9'].images;
  return { images, files: images.map((i) => path.join(base, 'output', i.subfolder, i.filename)), stderr: r.stderr };
}

/** `runCli` with its own cache, returning the size of the first image the output node saved. */
export async function runWorkflowCli(base: string, file: string, sets: readonly string[], outputNode = '9'): Promise<[number, number]> {
  const meta = await sharp(runCli(base, file, sets, { outputNode }).files[0]).metadata();
  return [meta.width!, meta.height!];
}
