/**
 * Writes the detailer example workflows (ComfyUI UI format, laid out by the editor's converter) on
 * the demo models of `weft make-model tiny` (the tiny SD1 checkpoint and the deterministic
 * weft-tiny-face detector): workflows/face-detailer.json (Impact Pack style: txt2img, then
 * UltralyticsDetectorProvider → FaceDetailer) and workflows/adetailer.json (A1111 style: txt2img, then
 * an ADetailer face pass and a hand pass chained). Run: npx tsx scripts/make-detailer-workflows.ts
 */
import { checkpointLoader, clipText, emptyLatent, ksampler, NEGATIVE, saveImage, vaeDecode, writeWorkflows } from './workflow-builders.ts';

const CKPT = 'weft-tiny-sd1.safetensors';
const DETECTOR = 'bbox/weft-tiny-face.onnx';
const PROMPT = 'a portrait of two friends waving, detailed';

const txt2img = {
  '4': checkpointLoader(CKPT),
  '5': emptyLatent(256, 256),
  '6': clipText(PROMPT),
  '7': clipText(NEGATIVE),
  '3': ksampler({ seed: 31, steps: 12 }),
  '8': vaeDecode(['3', 0]),
};

const adetailer = (image: [string, number], over: Record<string, unknown>) => ({
  class_type: 'ADetailer',
  inputs: {
    image,
    sd_model: ['4', 0],
    clip: ['4', 1],
    vae: ['4', 2],
    model: DETECTOR,
    seed: 33,
    prompt: '',
    negative_prompt: NEGATIVE,
    confidence: 0.3,
    mask_filter_method: 'Area',
    mask_k_largest: 0,
    mask_min_ratio: 0,
    mask_max_ratio: 1,
    dilate_erode: 4,
    x_offset: 0,
    y_offset: 0,
    mask_merge_invert: 'None',
    mask_blur: 4,
    denoising_strength: 0.4,
    inpaint_only_masked: true,
    inpaint_only_masked_padding: 32,
    use_inpaint_width_height: true,
    inpaint_width: 256,
    inpaint_height: 256,
    use_steps: true,
    steps: 12,
    use_cfg_scale: false,
    cfg_scale: 7,
    use_sampler: false,
    sampler: 'dpmpp_2m',
    scheduler: 'karras',
    use_noise_multiplier: false,
    noise_multiplier: 1,
    use_clip_skip: false,
    clip_skip: 1,
    sort_bboxes: 'Position (left to right)',
    main_steps: 12,
    main_cfg: 7,
    main_sampler_name: 'euler',
    main_scheduler: 'normal',
    ...over,
  },
});

const examples: Record<string, Record<string, unknown>> = {
  'face-detailer': {
    ...txt2img,
    '10': { class_type: 'UltralyticsDetectorProvider', inputs: { model_name: DETECTOR } },
    '11': {
      class_type: 'FaceDetailer',
      inputs: {
        image: ['8', 0],
        model: ['4', 0],
        clip: ['4', 1],
        vae: ['4', 2],
        guide_size: 256,
        guide_size_for: true,
        max_size: 512,
        seed: 32,
        steps: 12,
        cfg: 7,
        sampler_name: 'euler',
        scheduler: 'normal',
        positive: ['6', 0],
        negative: ['7', 0],
        denoise: 0.5,
        feather: 5,
        noise_mask: true,
        force_inpaint: true,
        bbox_threshold: 0.5,
        bbox_dilation: 10,
        bbox_crop_factor: 3,
        sam_detection_hint: 'center-1',
        sam_dilation: 0,
        sam_threshold: 0.93,
        sam_bbox_expansion: 0,
        sam_mask_hint_threshold: 0.7,
        sam_mask_hint_use_negative: 'False',
        drop_size: 10,
        bbox_detector: ['10', 0],
        wildcard: '',
        cycle: 1,
        inpaint_model: false,
        noise_mask_feather: 20,
      },
    },
    '9': saveImage('weft-face-detailer', ['11', 0]),
  },
  adetailer: {
    ...txt2img,
    // Face pass: the demo detector's two faces (each over 2% of the picture), left to right, one prompt each.
    '12': adetailer(['8', 0], { prompt: 'a smiling face, detailed eyes [SEP] a calm face, detailed eyes', mask_min_ratio: 0.02 }),
    // Hand pass on the face pass's result: only the hand is under 2% of the picture.
    '13': adetailer(['12', 0], { prompt: 'a detailed hand, five fingers', mask_max_ratio: 0.02, seed: 34 }),
    '9': saveImage('weft-adetailer', ['13', 0]),
  },
};

writeWorkflows(examples);
