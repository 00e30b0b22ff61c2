import { USDU_MODES, USDU_SEAM_FIX_MODES, type UsduParams } from '../../engine/image/usdu/geometry.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { toSeed } from '../../engine/sampling/ksampler.ts';
import { SAMPLER_NAMES } from '../../engine/sampling/samplers/index.ts';
import { SCHEDULER_NAMES } from '../../engine/sampling/schedulers.ts';
import type { ModelHandle, VaeHandle } from '../../engine/models/handles.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import type { ImageTensor } from '../../engine/core/tensor.ts';
import type { UpscaleModel } from '../../engine/models/upscale/model.ts';
import '../../engine/sampling/socket-types.ts';
import { ultimateSdUpscale, type UsduSampling } from './usdu-process.ts';

/**
 * ComfyUI_UltimateSDUpscale's nodes (usdu_nodes.py): UltimateSDUpscale, UltimateSDUpscaleNoUpscale
 * and UltimateSDUpscaleCustomSample, with its input names, order, defaults and limits.
 */

const MAX_RESOLUTION = 8192;
const SEED_MAX = 0xffffffffffffffff;

const sampling = {
  model: { type: 'MODEL', tooltip: 'The model to use for image-to-image.' },
  positive: { type: 'CONDITIONING', tooltip: 'The positive conditioning for each tile.' },
  negative: { type: 'CONDITIONING', tooltip: 'The negative conditioning for each tile.' },
  vae: { type: 'VAE', tooltip: 'The VAE model to use for tiles.' },
} as const;

const samplerParams = {
  seed: { type: 'INT', default: 0, min: 0, max: SEED_MAX, controlAfterGenerate: true, tooltip: 'The seed to use for image-to-image.' },
  steps: { type: 'INT', default: 20, min: 1, max: 10000, step: 1, tooltip: 'The number of steps to use for each tile.' },
  cfg: { type: 'FLOAT', default: 8.0, min: 0.0, max: 100.0, tooltip: 'The CFG scale to use for each tile.' },
  sampler_name: { type: 'COMBO', options: [...SAMPLER_NAMES], tooltip: 'The sampler to use for each tile.' },
  scheduler: { type: 'COMBO', options: [...SCHEDULER_NAMES], tooltip: 'The scheduler to use for each tile.' },
  denoise: { type: 'FLOAT', default: 0.2, min: 0.0, max: 1.0, step: 0.01, tooltip: 'The denoising strength to use for each tile.' },
} as const;

const tileParams = {
  mode_type: { type: 'COMBO', options: [...USDU_MODES], tooltip: 'The tiling order to use for the redraw step.' },
  tile_width: { type: 'INT', default: 512, min: 64, max: MAX_RESOLUTION, step: 8, tooltip: 'The width of each tile.' },
  tile_height: { type: 'INT', default: 512, min: 64, max: MAX_RESOLUTION, step: 8, tooltip: 'The height of each tile.' },
  mask_blur: { type: 'INT', default: 8, min: 0, max: 64, step: 1, tooltip: 'The blur radius for the mask.' },
  tile_padding: { type: 'INT', default: 32, min: 0, max: MAX_RESOLUTION, step: 8, tooltip: 'The padding to apply between tiles.' },
  seam_fix_mode: { type: 'COMBO', options: [...USDU_SEAM_FIX_MODES], tooltip: 'The seam fix mode to use.' },
  seam_fix_denoise: {
    type: 'FLOAT',
    default: 1.0,
    min: 0.0,
    max: 1.0,
    step: 0.01,
    tooltip: 'The denoising strength to use for the seam fix. (As in ComfyUI_UltimateSDUpscale, the seam fix samples at denoise.)',
  },
  seam_fix_width: {
    type: 'INT',
    default: 64,
    min: 0,
    max: MAX_RESOLUTION,
    step: 8,
    tooltip: 'The width of the bands used for the Band Pass seam fix mode.',
  },
  seam_fix_mask_blur: { type: 'INT', default: 8, min: 0, max: 64, step: 1, tooltip: 'The blur radius for the seam fix mask.' },
  seam_fix_padding: {
    type: 'INT',
    default: 16,
    min: 0,
    max: MAX_RESOLUTION,
    step: 8,
    tooltip: 'The padding to apply for the seam fix tiles.',
  },
  force_uniform_tiles: {
    type: 'BOOLEAN',
    default: true,
    tooltip:
      'Force all tiles to be the same as the set tile size, even when tiles could be smaller. This can help prevent the model from working with irregular tile sizes.',
  },
  tiled_decode: { type: 'BOOLEAN', default: false, tooltip: 'Whether to use tiled decoding when decoding tiles.' },
  batch_size: {
    type: 'INT',
    default: 1,
    min: 1,
    max: 4096,
    step: 1,
    tooltip:
      'The number of tiles to process in a batch. Higher values can reduce processing time but use more memory. Yields different results than individual tiles. Only affects the main redraw step, not the seam fix step.',
  },
} as const;

interface UsduInputs {
  model: ModelHandle;
  positive: Conditioning;
  negative: Conditioning;
  vae: VaeHandle;
  seed: number | string | bigint;
  steps: number;
  cfg: number;
  sampler_name: string;
  scheduler: string;
  denoise: number;
  mode_type: string;
  tile_width: number;
  tile_height: number;
  mask_blur: number;
  tile_padding: number;
  seam_fix_mode: string;
  seam_fix_width: number;
  seam_fix_mask_blur: number;
  seam_fix_padding: number;
  force_uniform_tiles: boolean;
  tiled_decode: boolean;
  batch_size: number;
}

