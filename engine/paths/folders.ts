import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { safeJoin } from '../core/safe-path.ts';

/** ComfyUI's model-file extensions (case-insensitive). Weft refuses to unpickle the pickle ones at load time. */
export const MODEL_EXTENSIONS = ['.ckpt', '.pt', '.pt2', '.bin', '.pth', '.safetensors', '.pkl', '.sft'];

/** ComfyUI's default folders: name → sub-folders of models/ and allowed extensions (empty = any). */
const DEFAULT_FOLDERS: Record<string, { dirs: string[]; exts: string[] }> = {
  checkpoints: { dirs: ['checkpoints'], exts: MODEL_EXTENSIONS },
  configs: { dirs: ['configs'], exts: ['.yaml'] },
  loras: { dirs: ['loras'], exts: MODEL_EXTENSIONS },
  vae: { dirs: ['vae'], exts: MODEL_EXTENSIONS },
  text_encoders: { dirs: ['text_encoders', 'clip'], exts: MODEL_EXTENSIONS },
  diffusion_models: { dirs: ['unet', 'diffusion_models'], exts: MODEL_EXTENSIONS },
  clip_vision: { dirs: ['clip_vision'], exts: MODEL_EXTENSIONS },
  style_models: { dirs: ['style_models'], exts: MODEL_EXTENSIONS },
  embeddings: { dirs: ['embeddings'], exts: MODEL_EXTENSIONS },
  diffusers: { dirs: ['diffusers'], exts: ['folder'] },
  vae_approx: { dirs: ['vae_approx'], exts: MODEL_EXTENSIONS },
  controlnet: { dirs: ['controlnet', 't2i_adapter'], exts: MODEL_EXTENSIONS },
  gligen: { dirs: ['gligen'], exts: MODEL_EXTENSIONS },
  upscale_models: { dirs: ['upscale_models'], exts: MODEL_EXTENSIONS },
  latent_upscale_models: { dirs: ['latent_upscale_models'], exts: MODEL_EXTENSIONS },
  hypernetworks: { dirs: ['hypernetworks'], exts: MODEL_EXTENSIONS },
  photomaker: { dirs: ['photomaker'], exts: MODEL_EXTENSIONS },
  model_patches: { dirs: ['model_patches'], exts: MODEL_EXTENSIONS },
  detection: { dirs: ['detection'], exts: MODEL_EXTENSIONS },
  // YOLO detectors: the Impact Subpack's three folders and A1111 ADetailer's models/adetailer (reach
  // an A1111 install's through extra_model_paths.yaml). Weft runs ultralytics' ONNX exports; the
  // PyTorch files are listed so that naming one gets the export command, not "not found".
  ultralytics_bbox: { dirs: ['ultralytics/bbox'], exts: ['.onnx', ...MODEL_EXTENSIONS] },
  ultralytics_segm: { dirs: ['ultralytics/segm'], exts: ['.onnx', ...MODEL_EXTENSIONS] },
  ultralytics: { dirs: ['ultralytics'], exts: ['.onnx', ...MODEL_EXTENSIONS] },
  adetailer: { dirs: ['adetailer'], exts: ['.onnx', ...MODEL_EXTENSIONS] },
  classifiers: { dirs: ['classifiers'], exts: [] },
  // Weft keeps CLIP BPE files (vocab.json + merges.txt) here, one folder per tokenizer.
  tokenizers: { dirs: ['tokenizers'], exts: [] },
};

/** Legacy names that ComfyUI maps onto current folders. */
const FOLDER_ALIASES: Record<string, string> = { unet: 'diffusion_models', clip: 'text_encoders' };

export interface FolderPathsOptions {
  /** Root for models/ (default `<base>/models`). */
  modelsDir?: string;
  baseDir?: string;
  inputDir?: string;
  outputDir?: string;
  tempDir?: string;
  userDir?: string;
  customNodesDirs?: string[];
}

interface FolderEntry {
  paths: string[];
  exts: string[];
}

