import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, onTestFinished } from 'vitest';
import type { ControlNetConfig } from '../../engine/models/controlnet/layout.ts';
import { tinyConfig } from '../../engine/models/make-model.ts';

/** The tiny model's UNet structure (what `weft make-model tiny` writes) as a ControlNet config. */
export const TINY_CN: ControlNetConfig = { unet: tinyConfig(1000).unet, hintChannels: 3 };

/** A temporary models folder with `controlnet/`, removed when the test (or, made outside one, the file) ends. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cn-'));
  mkdirSync(join(dir, 'controlnet'), { recursive: true });
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    onTestFinished(remove);
  } catch {
    afterAll(remove);
  }
  return dir;
}
