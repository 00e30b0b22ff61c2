import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { counterAfter, expandPrefix, saveTarget } from '../../engine/image/output-files.ts';
import { pyJsonDumps } from '../../engine/image/python-compat.ts';
import { describeShape, type Latent } from '../../engine/core/tensor.ts';
import { SafetensorsFile, writeSafetensors } from '../../engine/formats/safetensors.ts';
import type { ListingContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';

/**
 * ComfyUI's `.latent` files: safetensors with `latent_tensor` (the NCHW batch) and an empty
 * `latent_format_version_0` marker; `__metadata__` holds the prompt and extra_pnginfo as JSON text.
 */

/** SD1's scale factor: files from before ComfyUI's format marker stored scaled latents. */
const LEGACY_SCALE = 0.18215;
const MARKER = 'latent_format_version_0';
/** Upper bound on names tried before giving up (only reached if something keeps racing us). */
const MAX_ATTEMPTS = 100_000;

/** As ComfyUI lists them: files directly in input/ whose names end in `.latent` (case-sensitive), sorted. */
export function latentFiles(env: ListingContext): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(env.paths.inputDir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.latent') && fs.statSync(path.join(env.paths.inputDir, n), { throwIfNoEntry: false })?.isFile())
    .sort();
}

/** SaveLatent's `__metadata__`: `prompt` (empty when there is none) and one entry per extra_pnginfo key, as Python's json.dumps writes them. */
export function latentMetadata(prompt: unknown, extraPngInfo: unknown): Record<string, string> {
  const meta: Record<string, string> = { prompt: prompt === undefined || prompt === null ? '' : pyJsonDumps(prompt) };
  if (extraPngInfo && typeof extraPngInfo === 'object' && !Array.isArray(extraPngInfo)) {
    for (const [k, v] of Object.entries(extraPngInfo as Record<string, unknown>)) meta[k] = pyJsonDumps(v);
  }
  return meta;
}

export const SaveLatent = defineNode({
  name: 'SaveLatent',
  category: '_for_testing',
  experimental: true,
  inputs: {
    required: { samples: { type: 'LATENT' }, filename_prefix: { type: 'STRING', default: 'latents/ComfyUI' } },
    hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
  },
  outputs: [{ type: 'LATENT', name: 'samples' }],
  outputNode: true,
  run({ samples, filename_prefix, prompt, extra_pnginfo }, ctx) {
    const t = samples.samples;
    if (t.data.length !== t.shape.reduce((a, b) => a * b, 1))
      throw new Error(`samples: data length ${t.data.length} does not match shape ${describeShape(t.shape)}`);
    // No image here, so %width% and %height% become 0, as ComfyUI's get_save_image_path defaults them.
    const target = saveTarget(ctx.paths.outputDir, expandPrefix(filename_prefix, 0, 0));
    fs.mkdirSync(target.dir, { recursive: true });
    const metadata = latentMetadata(prompt, extra_pnginfo);
    let counter = counterAfter(fs.readdirSync(target.dir), target.base);
    for (let attempt = 0; ; attempt++) {
      const filename = `${target.base}_${String(counter).padStart(5, '0')}_.latent`;
      try {
        // Exclusive: a file saved meanwhile under this name is never replaced; take the next counter.
        writeSafetensors(
          path.join(target.dir, filename),
          [
            { name: 'latent_tensor', dtype: 'F32', shape: t.shape, data: t.data },
            { name: MARKER, dtype: 'F32', shape: [0], data: new Float32Array(0) },
          ],
          metadata,
          { exclusive: true },
        );
        return { result: [samples], ui: { latents: [{ filename, subfolder: target.subfolder, type: 'output' }] } };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        if (attempt >= MAX_ATTEMPTS) throw new Error(`no free file name for ${target.base} in ${target.dir} after ${MAX_ATTEMPTS} tries`);
        counter++;
      }
    }
  },
});

function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (let pos = 0; ;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Read a `.latent` file as a LATENT (float32; unscaled by 1/0.18215 when it predates the format marker). */
export function readLatentFile(file: string, label = file): Latent {
  const f = SafetensorsFile.open(file);
  try {
    if (!f.has('latent_tensor'))
      throw new Error(`${label}: no 'latent_tensor' in this file (tensors: ${f.names().slice(0, 5).join(', ') || 'none'})`);
    const shape = [...f.shape('latent_tensor')];
    if (shape.length !== 4) throw new Error(`${label}: latent_tensor has shape ${describeShape(shape)}, expected [B, C, H, W]`);
    const data = f.get('latent_tensor');
    if (!f.has(MARKER)) for (let i = 0; i < data.length; i++) data[i] /= LEGACY_SCALE;
    return { samples: { shape, data } };
  } finally {
    f.close();
  }
}

export const LoadLatent = defineNode({
  name: 'LoadLatent',
  category: '_for_testing',
  experimental: true,
  inputs: { required: { latent: { type: 'COMBO', options: latentFiles } } },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  // ComfyUI's IS_CHANGED: the file's SHA-256 (streamed, so a large file is never read whole).
  fingerprint: (inputs, env) => sha256File(env.paths.annotatedPath(String(inputs.latent))),
  validateInputs: (inputs, _t, env) => {
    try {
      return fs.statSync(env.paths.annotatedPath(String(inputs.latent))).isFile() ? true : `Invalid latent file: ${String(inputs.latent)}`;
    } catch {
      return `Invalid latent file: ${String(inputs.latent)}`;
    }
  },
  run({ latent }, ctx) {
    return [readLatentFile(ctx.paths.annotatedPath(latent), latent)];
  },
});

export const nodes = [SaveLatent, LoadLatent];
