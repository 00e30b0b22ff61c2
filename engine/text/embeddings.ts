import fs from 'node:fs';
import path from 'node:path';
import { walk, type FolderPaths } from '../paths/folders.ts';
import { openWeights, type WeightsFile } from '../formats/open-weights.ts';
import { type Dtype } from '../core/dtype.ts';
import type { NamedEmbeddingLookup } from './clip-tokenizer.ts';

/** Real embeddings are a few KiB (SD1) to a few hundred KiB (SDXL); anything this big is another kind of file. */
export const MAX_EMBEDDING_FILE = 32 * 1024 * 1024;
/** A1111 and ComfyUI fit an embedding in a 75-token chunk; a few chunks' worth is already generous. */
export const MAX_EMBEDDING_VECTORS = 256;

/** File types looked for, in ComfyUI's order of preference when a name has no extension. */
const EMBEDDING_EXTENSIONS = ['.safetensors', '.sft', '.pt', '.bin'];
const FLOAT_DTYPES: ReadonlySet<Dtype> = new Set<Dtype>(['F16', 'BF16', 'F32', 'F64']);

const shapeText = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/** Which tensor of an embedding file holds the vectors, by the layouts the tools write. */
function chooseTensor(st: WeightsFile, expectedWidth: number): string {
  const names = st.names();
  const file = st.file;
  if (names.length === 0) throw new Error(`${file}: the file holds no tensors, so it is not a textual-inversion embedding`);
  const width = (n: string): number | undefined => st.shape(n).at(-1);
  // Kohya-style trainers.
  if (st.has('emb_params')) return 'emb_params';
  // SDXL embeddings carry one tensor per text encoder; SD1 uses the CLIP-L one.
  if (st.has('clip_l') || st.has('clip_g')) {
    if (st.has('clip_l') && width('clip_l') === expectedWidth) return 'clip_l';
    if (st.has('clip_g') && width('clip_g') === expectedWidth) return 'clip_g';
    return st.has('clip_l') ? 'clip_l' : 'clip_g';
  }
  // A1111's own layout, flattened by the safetensors conversion (string_to_token.* may sit beside it).
  const terms = names.filter((n) => n.startsWith('string_to_param.'));
  if (terms.length === 1) return terms[0];
  if (terms.length > 1) {
    throw new Error(
      `${file}: the file has ${terms.length} embedding terms (${terms.join(', ')}); like A1111, only files with one term are loaded`,
    );
  }
  // Diffusers concepts and other single-tensor files.
  const floats = names.filter((n) => FLOAT_DTYPES.has(st.dtype(n)));
  if (names.length === 1) return names[0];
  if (floats.length === 1) return floats[0];
  const listed = names
    .slice(0, 12)
    .map((n) => `'${n}' ${shapeText(st.shape(n))} ${st.dtype(n)}`)
    .join(', ');
  throw new Error(
    `${file}: cannot tell which tensor holds the embedding vectors: expected 'emb_params', 'clip_l'/'clip_g', one 'string_to_param.*', ` +
      `or a single tensor, but it has ${listed}${names.length > 12 ? `, ... (${names.length} tensors)` : ''}`,
  );
}

/**
 * Textual-inversion vectors from a .safetensors file, one Float32Array of `expectedWidth` per token the
 * embedding stands for. Layouts: `emb_params` [n, w] (kohya), `clip_l`/`clip_g` (SDXL files: the one
 * whose width is `expectedWidth`, so clip_l for SD1), a single `string_to_param.*` (A1111's .pt layout as
 * converted to safetensors), and any single-tensor file (diffusers concepts); a 1-D tensor is one vector
 * and leading dimensions are flattened. Pickles (A1111 .pt, diffusers learned_embeds.bin) are read by the
 * non-executing torch reader, whose flattened names give the same layouts. Errors name the file, the
 * tensor and the shapes.
 */
export function loadEmbeddingFile(file: string, expectedWidth: number): Float32Array[] {
  if (!Number.isSafeInteger(expectedWidth) || expectedWidth <= 0)
    throw new Error(`expected embedding width must be a positive integer, got ${expectedWidth}`);
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch (e) {
    throw new Error(`${file}: cannot read the embedding: ${(e as Error).message}`);
  }
  if (size > MAX_EMBEDDING_FILE) {
    throw new Error(
      `${file}: ${size} bytes is far too large for a textual-inversion embedding (limit ${MAX_EMBEDDING_FILE}); is it a LoRA or a checkpoint in the embeddings folder?`,
    );
  }
  const st = openWeights(file);
  try {
    const key = chooseTensor(st, expectedWidth);
    const dtype = st.dtype(key);
    const shape = st.shape(key);
    if (!FLOAT_DTYPES.has(dtype))
      throw new Error(`${file}: tensor '${key}' is ${dtype}; embedding vectors must be floating point (F16, BF16, F32 or F64)`);
    if (shape.length === 0) throw new Error(`${file}: tensor '${key}' is a scalar, not embedding vectors`);
    const width = shape[shape.length - 1];
    if (width !== expectedWidth) {
      const others = ['clip_l', 'clip_g']
        .filter((k) => k !== key && st.has(k))
        .map((k) => `, '${k}' ${shapeText(st.shape(k))}`)
        .join('');
      throw new Error(
        `${file}: tensor '${key}' has shape ${shapeText(shape)}${others}, vectors of width ${width}, but this text encoder takes width ${expectedWidth} ` +
          '(an embedding made for another model family? SD1.x uses 768, SD2.x 1024, SDXL 768 + 1280)',
      );
    }
    const count = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    if (count === 0) throw new Error(`${file}: tensor '${key}' has shape ${shapeText(shape)}, which holds no vectors`);
    if (count > MAX_EMBEDDING_VECTORS)
      throw new Error(
        `${file}: tensor '${key}' has shape ${shapeText(shape)}: ${count} vectors is more than the ${MAX_EMBEDDING_VECTORS} an embedding may have`,
      );
    const data = st.get(key);
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i]))
        throw new Error(`${file}: tensor '${key}' holds a non-finite value (${data[i]}) at vector ${Math.floor(i / width)}`);
    }
    return Array.from({ length: count }, (_, i) => data.slice(i * width, (i + 1) * width));
  } finally {
    st.close();
  }
}

