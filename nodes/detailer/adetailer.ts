import path from 'node:path';
import type { ImageTensor, MaskTensor } from '../../engine/core/tensor.ts';
import { YoloSegsDetector } from '../../engine/models/detect/segs-detector.ts';
import { openYolo } from '../../engine/models/detect/yolo.ts';
import type { ClipHandle } from '../../engine/models/handles.ts';
import type { ListingContext, NodeContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { adetailerPass, type AdetailerOptions } from '../../engine/sampling/detail/adetailer.ts';
import { AD_MERGE_INVERT, AD_SORT_BY, type AdMergeInvert, type AdSortBy } from '../../engine/sampling/detail/adetailer-masks.ts';
import { toSeed } from '../../engine/sampling/ksampler.ts';
import { SAMPLER_NAMES } from '../../engine/sampling/samplers/index.ts';
import { SCHEDULER_NAMES } from '../../engine/sampling/schedulers.ts';
import { CLIPTextEncodeA1111 } from '../conditioning/clip-text-a1111.ts';
import { modelManager } from '../model/services.ts';
import { SEED_MAX } from './detailer-inputs.ts';

/**
 * A1111 ADetailer as one node: inputs named after its ad_* arguments (adetailer/args.py) without the
 * prefix; `model` is the detector (files of models/adetailer, then models/ultralytics as bbox/… and
 * segm/…), so the diffusion model comes in on `sd_model`. The generation's own settings (A1111's p)
 * are the main_* inputs; `sort_bboxes` is ADetailer's ad_bbox_sortby setting. Chain two nodes for a
 * face pass then a hand pass.
 */

const DETECTOR_FOLDERS = ['adetailer', 'ultralytics'] as const;

function detectorNames(env: ListingContext): string[] {
  const out: string[] = [];
  for (const f of DETECTOR_FOLDERS) if (env.paths.hasFolder(f)) for (const n of env.paths.listFiles(f)) if (!out.includes(n)) out.push(n);
  return out;
}

function detectorFile(ctx: NodeContext, name: string): string {
  for (const f of DETECTOR_FOLDERS) {
    const p = ctx.paths.hasFolder(f) ? ctx.paths.find(f, name) : undefined;
    if (p) return p;
  }
  throw new Error(
    `ADetailer (node ${ctx.nodeId}): detector model ${JSON.stringify(name)} not found in models/adetailer or models/ultralytics`,
  );
}

/** _get_prompt: split on [SEP], a blank part becomes the main prompt, [PROMPT] is replaced by it. */
export function adetailerPrompts(text: string, main: string): string[] {
  return text.split(/\s*\[SEP\]\s*/).map((p) => (p === '' ? main : p.includes('[PROMPT]') ? p.split('[PROMPT]').join(main) : p));
}

const isSkip = (p: string): boolean => /^\s*\[SKIP\]\s*$/.test(p);

export const ADetailer = defineNode({
  name: 'ADetailer',
  displayName: 'ADetailer (A1111)',
  category: 'detailer',
  description:
    "A1111 ADetailer: detect with a YOLO model, filter and preprocess the masks as ADetailer does, and inpaint each one with A1111's 'only masked' geometry. One prompt per detection with [SEP]; [PROMPT] is the main prompt.",
  searchAliases: ['adetailer', 'after detailer', 'face fix', 'hand fix', 'a1111'],
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      sd_model: { type: 'MODEL' },
      clip: { type: 'CLIP' },
      vae: { type: 'VAE' },
      model: { type: 'COMBO', options: detectorNames, tooltip: 'ad_model: the YOLO detector (ultralytics ONNX export).' },
      seed: { type: 'INT', default: 0, min: 0, max: SEED_MAX, controlAfterGenerate: true },
      prompt: { type: 'STRING', multiline: true, default: '' },
      negative_prompt: { type: 'STRING', multiline: true, default: '' },
      confidence: { type: 'FLOAT', default: 0.3, min: 0, max: 1, step: 0.01 },
      mask_filter_method: { type: 'COMBO', options: ['Area', 'Confidence'] },
      mask_k_largest: { type: 'INT', default: 0, min: 0, max: 10 },
      mask_min_ratio: { type: 'FLOAT', default: 0.0, min: 0, max: 1, step: 0.001 },
      mask_max_ratio: { type: 'FLOAT', default: 1.0, min: 0, max: 1, step: 0.001 },
      dilate_erode: { type: 'INT', default: 4, min: -128, max: 128, step: 4 },
      x_offset: { type: 'INT', default: 0, min: -200, max: 200 },
      y_offset: { type: 'INT', default: 0, min: -200, max: 200 },
      mask_merge_invert: { type: 'COMBO', options: [...AD_MERGE_INVERT] },
      mask_blur: { type: 'INT', default: 4, min: 0, max: 64 },
      denoising_strength: { type: 'FLOAT', default: 0.4, min: 0, max: 1, step: 0.01 },
      inpaint_only_masked: { type: 'BOOLEAN', default: true },
      inpaint_only_masked_padding: { type: 'INT', default: 32, min: 0, max: 256, step: 4 },
      use_inpaint_width_height: { type: 'BOOLEAN', default: false },
      inpaint_width: { type: 'INT', default: 512, min: 64, max: 2048, step: 8 },
      inpaint_height: { type: 'INT', default: 512, min: 64, max: 2048, step: 8 },
      use_steps: { type: 'BOOLEAN', default: false },
      steps: { type: 'INT', default: 28, min: 1, max: 150 },
      use_cfg_scale: { type: 'BOOLEAN', default: false },
      cfg_scale: { type: 'FLOAT', default: 7.0, min: 0, max: 30, step: 0.5 },
      use_sampler: { type: 'BOOLEAN', default: false },
      sampler: { type: 'COMBO', options: [...SAMPLER_NAMES], default: 'dpmpp_2m' },
      scheduler: { type: 'COMBO', options: [...SCHEDULER_NAMES], default: 'karras' },
      use_noise_multiplier: { type: 'BOOLEAN', default: false },
      noise_multiplier: { type: 'FLOAT', default: 1.0, min: 0.5, max: 1.5, step: 0.01 },
      use_clip_skip: { type: 'BOOLEAN', default: false },
      clip_skip: { type: 'INT', default: 1, min: 1, max: 12 },
      sort_bboxes: {
        type: 'COMBO',
        options: [...AD_SORT_BY],
        tooltip: "ADetailer's ad_bbox_sortby setting: the order of the detections (and so of the [SEP] prompts).",
      },
      main_steps: { type: 'INT', default: 20, min: 1, max: 150, tooltip: "The generation's steps (used unless use_steps)." },
      main_cfg: { type: 'FLOAT', default: 7.0, min: 0, max: 30, step: 0.5 },
      main_sampler_name: { type: 'COMBO', options: [...SAMPLER_NAMES], default: 'euler' },
      main_scheduler: { type: 'COMBO', options: [...SCHEDULER_NAMES], default: 'normal' },
    },
    optional: {
      main_prompt: { type: 'STRING', forceInput: true, tooltip: 'The generation prompt: replaces [PROMPT] and empty prompts.' },
      main_negative_prompt: { type: 'STRING', forceInput: true },
    },
  },
  outputs: [
    { type: 'IMAGE', name: 'IMAGE' },
    { type: 'MASK', name: 'MASK', tooltip: 'The preprocessed detection masks combined (before the blur).' },
  ],
  async run(i, ctx) {
    const file = detectorFile(ctx, i.model);
    const yolo = openYolo(file);
    const detector = new YoloSegsDetector(
      yolo.segmentation ? 'segm' : 'bbox',
      yolo,
      modelManager(ctx).runtime.fileRunner(file),
      path.basename(file),
    );
    const steps = i.use_steps ? i.steps : i.main_steps;
    const clip: ClipHandle = i.use_clip_skip ? i.clip.withLayer(-i.clip_skip) : i.clip;
    const encoded = new Map<string, Conditioning>();
    const encode = async (text: string): Promise<Conditioning> => {
      let c = encoded.get(text);
      if (!c) {
        const out = (await CLIPTextEncodeA1111.run({ text, clip, steps, bare_embedding_names: true }, ctx)) as unknown as [Conditioning];
        c = out[0];
        encoded.set(text, c);
      }
      return c;
    };
    const positives: (Conditioning | undefined)[] = [];
    for (const p of adetailerPrompts(i.prompt, i.main_prompt ?? '')) positives.push(isSkip(p) ? undefined : await encode(p));
    const negatives: Conditioning[] = [];
    for (const p of adetailerPrompts(i.negative_prompt, i.main_negative_prompt ?? '')) negatives.push(await encode(p));
    const [b, h, w, c] = i.image.shape;
    const base: Omit<AdetailerOptions, 'seed'> = {
      detector,
      confidence: i.confidence,
      maskK: i.mask_k_largest,
      maskFilterMethod: i.mask_filter_method === 'Confidence' ? 'Confidence' : 'Area',
      minRatio: i.mask_min_ratio,
      maxRatio: i.mask_max_ratio,
      dilateErode: i.dilate_erode,
      xOffset: i.x_offset,
      yOffset: i.y_offset,
      mergeInvert: i.mask_merge_invert as AdMergeInvert,
      sortBy: i.sort_bboxes as AdSortBy,
      maskBlur: i.mask_blur,
      denoise: i.denoising_strength,
      onlyMasked: i.inpaint_only_masked,
      padding: i.inpaint_only_masked_padding,
      inpaintSize: i.use_inpaint_width_height ? { width: i.inpaint_width, height: i.inpaint_height } : undefined,
      steps,
      cfg: i.use_cfg_scale ? i.cfg_scale : i.main_cfg,
      samplerName: i.use_sampler ? i.sampler : i.main_sampler_name,
      scheduler: i.use_sampler ? i.scheduler : i.main_scheduler,
      noiseMultiplier: i.use_noise_multiplier ? i.noise_multiplier : 1,
      model: i.sd_model,
      vae: i.vae,
      positives,
      negatives,
      // Masks with the same prompts whose crops lie apart share a run (exact up to the UNet's batch
      // arithmetic; the pass logs when it cannot); A1111 inpaints them one by one.
      batch: true,
      signal: ctx.signal,
      log: (l) => ctx.log.info(`ADetailer (node ${ctx.nodeId}): ${l}`),
    };
    const images = new Float32Array(i.image.data.length);
    const masks = new Float32Array(b * h * w);
    const seed = toSeed(i.seed);
    for (let n = 0; n < b; n++) {
      const one: ImageTensor = { shape: [1, h, w, c], data: i.image.data.subarray(n * h * w * c, (n + 1) * h * w * c) };
      const out = await adetailerPass(one, { ...base, seed: seed + BigInt(n) });
      if (c === 3) images.set(out.image.data, n * h * w * c);
      else
        for (let p = 0; p < h * w; p++)
          for (let k = 0; k < c; k++) images[(n * h * w + p) * c + k] = k < 3 ? out.image.data[p * 3 + k] : one.data[p * c + k];
      masks.set(out.mask.data, n * h * w);
    }
    const mask: MaskTensor = { shape: [b, h, w], data: masks };
    return [{ shape: [b, h, w, c], data: images }, mask];
  },
});
