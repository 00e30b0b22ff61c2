/**
 * The nodes the example-workflow scripts (scripts/make-*-workflows.ts) build their API prompts from,
 * with the demo defaults (checkpoint loader '4', prompts '6'/'7', latent '5', decode '8'), and the one
 * writer that turns each prompt into a ComfyUI UI workflow laid out by the editor's converter.
 */
import { writeFileSync } from 'node:fs';
import { promptToWorkflow } from '../engine/graph/convert.ts';
import { FolderPaths } from '../engine/paths/folders.ts';
import { createBuiltinRegistry } from '../nodes/index.ts';

export type Link = [string, number];

export const NEGATIVE = 'blurry, watermark, text';

export const checkpointLoader = (ckpt_name: string) => ({ class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name } });
export const clipText = (text: string, clip: Link = ['4', 1]) => ({ class_type: 'CLIPTextEncode', inputs: { text, clip } });
export const emptyLatent = (width: number, height: number) => ({
  class_type: 'EmptyLatentImage',
  inputs: { width, height, batch_size: 1 },
});
export const vaeDecode = (samples: Link, vae: Link = ['4', 2]) => ({ class_type: 'VAEDecode', inputs: { samples, vae } });
export const saveImage = (prefix: string, images: Link = ['8', 0]) => ({
  class_type: 'SaveImage',
  inputs: { filename_prefix: prefix, images },
});

export interface KSamplerSettings {
  seed: number;
  steps: number;
  cfg?: number;
  sampler?: string;
  scheduler?: string;
  denoise?: number;
  model?: Link;
  positive?: Link;
  negative?: Link;
  latent?: Link;
}

/** KSampler at cfg 7, euler/normal, full denoise, on the demo links unless told otherwise. */
export const ksampler = (s: KSamplerSettings) => ({
  class_type: 'KSampler',
  inputs: {
    seed: s.seed,
    steps: s.steps,
    cfg: s.cfg ?? 7,
    sampler_name: s.sampler ?? 'euler',
    scheduler: s.scheduler ?? 'normal',
    denoise: s.denoise ?? 1,
    model: s.model ?? ['4', 0],
    positive: s.positive ?? ['6', 0],
    negative: s.negative ?? ['7', 0],
    latent_image: s.latent ?? ['5', 0],
  },
});

/** Writes each prompt as workflows/<name>.json (UI format, one-space JSON); keys starting with `_` are the script's notes, not nodes. */
export function writeWorkflows(prompts: Record<string, Record<string, unknown>>): void {
  const info = createBuiltinRegistry().objectInfo({ paths: new FolderPaths({ baseDir: '.' }) });
  for (const [name, p] of Object.entries(prompts)) {
    const prompt = Object.fromEntries(Object.entries(p).filter(([k]) => !k.startsWith('_')));
    writeFileSync(`workflows/${name}.json`, `${JSON.stringify(promptToWorkflow(prompt, info), null, 1)}\n`);
    console.log(`workflows/${name}.json`);
  }
}