interface EmbeddingFile {
  abs: string;
  /** Relative to its root, with `/`. */
  rel: string;
  /** `rel` without the extension. */
  stem: string;
  ext: string;
  root: number;
}

/** Bound on the folder walk. */
const MAX_FILES = 100_000;
/** Loaded embeddings kept; each is a few KiB, so this only stops unbounded growth. */
const CACHE_LIMIT = 1024;

function listEmbeddingFiles(roots: readonly string[]): EmbeddingFile[] {
  const out: EmbeddingFile[] = [];
  roots.forEach((root, rootIndex) => {
    for (const r of walk(root, MAX_FILES - out.length)) {
      const ext = path.extname(r).toLowerCase();
      if (EMBEDDING_EXTENSIONS.includes(ext))
        out.push({ abs: path.join(root, r), rel: r, stem: r.slice(0, r.length - ext.length), ext, root: rootIndex });
    }
  });
  return out;
}

/**
 * Textual-inversion embeddings by name from the `embeddings` folders of a FolderPaths. A name matches
 * with or without its extension, case-insensitively, either as a path from a folder's root
 * (`sub/name`) or, as ComfyUI searches every subfolder, as a path inside any subfolder (`name` finds
 * `sub/name.safetensors`). Several matches are ranked: exact case, then anchored at the root, then
 * .safetensors before other types, then folder order, then shallower, then alphabetical.
 *
 * Loaded vectors are cached per file version (size and modification time). A file that fails to load
 * (pickle, wrong width, malformed) is reported once per version through onWarning, and its lookup
 * returns undefined like a missing one. `lookup` also carries `names()`, so handing it to
 * tokenizeA1111 is enough for bare-name matching.
 */
export class EmbeddingLibrary {
  readonly lookup: NamedEmbeddingLookup;
  private files: EmbeddingFile[] | undefined;
  private readonly cache = new Map<string, { stamp: string; vectors?: Float32Array[] }>();

  constructor(
    private readonly paths: FolderPaths,
    readonly expectedWidth: number,
    private readonly onWarning?: (m: string) => void,
  ) {
    this.lookup = Object.assign((name: string): Float32Array[] | undefined => this.get(name), { names: (): string[] => this.names() });
  }

  /**
   * A1111's embedding names for bare-name matching: file names without extension (subfolders do not
   * count), each once, from a fresh look at the folders.
   */
  names(): string[] {
    this.files = listEmbeddingFiles(this.paths.searchPaths('embeddings'));
    const out = new Set<string>();
    for (const f of this.files) out.add(path.posix.basename(f.stem));
    return [...out];
  }

  /** The file a name resolves to, or undefined. The listing is refreshed when a name is not in it. */
  find(name: string): string | undefined {
    const q = name.trim().replaceAll('\\', '/').replace(/^\/+/, '');
    if (!q || q.split('/').some((part) => part === '..')) return undefined;
    this.files ??= listEmbeddingFiles(this.paths.searchPaths('embeddings'));
    let hit = pick(this.files, q);
    if (!hit || !fs.existsSync(hit.abs)) {
      this.files = listEmbeddingFiles(this.paths.searchPaths('embeddings'));
      hit = pick(this.files, q);
    }
    return hit?.abs;
  }

  private get(name: string): Float32Array[] | undefined {
    const file = this.find(name);
    if (!file) return undefined;
    let stamp: string;
    try {
      const st = fs.statSync(file);
      stamp = `${st.size}:${st.mtimeMs}`;
    } catch {
      return undefined;
    }
    const cached = this.cache.get(file);
    if (cached?.stamp === stamp) return cached.vectors;
    let vectors: Float32Array[] | undefined;
    try {
      vectors = loadEmbeddingFile(file, this.expectedWidth);
    } catch (e) {
      this.onWarning?.(`embedding ${JSON.stringify(name)} could not be loaded: ${(e as Error).message}`);
    }
    this.cache.delete(file);
    if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(file, { stamp, vectors });
    return vectors;
  }
}

function pick(files: readonly EmbeddingFile[], q: string): EmbeddingFile | undefined {
  const ql = q.toLowerCase();
  let best: EmbeddingFile | undefined;
  let bestKey: (number | string)[] | undefined;
  for (const f of files) {
    const rel = f.rel.toLowerCase();
    const stem = f.stem.toLowerCase();
    const anchored = rel === ql || stem === ql;
    if (!anchored && !rel.endsWith(`/${ql}`) && !stem.endsWith(`/${ql}`)) continue;
    const exactCase = f.rel === q || f.stem === q || f.rel.endsWith(`/${q}`) || f.stem.endsWith(`/${q}`);
    const key = [exactCase ? 0 : 1, anchored ? 0 : 1, EMBEDDING_EXTENSIONS.indexOf(f.ext), f.root, f.rel.split('/').length, f.rel];
    if (!bestKey || compareKeys(key, bestKey) < 0) {
      best = f;
      bestKey = key;
    }
  }
  return best;
}

function compareKeys(a: readonly (number | string)[], b: readonly (number | string)[]): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] < b[i]) return -1;
    if (a[i] > b[i]) return 1;
  }
  return 0;
}
