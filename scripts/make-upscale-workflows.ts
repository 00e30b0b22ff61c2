/**
 * Writes the upscale example workflows (ComfyUI UI format, laid out by the editor's converter):
 * workflows/upscale-esrgan.json (ImageUpscaleWithModel ×4), workflows/hires-fix-esrgan.json (a
 * txt2img pass, an upscale model between the passes, a second img2img pass) and
 * workflows/ultimate-sd-upscale.json (UltimateSDUpscale ×2 with the demo ESRGAN, 2×2 tiles of 128), all on the demo
 * models of `weft make-model tiny`. Run: npx tsx scripts/make-upscale-workflows.ts
 */
import { writeFileSync } from 'node:fs';
import { promptToWorkflow } from '../engine/graph/convert.ts';
import { FolderPaths } from '../engine/paths/folders.ts';
import { createBuiltinRegistry } from '../nodes/index.ts';

const CKPT = 'weft-tiny-sd1.safetensors';
const ESRGAN = 'weft-tiny-esrgan-x4.safetensors';

const text = (t: string) => ({ class_type: 'CLIPTextEncode', inputs: { text: t, clip: ['4', 1] } });
const NEGATIVE = 'blurry, watermark, text';

const examples: Record<string, Record<string, unknown>> = {
  'upscale-esrgan': {
    '10': { class_type: 'LoadImage', inputs: { image: 'example.png' } },
    '11': { class_type: 'UpscaleModelLoader', inputs: { model_name: ESRGAN } },
    '12': { class_type: 'ImageUpscaleWithModel', inputs: { upscale_model: ['11', 0], image: ['10', 0] } },
    '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'weft-upscale-esrgan', images: ['12', 0] } },
  },
  'hires-fix-esrgan': {
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: CKPT } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 256, height: 256, batch_size: 1 } },
    '6': text('a lighthouse on a cliff at sunset, detailed'),
    '7': text(NEGATIVE),
    '3': {
      class_type: 'KSampler',
      inputs: {
        seed: 21,
        steps: 12,
        cfg: 7,
        sampler_name: 'euler',
        scheduler: 'normal',
        denoise: 1,
        model: ['4', 0],
        positive: ['6', 0],
        negative: ['7', 0],
        latent_image: ['5', 0],
      },
    },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '11': { class_type: 'UpscaleModelLoader', inputs: { model_name: ESRGAN } },
    '12': { class_type: 'ImageUpscaleWithModel', inputs: { upscale_model: ['11', 0], image: ['8', 0] } },
    // The model's ×4 is more than the second pass needs: scale back to 1.5× of the first pass.
    '13': { class_type: 'ImageScale', inputs: { upscale_method: 'lanczos', width: 384, height: 384, crop: 'disabled', image: ['12', 0] } },
    '14': { class_type: 'VAEEncode', inputs: { pixels: ['13', 0], vae: ['4', 2] } },
    '16': {
      class_type: 'KSampler',
      inputs: {
        seed: 22,
        steps: 12,
        cfg: 7,
        sampler_name: 'euler',
        scheduler: 'normal',
        denoise: 0.5,
        model: ['4', 0],
        positive: ['6', 0],
        negative: ['7', 0],
        latent_image: ['14', 0],
      },
    },
    '17': { class_type: 'VAEDecode', inputs: { samples: ['16', 0], vae: ['4', 2] } },
    '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'weft-hires-fix-esrgan', images: ['17', 0] } },
  },
  'ultimate-sd-upscale': {
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: CKPT } },
    '6': text('a watercolour landscape, fine detail'),
    '7': text(NEGATIVE),
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
    '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'weft-ultimate-sd-upscale', images: ['3', 0] } },
  },
};

const registry = createBuiltinRegistry();
const info = registry.objectInfo({ paths: new FolderPaths({ baseDir: '.' }) });
for (const [name, prompt] of Object.entries(examples)) {
  writeFileSync(`workflows/${name}.json`, `${JSON.stringify(promptToWorkflow(prompt, info), null, 1)}\n`);
  console.log(`workflows/${name}.json`);
}
