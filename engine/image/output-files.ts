import fs from 'node:fs';
import path from 'node:path';
import { safeJoin, writeFileAtomic } from '../core/safe-path.ts';
import { encodePng } from './io.ts';
import { addPngTextChunks } from './png-text.ts';
import { describeShape, type ImageTensor } from '../core/tensor.ts';

/**
 * Output file naming as ComfyUI's `folder_paths.get_save_image_path`, and SaveImage's writing loop,
 * made safe: names never leave the root folder and a file is never overwritten.
 */

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** The server-side prefix replacements: %width%, %height% and local %year% … %second%, zero-padded. */
export function expandPrefix(prefix: string, width: number, height: number, now = new Date()): string {
  if (!prefix.includes('%')) return prefix;
  return prefix
    .replaceAll('%width%', String(width))
    .replaceAll('%height%', String(height))
    .replaceAll('%year%', String(now.getFullYear()))
    .replaceAll('%month%', pad2(now.getMonth() + 1))
    .replaceAll('%day%', pad2(now.getDate()))
    .replaceAll('%hour%', pad2(now.getHours()))
    .replaceAll('%minute%', pad2(now.getMinutes()))
    .replaceAll('%second%', pad2(now.getSeconds()));
}

/**
 * The counter part of a file name `<base>_<digits>[_…]`, as ComfyUI reads it: the text between
 * `<base>_` and the next `_` must be an integer (else it counts as 0); undefined when the name is not
 * `<base>_…` at all.
 */
export function counterOf(fileName: string, base: string): number | undefined {
  if (!fileName.startsWith(`${base}_`)) return undefined;
  const digits = fileName.slice(base.length + 1).split('_')[0];
  return /^\s*\+?\d+\s*$/.test(digits) ? Number(digits) : 0;
}

/** 1 + the highest counter among `names` of the form `<base>_NNNNN…`, or 1 when there is none. */
export function counterAfter(names: Iterable<string>, base: string): number {
  let max: number | undefined;
  for (const n of names) {
    const c = counterOf(n, base);
    if (c !== undefined) max = Math.max(max ?? c, c);
  }
  return max === undefined ? 1 : max + 1;
}

/** 1 + the highest counter among files named `<base>_NNNNN…` in `dir` (1 when `dir` does not exist). */
export function nextCounter(dir: string, base: string): number {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return 1;
  }
  return counterAfter(names, base);
}

export interface SaveTarget {
  /** Absolute folder the files go into (inside the root). */
  dir: string;
  /** File name stem (may still hold `%batch_num%`). */
  base: string;
  /** `dir` relative to the root with `/` separators ('' for the root itself). */
  subfolder: string;
}

/** Split an (expanded) prefix like `a/b/name` into folder and stem, refusing anything outside `root`. */
export function saveTarget(root: string, prefix: string): SaveTarget {
  const full = safeJoin(root, prefix === '' ? 'ComfyUI' : prefix);
  const absRoot = path.resolve(root);
  if (full === absRoot) throw new Error(`filename_prefix ${JSON.stringify(prefix)} has no file name part`);
  const dir = path.dirname(full);
  return { dir, base: path.basename(full), subfolder: path.relative(absRoot, dir).split(path.sep).join('/') };
}

export interface SavedImage {
  filename: string;
  subfolder: string;
  type: 'output' | 'temp';
}

export interface SaveImagesOptions {
  root: string;
  prefix: string;
  type: 'output' | 'temp';
  compressionLevel: number;
  /** PNG text chunks written into every file, in order (prompt first, then extra_pnginfo keys). */
  chunks?: readonly (readonly [string, string])[];
  /** Clock for the %date% replacements (tests). */
  now?: Date;
  /** Called before each image is encoded (lets the caller honour interrupts). */
  beforeEach?: (index: number) => void;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Upper bound on names tried for one image before giving up (only reached if something keeps racing us). */
const MAX_ATTEMPTS = 100_000;

/**
 * SaveImage's loop: each image of the batch as `<base>_<counter:05>_.png`, the counter starting after the
 * highest one already in the folder and going up by one per image. Files are written atomically and
 * exclusively; a name taken meanwhile (another save running at the same time) moves to the next counter.
 */
export async function saveImageBatch(images: ImageTensor, opts: SaveImagesOptions): Promise<SavedImage[]> {
  if (images.shape.length !== 4) throw new Error(`images must be an IMAGE [B, H, W, C], got shape ${describeShape(images.shape)}`);
  const [b, h, w] = images.shape;
  const target = saveTarget(opts.root, expandPrefix(opts.prefix, w, h, opts.now));
  fs.mkdirSync(target.dir, { recursive: true });
  const listing = fs.readdirSync(target.dir);
  const nameOf = (i: number): string => target.base.replaceAll('%batch_num%', String(i));
  let counter = counterAfter(listing, target.base);
  if (target.base.includes('%batch_num%')) {
    // ComfyUI counts with the raw stem, which then matches nothing and restarts at 1 (overwriting):
    // count the files of every batch number instead.
    const stem = new RegExp(`^${target.base.split('%batch_num%').map(escapeRegExp).join('\\d+')}(?=_)`);
    const counted = listing.map((n) => n.replace(stem, '\0')).filter((n) => n.startsWith('\0'));
    counter = Math.max(counter, counterAfter(counted, '\0'));
  }
  const out: SavedImage[] = [];
  for (let i = 0; i < b; i++) {
    opts.beforeEach?.(i);
    const png = await encodePng(images, { compressionLevel: opts.compressionLevel, index: i });
    const data = opts.chunks?.length ? addPngTextChunks(png, opts.chunks) : png;
    for (let attempt = 0; ; attempt++) {
      const filename = `${nameOf(i)}_${String(counter).padStart(5, '0')}_.png`;
      try {
        writeFileAtomic(path.join(target.dir, filename), data, { exclusive: true });
        out.push({ filename, subfolder: target.subfolder, type: opts.type });
        counter++;
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        if (attempt >= MAX_ATTEMPTS) throw new Error(`no free file name for ${nameOf(i)} in ${target.dir} after ${MAX_ATTEMPTS} tries`);
        counter++;
      }
    }
  }
  return out;
}
