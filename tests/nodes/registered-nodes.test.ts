import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';

/** The issue-17 merge/image/latent nodes are registered under ComfyUI's names, modules and input order. */

const EXPECTED: Record<string, string> = {
  ModelMergeBlocks: 'comfy_extras.nodes_model_merging',
  ModelMergeAdd: 'comfy_extras.nodes_model_merging',
  ModelMergeSubtract: 'comfy_extras.nodes_model_merging',
  CLIPMergeAdd: 'comfy_extras.nodes_model_merging',
  CLIPMergeSubtract: 'comfy_extras.nodes_model_merging',
  CLIPSave: 'comfy_extras.nodes_model_merging',
  VAESave: 'comfy_extras.nodes_model_merging',
  ModelSave: 'comfy_extras.nodes_model_merging',
  ModelMergeSD1: 'comfy_extras.nodes_model_merging_model_specific',
  ModelMergeSD2: 'comfy_extras.nodes_model_merging_model_specific',
  ImageCrop: 'comfy_extras.nodes_images',
  ImageRotate: 'comfy_extras.nodes_images',
  ImageFlip: 'comfy_extras.nodes_images',
  ImageStitch: 'comfy_extras.nodes_images',
  ImageAddNoise: 'comfy_extras.nodes_images',
  RepeatImageBatch: 'comfy_extras.nodes_images',
  ImageFromBatch: 'comfy_extras.nodes_images',
  ImageBlend: 'comfy_extras.nodes_post_processing',
  ImageBlur: 'comfy_extras.nodes_post_processing',
  ImageSharpen: 'comfy_extras.nodes_post_processing',
  ImageScaleToTotalPixels: 'comfy_extras.nodes_post_processing',
  SplitImageWithAlpha: 'comfy_extras.nodes_compositing',
  JoinImageWithAlpha: 'comfy_extras.nodes_compositing',
  PorterDuffImageComposite: 'comfy_extras.nodes_compositing',
  LatentAdd: 'comfy_extras.nodes_latent',
  LatentInterpolate: 'comfy_extras.nodes_latent',
  LatentBatch: 'comfy_extras.nodes_latent',
  LatentBatchSeedBehavior: 'comfy_extras.nodes_latent',
  LatentApplyOperation: 'comfy_extras.nodes_latent',
  LatentCompositeMasked: 'comfy_extras.nodes_mask',
  Morphology: 'comfy_extras.nodes_morphology',
  ImageRGBToYUV: 'comfy_extras.nodes_morphology',
  RebatchLatents: 'comfy_extras.nodes_rebatch',
  RebatchImages: 'comfy_extras.nodes_rebatch',
  ImageCropV2: 'comfy_extras.nodes_images',
  PrimitiveBoundingBox: 'comfy_extras.nodes_images',
  SplitImageToTileList: 'comfy_extras.nodes_images',
  ImageMergeTileList: 'comfy_extras.nodes_images',
  LatentCrop: 'nodes',
  LatentRotate: 'nodes',
  LatentFlip: 'nodes',
  ConditioningSetAreaStrength: 'nodes',
};

describe('registered issue-17 nodes', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'weft-reg-'));
  const info = createBuiltinRegistry().objectInfo({ paths: new FolderPaths({ baseDir: tmp, modelsDir: tmp }) });

  it('each class exists once with its python_module', () => {
    for (const [name, module] of Object.entries(EXPECTED)) {
      expect(info[name], name).toBeDefined();
      expect(info[name].python_module, name).toBe(module);
    }
  });

  it('ModelMergeSD1 lists its 32 block ratios in ComfyUI order after the two models', () => {
    const order = info.ModelMergeSD1.input_order.required;
    expect(order.slice(0, 5)).toEqual(['model1', 'model2', 'time_embed.', 'label_emb.', 'input_blocks.0.']);
    expect(order.at(-1)).toBe('out.');
    expect(order).toHaveLength(2 + 2 + 12 + 3 + 12 + 1);
    expect(info.ModelMergeSD1.input.required['middle_block.2.']).toEqual(['FLOAT', { default: 1, min: 0, max: 1, step: 0.01 }]);
  });
});
