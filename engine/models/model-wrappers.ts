import type { ModelHandle, ModelWrapper } from './handles.ts';

/**
 * `model` with `wrapper` added inside the wrappers it already has. Patching the result (LoraLoader,
 * merges after a TiledDiffusion-style node) keeps the wrappers, as ComfyUI's ModelPatcher clones
 * keep theirs: the family's `withPatches` builds a fresh handle that knows nothing of them.
 */
export function addModelWrapper(model: ModelHandle, wrapper: ModelWrapper): ModelHandle {
  return withWrappers(model, [...(model.wrappers ?? []), wrapper]);
}

function withWrappers(model: ModelHandle, wrappers: readonly ModelWrapper[]): ModelHandle {
  const p = model.patching;
  return { ...model, wrappers, patching: p && { ...p, withPatches: (patches) => withWrappers(p.withPatches(patches), wrappers) } };
}

/** The MODEL fields a node may replace without touching its weights (ComfyUI's object patches and model_options). */
export type ModelOptionsPatch = Partial<Pick<ModelHandle, 'sampling' | 'latentFormat' | 'samplerCfgFunction' | 'samplerPreCfgFunctions' | 'wrapperOptions'>>;

/**
 * `model` with its model sampling or CFG function replaced (ModelSamplingDiscrete, RescaleCFG). Like
 * wrappers, the change survives later LoRAs and merges, whose `withPatches` builds a fresh handle.
 */
export function withModelOptions(model: ModelHandle, patch: ModelOptionsPatch): ModelHandle {
  const p = model.patching;
  return { ...model, ...patch, patching: p && { ...p, withPatches: (patches) => withModelOptions(p.withPatches(patches), patch) } };
}
