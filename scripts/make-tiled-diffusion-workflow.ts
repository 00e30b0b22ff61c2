/**
 * Writes workflows/tiled-diffusion-4x.json (ComfyUI UI format, laid out by the editor's converter):
 * an image scaled to 512², ×4 through the demo ESRGAN (2048²), encoded with the Tiled VAE, resampled
 * by TiledDiffusion (Mixture of Diffusers, tiles 768 with overlap 64) as img2img at denoise 0.35, and
 * decoded with the Tiled VAE; on the demo models of `weft make-model tiny`.
 * Run: npx tsx scripts/make-tiled-diffusion-workflow.ts
 */
import { writeFileSync } from 'node:fs';
import { promptToWorkflow } from '../engine/graph/convert.ts';
import { FolderPaths } from '../engine/paths/folders.ts';
import { createBuiltinRegistry } from '../nodes/index.ts';

const prompt: Record<string, unknown> = {
  '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'weft-tiny-sd1.safetensors' } },
  '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a detailed landscape photograph, sharp focus, high resolution', clip: ['4', 1] } },
  '7': { class_type: 'CLIPTextEncode', inputs: { text: 'blurry, watermark, text, jpeg artifacts', clip: ['4', 1] } },
  '10': { class_type: 'LoadImage', inputs: { image: 'example.png' } },
  '11': { class_type: 'ImageScale', inputs: { upscale_method: 'lanczos', width: 512, height: 512, crop: 'center', image: ['10', 0] } },
  '12': { class_type: 'UpscaleModelLoader', inputs: { model_name: 'weft-tiny-esrgan-x4.safetensors' } },
  '13': { class_type: 'ImageUpscaleWithModel', inputs: { upscale_model: ['12', 0], image: ['11', 0] } },
  '14': {
    class_type: 'VAEEncodeTiled_TiledDiffusion',
    inputs: { pixels: ['13', 0], vae: ['4', 2], tile_size: 1024, fast: true, color_fix: true },
  },
  '15': {
    class_type: 'TiledDiffusion',
    inputs: { model: ['4', 0], method: 'Mixture of Diffusers', tile_width: 768, tile_height: 768, tile_overlap: 64, tile_batch_size: 4 },
  },
  '3': {
    class_type: 'KSampler',
    inputs: {
      seed: 35,
      steps: 20,
      cfg: 7,
      sampler_name: 'dpmpp_2m',
      scheduler: 'karras',
      denoise: 0.35,
      model: ['15', 0],
      positive: ['6', 0],
      negative: ['7', 0],
      latent_image: ['14', 0],
    },
  },
  '16': { class_type: 'VAEDecodeTiled_TiledDiffusion', inputs: { samples: ['3', 0], vae: ['4', 2], tile_size: 512, fast: true } },
  '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'weft-tiled-diffusion-4x', images: ['16', 0] } },
};

const registry = createBuiltinRegistry();
const info = registry.objectInfo({ paths: new FolderPaths({ baseDir: '.' }) });
writeFileSync('workflows/tiled-diffusion-4x.json', `${JSON.stringify(promptToWorkflow(prompt, info), null, 1)}\n`);
console.log('workflows/tiled-diffusion-4x.json');
