import { describeShape, type ImageTensor, type MaskTensor } from '../../engine/core/tensor.ts';
import type { DetectOptions, Segs } from '../../engine/image/segs.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { detailForEach } from '../../engine/sampling/detail/detail-for-each.ts';
import { segsBitwiseAndMask, segsToCombinedMask } from '../../engine/models/detect/segs-build.ts';
import { cycleInput, detailerHead, detailerOptional, detailOptions, wildcardInput } from './detailer-inputs.ts';

/**
 * The Impact Pack's FaceDetailer: bbox detection (optionally ANDed with a segm detector's combined
 * mask), then DetailerForEach with the same seed, so it gives BboxDetectorSEGS + DetailerForEach's
 * image. Weft has no SAM: a sam_model_opt input is refused by name. Outputs as the Impact Pack's:
 * cropped_refined / cropped_enhanced_alpha are lists (per image, a 64×64 black image where it has
 * none), mask the segments' combined mask, detailer_pipe the Impact Pack's 14-tuple (model, clip, vae,
 * positive, negative, wildcard, bbox_detector, segm_detector_opt, sam_model_opt, detailer_hook, and
 * four empty refiner slots), cnet_images the placeholder per image (no Weft SEGS carry a ControlNet).
 */

const MAX_RESOLUTION = 16384;
const emptyImage = (): ImageTensor => ({ shape: [1, 64, 64, 3], data: new Float32Array(64 * 64 * 3) });

