import { UpscaleModelLoader as Loader } from '../../engine/models/upscale/loader.ts';
import type { ModelManager } from '../../engine/models/manager.ts';
import type { ListingContext, NodeContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { modelManager } from '../model/services.ts';

/**
 * ComfyUI's upscale-model nodes (comfy_extras/nodes_upscale_model.py): UpscaleModelLoader reads
 * ESRGAN/Real-ESRGAN/SRVGGNetCompact files from `upscale_models`, ImageUpscaleWithModel runs one
 * over an IMAGE in 512-pixel tiles with 32 pixels of overlap.
 */

const loaders = new WeakMap<ModelManager, Loader>();

export function upscaleModels(ctx: NodeContext): Loader {
  const m = modelManager(ctx);
  let l = loaders.get(m);
  if (!l) loaders.set(m, (l = new Loader(m.runtime, { cacheDir: m.opts.cacheDir })));
  return l;
}

export const UpscaleModelLoader = defineNode({
  name: 'UpscaleModelLoader',
  displayName: 'Load Upscale Model',
  category: 'loaders',
  searchAliases: ['upscale model', 'esrgan', 'realesrgan', 'load upscaler'],
  inputs: { required: { model_name: { type: 'COMBO', options: (env: ListingContext) => env.paths.listFiles('upscale_models') } } },
  outputs: [{ type: 'UPSCALE_MODEL', name: 'UPSCALE_MODEL' }],
  run({ model_name }, ctx) {
    return [upscaleModels(ctx).load(ctx.paths.require('upscale_models', model_name))];
  },
});

export const ImageUpscaleWithModel = defineNode({
  name: 'ImageUpscaleWithModel',
  displayName: 'Upscale Image (using Model)',
  category: 'image/upscaling',
  searchAliases: ['upscale', 'esrgan', 'super resolution', 'enlarge'],
  inputs: { required: { upscale_model: { type: 'UPSCALE_MODEL' }, image: { type: 'IMAGE' } } },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  async run({ upscale_model, image }, ctx) {
    return [await upscale_model.upscale(image, { signal: ctx.signal, onProgress: (done, total) => ctx.progress(done, total) })];
  },
});

export const nodes = [UpscaleModelLoader, ImageUpscaleWithModel];
