import fs from 'node:fs';
import path from 'node:path';
import { encodePng } from '../../engine/image/io.ts';
import { addPngTextChunks } from '../../engine/image/png-text.ts';
import type { ImageTensor } from '../../engine/image/tensor.ts';
import { safeJoin, writeFileAtomic } from '../../engine/paths/safe-path.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/** ComfyUI's server-side prefix replacements: %width%, %height%, %year% … %second%. */
export function expandPrefix(prefix: string, width: number, height: number, now = new Date()): string {
  return prefix
    .replaceAll('%width%', String(width))
    .replaceAll('%height%', String(height))
    .replaceAll('%year%', String(now.getFullYear()))
    .replaceAll('%month%', pad(now.getMonth() + 1))
    .replaceAll('%day%', pad(now.getDate()))
    .replaceAll('%hour%', pad(now.getHours()))
    .replaceAll('%minute%', pad(now.getMinutes()))
    .replaceAll('%second%', pad(now.getSeconds()));
}

/** 1 + the highest counter among files named `<base>_NNNNN…` in `dir` (ComfyUI's get_save_image_path). */
export function nextCounter(dir: string, base: string): number {
  let max = 0;
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return 1;
  }
  for (const n of names) {
    if (!n.startsWith(`${base}_`)) continue;
    const m = /^(\d+)/.exec(n.slice(base.length + 1));
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max + 1;
}

export interface SavedFile {
  filename: string;
  subfolder: string;
  type: 'output' | 'temp';
}

/**
 * Write each image of a batch as `<prefix>_<counter:05>_.png` below `root`, atomically and never over
 * an existing file (a name taken meanwhile moves on to the next counter).
 */
export async function saveImages(
  images: ImageTensor,
  prefix: string,
  root: string,
  type: 'output' | 'temp',
  opts: { compressionLevel: number; chunks: [string, string][] },
): Promise<SavedFile[]> {
  const [b, h, w] = images.shape;
  const expanded = expandPrefix(prefix, w, h);
  const full = safeJoin(root, expanded || 'ComfyUI');
  const dir = path.dirname(full);
  const base = path.basename(full);
  const subfolder = path.relative(root, dir).split(path.sep).join('/');
  fs.mkdirSync(dir, { recursive: true });
  let counter = nextCounter(dir, base.replaceAll('%batch_num%', '0'));
  const out: SavedFile[] = [];
  for (let i = 0; i < b; i++) {
    const png = await encodePng(images, i, opts.compressionLevel);
    const data = opts.chunks.length ? addPngTextChunks(png, opts.chunks) : png;
    const name = base.replaceAll('%batch_num%', String(i));
    for (let attempt = 0; ; attempt++) {
      const filename = `${name}_${String(counter).padStart(5, '0')}_.png`;
      try {
        writeFileAtomic(path.join(dir, filename), data, { exclusive: true });
        out.push({ filename, subfolder, type });
        counter++;
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 10000) throw e;
        counter++;
      }
    }
  }
  return out;
}

function metadataChunks(prompt: unknown, extra: Readonly<Record<string, unknown>> | undefined): [string, string][] {
  const chunks: [string, string][] = [];
  if (prompt) chunks.push(['prompt', JSON.stringify(prompt)]);
  for (const [k, v] of Object.entries(extra ?? {})) chunks.push([k, JSON.stringify(v)]);
  return chunks;
}

export const SaveImage = defineNode({
  name: 'SaveImage',
  displayName: 'Save Image',
  category: 'image',
  description: 'Saves the input images to your output folder.',
  inputs: {
    required: {
      images: { type: 'IMAGE', tooltip: 'The images to save.' },
      filename_prefix: { type: 'STRING', default: 'ComfyUI', tooltip: 'The prefix for the file to save; may contain %date% style and subfolder parts.' },
    },
    hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
  },
  outputs: [],
  outputNode: true,
  async run({ images, filename_prefix, prompt, extra_pnginfo }, ctx: NodeContext) {
    const files = await saveImages(images, filename_prefix, ctx.paths.outputDir, 'output', {
      compressionLevel: 4,
      chunks: metadataChunks(prompt, extra_pnginfo as Record<string, unknown> | undefined),
    });
    return { ui: { images: files } };
  },
});

export const PreviewImage = defineNode({
  name: 'PreviewImage',
  displayName: 'Preview Image',
  category: 'image',
  description: 'Saves the input images to the temp folder for viewing.',
  inputs: {
    required: { images: { type: 'IMAGE' } },
    hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
  },
  outputs: [],
  outputNode: true,
  async run({ images, prompt, extra_pnginfo }, ctx: NodeContext) {
    const suffix = Array.from({ length: 5 }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join('');
    const files = await saveImages(images, `ComfyUI_temp_${suffix}`, ctx.paths.tempDir, 'temp', {
      compressionLevel: 1,
      chunks: metadataChunks(prompt, extra_pnginfo as Record<string, unknown> | undefined),
    });
    return { ui: { images: files } };
  },
});

export const nodes = [SaveImage, PreviewImage];
