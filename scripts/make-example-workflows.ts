/**
 * Writes the example workflows in workflows/ (ComfyUI UI format) from API prompts, so every example
 * is laid out by the same converter the editor uses, and the example inputs in input/.
 * Run: npx tsx scripts/make-example-workflows.ts
 */
import sharp from 'sharp';
import { checkpointLoader, clipText, ksampler, NEGATIVE, saveImage, vaeDecode, writeWorkflows, type Link } from './workflow-builders.ts';

const CKPT = 'weft-tiny-sd1.safetensors';
const base = (seed: number, positive: string, extra: Record<string, unknown>) => ({
  '4': checkpointLoader(CKPT),
  '6': clipText(positive),
  '7': clipText(NEGATIVE),
  ...extra,
  _seed: seed,
});
const ks = (latent: Link, seed: number, denoise: number, steps = 20) => ksampler({ seed, steps, denoise, latent });
const decodeSave = (from: string, prefix: string) => ({
  '8': vaeDecode([from, 0]),
  '9': saveImage(prefix),
});

const examples: Record<string, Record<string, unknown>> = {
  img2img: base(7, 'an oil painting of a harbour at dusk', {
    '10': { class_type: 'LoadImage', inputs: { image: 'example.png' } },
    '11': { class_type: 'ImageScale', inputs: { image: ['10', 0], upscale_method: 'bilinear', width: 256, height: 256, crop: 'center' } },
    '12': { class_type: 'VAEEncode', inputs: { pixels: ['11', 0], vae: ['4', 2] } },
    '3': ks(['12', 0], 7, 0.6),
    ...decodeSave('3', 'weft-img2img'),
  }),
  inpaint: base(11, 'a bunch of sunflowers', {
    '10': { class_type: 'LoadImage', inputs: { image: 'example-inpaint.png' } },
    '12': { class_type: 'VAEEncode', inputs: { pixels: ['10', 0], vae: ['4', 2] } },
    '13': { class_type: 'SetLatentNoiseMask', inputs: { samples: ['12', 0], mask: ['10', 1] } },
    '3': ks(['13', 0], 11, 1),
    ...decodeSave('3', 'weft-inpaint'),
  }),
  outpaint: base(13, 'a wide mountain landscape', {
    '10': { class_type: 'LoadImage', inputs: { image: 'example.png' } },
    '11': { class_type: 'ImageScale', inputs: { image: ['10', 0], upscale_method: 'bilinear', width: 192, height: 192, crop: 'center' } },
    '14': { class_type: 'ImagePadForOutpaint', inputs: { image: ['11', 0], left: 64, top: 0, right: 64, bottom: 0, feathering: 24 } },
    '12': { class_type: 'VAEEncodeForInpaint', inputs: { pixels: ['14', 0], vae: ['4', 2], mask: ['14', 1], grow_mask_by: 8 } },
    '3': ks(['12', 0], 13, 1),
    ...decodeSave('3', 'weft-outpaint'),
  }),
  'hires-fix': base(17, 'a castle on a hill, detailed', {
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 256, height: 256, batch_size: 1 } },
    '3': ks(['5', 0], 17, 1, 12),
    '15': { class_type: 'LatentUpscaleBy', inputs: { samples: ['3', 0], upscale_method: 'nearest-exact', scale_by: 1.5 } },
    '16': { class_type: 'KSampler', inputs: { ...ks(['15', 0], 18, 0.5, 12).inputs } },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['16', 0], vae: ['4', 2] } },
    '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'weft-hires-fix', images: ['8', 0] } },
  }),
  'lora-embedding': base(19, 'a watercolour of a lighthouse, embedding:weft-tiny-style', {
    '10': {
      class_type: 'LoraLoader',
      inputs: { model: ['4', 0], clip: ['4', 1], lora_name: 'weft-tiny-lora.safetensors', strength_model: 0.8, strength_clip: 0.6 },
    },
    '11': {
      class_type: 'LoraLoader',
      inputs: { model: ['10', 0], clip: ['10', 1], lora_name: 'weft-tiny-loha.safetensors', strength_model: 1, strength_clip: 1 },
    },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a watercolour of a lighthouse, embedding:weft-tiny-style', clip: ['11', 1] } },
    '7': { class_type: 'CLIPTextEncode', inputs: { text: 'blurry, watermark, text', clip: ['11', 1] } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 256, height: 256, batch_size: 1 } },
    '3': { class_type: 'KSampler', inputs: { ...ks(['5', 0], 19, 1).inputs, model: ['11', 0] } },
    ...decodeSave('3', 'weft-lora-embedding'),
  }),
};

writeWorkflows(examples);

// An RGBA copy of the example image with a transparent square: LoadImage turns alpha into the inpaint mask.
const { data, info: meta } = await sharp('input/example.png')
  .resize(256, 256, { fit: 'cover' })
  .ensureAlpha()
  .raw()
  .toBuffer({ resolveWithObject: true });
for (let y = 80; y < 176; y++) for (let x = 80; x < 176; x++) data[(y * meta.width + x) * 4 + 3] = 0;
await sharp(data, { raw: { width: meta.width, height: meta.height, channels: 4 } })
  .png()
  .toFile('input/example-inpaint.png');
console.log('input/example-inpaint.png');
