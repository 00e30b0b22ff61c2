import type { Tensor } from '../../engine/core/tensor.ts';
import type { SamplerPreCfgFunction } from '../../engine/models/handles.ts';
import { withModelOptions } from '../../engine/models/model-wrappers.ts';
import { defineNode } from '../../engine/registry/types.ts';
import type { LatentOperation } from './latent-operations.ts';

/**
 * ComfyUI's LatentApplyOperationCFG (comfy_extras/nodes_latent.py): a pre-CFG function that replaces the
 * cond prediction by operation(cond − uncond) + uncond, leaving uncond alone. With cfg = 1 the skipped
 * negative's prediction is zeros, so the operation sees the cond prediction itself, as in ComfyUI.
 */
export function operationPreCfg(operation: LatentOperation): SamplerPreCfgFunction {
  return ({ condsOut: [cond, uncond] }) => {
    const diff: Tensor = { shape: cond.shape, data: Float32Array.from(cond.data, (v, i) => v - uncond.data[i]!) };
    const applied = operation(diff);
    if (applied.data.length !== cond.data.length) {
      throw new Error(`LatentApplyOperationCFG: the operation returned ${applied.data.length} values for ${cond.data.length}`);
    }
    return [{ shape: cond.shape, data: Float32Array.from(applied.data, (v, i) => v + uncond.data[i]!) }, uncond];
  };
}

export const LatentApplyOperationCFG = defineNode({
  name: 'LatentApplyOperationCFG',
  category: 'latent/advanced/operations',
  experimental: true,
  inputs: { required: { model: { type: 'MODEL' }, operation: { type: 'LATENT_OPERATION' } } },
  outputs: [{ type: 'MODEL', name: 'MODEL' }],
  run({ model, operation }) {
    const fns = [...(model.samplerPreCfgFunctions ?? []), operationPreCfg(operation)];
    return [withModelOptions(model, { samplerPreCfgFunctions: fns })];
  },
});

export const nodes = [LatentApplyOperationCFG];
