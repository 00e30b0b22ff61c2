import { describeShape, type ImageTensor } from '../../engine/core/tensor.ts';
import type { Segs, SegsDetector } from '../../engine/image/segs.ts';
import '../../engine/models/detect/socket-types.ts';
import { applyLabelFilter, dilateSegs, segsBitwiseAndMask, segsToCombinedMask } from '../../engine/models/detect/segs-build.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';

/**
 * The Impact Pack's detector nodes (modules/impact/detectors.py): BboxDetectorSEGS / SegmDetectorSEGS
 * (BboxDetectorForEach / SegmDetectorForEach) and ImpactSimpleDetectorSEGS, with its inputs and
 * defaults. They take one image; detailer_hook is accepted and not used (Weft has no hooks yet).
 */

const MAX_RESOLUTION = 16384;

function single(node: string, image: ImageTensor, ctx: NodeContext): void {
  if (image.shape.length !== 4)
    throw new Error(`${node} (node ${ctx.nodeId}): image must be [B, H, W, C], got ${describeShape(image.shape)}`);
  if (image.shape[0] > 1) {
    throw new Error(
      `${node} (node ${ctx.nodeId}): image batches are not allowed (got ${image.shape[0]} images); detect each image on its own, as the Impact Pack requires`,
    );
  }
}

const forEachInputs = {
  image: { type: 'IMAGE' },
  threshold: { type: 'FLOAT', default: 0.5, min: 0.0, max: 1.0, step: 0.01 },
  dilation: { type: 'INT', default: 10, min: -512, max: 512, step: 1 },
  crop_factor: { type: 'FLOAT', default: 3.0, min: 1.0, max: 100, step: 0.1 },
  drop_size: { type: 'INT', default: 10, min: 1, max: MAX_RESOLUTION, step: 1 },
  labels: { type: 'STRING', default: 'all', multiline: true, placeholder: 'List the types of segments to be allowed, separated by commas' },
} as const;

interface ForEachArgs {
  image: ImageTensor;
  threshold: number;
  dilation: number;
  crop_factor: number;
  drop_size: number;
  labels: string;
}

/** BboxDetectorForEach / SegmDetectorForEach.doit: one image, the detector's SEGS, the label filter. */
async function detectForEach(node: string, detector: SegsDetector, i: ForEachArgs, ctx: NodeContext): Promise<Segs> {
  single(node, i.image, ctx);
  const segs = await detector.detect(i.image, {
    threshold: i.threshold,
    dilation: i.dilation,
    cropFactor: i.crop_factor,
    dropSize: i.drop_size,
  });
  return applyLabelFilter(segs, i.labels);
}

export const BboxDetectorSEGS = defineNode({
  name: 'BboxDetectorSEGS',
  displayName: 'BBOX Detector (SEGS)',
  category: 'ImpactPack/Detector',
  description: 'Detect with a BBOX_DETECTOR: one SEG per box (box-shaped mask), crop region crop_factor × the box.',
  searchAliases: ['bbox detector', 'detect faces', 'yolo', 'segs', 'impact'],
  inputs: {
    required: { bbox_detector: { type: 'BBOX_DETECTOR' }, ...forEachInputs },
    optional: { detailer_hook: { type: 'DETAILER_HOOK' } },
  },
  outputs: [{ type: 'SEGS', name: 'SEGS' }],
  async run(i, ctx) {
    return [await detectForEach('BboxDetectorSEGS', i.bbox_detector, i, ctx)];
  },
});

export const SegmDetectorSEGS = defineNode({
  name: 'SegmDetectorSEGS',
  displayName: 'SEGM Detector (SEGS)',
  category: 'ImpactPack/Detector',
  description: "Detect with a SEGM_DETECTOR: one SEG per detection with the model's mask.",
  searchAliases: ['segm detector', 'segmentation', 'yolo', 'segs', 'impact'],
  inputs: {
    required: { segm_detector: { type: 'SEGM_DETECTOR' }, ...forEachInputs },
    optional: { detailer_hook: { type: 'DETAILER_HOOK' } },
  },
  outputs: [{ type: 'SEGS', name: 'SEGS' }],
  async run(i, ctx) {
    return [await detectForEach('SegmDetectorSEGS', i.segm_detector, i, ctx)];
  },
});

/**
 * SimpleDetectorForEach: bbox detection, its masks ANDed with a segm detector's combined mask when one
 * is given, then post_dilation on each cropped mask. SAM is refused (Weft has no SAM).
 */
export const ImpactSimpleDetectorSEGS = defineNode({
  name: 'ImpactSimpleDetectorSEGS',
  displayName: 'Simple Detector (SEGS)',
  category: 'ImpactPack/Detector',
  description: 'Bbox detection refined by an optional segm detector (AND of masks), then post dilation.',
  searchAliases: ['simple detector', 'detect', 'yolo', 'segs', 'impact'],
  inputs: {
    required: {
      bbox_detector: { type: 'BBOX_DETECTOR' },
      image: { type: 'IMAGE' },
      bbox_threshold: { type: 'FLOAT', default: 0.5, min: 0.0, max: 1.0, step: 0.01 },
      bbox_dilation: { type: 'INT', default: 0, min: -512, max: 512, step: 1 },
      crop_factor: { type: 'FLOAT', default: 3.0, min: 1.0, max: 100, step: 0.1 },
      drop_size: { type: 'INT', default: 10, min: 1, max: MAX_RESOLUTION, step: 1 },
      sub_threshold: { type: 'FLOAT', default: 0.5, min: 0.0, max: 1.0, step: 0.01 },
      sub_dilation: { type: 'INT', default: 0, min: -512, max: 512, step: 1 },
      sub_bbox_expansion: { type: 'INT', default: 0, min: 0, max: 1000, step: 1 },
      sam_mask_hint_threshold: { type: 'FLOAT', default: 0.7, min: 0.0, max: 1.0, step: 0.01 },
    },
    optional: {
      post_dilation: { type: 'INT', default: 0, min: -512, max: 512, step: 1 },
      sam_model_opt: { type: 'SAM_MODEL' },
      segm_detector_opt: { type: 'SEGM_DETECTOR' },
    },
  },
  outputs: [{ type: 'SEGS', name: 'SEGS' }],
  async run(i, ctx) {
    single('ImpactSimpleDetectorSEGS', i.image, ctx);
    if (i.sam_model_opt !== undefined) {
      throw new Error(
        `ImpactSimpleDetectorSEGS (node ${ctx.nodeId}): sam_model_opt is not supported (Weft has no SAM); disconnect it or use segm_detector_opt`,
      );
    }
    let segs: Segs = await i.bbox_detector.detect(i.image, {
      threshold: i.bbox_threshold,
      dilation: i.bbox_dilation,
      cropFactor: i.crop_factor,
      dropSize: i.drop_size,
    });
    if (i.segm_detector_opt) {
      const sub = await i.segm_detector_opt.detect(i.image, {
        threshold: i.sub_threshold,
        dilation: i.sub_dilation,
        cropFactor: i.crop_factor,
        dropSize: i.drop_size,
      });
      segs = segsBitwiseAndMask(segs, segsToCombinedMask(sub));
    }
    return [dilateSegs(segs, i.post_dilation ?? 0)];
  },
});
