import { openWeights } from '../../../engine/formats/open-weights.ts';
import { hedDetect, hedPart } from '../../../engine/models/annotators/hed.ts';
import { findAnnotator } from '../../../engine/models/annotators/locate.ts';
import { defineNode } from '../../../engine/registry/types.ts';
import { modelManager } from '../../model/services.ts';
import { annotatorCall, CATEGORY, detectResolution, resolutionInput } from './annotator-call.ts';

/**
 * comfyui_controlnet_aux's HEDPreprocessor: ControlNetHED.pth (lllyasviel/Annotators; a .safetensors
 * of the same state dict works too), its graph built from the weights and cached like any part.
 */
export const HEDPreprocessor = defineNode({
  name: 'HEDPreprocessor',
  displayName: 'HED Soft-Edge Lines',
  category: CATEGORY.lines,
  inputs: {
    required: { image: { type: 'IMAGE' } },
    optional: { safe: { type: 'COMBO', options: ['enable', 'disable'], default: 'enable' }, resolution: resolutionInput },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  async run({ image, safe, resolution }, ctx) {
    let file: string;
    try {
      file = findAnnotator(ctx.paths, 'ControlNetHED.pth', ['lllyasviel/Annotators']);
    } catch (e) {
      try {
        file = findAnnotator(ctx.paths, 'ControlNetHED.safetensors', ['lllyasviel/Annotators']);
      } catch {
        throw e;
      }
    }
    const runtime = modelManager(ctx).runtime;
    const weights = openWeights(file);
    const run = runtime.runner(hedPart(weights, weights.contentHash({ cacheDir: modelManager(ctx).opts.cacheDir }), file));
    const res = detectResolution(resolution);
    return [await annotatorCall('HEDPreprocessor', image, ctx, (m) => hedDetect(run, m, res, (safe ?? 'enable') === 'enable'))];
  },
});

export const nodes = [HEDPreprocessor] as const;
