import type { WeightPatching } from '../../engine/models/handles.ts';
import { addPatches, type PatchEntry } from '../../engine/models/patching/patch-set.ts';
import { SD1_PREFIX } from '../../engine/models/families/sd1/config.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { saveTensorFile } from './merge-save.ts';

/**
 * ComfyUI's ModelMergeSimple, CLIPMergeSimple and CheckpointSave over the same patch lists LoRAs
 * use: a merge is "W ← ratio·W₁ + (1−ratio)·W₂" per weight, so merges, LoRAs and strengths stack
 * in any order and the merged model is built like any patched one.
 */

/** ComfyUI leaves these CLIP buffers out of merges. */
const MERGE_SKIP = ['.position_ids', '.logit_scale'];

/** How one weight of the first model takes the second's: W ← strengthModel·W + strength·W₂, or untouched. */
export type MergeWeigh = (relName: string) => { strength: number; strengthModel: number } | undefined;

/**
 * ComfyUI's `add_patches(model2.get_key_patches(), strength, strength_model)` for every weight both
 * models have under the first one's prefix; `weigh` gets the name without that prefix (the UNet key
 * ModelMergeBlocks matches, e.g. `input_blocks.1.`) and returns undefined for "leave as is".
 */
export function mergeWith<H>(
  label: string,
  a: WeightPatching<H> | undefined,
  b: WeightPatching<unknown> | undefined,
  otherId: string,
  weigh: MergeWeigh,
): H {
  if (!a || !b) throw new Error(`${label}: both inputs must be checkpoints whose weights Weft builds (not exported ONNX graphs)`);
  const adds = new Map<string, PatchEntry>();
  for (const name of a.weights.names()) {
    if (!name.startsWith(a.prefix) || MERGE_SKIP.some((s) => name.endsWith(s))) continue;
    if (!b.weights.has(name)) continue;
    const w = weigh(name.slice(a.prefix.length));
    // strength 0 with strengthModel 1 changes nothing; leaving it out keeps the patch set (and its build) unchanged.
    if (!w || (w.strength === 0 && w.strengthModel === 1)) continue;
    const sa = a.weights.shape(name);
    const sb = b.weights.shape(name);
    if (sa.length !== sb.length || sa.some((d, i) => d !== sb[i])) {
      throw new Error(
        `${label}: '${name}' is [${sa.join(', ')}] in the first model and [${sb.join(', ')}] in the second; only models of the same architecture merge`,
      );
    }
    adds.set(name, {
      sig: `merge:${otherId}`,
      strength: w.strength,
      strengthModel: w.strengthModel,
      source: { kind: 'weight', read: (t) => b.read(t) },
    });
  }
  return a.withPatches(addPatches(a.patches, adds));
}

function mergePatches<H>(
  label: string,
  a: WeightPatching<H> | undefined,
  b: WeightPatching<unknown> | undefined,
  otherId: string,
  ratio: number,
): H | undefined {
  if (!a || !b) throw new Error(`${label}: both inputs must be checkpoints whose weights Weft builds (not exported ONNX graphs)`);
  if (ratio === 1) return undefined;
  return mergeWith(label, a, b, otherId, () => ({ strength: 1 - ratio, strengthModel: ratio }));
}

export const ModelMergeSimple = defineNode({
  name: 'ModelMergeSimple',
  category: 'advanced/model_merging',
  inputs: {
    required: {
      model1: { type: 'MODEL' },
      model2: { type: 'MODEL' },
      ratio: { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'MODEL', name: 'MODEL' }],
  run({ model1, model2, ratio }) {
    return [mergePatches('ModelMergeSimple', model1.patching, model2.patching, model2.id, ratio) ?? model1];
  },
});

export const CLIPMergeSimple = defineNode({
  name: 'CLIPMergeSimple',
  category: 'advanced/model_merging',
  inputs: {
    required: {
      clip1: { type: 'CLIP' },
      clip2: { type: 'CLIP' },
      ratio: { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'CLIP', name: 'CLIP' }],
  run({ clip1, clip2, ratio }) {
    return [mergePatches('CLIPMergeSimple', clip1.patching, clip2.patching, clip2.id, ratio) ?? clip1];
  },
});

export const CheckpointSave = defineNode({
  name: 'CheckpointSave',
  displayName: 'Save Checkpoint',
  category: 'advanced/model_merging',
  inputs: {
    required: {
      model: { type: 'MODEL' },
      clip: { type: 'CLIP' },
      vae: { type: 'VAE' },
      filename_prefix: { type: 'STRING', default: 'checkpoints/ComfyUI' },
    },
    hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
  },
  outputs: [],
  outputNode: true,
  async run({ model, clip, vae, filename_prefix, prompt, extra_pnginfo }, ctx) {
    const mp = model.patching;
    const cp = clip.patching;
    if (!mp || !cp)
      throw new Error('CheckpointSave: the MODEL and CLIP must come from a checkpoint Weft builds (not an exported ONNX graph)');
    if (!vae.weights) throw new Error('CheckpointSave: this VAE has no weights Weft can write (an exported ONNX graph)');
    const vw = vae.weights;
    // Every tensor with its LDM name and a reader of its current (patched) value.
    const tensors: { name: string; shape: readonly number[]; read: () => Promise<Float32Array> }[] = [];
    for (const n of mp.weights.names())
      if (n.startsWith(mp.prefix)) tensors.push({ name: n, shape: mp.weights.shape(n), read: () => mp.read(n) });
    for (const n of cp.weights.names())
      if (n.startsWith(cp.prefix)) tensors.push({ name: n, shape: cp.weights.shape(n), read: () => cp.read(n) });
    for (const n of vw.names()) tensors.push({ name: SD1_PREFIX.vae + n, shape: vw.shape(n), read: async () => vw.get(n) });
    const metadata: Record<string, string> = {
      'modelspec.architecture': 'stable-diffusion-v1',
      'modelspec.sai_model_spec': '1.0.0',
      'modelspec.implementation': 'sgm',
      'modelspec.title': `${filename_prefix} ${Date.now()}`,
    };
    if (prompt !== undefined) metadata.prompt = JSON.stringify(prompt);
    if (extra_pnginfo && typeof extra_pnginfo === 'object')
      for (const [k, v] of Object.entries(extra_pnginfo)) metadata[k] = JSON.stringify(v);

    // Written to a temporary file and linked into place, never replacing a file another save created meanwhile.
    const { filename, subfolder } = await saveTensorFile(
      ctx,
      filename_prefix,
      tensors.map((t) => ({ ...t, dtype: 'F16' as const })),
      metadata,
    );
    return { result: [], ui: { checkpoints: [{ filename, subfolder, type: 'output' }] } };
  },
});

export const nodes = [ModelMergeSimple, CLIPMergeSimple, CheckpointSave];
