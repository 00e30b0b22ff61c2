import type { ObjectInfo, ObjectInfoEntry } from '../../engine/registry/registry.ts';

/**
 * object_info entries for the classes the shared ComfyUI fixtures use, written from
 * comfyui-compat.md §8 (input names, order, widget kinds and defaults) — test data for conversion.
 */
type Spec = [string, unknown[]][];

/** An object_info entry from `[input, spec]` pairs (shared by the editor's tests). */
export function entry(name: string, required: Spec, output: string[], optional: Spec = [], category = 'test'): ObjectInfoEntry {
  return {
    input: {
      required: Object.fromEntries(required) as ObjectInfoEntry['input']['required'],
      optional: Object.fromEntries(optional) as ObjectInfoEntry['input']['required'],
    },
    input_order: { required: required.map(([k]) => k), optional: optional.map(([k]) => k) },
    is_input_list: false,
    output,
    output_is_list: output.map(() => false),
    output_name: output,
    name,
    display_name: name,
    description: '',
    python_module: 'nodes',
    category,
    output_node: name === 'SaveImage' || name === 'CheckpointSave',
    has_intermediate_output: false,
    search_aliases: [],
  };
}

const SAMPLERS = ['euler', 'uni_pc_bh2', 'dpmpp_2m'];
const SCHEDULERS = ['simple', 'normal', 'karras'];
const M = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'bislerp'];

