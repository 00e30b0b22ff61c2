/**
 * Writes the SDXL example workflows (workflows/sdxl-*.json, ComfyUI UI format laid out by the editor's
 * converter) for the tiny SDXL models `weft make-model sdxl-tiny` writes. On a real SDXL base and
 * refiner, set the checkpoints and a 1024² latent. Run: npx tsx scripts/make-sdxl-workflows.ts
 */
import {
  checkpointLoader,
  clipText,
  emptyLatent,
  ksampler,
  NEGATIVE,
  saveImage,
  vaeDecode,
  writeWorkflows,
  type Link,
} from './workflow-builders.ts';

const BASE = 'weft-tiny-sdxl.safetensors';
const REFINER = 'weft-tiny-sdxl-refiner.safetensors';
const POSITIVE = 'a lighthouse on a cliff at dawn, oil painting, warm light';

const sdxlText = (clip: Link, text: string) => ({
  class_type: 'CLIPTextEncodeSDXL',
  inputs: { clip, width: 1024, height: 1024, crop_w: 0, crop_h: 0, target_width: 1024, target_height: 1024, text_g: text, text_l: text },
});

const advanced = (
  model: Link,
  positive: Link,
  negative: Link,
  latent: Link,
  o: { noise: boolean; start: number; end: number; leftover: boolean },
) => ({
  class_type: 'KSamplerAdvanced',
  inputs: {
    add_noise: o.noise ? 'enable' : 'disable',
    noise_seed: 42,
    steps: 25,
    cfg: 7,
    sampler_name: 'euler',
    scheduler: 'normal',
    start_at_step: o.start,
    end_at_step: o.end,
    return_with_leftover_noise: o.leftover ? 'enable' : 'disable',
    model,
    positive,
    negative,
    latent_image: latent,
  },
});

const examples: Record<string, Record<string, unknown>> = {
  'sdxl-txt2img': {
    '4': checkpointLoader(BASE),
    '6': sdxlText(['4', 1], POSITIVE),
    '7': clipText(NEGATIVE),
    '5': emptyLatent(256, 256),
    '3': ksampler({ seed: 42, steps: 20 }),
    '8': vaeDecode(['3', 0]),
    '9': saveImage('weft-sdxl'),
  },
  // The base denoises steps 0–20 of 25 and hands its still-noisy latent to the refiner for the rest.
  'sdxl-refiner': {
    '4': checkpointLoader(BASE),
    '10': checkpointLoader(REFINER),
    '6': sdxlText(['4', 1], POSITIVE),
    '7': clipText(NEGATIVE),
    '11': { class_type: 'CLIPTextEncodeSDXLRefiner', inputs: { ascore: 6, width: 1024, height: 1024, text: POSITIVE, clip: ['10', 1] } },
    '12': { class_type: 'CLIPTextEncodeSDXLRefiner', inputs: { ascore: 2.5, width: 1024, height: 1024, text: NEGATIVE, clip: ['10', 1] } },
    '5': emptyLatent(256, 256),
    '3': advanced(['4', 0], ['6', 0], ['7', 0], ['5', 0], { noise: true, start: 0, end: 20, leftover: true }),
    '13': advanced(['10', 0], ['11', 0], ['12', 0], ['3', 0], { noise: false, start: 20, end: 10000, leftover: false }),
    '8': vaeDecode(['13', 0], ['10', 2]),
    '9': saveImage('weft-sdxl-refiner'),
  },
};

writeWorkflows(examples);
