import type { ModelHandle } from '../../engine/models/handles.ts';
import type { FloatInput, InputSpec } from '../../engine/registry/types.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { mergeWith } from './merge.ts';
import { blockWeigh } from './merge-ops.ts';

/**
 * ComfyUI's ModelMergeSD1 (comfy_extras/nodes_model_merging_model_specific.py, also registered as
 * ModelMergeSD2: same blocks): ModelMergeBlocks with one ratio per UNet block, the inputs named by
 * the key prefix they select.
 */

const RATIO: FloatInput = { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.01 };

/** The block prefixes in ComfyUI's input order (the first one is the ratio of keys no prefix matches). */
export const SD1_BLOCKS: readonly string[] = [
  'time_embed.',
  'label_emb.',
  ...Array.from({ length: 12 }, (_, i) => `input_blocks.${i}.`),
  ...Array.from({ length: 3 }, (_, i) => `middle_block.${i}.`),
  ...Array.from({ length: 12 }, (_, i) => `output_blocks.${i}.`),
  'out.',
];

const required: Record<string, InputSpec> = { model1: { type: 'MODEL' }, model2: { type: 'MODEL' } };
for (const b of SD1_BLOCKS) required[b] = RATIO;

function defineSd1Merge(name: string) {
  return defineNode({
    name,
    category: 'advanced/model_merging/model_specific',
    inputs: { required },
    outputs: [{ type: 'MODEL', name: 'MODEL' }],
    run(args) {
      const model1 = args.model1 as ModelHandle;
      const model2 = args.model2 as ModelHandle;
      const blocks = SD1_BLOCKS.map((b) => {
        const r = args[b];
        if (typeof r !== 'number') throw new Error(`${name}: input '${b}' must be a number, got ${JSON.stringify(r)}`);
        return [b, r] as const;
      });
      return [mergeWith(name, model1.patching, model2.patching, model2.id, blockWeigh(blocks))];
    },
  });
}

export const ModelMergeSD1 = defineSd1Merge('ModelMergeSD1');
export const ModelMergeSD2 = defineSd1Merge('ModelMergeSD2');

export const nodes = [ModelMergeSD1, ModelMergeSD2];