export const FIXTURE_OBJECT_INFO: ObjectInfo = {
  CheckpointLoaderSimple: entry('CheckpointLoaderSimple', [['ckpt_name', [[]]]], ['MODEL', 'CLIP', 'VAE']),
  CheckpointLoader: entry(
    'CheckpointLoader',
    [
      ['config_name', [[]]],
      ['ckpt_name', [[]]],
    ],
    ['MODEL', 'CLIP', 'VAE'],
  ),
  CLIPTextEncode: entry(
    'CLIPTextEncode',
    [
      ['text', ['STRING', { multiline: true, dynamicPrompts: true }]],
      ['clip', ['CLIP']],
    ],
    ['CONDITIONING'],
  ),
  EmptyLatentImage: entry(
    'EmptyLatentImage',
    [
      ['width', ['INT', { default: 512 }]],
      ['height', ['INT', { default: 512 }]],
      ['batch_size', ['INT', { default: 1 }]],
    ],
    ['LATENT'],
  ),
  KSampler: entry(
    'KSampler',
    [
      ['model', ['MODEL']],
      ['seed', ['INT', { default: 0, min: 0, max: 0xffffffffffffffff, control_after_generate: true }]],
      ['steps', ['INT', { default: 20 }]],
      ['cfg', ['FLOAT', { default: 8 }]],
      ['sampler_name', [SAMPLERS]],
      ['scheduler', [SCHEDULERS]],
      ['positive', ['CONDITIONING']],
      ['negative', ['CONDITIONING']],
      ['latent_image', ['LATENT']],
      ['denoise', ['FLOAT', { default: 1 }]],
    ],
    ['LATENT'],
  ),
  KSamplerAdvanced: entry(
    'KSamplerAdvanced',
    [
      ['model', ['MODEL']],
      ['add_noise', [['enable', 'disable']]],
      ['noise_seed', ['INT', { default: 0, control_after_generate: true }]],
      ['steps', ['INT', { default: 20 }]],
      ['cfg', ['FLOAT', { default: 8 }]],
      ['sampler_name', [SAMPLERS]],
      ['scheduler', [SCHEDULERS]],
      ['positive', ['CONDITIONING']],
      ['negative', ['CONDITIONING']],
      ['latent_image', ['LATENT']],
      ['start_at_step', ['INT', { default: 0 }]],
      ['end_at_step', ['INT', { default: 10000 }]],
      ['return_with_leftover_noise', [['disable', 'enable']]],
    ],
    ['LATENT'],
  ),
  VAEDecode: entry(
    'VAEDecode',
    [
      ['samples', ['LATENT']],
      ['vae', ['VAE']],
    ],
    ['IMAGE'],
  ),
  VAEEncode: entry(
    'VAEEncode',
    [
      ['pixels', ['IMAGE']],
      ['vae', ['VAE']],
    ],
    ['LATENT'],
  ),
  VAEEncodeForInpaint: entry(
    'VAEEncodeForInpaint',
    [
      ['pixels', ['IMAGE']],
      ['vae', ['VAE']],
      ['mask', ['MASK']],
      ['grow_mask_by', ['INT', { default: 6 }]],
    ],
    ['LATENT'],
  ),
  SaveImage: entry(
    'SaveImage',
    [
      ['images', ['IMAGE']],
      ['filename_prefix', ['STRING', { default: 'ComfyUI' }]],
    ],
    [],
  ),
  LoadImage: entry('LoadImage', [['image', [[], { image_upload: true }]]], ['IMAGE', 'MASK']),
  LoadImageMask: entry(
    'LoadImageMask',
    [
      ['image', [[], { image_upload: true }]],
      ['channel', [['alpha', 'red', 'green', 'blue']]],
    ],
    ['MASK'],
  ),
  LatentUpscale: entry(
    'LatentUpscale',
    [
      ['samples', ['LATENT']],
      ['upscale_method', [M]],
      ['width', ['INT', { default: 512 }]],
      ['height', ['INT', { default: 512 }]],
      ['crop', [['disabled', 'center']]],
    ],
    ['LATENT'],
  ),
  LoraLoader: entry(
    'LoraLoader',
    [
      ['model', ['MODEL']],
      ['clip', ['CLIP']],
      ['lora_name', [[]]],
      ['strength_model', ['FLOAT', { default: 1 }]],
      ['strength_clip', ['FLOAT', { default: 1 }]],
    ],
    ['MODEL', 'CLIP'],
  ),
  ModelMergeSimple: entry(
    'ModelMergeSimple',
    [
      ['model1', ['MODEL']],
      ['model2', ['MODEL']],
      ['ratio', ['FLOAT', { default: 1 }]],
    ],
    ['MODEL'],
  ),
  VAELoader: entry('VAELoader', [['vae_name', [[]]]], ['VAE']),
  CheckpointSave: entry(
    'CheckpointSave',
    [
      ['model', ['MODEL']],
      ['clip', ['CLIP']],
      ['vae', ['VAE']],
      ['filename_prefix', ['STRING', { default: 'checkpoints/ComfyUI' }]],
    ],
    [],
  ),
  ControlNetApply: entry(
    'ControlNetApply',
    [
      ['conditioning', ['CONDITIONING']],
      ['control_net', ['CONTROL_NET']],
      ['image', ['IMAGE']],
      ['strength', ['FLOAT', { default: 1 }]],
    ],
    ['CONDITIONING'],
  ),
  DiffControlNetLoader: entry(
    'DiffControlNetLoader',
    [
      ['model', ['MODEL']],
      ['control_net_name', [[]]],
    ],
    ['CONTROL_NET'],
  ),
  UpscaleModelLoader: entry('UpscaleModelLoader', [['model_name', ['COMBO', { options: [] }]]], ['UPSCALE_MODEL']),
  ImageUpscaleWithModel: entry(
    'ImageUpscaleWithModel',
    [
      ['upscale_model', ['UPSCALE_MODEL']],
      ['image', ['IMAGE']],
    ],
    ['IMAGE'],
  ),
  ImageScale: entry(
    'ImageScale',
    [
      ['image', ['IMAGE']],
      ['upscale_method', [M]],
      ['width', ['INT', { default: 512 }]],
      ['height', ['INT', { default: 512 }]],
      ['crop', [['disabled', 'center']]],
    ],
    ['IMAGE'],
  ),
};
