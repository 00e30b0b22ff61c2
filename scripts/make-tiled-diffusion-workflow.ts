/**
 * Writes workflows/tiled-diffusion-4x.json (ComfyUI UI format, laid out by the editor's converter):
 * an image scaled to 512², ×4 through the demo ESRGAN (2048²), encoded with the Tiled VAE, resampled
 * by TiledDiffusion (Mixture of Diffusers, tiles 768 with overlap 64) as img2img at denoise 0.35, and
 * decoded with the Tiled VAE; on the demo models of `weft make-model tiny`.
 * Run: npx tsx scripts/make-tiled-diffusion-workflow.ts
 */
import { checkpointLoader, clipText, ksampler, saveImage, writeWorkflows } from './workflow-builders.ts';

const prompt: Record<string, unknown> = {
  '4': checkpointLoader('weft-tiny-sd1.safetensors'),
  '6': clipText('a detailed landscape photograph, sharp focus, high resolution'),
  '7': clipText('blurry, watermark, text, jpeg artifacts'),
  '10': { class_type: 'LoadImage', inputs: { image: 'example.png' } },
  '11': { class_type: 'ImageScale', inputs: { upscale_method: 'lanczos', width: 512, height: 512, crop: 'center', image: ['10', 0] } },
  '12': { class_type: 'UpscaleModelLoader', inputs: { model_name: 'weft-tiny-esrgan-x4.safetensors' } },
  '13': { class_type: 'ImageUpscaleWithModel', inputs: { upscale_model: ['12', 0], image: ['11', 0] } },
  '14': {
    class_type: 'VAEEncodeTiled_TiledDiffusion',
    inputs: { pixels: ['13', 0], vae: ['4', 2], tile_size: 512, fast: true, color_fix: true },
  },
  '15': {
    class_type: 'TiledDiffusion',
    inputs: { model: ['4', 0], method: 'Mixture of Diffusers', tile_width: 768, tile_height: 768, tile_overlap: 64, tile_batch_size: 4 },
  },
  '3': ksampler({ seed: 35, steps: 20, sampler: 'dpmpp_2m', scheduler: 'karras', denoise: 0.35, model: ['15', 0], latent: ['14', 0] }),
  '16': { class_type: 'VAEDecodeTiled_TiledDiffusion', inputs: { samples: ['3', 0], vae: ['4', 2], tile_size: 512, fast: true } },
  '9': saveImage('weft-tiled-diffusion-4x', ['16', 0]),
};

writeWorkflows({ 'tiled-diffusion-4x': prompt });
