import type { FloatInput } from '../../engine/registry/types.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { mergeWith, type MergeWeigh } from './merge.ts';

/**
 * ComfyUI's ModelMergeBlocks, ModelMergeAdd/Subtract and CLIPMergeAdd/Subtract
 * (comfy_extras/nodes_model_merging.py): more ways of weighing the second model's weights, as entries
 * of the same patch lists ModelMergeSimple adds.
 */

const RATIO: FloatInput = { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.01 };
const MULTIPLIER: FloatInput = { type: 'FLOAT', default: 1.0, min: -10.0, max: 10.0, step: 0.01 };

/**
 * ModelMergeBlocks' rule: a UNet key takes the ratio of the longest of `blocks`' prefixes it starts
 * with (the first of equal length), else the first block's ratio (ComfyUI's "default_ratio", the first
 * keyword argument). Each weight becomes ratio·W₁ + (1 − ratio)·W₂.
 */
export function blockWeigh(blocks: readonly (readonly [prefix: string, ratio: number])[]): MergeWeigh {
  if (blocks.length === 0) throw new Error('blockWeigh: no blocks');
  return (key) => {
    let ratio = blocks[0][1];
    let longest = 0;
    for (const [prefix, r] of blocks) {
      if (key.startsWith(prefix) && prefix.length > longest) {
        ratio = r;
        longest = prefix.length;
      }
    }
    return { strength: 1 - ratio, strengthModel: ratio };
  };
}

export const ModelMergeBlocks = defineNode({
  name: 'ModelMergeBlocks',
  category: 'advanced/model_merging',
  inputs: { required: { model1: { type: 'MODEL' }, model2: { type: 'MODEL' }, input: RATIO, middle: RATIO, out: RATIO } },
  outputs: [{ type: 'MODEL', name: 'MODEL' }],
  run({ model1, model2, input, middle, out }) {
    // "out" also matches output_blocks.*, as in ComfyUI (a plain startswith on the key).
    const weigh = blockWeigh([
      ['input', input],
      ['middle', middle],
      ['out', out],
    ]);
    return [mergeWith('ModelMergeBlocks', model1.patching, model2.patching, model2.id, weigh)];
  },
});

export const ModelMergeSubtract = defineNode({
  name: 'ModelMergeSubtract',
  category: 'advanced/model_merging',
  inputs: { required: { model1: { type: 'MODEL' }, model2: { type: 'MODEL' }, multiplier: MULTIPLIER } },
  outputs: [{ type: 'MODEL', name: 'MODEL' }],
  run({ model1, model2, multiplier }) {
    // multiplier·W₁ − multiplier·W₂ (ComfyUI scales the first model too).
    const weigh: MergeWeigh = () => ({ strength: -multiplier, strengthModel: multiplier });
    return [mergeWith('ModelMergeSubtract', model1.patching, model2.patching, model2.id, weigh)];
  },
});

export const ModelMergeAdd = defineNode({
  name: 'ModelMergeAdd',
  category: 'advanced/model_merging',
  inputs: { required: { model1: { type: 'MODEL' }, model2: { type: 'MODEL' } } },
  outputs: [{ type: 'MODEL', name: 'MODEL' }],
  run({ model1, model2 }) {
    return [mergeWith('ModelMergeAdd', model1.patching, model2.patching, model2.id, () => ({ strength: 1, strengthModel: 1 }))];
  },
});

export const CLIPMergeSubtract = defineNode({
  name: 'CLIPMergeSubtract',
  category: 'advanced/model_merging',
  inputs: { required: { clip1: { type: 'CLIP' }, clip2: { type: 'CLIP' }, multiplier: MULTIPLIER } },
  outputs: [{ type: 'CLIP', name: 'CLIP' }],
  run({ clip1, clip2, multiplier }) {
    const weigh: MergeWeigh = () => ({ strength: -multiplier, strengthModel: multiplier });
    return [mergeWith('CLIPMergeSubtract', clip1.patching, clip2.patching, clip2.id, weigh)];
  },
});

export const CLIPMergeAdd = defineNode({
  name: 'CLIPMergeAdd',
  category: 'advanced/model_merging',
  inputs: { required: { clip1: { type: 'CLIP' }, clip2: { type: 'CLIP' } } },
  outputs: [{ type: 'CLIP', name: 'CLIP' }],
  run({ clip1, clip2 }) {
    return [mergeWith('CLIPMergeAdd', clip1.patching, clip2.patching, clip2.id, () => ({ strength: 1, strengthModel: 1 }))];
  },
});

export const nodes = [ModelMergeBlocks, ModelMergeSubtract, ModelMergeAdd, CLIPMergeSubtract, CLIPMergeAdd];
