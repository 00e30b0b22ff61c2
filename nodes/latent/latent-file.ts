import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../../engine/models/safetensors.ts';
import { safeJoin } from '../../engine/paths/safe-path.ts';
import type { ListingContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { nextCounter } from '../image/save-image.ts';

/** SD1's scale factor: files from before ComfyUI's format marker stored scaled latents. */
const LEGACY_SCALE = 0.18215;

function latentFiles(env: ListingContext): string[] {
  return env.paths.listInput((n) => n.toLowerCase().endsWith('.latent'));
}

export const SaveLatent = defineNode({
  name: 'SaveLatent',
  category: '_for_testing',
  experimental: true,
  inputs: {
    required: { samples: { type: 'LATENT' }, filename_prefix: { type: 'STRING', default: 'latents/ComfyUI' } },
    hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
  },
  outputs: [],
  outputNode: true,
  run({ samples, filename_prefix, prompt, extra_pnginfo }, ctx) {
    const full = safeJoin(ctx.paths.outputDir, filename_prefix || 'latents/ComfyUI');
    const dir = path.dirname(full);
    const base = path.basename(full);
    fs.mkdirSync(dir, { recursive: true });
    const metadata: Record<string, string> = {};
    if (prompt) metadata.prompt = JSON.stringify(prompt);
    for (const [k, v] of Object.entries((extra_pnginfo as Record<string, unknown>) ?? {})) metadata[k] = JSON.stringify(v);
    let counter = nextCounter(dir, base);
    for (;;) {
      const filename = `${base}_${String(counter).padStart(5, '0')}_.latent`;
      const file = path.join(dir, filename);
      if (fs.existsSync(file)) {
        counter++;
        continue;
      }
      writeSafetensors(
        file,
        [
          { name: 'latent_tensor', dtype: 'F32', shape: samples.samples.shape, data: samples.samples.data },
          { name: 'latent_format_version_0', dtype: 'F32', shape: [0], data: new Float32Array(0) },
        ],
        metadata,
      );
      const subfolder = path.relative(ctx.paths.outputDir, dir).split(path.sep).join('/');
      return { ui: { latents: [{ filename, subfolder, type: 'output' }] } };
    }
  },
});

export const LoadLatent = defineNode({
  name: 'LoadLatent',
  category: '_for_testing',
  experimental: true,
  inputs: { required: { latent: { type: 'COMBO', options: latentFiles } } },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  fingerprint: (inputs, env) => createHash('sha256').update(fs.readFileSync(env.paths.annotatedPath(String(inputs.latent)))).digest('hex'),
  validateInputs: (inputs, _t, env) => {
    try {
      return fs.statSync(env.paths.annotatedPath(String(inputs.latent))).isFile() ? true : `Invalid latent file: ${String(inputs.latent)}`;
    } catch {
      return `Invalid latent file: ${String(inputs.latent)}`;
    }
  },
  run({ latent }, ctx) {
    const f = SafetensorsFile.open(ctx.paths.annotatedPath(latent));
    try {
      if (!f.has('latent_tensor')) throw new Error(`${latent}: no 'latent_tensor' in this file`);
      const shape = [...f.shape('latent_tensor')];
      if (shape.length !== 4) throw new Error(`${latent}: latent_tensor has shape [${shape.join(', ')}], expected [B, C, H, W]`);
      const data = f.get('latent_tensor');
      if (!f.has('latent_format_version_0')) for (let i = 0; i < data.length; i++) data[i] /= LEGACY_SCALE;
      return [{ samples: { shape, data } }];
    } finally {
      f.close();
    }
  },
});

export const nodes = [SaveLatent, LoadLatent];
