import { nextCounter, saveImageBatch, type SavedImage } from '../../engine/image/output-files.ts';
import { pyJsonDumps } from '../../engine/image/python-compat.ts';
import type { ImageTensor } from '../../engine/core/tensor.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';

// SaveLatent names its files with the same counter rule.
export { nextCounter };
export type { SavedImage };

/** What PIL accepts as a tEXt keyword: 1..79 Latin-1 characters without NUL. */
function validKeyword(k: string): boolean {
  return k.length >= 1 && k.length <= 79 && [...k].every((ch) => ch.charCodeAt(0) > 0 && ch.charCodeAt(0) <= 0xff);
}

/**
 * The PNG text chunks SaveImage writes: `prompt`, then one per extra_pnginfo key (normally
 * `workflow`), each as Python's json.dumps would write it.
 */
export function metadataChunks(prompt: unknown, extraPngInfo: unknown, ctx?: NodeContext): [string, string][] {
  const chunks: [string, string][] = [];
  if (prompt !== undefined && prompt !== null) chunks.push(['prompt', pyJsonDumps(prompt)]);
  if (extraPngInfo && typeof extraPngInfo === 'object' && !Array.isArray(extraPngInfo)) {
    for (const [k, v] of Object.entries(extraPngInfo as Record<string, unknown>)) {
      if (!validKeyword(k)) {
        ctx?.log.warn(`SaveImage: extra_pnginfo key ${JSON.stringify(k)} cannot be a PNG text keyword; not written`);
        continue;
      }
      chunks.push([k, pyJsonDumps(v)]);
    }
  }
  return chunks;
}

async function save(
  images: ImageTensor,
  prefix: string,
  type: 'output' | 'temp',
  compressionLevel: number,
  chunks: [string, string][],
  ctx: NodeContext,
): Promise<{ ui: { images: SavedImage[] }; result: [ImageTensor] }> {
  const files = await saveImageBatch(images, {
    root: type === 'output' ? ctx.paths.outputDir : ctx.paths.tempDir,
    prefix,
    type,
    compressionLevel,
    chunks,
    beforeEach: () => ctx.checkInterrupted(),
  });
  return { ui: { images: files }, result: [images] };
}

export const SaveImage = defineNode({
  name: 'SaveImage',
  displayName: 'Save Image',
  category: 'image',
  description: 'Saves the input images to your ComfyUI output directory.',
  searchAliases: ['save', 'save image', 'export image', 'output image', 'write image', 'download'],
  inputs: {
    required: {
      images: { type: 'IMAGE', tooltip: 'The images to save.' },
      filename_prefix: {
        type: 'STRING',
        default: 'ComfyUI',
        tooltip:
          'The prefix for the file to save. This may include formatting information such as %date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes.',
      },
    },
    hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
  },
  outputs: [{ type: 'IMAGE', name: 'images' }],
  outputNode: true,
  run({ images, filename_prefix, prompt, extra_pnginfo }, ctx) {
    return save(images, filename_prefix, 'output', 4, metadataChunks(prompt, extra_pnginfo, ctx), ctx);
  },
});

/** ComfyUI picks the 5 letters from this string (sic: no 'w', two 'p's). */
const TEMP_LETTERS = 'abcdefghijklmnopqrstupvxyz';

export function tempSuffix(random: () => number = Math.random): string {
  let s = '_temp_';
  for (let i = 0; i < 5; i++) s += TEMP_LETTERS[Math.floor(random() * TEMP_LETTERS.length)];
  return s;
}

export const PreviewImage = defineNode({
  name: 'PreviewImage',
  displayName: 'Preview Image',
  category: 'image',
  description: 'Preview the images without saving them to the ComfyUI output directory.',
  searchAliases: ['preview', 'preview image', 'show image', 'view image', 'display image', 'image viewer'],
  inputs: {
    required: { images: { type: 'IMAGE' } },
    hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
  },
  outputs: [{ type: 'IMAGE', name: 'images' }],
  outputNode: true,
  run({ images, prompt, extra_pnginfo }, ctx) {
    return save(images, `ComfyUI${tempSuffix()}`, 'temp', 1, metadataChunks(prompt, extra_pnginfo, ctx), ctx);
  },
});

export const nodes = [SaveImage, PreviewImage];
