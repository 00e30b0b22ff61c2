/**
 * Writes the upscale example workflows (ComfyUI UI format, laid out by the editor's converter):
 * workflows/upscale-esrgan.json (ImageUpscaleWithModel ×4), workflows/hires-fix-esrgan.json (a
 * txt2img pass, an upscale model between the passes, a second img2img pass) and
 * workflows/ultimate-sd-upscale.json (UltimateSDUpscale ×2 with the demo ESRGAN, 2×2 tiles of 128), all on the demo
 * models of `weft make-model tiny`. Run: npx tsx scripts/make-upscale-workflows.ts
 */
import { checkpointLoader, clipText, emptyLatent, ksampler, NEGATIVE, saveImage, vaeDecode, writeWorkflows } from './workflow-builders.ts';

const CKPT = 'weft-tiny-sd1.safetensors';
const ESRGAN = 'weft-tiny-esrgan-x4.safetensors';

const examples: Record<string, Record<string, unknown>> = {
  'upscale-esrgan': {
    '10': { class_type: 'LoadImage', inputs: { image: 'example.png' } },
    '11': { class_type: 'UpscaleModelLoader', inputs: { model_name: ESRGAN } },
    '12': { class_type: 'ImageUpscaleWithModel', inputs: { upscale_model: ['11', 0], image: ['10', 0] } },
    '9': saveImage('weft-upscale-esrgan', ['12', 0]),
  },
  'hires-fix-esrgan': {
    '4': checkpointLoader(CKPT),
    '5': emptyLatent(256, 256),
    '6': clipText('a lighthouse on a cliff at sunset, detailed'),
    '7': clipText(NEGATIVE),
    '3': ksampler({ seed: 21, steps: 12 }),
    '8': vaeDecode(['3', 0]),
    '11': { class_type: 'UpscaleModelLoader', inputs: { model_name: ESRGAN } },
    '12': { class_type: 'ImageUpscaleWithModel', inputs: { upscale_model: ['11', 0], image: ['8', 0] } },
    // The model's ×4 is more than the second pass needs: scale back to 1.5× of the first pass.
    '13': { class_type: 'ImageScale', inputs: { upscale_method: 'lanczos', width: 384, height: 384, crop: 'disabled', image: ['12', 0] } },
    '14': { class_type: 'VAEEncode', inputs: { pixels: ['13', 0], vae: ['4', 2] } },
    '16': ksampler({ seed: 22, steps: 12, denoise: 0.5, latent: ['14', 0] }),
    '17': vaeDecode(['16', 0]),
    '9': saveImage('weft-hires-fix-esrgan', ['17', 0]),
  },
  'ultimate-sd-upscale': {
    '4': checkpointLoader(CKPT),
    '6': clipText('a watercolour landscape, fine detail'),
    '7': clipText(NEGATIVE),
    '10': { class_type: 'LoadImage', inputs: { image: 'example.png' } },
    '11': { class_type: 'UpscaleModelLoader', inputs: { model_name: ESRGAN } },
    '3': {
      class_type: 'UltimateSDUpscale',
      inputs: {
        image: ['10', 0],
        model: ['4', 0],
        positive: ['6', 0],
        negative: ['7', 0],
        vae: ['4', 2],
        upscale_by: 2,
        seed: 23,
        steps: 12,
        cfg: 7,
        sampler_name: 'euler',
        scheduler: 'normal',
        denoise: 0.3,
        upscale_model: ['11', 0],
        mode_type: 'Chess',
        tile_width: 128,
        tile_height: 128,
        mask_blur: 8,
        tile_padding: 32,
        seam_fix_mode: 'Half Tile',
        seam_fix_denoise: 1,
        seam_fix_width: 64,
        seam_fix_mask_blur: 8,
        seam_fix_padding: 16,
        force_uniform_tiles: true,
        tiled_decode: false,
        batch_size: 1,
      },
    },
    '9': saveImage('weft-ultimate-sd-upscale', ['3', 0]),
  },
};

writeWorkflows(examples);
