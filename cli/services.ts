import type { FolderPaths } from '../engine/paths/folders.ts';
import type { EngineServices, Logger } from '../engine/registry/context.ts';

export type DeviceChoice = 'auto' | 'cpu' | 'cuda' | 'webgpu';

export interface ServicesOptions {
  paths: FolderPaths;
  device: DeviceChoice;
  log: Logger;
}

/** Long-lived services nodes reach through `ctx.services` (the model manager joins here). */
export function createEngineServices(_opts: ServicesOptions): EngineServices {
  return {};
}
