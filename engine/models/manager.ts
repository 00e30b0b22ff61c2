import { join } from 'node:path';
import type { BuildCache } from '../onnx/build-cache.ts';
import type { ProviderChoice } from '../onnx/runtime.ts';
import type { PoolStats, SessionPool } from '../onnx/session-pool.ts';
import type { FolderPaths } from '../paths/folders.ts';
import type { WeightSource } from '../core/weights.ts';
import { openWeights, type WeightsFile } from '../formats/open-weights.ts';
import { vaeWeights } from './families/sd1/detect.ts';
import type { VaeHandle } from './handles.ts';
import { loadOnnxFolder, type OnnxFolderParts } from './onnx-folder.ts';
import { parseAdapter, type ParsedAdapter } from './lora/index.ts';
import { builtinFamilies, type CheckpointParts, type FamilyRegistry } from './families/index.ts';
import { LDM_VAE_PREFIX, ldmVaeHandle } from './families/ldm-vae.ts';
import { PartsRuntime, type PartsRuntimeOptions, type PatchReport } from './runtime/parts-runtime.ts';
import { FileMemo } from './runtime/file-memo.ts';

export { BUILD_VERSION } from './runtime/parts-runtime.ts';
export type { CheckpointParts } from './families/index.ts';

/**
 * Turns model files into MODEL/CLIP/VAE handles running on ONNX Runtime.
 *
 * Loading a checkpoint only reads its header, asks the model families which one it is and hashes
 * it; each part's graph is built (or found in the on-disk build cache) and its session created on
 * first use by the parts runtime, so a workflow that only decodes never builds a UNet. The cache key
 * is content hash + part + precision + provider + builder version, so a second process, or the same
 * file under another name, skips building.
 */

export interface ModelManagerOptions extends PartsRuntimeOptions {
  paths?: FolderPaths;
  /** The families checkpoints are detected among (default: the built-in ones). */
  families?: FamilyRegistry;
}

export class ModelManager {
  readonly runtime: PartsRuntime;
  readonly families: FamilyRegistry;
  private readonly checkpoints = new FileMemo<CheckpointParts>();
  private readonly vaes = new FileMemo<VaeHandle>();
  private readonly folders = new Map<string, OnnxFolderParts>();
  private readonly adapters = new WeakMap<WeightSource, FileMemo<{ parsed: ParsedAdapter; hash: string }>>();

  constructor(readonly opts: ModelManagerOptions) {
    this.runtime = new PartsRuntime(opts);
    this.families = opts.families ?? builtinFamilies();
  }

  get pool(): SessionPool {
    return this.runtime.pool;
  }

  get cache(): BuildCache {
    return this.runtime.cache;
  }

  /** Graphs built (not found in the cache) so far. */
  get builds(): number {
    return this.runtime.builds;
  }

  /** What the last patched build did (for benchmarks and tests). */
  get lastPatch(): PatchReport | undefined {
    return this.runtime.lastPatch;
  }

  set lastPatch(v: PatchReport | undefined) {
    this.runtime.lastPatch = v;
  }

  provider(): Promise<ProviderChoice> {
    return this.runtime.provider();
  }

  private hashOf(sf: WeightsFile): string {
    return sf.contentHash({ cacheDir: join(this.opts.cacheDir, 'hashes') });
  }

  /** A single-file checkpoint of any registered family → MODEL, CLIP, VAE (memoised per file identity). */
  async loadCheckpoint(file: string): Promise<CheckpointParts> {
    return this.checkpoints.get(file, () => {
      const sf = openWeights(file);
      const detected = this.families.detect(sf);
      return detected.assemble({ file, hash: this.hashOf(sf), source: sf, runtime: this.runtime, paths: this.opts.paths, log: this.opts.log });
    });
  }

  /** A standalone VAE file (LDM or diffusers key names). */
  async loadVae(file: string): Promise<VaeHandle> {
    return this.vaes.get(file, () => {
      const sf = openWeights(file);
      const { config, weights } = vaeWeights(sf);
      return ldmVaeHandle(this.runtime, { cfg: config, weights, hash: this.hashOf(sf), prefix: LDM_VAE_PREFIX, file });
    });
  }

  /** A diffusers/Optimum ONNX folder → MODEL, CLIP, VAE over its own graphs (memoised per folder). */
  loadOnnxFolder(dir: string): OnnxFolderParts {
    const hit = this.folders.get(dir);
    if (hit) return hit;
    const parts = loadOnnxFolder(dir, (key, file, fn) => this.runtime.useFile(key, file, fn), { paths: this.opts.paths, log: this.opts.log });
    this.folders.set(dir, parts);
    return parts;
  }

  /**
   * An adapter file (LoRA, LyCORIS) read against a checkpoint's names (memoised per file identity
   * and checkpoint). Its content hash names the patches, so renaming a file never rebuilds.
   */
  loadAdapter(file: string, checkpoint: WeightSource): { parsed: ParsedAdapter; hash: string } {
    let memo = this.adapters.get(checkpoint);
    if (!memo) this.adapters.set(checkpoint, (memo = new FileMemo()));
    return memo.get(file, () => {
      const sf = openWeights(file);
      return { hash: this.hashOf(sf), parsed: parseAdapter(file, sf, checkpoint) };
    });
  }

  stats(): PoolStats & { builds: number } {
    return this.runtime.stats();
  }
}
