import { NodeRegistry } from '../engine/registry/registry.ts';
import type { AnyNodeDefinition } from '../engine/registry/types.ts';
import { nodes as loadImage } from './image/load-image.ts';
import { nodes as saveImage } from './image/save-image.ts';
import { nodes as transform } from './image/transform.ts';
import { nodes as masks } from './mask/masks.ts';
import { nodes as latentFiles } from './latent/latent-file.ts';
import { nodes as emptyLatent } from './latent/empty-latent.ts';
import { nodes as loaders } from './model/loaders.ts';
import { nodes as loraNodes, weftNodes as loraTagNodes } from './model/lora.ts';
import { nodes as imageOps } from './image/image-ops.ts';
import { nodes as imageTiles } from './image/tiles.ts';
import { nodes as postProcessing } from './image/post-processing.ts';
import { nodes as imageQuantizeNodes } from './image/quantize.ts';
import { nodes as alphaNodes } from './image/alpha.ts';
import { nodes as morphologyNodes } from './image/morphology.ts';
import { nodes as latentMath } from './latent/latent-math.ts';
import { nodes as rebatchNodes } from './latent/rebatch.ts';
import { nodes as latentOperations } from './latent/latent-operations.ts';
import { nodes as latentOperationCfg } from './latent/latent-operation-cfg.ts';
import { nodes as latentTransform, maskNodes as latentMaskNodes } from './latent/latent-transform.ts';
import { nodes as mergeNodes } from './model/merge.ts';
import { nodes as modelSamplingNodes } from './model/model-sampling.ts';
import { nodes as mergeOps } from './model/merge-ops.ts';
import { nodes as mergeSd1 } from './model/merge-sd1.ts';
import { nodes as mergeSave } from './model/merge-save.ts';
import { nodes as clipTextA1111 } from './conditioning/clip-text-a1111.ts';
import { nodes as clipText } from './conditioning/clip-text.ts';
import { nodes as clipTextSdxl } from './conditioning/clip-text-sdxl.ts';
import { nodes as vae } from './vae/vae.ts';
import { nodes as ksampler } from './sampling/ksampler.ts';
import { nodes as conditioning } from './conditioning/conditioning.ts';
import { nodes as latentOps } from './latent/latent-ops.ts';
import { nodes as controlNet } from './controlnet/controlnet.ts';
import { nodes as controlNetA1111 } from './controlnet/a1111.ts';
import { nodes as controlNetUnion } from './controlnet/union.ts';
import { AUX_MODULE, auxPreprocessorNodes, corePreprocessorNodes } from './controlnet/preprocessors/index.ts';
import { nodes as customSampling } from './sampling/custom-sampling.ts';
import { nodes as samplerSelect } from './sampling/sampler-select.ts';
import { nodes as primitives } from './utils/primitives.ts';
import { adetailerNodes, impactDetailerNodes } from './detailer/index.ts';
import { impactDetectNodes, impactSubpackNodes } from './detect/index.ts';
import { nodes as upscaleModelNodes } from './image/upscale-model.ts';
import { nodes as ultimateSdUpscaleNodes } from './upscale/ultimate-sd-upscale.ts';
import { alignYourStepsNodes, gitsNodes, nodes as sigmaNodes } from './sampling/schedulers.ts';
import { nodes as tiledDiffusionNodes } from './sampling/tiled-diffusion.ts';
import { nodes as tiledVaeNodes } from './sampling/tiled-diffusion-vae.ts';

/** Every built-in node family, with the python_module name ComfyUI shows for its counterparts. */
export const BUILTIN_FAMILIES: [string, readonly AnyNodeDefinition[]][] = [
  ['nodes', loadImage],
  ['nodes', saveImage],
  ['nodes', transform],
  ['comfy_extras.nodes_mask', masks],
  ['nodes', latentFiles],
  ['nodes', emptyLatent],
  ['nodes', loaders],
  ['nodes', clipText],
  ['comfy_extras.nodes_clip_sdxl', clipTextSdxl],
  ['nodes', vae],
  ['nodes', ksampler],
  ['nodes', conditioning],
  ['nodes', latentOps],
  ['weft', controlNetA1111],
  ['nodes', controlNet],
  ['comfy_extras.nodes_controlnet', controlNetUnion],
  ['comfy_extras.nodes_canny', corePreprocessorNodes],
  [AUX_MODULE, auxPreprocessorNodes],
  ['nodes', loraNodes],
  ['comfy_extras.nodes_custom_sampler', customSampling],
  ['comfy_extras.nodes_custom_sampler', samplerSelect],
  ['comfy_extras.nodes_custom_sampler', sigmaNodes],
  ['comfy_extras.nodes_align_your_steps', alignYourStepsNodes],
  ['comfy_extras.nodes_gits', gitsNodes],
  ['nodes', latentTransform],
  ['comfy_extras.nodes_images', imageOps],
  ['comfy_extras.nodes_images', imageTiles],
  ['comfy_extras.nodes_post_processing', postProcessing],
  ['comfy_extras.nodes_post_processing', imageQuantizeNodes],
  ['comfy_extras.nodes_compositing', alphaNodes],
  ['comfy_extras.nodes_morphology', morphologyNodes],
  ['comfy_extras.nodes_latent', latentMath],
  ['comfy_extras.nodes_latent', latentOperations],
  ['comfy_extras.nodes_latent', latentOperationCfg],
  ['comfy_extras.nodes_rebatch', rebatchNodes],
  ['comfy_extras.nodes_mask', latentMaskNodes],
  ['comfy_extras.nodes_model_merging', mergeNodes],
  ['comfy_extras.nodes_model_advanced', modelSamplingNodes],
  ['comfy_extras.nodes_model_merging', mergeOps],
  ['comfy_extras.nodes_model_merging', mergeSave],
  ['comfy_extras.nodes_model_merging_model_specific', mergeSd1],
  ['comfy_extras.nodes_primitive', primitives],
  ['custom_nodes.ComfyUI-Impact-Pack', impactDetailerNodes],
  ['custom_nodes.ComfyUI-Impact-Pack', impactDetectNodes],
  ['custom_nodes.ComfyUI-Impact-Subpack', impactSubpackNodes],
  ['weft', adetailerNodes],
  ['comfy_extras.nodes_upscale_model', upscaleModelNodes],
  ['custom_nodes.ComfyUI_UltimateSDUpscale', ultimateSdUpscaleNodes],
  ['weft', loraTagNodes],
  ['weft', clipTextA1111],
  ['custom_nodes.ComfyUI-TiledDiffusion', tiledDiffusionNodes],
  ['custom_nodes.ComfyUI-TiledDiffusion', tiledVaeNodes],
];

export function createBuiltinRegistry(): NodeRegistry {
  const registry = new NodeRegistry();
  for (const [module, defs] of BUILTIN_FAMILIES) registry.registerAll(defs, module, true);
  return registry;
}
