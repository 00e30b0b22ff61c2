import path from 'node:path';
import { ModelManager } from '../engine/models/manager.ts';
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
  /** Built-graph cache (default `<base>/cache/onnx`). */
  modelCacheDir?: string;
  threads?: number;
  loraMode?: 'branch' | 'merge';
}

/** Long-lived services nodes reach through `ctx.services`. The model manager decides its provider lazily, on first model use. */
export function createEngineServices(opts: ServicesOptions): EngineServices {
  const models = new ModelManager({
    paths: opts.paths,
    cacheDir: opts.modelCacheDir ?? path.join(opts.paths.baseDir, 'cache', 'onnx'),
    device: opts.device,
    threads: opts.threads,
    loraMode: opts.loraMode,
    log: opts.log,
  });
  return { models };
}