export const FaceDetailer = defineNode({
  name: 'FaceDetailer',
  displayName: 'FaceDetailer',
  category: 'ImpactPack/Simple',
  description: 'Detect faces with bbox_detector and detail each one (DetailerForEach on the detections, same seed).',
  searchAliases: ['face detailer', 'face fix', 'adetailer', 'impact'],
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      model: { type: 'MODEL' },
      clip: { type: 'CLIP' },
      vae: { type: 'VAE' },
      ...detailerHead,
      bbox_threshold: { type: 'FLOAT', default: 0.5, min: 0.0, max: 1.0, step: 0.01 },
      bbox_dilation: { type: 'INT', default: 10, min: -512, max: 512, step: 1 },
      bbox_crop_factor: { type: 'FLOAT', default: 3.0, min: 1.0, max: 10, step: 0.1 },
      sam_detection_hint: {
        type: 'COMBO',
        options: ['center-1', 'horizontal-2', 'vertical-2', 'rect-4', 'diamond-4', 'mask-area', 'mask-points', 'mask-point-bbox', 'none'],
      },
      sam_dilation: { type: 'INT', default: 0, min: -512, max: 512, step: 1 },
      sam_threshold: { type: 'FLOAT', default: 0.93, min: 0.0, max: 1.0, step: 0.01 },
      sam_bbox_expansion: { type: 'INT', default: 0, min: 0, max: 1000, step: 1 },
      sam_mask_hint_threshold: { type: 'FLOAT', default: 0.7, min: 0.0, max: 1.0, step: 0.01 },
      sam_mask_hint_use_negative: { type: 'COMBO', options: ['False', 'Small', 'Outter'] },
      drop_size: { type: 'INT', default: 10, min: 1, max: MAX_RESOLUTION, step: 1 },
      bbox_detector: { type: 'BBOX_DETECTOR' },
      wildcard: wildcardInput,
      cycle: cycleInput,
    },
    optional: {
      sam_model_opt: { type: 'SAM_MODEL' },
      segm_detector_opt: { type: 'SEGM_DETECTOR' },
      ...detailerOptional,
    },
  },
  outputs: [
    { type: 'IMAGE', name: 'image' },
    { type: 'IMAGE', name: 'cropped_refined', isList: true },
    { type: 'IMAGE', name: 'cropped_enhanced_alpha', isList: true },
    { type: 'MASK', name: 'mask' },
    { type: 'DETAILER_PIPE', name: 'detailer_pipe' },
    { type: 'IMAGE', name: 'cnet_images', isList: true },
  ],
  async run(i, ctx) {
    if (i.sam_model_opt !== undefined) {
      throw new Error(
        `FaceDetailer (node ${ctx.nodeId}): sam_model_opt is not supported (Weft has no SAM); disconnect it or use segm_detector_opt`,
      );
    }
    const [b, h, w, c] = i.image.shape;
    if (i.image.shape.length !== 4)
      throw new Error(`FaceDetailer (node ${ctx.nodeId}): image must be [B, H, W, C], got ${describeShape(i.image.shape)}`);
    if (b > 1) ctx.log.warn('FaceDetailer is not a node designed for video detailing; each image of the batch is detailed on its own');
    const opts = detailOptions(i, ctx);
    const detect: DetectOptions = {
      threshold: i.bbox_threshold,
      dilation: i.bbox_dilation,
      cropFactor: i.bbox_crop_factor,
      dropSize: i.drop_size,
    };
    const images: ImageTensor[] = [];
    const masks: MaskTensor[] = [];
    const refined: ImageTensor[] = [];
    const alpha: ImageTensor[] = [];
    // No Weft node attaches a ControlNet to SEGS (the Impact Pack's ImpactControlNetApplySEGS), so no
    // segment has hint images and each image gives the Impact Pack's placeholder.
    const cnet: ImageTensor[] = [];
    for (let n = 0; n < b; n++) {
      const one: ImageTensor = { shape: [1, h, w, c], data: i.image.data.subarray(n * h * w * c, (n + 1) * h * w * c) };
      const segs = await faceSegs(one, i.bbox_detector, i.segm_detector_opt, detect, ctx);
      let out: { enhanced: ImageTensor[]; enhancedAlpha: ImageTensor[] } = { enhanced: [], enhancedAlpha: [] };
      if (segs.segments.length > 0) {
        const detailed = await detailForEach(one, segs, { ...opts, seed: opts.seed + BigInt(n) });
        images.push(detailed.image);
        out = detailed;
      } else {
        ctx.log.info(`FaceDetailer (node ${ctx.nodeId}): nothing detected in image ${n}; it passes through unchanged`);
        images.push({ shape: one.shape, data: Float32Array.from(one.data) });
      }
      // As enhance_face: each image adds its lists, or one 64×64 black placeholder where a list is empty.
      refined.push(...(out.enhanced.length ? out.enhanced : [emptyImage()]));
      alpha.push(...(out.enhancedAlpha.length ? out.enhancedAlpha : [emptyImage()]));
      cnet.push(emptyImage());
      masks.push(segsToCombinedMask(segs));
    }
    const image: ImageTensor = { shape: [b, h, w, c], data: concat(images) };
    const mask: MaskTensor = { shape: [b, h, w], data: concat(masks) };
    const pipe = [
      i.model,
      i.clip,
      i.vae,
      i.positive,
      i.negative,
      i.wildcard,
      i.bbox_detector,
      i.segm_detector_opt,
      i.sam_model_opt,
      i.detailer_hook,
      // refiner_model, refiner_clip, refiner_positive, refiner_negative: FaceDetailer has none
      undefined,
      undefined,
      undefined,
      undefined,
    ];
    return [image, refined, alpha, mask, pipe, cnet];
  },
});

async function faceSegs(
  image: ImageTensor,
  bbox: { detect(image: ImageTensor, o: DetectOptions): Promise<Segs> },
  segm: { detect(image: ImageTensor, o: DetectOptions): Promise<Segs> } | undefined,
  o: DetectOptions,
  ctx: NodeContext,
): Promise<Segs> {
  const segs = await bbox.detect(image, o);
  if (!segm) return segs;
  ctx.log.info(`FaceDetailer (node ${ctx.nodeId}): bbox segments ANDed with segm_detector_opt's combined mask`);
  return segsBitwiseAndMask(segs, segsToCombinedMask(await segm.detect(image, o)));
}

function concat(parts: readonly { data: Float32Array }[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.data.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p.data, at);
    at += p.data.length;
  }
  return out;
}
