import path from 'node:path';
import { Executor } from '../engine/executor/executor.ts';
import { FolderPaths } from '../engine/paths/folders.ts';
import { type EngineServices } from '../engine/registry/context.ts';
import { consoleLogger, type Logger } from '../engine/core/log.ts';
import { loadCustomNodes, type CustomPackageReport } from '../engine/registry/custom-nodes.ts';
import type { NodeRegistry } from '../engine/registry/registry.ts';
import { createBuiltinRegistry } from '../nodes/index.ts';
import { createEngineServices, type DeviceChoice } from './services.ts';
import type { BuildProgress } from '../engine/onnx/build-cache.ts';

/** Options shared by `weft run`, `weft serve` and the tests that start a real engine. */
export interface EnvironmentOptions {
  baseDir?: string;
  modelsDir?: string;
  inputDir?: string;
  outputDir?: string;
  tempDir?: string;
  userDir?: string;
  extraModelPaths?: string[];
  customNodesDirs?: string[];
  /** Skip custom_nodes/ entirely (ComfyUI --disable-all-custom-nodes). */
  disableCustomNodes?: boolean;
  device?: DeviceChoice;
  /** See ModelManagerOptions.loraMode. */
  loraMode?: 'branch' | 'merge';
  cacheBudgetBytes?: number;
  /** Built-model cache folder (default: `$WEFT_CACHE_DIR`, else the user's cache folder). */
  modelCacheDir?: string;
  /** Bytes the model cache may hold (default: `$WEFT_CACHE_LIMIT`, else no limit). */
  modelCacheLimitBytes?: number;
  /** Bytes of loaded models and tiled work (default: `$WEFT_MEMORY_BUDGET`, else 60% of RAM). */
  memoryBudgetBytes?: number;
  /** Progress of first model builds (the CLI's progress line). */
  onBuildProgress?: (p: BuildProgress) => void;
  log?: Logger;
}

export interface Environment {
  paths: FolderPaths;
  registry: NodeRegistry;
  executor: Executor;
  services: EngineServices;
  customNodes: CustomPackageReport[];
  log: Logger;
}

/** Repository root (where workflows/, custom_nodes/ and extra_model_paths.yaml live). */
export const REPO_ROOT = path.resolve(import.meta.dirname, '..');

export async function createEnvironment(opts: EnvironmentOptions = {}): Promise<Environment> {
  const log = opts.log ?? consoleLogger;
  const baseDir = path.resolve(opts.baseDir ?? process.cwd());
  const paths = new FolderPaths({
    baseDir,
    modelsDir: opts.modelsDir,
    inputDir: opts.inputDir,
    outputDir: opts.outputDir,
    tempDir: opts.tempDir,
    userDir: opts.userDir,
    customNodesDirs: opts.customNodesDirs ?? [path.join(REPO_ROOT, 'custom_nodes')],
  });
  for (const file of opts.extraModelPaths ?? []) paths.loadExtraModelPaths(file);
  const registry = createBuiltinRegistry();
  const customNodes = opts.disableCustomNodes ? [] : await loadCustomNodes(registry, paths.customNodesDirs, log);
  const services = createEngineServices({
    paths,
    device: opts.device ?? 'auto',
    loraMode: opts.loraMode,
    log,
    modelCacheDir: opts.modelCacheDir,
    cacheLimitBytes: opts.modelCacheLimitBytes,
    memoryBudgetBytes: opts.memoryBudgetBytes,
    onBuildProgress: opts.onBuildProgress,
  });
  const executor = new Executor(registry, { paths, services, log, cacheBudgetBytes: opts.cacheBudgetBytes });
  return { paths, registry, executor, services, customNodes, log };
}
