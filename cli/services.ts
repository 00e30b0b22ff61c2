import { ModelManager } from '../engine/models/manager.ts';
import type { BuildProgress } from '../engine/onnx/build-cache.ts';
import { resolveCacheDir, resolveCacheLimit } from '../engine/onnx/cache-dir.ts';
import { resolveMemoryBudget } from '../engine/models/runtime/memory-budget.ts';
import type { DeviceChoice } from '../engine/onnx/runtime.ts';
import type { FolderPaths } from '../engine/paths/folders.ts';
import type { EngineServices } from '../engine/registry/context.ts';
import type { Logger } from '../engine/core/log.ts';
import '../nodes/model/services.ts';

export type { DeviceChoice };

export interface ServicesOptions {
  paths: FolderPaths;
  device: DeviceChoice;
  log: Logger;
  /** Built-model cache (default: `$WEFT_CACHE_DIR`, else the user's cache folder; see cache-dir.ts). */
  modelCacheDir?: string;
  /** Bytes the model cache may hold (default: `$WEFT_CACHE_LIMIT`, else no limit); least recently used builds go first. */
  cacheLimitBytes?: number;
  /**
   * `compact` (default): weights in 16 bits where exact and read from the checkpoint where equal, ~1×
   * a float16 checkpoint on disk, widened to float32 in memory at each load; `float32`: ~2.4× on disk,
   * loads no faster (ORT's saved graph is widened either way) (`$WEFT_CACHE_STORAGE`). Results are
   * the same bits either way.
   */
  cacheStorage?: 'compact' | 'float32';
  /** Progress of first builds (the CLI's progress line); log lines are written either way. */
  onBuildProgress?: (p: BuildProgress) => void;
  threads?: number;
  /** Bytes of loaded sessions and tiled work (default: `$WEFT_MEMORY_BUDGET`, else 60% of RAM; see SessionPool.reserve). */
  memoryBudgetBytes?: number;
  loraMode?: 'branch' | 'merge';
}

/** Long-lived services nodes reach through `ctx.services`. The model manager decides its provider lazily, on first model use. */
export function createEngineServices(opts: ServicesOptions): EngineServices {
  const models = new ModelManager({
    paths: opts.paths,
    cacheDir: opts.modelCacheDir ?? resolveCacheDir(),
    device: opts.device,
    threads: opts.threads,
    memoryBudgetBytes: opts.memoryBudgetBytes ?? resolveMemoryBudget(),
    loraMode: opts.loraMode,
    log: opts.log,
  });
  const cache = models.cache;
  cache.limitBytes = opts.cacheLimitBytes ?? resolveCacheLimit();
  const storage = opts.cacheStorage ?? process.env.WEFT_CACHE_STORAGE ?? 'compact';
  if (storage !== 'compact' && storage !== 'float32') throw new Error(`WEFT_CACHE_STORAGE=${storage}: expected compact or float32`);
  cache.storeHalf = cache.linkSource = storage === 'compact';
  cache.onEvict = (e) =>
    opts.log.info(
      `model cache over its limit: removed ${e.key} (${(e.bytes / 2 ** 30).toFixed(2)} GiB, last used ${new Date(e.lastUsed).toISOString()})`,
    );
  cache.onProgress = buildLog(opts.log, opts.onBuildProgress);
  return { models };
}

/** Log lines for a build: its start (a one-time cost), each quarter written, ORT's optimisation. */
function buildLog(log: Logger, next?: (p: BuildProgress) => void): (p: BuildProgress) => void {
  const quarter = new Map<string, number>();
  return (p) => {
    next?.(p);
    const gib = (b: number): string => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);
    if (p.phase === 'write' && p.done === 0) {
      quarter.set(p.key, 0);
      log.info(`building ${p.part} (${gib(p.total)} of weights): the first use of this checkpoint; later runs find it in the cache`);
    } else if (p.phase === 'write') {
      const q = Math.floor((4 * p.done) / Math.max(1, p.total));
      if (q > (quarter.get(p.key) ?? 0) && q < 4) log.info(`building ${p.part}: ${q * 25}% (${gib(p.done)} of ${gib(p.total)})`);
      quarter.set(p.key, q);
    } else if (p.phase === 'optimise') {
      log.info(`optimising ${p.part} with ONNX Runtime (once; the optimised graph is saved for later runs)`);
    }
  };
}