/**
 * The equivalent of ComfyUI's `folder_paths`: where each kind of model lives, plus the input, output,
 * temp and user folders. Every lookup by name goes through `safeJoin`, so a request can never name a
 * file outside the folder it asks about.
 */
export class FolderPaths {
  readonly baseDir: string;
  readonly modelsDir: string;
  readonly inputDir: string;
  readonly outputDir: string;
  readonly tempDir: string;
  readonly userDir: string;
  readonly customNodesDirs: string[];
  private readonly folders = new Map<string, FolderEntry>();

  constructor(opts: FolderPathsOptions = {}) {
    this.baseDir = path.resolve(opts.baseDir ?? process.cwd());
    this.modelsDir = path.resolve(opts.modelsDir ?? path.join(this.baseDir, 'models'));
    this.inputDir = path.resolve(opts.inputDir ?? path.join(this.baseDir, 'input'));
    this.outputDir = path.resolve(opts.outputDir ?? path.join(this.baseDir, 'output'));
    this.tempDir = path.resolve(opts.tempDir ?? path.join(this.baseDir, 'temp'));
    this.userDir = path.resolve(opts.userDir ?? path.join(this.baseDir, 'user'));
    this.customNodesDirs = (opts.customNodesDirs ?? [path.join(this.baseDir, 'custom_nodes')]).map((d) => path.resolve(d));
    for (const [name, def] of Object.entries(DEFAULT_FOLDERS)) {
      this.folders.set(name, { paths: def.dirs.map((d) => path.join(this.modelsDir, d)), exts: [...def.exts] });
    }
  }

  folderNames(): string[] {
    return [...this.folders.keys()];
  }

  hasFolder(name: string): boolean {
    return this.folders.has(FOLDER_ALIASES[name] ?? name);
  }

  /** Search paths of a folder, first match wins. */
  searchPaths(folder: string): string[] {
    return [...this.entry(folder).paths];
  }

  /** ComfyUI's add_model_folder_path: a new folder name gets an empty extension set (= any file). */
  addPath(folder: string, dir: string, opts: { first?: boolean } = {}): void {
    const name = FOLDER_ALIASES[folder] ?? folder;
    let entry = this.folders.get(name);
    if (!entry) {
      entry = { paths: [], exts: [] };
      this.folders.set(name, entry);
    }
    const abs = path.resolve(dir);
    if (name === 'custom_nodes') {
      if (!this.customNodesDirs.includes(abs)) this.customNodesDirs.push(abs);
      return;
    }
    entry.paths = entry.paths.filter((p) => p !== abs);
    if (opts.first) entry.paths.unshift(abs);
    else entry.paths.push(abs);
  }

  /** Recursive, sorted, de-duplicated file names relative to their search path (ComfyUI's listing). */
  listFiles(folder: string): string[] {
    const entry = this.entry(folder);
    const seen = new Set<string>();
    for (const root of entry.paths) {
      for (const rel of walk(root)) {
        if (entry.exts.length === 0 || entry.exts.includes(path.extname(rel).toLowerCase())) seen.add(rel);
      }
    }
    return [...seen].sort();
  }

  /** Absolute path of a named file in a folder (first search path containing it), or undefined. */
  find(folder: string, name: string): string | undefined {
    for (const root of this.entry(folder).paths) {
      // Model files may be links to other disks (listings follow them too); names still cannot escape.
      const p = safeJoin(root, name, { followLinks: true });
      if (fs.existsSync(p)) return p;
    }
    return undefined;
  }

  /** Like `find`, but throws a readable error naming the folder's search paths. */
  require(folder: string, name: string): string {
    const p = this.find(folder, name);
    if (!p) {
      throw new Error(`${folder} file ${JSON.stringify(name)} not found; looked in ${this.entry(folder).paths.join(', ') || '(no paths)'}`);
    }
    return p;
  }

