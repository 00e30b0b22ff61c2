import { depthAnythingV2, midasDepth, type FileSession } from '../../../engine/models/annotators/depth.ts';
import { findAnnotator } from '../../../engine/models/annotators/locate.ts';
import type { NodeContext } from '../../../engine/registry/context.ts';
import { defineNode } from '../../../engine/registry/types.ts';
import { modelManager } from '../../model/services.ts';
import { annotatorCall, CATEGORY, detectResolution, resolutionInput } from './annotator-call.ts';

/**
 * comfyui_controlnet_aux's depth preprocessors over ONNX exports of their networks: the package loads
 * PyTorch checkpoints, Weft runs `<checkpoint name>.onnx` (Depth Anything V2) or `dpt_hybrid-midas.onnx`
 * (MiDaS DPT-Hybrid) from models/annotators/ or the aux ckpts layout.
 */

const DA_CKPTS = ['depth_anything_v2_vitg.pth', 'depth_anything_v2_vitl.pth', 'depth_anything_v2_vitb.pth', 'depth_anything_v2_vits.pth'];
const DA_REPOS: Record<string, string> = {
  vits: 'depth-anything/Depth-Anything-V2-Small',
  vitb: 'depth-anything/Depth-Anything-V2-Base',
  vitl: 'depth-anything/Depth-Anything-V2-Large',
  vitg: 'depth-anything/Depth-Anything-V2-Giant',
};

function fileSession(ctx: NodeContext, file: string): FileSession {
  const runtime = modelManager(ctx).runtime;
  return (fn) => runtime.useFile(`file:${file}`, file, fn);
}

export const DepthAnythingV2Preprocessor = defineNode({
  name: 'DepthAnythingV2Preprocessor',
  displayName: 'Depth Anything V2 - Relative',
  category: CATEGORY.depth,
  inputs: {
    required: { image: { type: 'IMAGE' } },
    optional: { ckpt_name: { type: 'COMBO', options: DA_CKPTS, default: 'depth_anything_v2_vitl.pth' }, resolution: resolutionInput },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  async run({ image, ckpt_name, resolution }, ctx) {
    const ckpt = ckpt_name ?? 'depth_anything_v2_vitl.pth';
    if (!DA_CKPTS.includes(ckpt))
      throw new Error(`DepthAnythingV2Preprocessor: unknown ckpt_name ${ckpt} (choose one of ${DA_CKPTS.join(', ')})`);
    const onnx = ckpt.replace(/\.pth$/, '.onnx');
    const size = /vit[sblg]/.exec(ckpt)?.[0] ?? 'vitl';
    const file = findAnnotator(ctx.paths, onnx, [DA_REPOS[size]]);
    const session = fileSession(ctx, file);
    const res = detectResolution(resolution);
    return [await annotatorCall('DepthAnythingV2Preprocessor', image, ctx, (m) => depthAnythingV2(session, file, m, res))];
  },
});

export const MiDaSDepthMapPreprocessor = defineNode({
  name: 'MiDaS-DepthMapPreprocessor',
  displayName: 'MiDaS Depth Map',
  category: CATEGORY.depth,
  inputs: {
    required: { image: { type: 'IMAGE' } },
    optional: {
      a: { type: 'FLOAT', default: Math.PI * 2, min: 0, max: Math.PI * 5, step: 0.01 },
      bg_threshold: { type: 'FLOAT', default: 0.1, min: 0, max: 1, step: 0.01 },
      resolution: resolutionInput,
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  async run({ image, resolution }, ctx) {
    // `a` and `bg_threshold` only shape the package's normal map; its depth output ignores them
    const file = findAnnotator(ctx.paths, 'dpt_hybrid-midas.onnx', ['Intel/dpt-hybrid-midas', 'lllyasviel/Annotators']);
    const session = fileSession(ctx, file);
    const res = detectResolution(resolution);
    return [await annotatorCall('MiDaS-DepthMapPreprocessor', image, ctx, (m) => midasDepth(session, file, m, res))];
  },
});

export const nodes = [DepthAnythingV2Preprocessor, MiDaSDepthMapPreprocessor] as const;
