import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ControlNetConfig } from '../../engine/models/controlnet/layout.ts';
import { tinyConfig } from '../../engine/models/make-model.ts';

/** The tiny model's UNet structure (what `weft make-model tiny` writes) as a ControlNet config. */
export const TINY_CN: ControlNetConfig = { unet: tinyConfig(1000).unet, hintChannels: 3 };

export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cn-'));
  mkdirSync(join(dir, 'controlnet'), { recursive: true });
  return dir;
}
