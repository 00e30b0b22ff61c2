import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, onTestFinished } from 'vitest';
import type { ControlNetConfig } from '../../engine/models/controlnet/layout.ts';
import type { ModelHandle } from '../../engine/models/handles.ts';
import { tinyConfig } from '../../engine/models/make-model.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import type { KSamplerArgs } from '../../engine/sampling/ksampler.ts';
import { makeTiny, type Tiny } from '../models-onnx/tiny.ts';

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

/**
 * The tiny SD1 checkpoint loaded for the ControlNet sampling tests: `prompt` / "blurry" encoded, a node
 * context whose folders are the tiny model's (ControlNets go in `<dir>/controlnet/`), and a KSampler
 * euler/normal run from an empty 8×8 latent.
 */
export interface Sd1ControlRig {
  tiny: Tiny;
  model: ModelHandle;
  pos: Conditioning;
  neg: Conditioning;
  ctx: NodeContext;
  base: KSamplerArgs;
}

export async function loadSd1ControlRig(
  tinySeed: number,
  prompt: string,
  run: { seed: bigint; steps: number; cfg: number },
): Promise<Sd1ControlRig> {
  const quiet = { info: () => {}, warn: () => {}, error: () => {} };
  const tiny = await makeTiny(tinySeed);
  const manager = new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet });
  const parts = await manager.loadCheckpoint(tiny.file);
  const model = parts.model;
  const pos: Conditioning = [await parts.clip.encodeText(prompt)];
  const neg: Conditioning = [await parts.clip.encodeText('blurry')];
  const ctx = {
    services: { models: manager },
    log: quiet,
    paths: new FolderPaths({ baseDir: tiny.dir, modelsDir: tiny.dir }),
  } as unknown as NodeContext;
  const base: KSamplerArgs = {
    model,
    seed: run.seed,
    steps: run.steps,
    cfg: run.cfg,
    samplerName: 'euler',
    scheduler: 'normal',
    positive: pos,
    negative: neg,
    latent: { samples: { shape: [1, 4, 8, 8], data: new Float32Array(256) } },
  };
  return { tiny, model, pos, neg, ctx, base };
}
