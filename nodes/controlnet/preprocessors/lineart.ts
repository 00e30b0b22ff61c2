import { openWeights } from '../../../engine/formats/open-weights.ts';
import { lineartDetect, lineartPart } from '../../../engine/models/annotators/lineart.ts';
import { findAnnotator } from '../../../engine/models/annotators/locate.ts';
import type { NodeContext } from '../../../engine/registry/context.ts';
import { defineNode } from '../../../engine/registry/types.ts';
import { modelManager } from '../../model/services.ts';
import { annotatorCall, CATEGORY, detectResolution, resolutionInput } from './annotator-call.ts';

/** sk_model.pth (or sk_model2.pth for coarse), as .pth or a .safetensors of the same state dict. */
function checkpoint(ctx: NodeContext, coarse: boolean): string {
  const stem = coarse ? 'sk_model2' : 'sk_model';
  try {
    return findAnnotator(ctx.paths, `${stem}.pth`, ['lllyasviel/Annotators']);
  } catch (e) {
    try {
      return findAnnotator(ctx.paths, `${stem}.safetensors`, ['lllyasviel/Annotators']);
    } catch {
      throw e;
    }
  }
}

/** comfyui_controlnet_aux's LineArtPreprocessor. */
export const LineArtPreprocessor = defineNode({
  name: 'LineArtPreprocessor',
  displayName: 'Realistic Lineart',
  category: CATEGORY.lines,
  inputs: {
    required: { image: { type: 'IMAGE' } },
    optional: { coarse: { type: 'COMBO', options: ['disable', 'enable'], default: 'disable' }, resolution: resolutionInput },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  async run({ image, coarse, resolution }, ctx) {
    const file = checkpoint(ctx, coarse === 'enable');
    const mm = modelManager(ctx);
    const weights = openWeights(file);
    const run = mm.runtime.runner(lineartPart(weights, weights.contentHash({ cacheDir: mm.opts.cacheDir }), file));
    const res = detectResolution(resolution);
    return [await annotatorCall('LineArtPreprocessor', image, ctx, (m) => lineartDetect(run, m, res))];
  },
});

export const nodes = [LineArtPreprocessor] as const;