  /** Resolve `name` or `name [output]`-style annotated names against input/output/temp. */
  annotatedPath(name: string, defaultType: 'input' | 'output' | 'temp' = 'input'): string {
    const m = /^(.*) \[(input|output|temp)\]$/.exec(name);
    const type = (m?.[2] as 'input' | 'output' | 'temp' | undefined) ?? defaultType;
    // Inputs are read, and may be links as models are; output and temp are written, so never follow.
    return safeJoin(this.typeDir(type), m ? m[1] : name, { followLinks: type === 'input' });
  }

  typeDir(type: 'input' | 'output' | 'temp'): string {
    return type === 'input' ? this.inputDir : type === 'output' ? this.outputDir : this.tempDir;
  }

  /** Files in the input folder (recursive), for LoadImage-style combos. */
  listInput(filter: (name: string) => boolean = () => true): string[] {
    return walk(this.inputDir).filter(filter).sort();
  }

  /**
   * Load an `extra_model_paths.yaml` in ComfyUI's format: sections of `base_path`, `is_default`
   * and `<folder>: <path or newline-separated paths>`; relative paths are taken from the YAML's folder.
   */
  loadExtraModelPaths(file: string): void {
    let doc: unknown;
    try {
      doc = YAML.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new Error(`cannot read extra model paths file ${file}: ${(e as Error).message}`);
    }
    if (doc === null || doc === undefined) return;
    if (typeof doc !== 'object' || Array.isArray(doc)) {
      throw new Error(`extra model paths file ${file}: expected a mapping of sections at the top level`);
    }
    const yamlDir = path.dirname(path.resolve(file));
    for (const [section, body] of Object.entries(doc as Record<string, unknown>)) {
      if (body === null || body === undefined) continue;
      if (typeof body !== 'object' || Array.isArray(body)) {
        throw new Error(`extra model paths file ${file}: section '${section}' must be a mapping`);
      }
      const conf = { ...(body as Record<string, unknown>) };
      let base: string | undefined;
      if (typeof conf.base_path === 'string') {
        base = path.resolve(yamlDir, expandVars(conf.base_path));
      }
      const first = conf.is_default === true;
      delete conf.base_path;
      delete conf.is_default;
      for (const [folder, value] of Object.entries(conf)) {
        if (typeof value !== 'string') {
          throw new Error(`extra model paths file ${file}: '${section}.${folder}' must be a path string`);
        }
        for (const line of value.split('\n')) {
          const p = line.trim();
          if (!p) continue;
          const expanded = expandVars(p);
          const full = base ? path.resolve(base, expanded) : path.resolve(yamlDir, expanded);
          this.addPath(folder, full, { first });
        }
      }
    }
  }

  private entry(folder: string): FolderEntry {
    const name = FOLDER_ALIASES[folder] ?? folder;
    const e = this.folders.get(name);
    if (!e) throw new Error(`unknown model folder '${folder}' (known: ${this.folderNames().join(', ')})`);
    return e;
  }
}

function expandVars(p: string): string {
  let s = p.replace(/^~(?=$|[\\/])/, os.homedir());
  s = s.replace(/\$\{(\w+)\}|\$(\w+)/g, (m, a: string | undefined, b: string | undefined) => {
    const v = process.env[(a ?? b) as string];
    return v ?? m;
  });
  return s;
}

/**
 * Recursive listing relative to root, in name order; follows symlinks (as ComfyUI does) but visits a
 * real folder once, so symlink cycles end; skips .git and hidden temp files; stops at `maxFiles`.
 */
export function walk(root: string, maxFiles = 100_000): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (dir: string, rel: string, depth: number): void => {
    if (depth > 32 || out.length >= maxFiles) return;
    let entries: fs.Dirent[];
    try {
      const real = fs.realpathSync(dir);
      if (seen.has(real)) return;
      seen.add(real);
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (out.length >= maxFiles) return;
      if (e.name === '.git' || e.name.startsWith('.')) continue;
      const abs = path.join(dir, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        try {
          const st = fs.statSync(abs);
          isDir = st.isDirectory();
          isFile = st.isFile();
        } catch {
          continue;
        }
      }
      if (isDir) visit(abs, r, depth + 1);
      else if (isFile) out.push(r);
    }
  };
  visit(root, '', 0);
  return out;
}
