import type { NodeContext } from '../../engine/registry/context.ts';
import type { ModelManager } from '../../engine/models/manager.ts';

declare module '../../engine/registry/context.ts' {
  interface EngineServices {
    /** Loads checkpoints and VAEs into ORT-backed handles; absent in model-free test setups. */
    models?: ModelManager;
  }
}

export function modelManager(ctx: NodeContext): ModelManager {
  const m = ctx.services.models;
  if (!m) throw new Error('this engine was started without a model manager, so model nodes cannot run');
  return m;
}