async function run(
  i: UsduInputs,
  image: ImageTensor,
  upscaleBy: number,
  upscaleModel: UpscaleModel | undefined,
  ctx: NodeContext,
  custom?: UsduSampling['custom'],
): Promise<ImageTensor> {
  const params: UsduParams = {
    tileWidth: i.tile_width,
    tileHeight: i.tile_height,
    padding: i.tile_padding,
    maskBlur: i.mask_blur,
    mode: i.mode_type as UsduParams['mode'],
    seamFix: i.seam_fix_mode as UsduParams['seamFix'],
    seamFixWidth: i.seam_fix_width,
    seamFixPadding: i.seam_fix_padding,
    seamFixMaskBlur: i.seam_fix_mask_blur,
    uniform: i.force_uniform_tiles,
  };
  return ultimateSdUpscale(
    image,
    upscaleBy,
    upscaleModel,
    params,
    {
      model: i.model,
      positive: i.positive,
      negative: i.negative,
      vae: i.vae,
      seed: toSeed(i.seed),
      steps: i.steps,
      cfg: i.cfg,
      samplerName: i.sampler_name,
      scheduler: i.scheduler,
      denoise: i.denoise,
      tiledDecode: i.tiled_decode,
      batchSize: i.batch_size,
      custom,
    },
    { signal: ctx.signal, onProgress: (done, total) => ctx.progress(done, total) },
  );
}

export const UltimateSDUpscale = defineNode({
  name: 'UltimateSDUpscale',
  displayName: 'Ultimate SD Upscale',
  category: 'image/upscaling',
  description: 'Upscales an image and runs image-to-image on tiles from the input image.',
  searchAliases: ['usdu', 'ultimate upscale', 'tiled upscale', 'sd upscale'],
  inputs: {
    required: {
      image: { type: 'IMAGE', tooltip: 'The image to upscale.' },
      ...sampling,
      upscale_by: { type: 'FLOAT', default: 2, min: 0.05, max: 4, step: 0.05, tooltip: 'The factor to upscale the image by.' },
      ...samplerParams,
      upscale_model: { type: 'UPSCALE_MODEL', tooltip: 'The upscaler model for upscaling the image.' },
      ...tileParams,
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', tooltip: 'The final upscaled image.' }],
  async run(i, ctx) {
    return [await run(i, i.image, i.upscale_by, i.upscale_model, ctx)];
  },
});

export const UltimateSDUpscaleNoUpscale = defineNode({
  name: 'UltimateSDUpscaleNoUpscale',
  displayName: 'Ultimate SD Upscale (No Upscale)',
  category: 'image/upscaling',
  description: 'Runs image-to-image on tiles from the input image.',
  searchAliases: ['usdu', 'ultimate upscale', 'tiled img2img'],
  inputs: {
    required: {
      upscaled_image: { type: 'IMAGE', tooltip: 'The image to upscale.' },
      ...sampling,
      ...samplerParams,
      ...tileParams,
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', tooltip: 'The final refined image.' }],
  async run(i, ctx) {
    return [await run(i, i.upscaled_image, 1, undefined, ctx)];
  },
});

export const UltimateSDUpscaleCustomSample = defineNode({
  name: 'UltimateSDUpscaleCustomSample',
  displayName: 'Ultimate SD Upscale (Custom Sample)',
  category: 'image/upscaling',
  description: 'Runs image-to-image on tiles from the input image.',
  searchAliases: ['usdu', 'ultimate upscale', 'custom sampler'],
  inputs: {
    required: {
      image: { type: 'IMAGE', tooltip: 'The image to upscale.' },
      ...sampling,
      upscale_by: { type: 'FLOAT', default: 2, min: 0.05, max: 4, step: 0.05, tooltip: 'The factor to upscale the image by.' },
      ...samplerParams,
      ...tileParams,
    },
    optional: {
      upscale_model: {
        type: 'UPSCALE_MODEL',
        tooltip: 'The model to use for upscaling the image. If not provided, a simple Lanczos scaling will be used instead.',
      },
      custom_sampler: {
        type: 'SAMPLER',
        tooltip:
          'A custom sampler to use instead of the built-in ComfyUI sampler specified by sampler_name. Only used if both custom_sampler and custom_sigmas are provided.',
      },
      custom_sigmas: {
        type: 'SIGMAS',
        tooltip: 'A custom noise schedule to use during sampling. Only used if both custom_sampler and custom_sigmas are provided.',
      },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', tooltip: 'The final upscaled image.' }],
  async run(i, ctx) {
    // As the port: with only one of the two, it samples as UltimateSDUpscale (and logs a warning there).
    const custom = i.custom_sampler && i.custom_sigmas ? { sampler: i.custom_sampler, sigmas: i.custom_sigmas } : undefined;
    return [await run(i, i.image, i.upscale_by, i.upscale_model, ctx, custom)];
  },
});

export const nodes = [UltimateSDUpscale, UltimateSDUpscaleNoUpscale, UltimateSDUpscaleCustomSample];
