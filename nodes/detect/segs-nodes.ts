import { describeShape, type ImageTensor, type MaskTensor } from '../../engine/core/tensor.ts';
import { saveImageBatch, type SavedImage } from '../../engine/image/output-files.ts';
import type { Box, Seg, Segs } from '../../engine/image/segs.ts';
import '../../engine/models/detect/socket-types.ts';
import { maskToSegs } from '../../engine/models/detect/mask-to-segs.ts';
import { cropImage, filterSegsByLabels, segsToCombinedMask } from '../../engine/models/detect/segs-build.ts';
import { defineNode } from '../../engine/registry/types.ts';

/**
 * The Impact Pack's SEGS utility nodes (segs_nodes.py, impact_pack.py): MaskToSEGS, SegsToCombinedMask,
 * SEGSToImageList and SEGSPreview.
 */

const MAX_RESOLUTION = 16384;
const emptyImage = (): ImageTensor => ({ shape: [1, 64, 64, 3], data: new Float32Array(64 * 64 * 3) });

/**
 * segs_scale_match's crop regions for an image of another size (x by the width ratio, y by the height
 * ratio, truncated). The Impact Pack scales y1 by the width ratio too; with proportional sizes the two agree.
 */
function scaledRegion(r: Box, from: readonly [number, number], to: readonly [number, number]): Box {
  const rh = to[0] / from[0];
  const rw = to[1] / from[1];
  return [Math.trunc(r[0] * rw), Math.trunc(r[1] * rh), Math.trunc(r[2] * rw), Math.trunc(r[3] * rh)];
}

/** A SEG's picture: its own cropped image, else the fallback image cut to its (scaled) crop region. */
function segImages(seg: Seg, segs: Segs, fallback: ImageTensor | undefined): ImageTensor | undefined {
  if (fallback) {
    const to: [number, number] = [fallback.shape[1], fallback.shape[2]];
    const same = to[0] === segs.shape[0] && to[1] === segs.shape[1];
    if (seg.croppedImage && same) return seg.croppedImage;
    return cropImage(fallback, same ? seg.cropRegion : scaledRegion(seg.cropRegion, segs.shape, to));
  }
  return seg.croppedImage;
}

export const MaskToSEGS = defineNode({
  name: 'MaskToSEGS',
  displayName: 'MASK to SEGS',
  category: 'ImpactPack/Operation',
  description: 'One SEG per separate region of the mask (or one for all of it when combined).',
  searchAliases: ['mask to segs', 'segs', 'impact'],
  inputs: {
    required: {
      mask: { type: 'MASK' },
      combined: { type: 'BOOLEAN', default: false, labelOn: 'True', labelOff: 'False' },
      crop_factor: { type: 'FLOAT', default: 3.0, min: 1.0, max: 100, step: 0.1 },
      bbox_fill: { type: 'BOOLEAN', default: false, labelOn: 'enabled', labelOff: 'disabled' },
      drop_size: { type: 'INT', default: 10, min: 1, max: MAX_RESOLUTION, step: 1 },
      contour_fill: { type: 'BOOLEAN', default: false, labelOn: 'enabled', labelOff: 'disabled' },
    },
  },
  outputs: [{ type: 'SEGS', name: 'SEGS' }],
  run(i, ctx) {
    const d = i.mask.shape;
    if (d.length < 2 || d.length > 3)
      throw new Error(`MaskToSEGS (node ${ctx.nodeId}): mask must be [B, H, W] or [H, W], got ${describeShape(d)}`);
    const segs = maskToSegs(i.mask, {
      combined: i.combined,
      cropFactor: i.crop_factor,
      bboxFill: i.bbox_fill,
      dropSize: i.drop_size,
      contourFill: i.contour_fill,
    });
    ctx.log.info(`MaskToSEGS (node ${ctx.nodeId}): ${segs.segments.length} segment(s)${segs.segments.length ? '' : ' (empty mask)'}`);
    return [segs];
  },
});

export const SegsToCombinedMask = defineNode({
  name: 'SegsToCombinedMask',
  displayName: 'SEGS to MASK (combined)',
  category: 'ImpactPack/Operation',
  description: "All segments' masks OR-ed into one MASK the size of the image they came from.",
  searchAliases: ['segs to mask', 'combine masks', 'impact'],
  inputs: { required: { segs: { type: 'SEGS' } } },
  outputs: [{ type: 'MASK', name: 'MASK' }],
  run({ segs }): [MaskTensor] {
    return [segsToCombinedMask(segs)];
  },
});

export const SEGSToImageList = defineNode({
  name: 'SEGSToImageList',
  displayName: 'SEGS to Image List',
  category: 'ImpactPack/Util',
  description: "Each segment's cropped image (or the fallback image cut to its crop region), as a list.",
  searchAliases: ['segs to images', 'crops', 'impact'],
  inputs: { required: { segs: { type: 'SEGS' } }, optional: { fallback_image_opt: { type: 'IMAGE' } } },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', isList: true }],
  run({ segs, fallback_image_opt }): [ImageTensor[]] {
    const out = segs.segments.map((s) => segImages(s, segs, fallback_image_opt) ?? emptyImage());
    return [out.length ? out : [emptyImage()]];
  },
});

/** Image × mask (broadcast over channels), as SEGSPreview's returned batch has it. */
function masked(image: ImageTensor, mask: Float32Array): ImageTensor {
  const [b, h, w, c] = image.shape;
  const data = new Float32Array(image.data.length);
  for (let n = 0; n < b; n++) {
    for (let p = 0; p < h * w; p++) {
      const m = mask.length === h * w ? mask[p] : 1;
      for (let k = 0; k < c; k++) data[(n * h * w + p) * c + k] = Math.fround(image.data[(n * h * w + p) * c + k] * m);
    }
  }
  return { shape: [b, h, w, c], data };
}

/** RGBA of the crop with the mask as alpha, floored at min_alpha (in 8-bit steps, as the Impact Pack's PIL alpha). */
function withAlpha(image: ImageTensor, mask: Float32Array, minAlpha: number): ImageTensor {
  const [, h, w] = image.shape;
  const data = new Float32Array(h * w * 4);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) data[p * 4 + k] = image.data[p * 3 + k];
    let a = mask.length === h * w ? Math.min(255, Math.max(0, Math.trunc(Math.fround(mask[p] * 255)))) : 255;
    if (minAlpha !== 0 && a < minAlpha) a = minAlpha;
    data[p * 4 + 3] = a / 255;
  }
  return { shape: [1, h, w, 4], data };
}

export const SEGSPreview = defineNode({
  name: 'SEGSPreview',
  displayName: 'SEGSPreview',
  category: 'ImpactPack/Util',
  description: 'Show each segment cropped, with its mask as transparency; returns the crops × masks.',
  searchAliases: ['preview segs', 'segs', 'impact'],
  inputs: {
    required: {
      segs: { type: 'SEGS' },
      alpha_mode: { type: 'BOOLEAN', default: true, labelOn: 'enable', labelOff: 'disable' },
      min_alpha: { type: 'FLOAT', default: 0.2, min: 0.0, max: 1.0, step: 0.01 },
    },
    optional: { fallback_image_opt: { type: 'IMAGE' } },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', isList: true }],
  outputNode: true,
  async run({ segs, alpha_mode, min_alpha, fallback_image_opt }, ctx) {
    const minAlpha = min_alpha !== 0 ? Math.trunc(255 * min_alpha) : 0;
    const files: SavedImage[] = [];
    const result: ImageTensor[] = [];
    for (const seg of segs.segments) {
      const crop = segImages(seg, segs, fallback_image_opt);
      if (!crop) continue;
      const [b, h, w] = crop.shape;
      const mask = seg.croppedMask.data.length === h * w ? seg.croppedMask.data : new Float32Array(0);
      result.push(alpha_mode ? masked(crop, mask) : crop);
      for (let n = 0; n < b; n++) {
        ctx.checkInterrupted();
        const one: ImageTensor = {
          shape: [1, h, w, crop.shape[3]],
          data: crop.data.subarray(n * h * w * crop.shape[3], (n + 1) * h * w * crop.shape[3]),
        };
        const picture = alpha_mode ? withAlpha(one, mask, minAlpha) : one;
        files.push(
          ...(await saveImageBatch(picture, { root: ctx.paths.tempDir, prefix: 'impact_seg_preview', type: 'temp', compressionLevel: 1 })),
        );
      }
    }
    return { ui: { images: files }, result: [result] };
  },
});

/** The Impact Pack's label list for the preset widget (its editor script copies a choice into `labels`). */
const DETECTION_LABELS = [
  'hand',
  'face',
  'mouth',
  'eyes',
  'eyebrows',
  'pupils',
  'left_eyebrow',
  'left_eye',
  'left_pupil',
  'right_eyebrow',
  'right_eye',
  'right_pupil',
  'short_sleeved_shirt',
  'long_sleeved_shirt',
  'short_sleeved_outwear',
  'long_sleeved_outwear',
  'vest',
  'sling',
  'shorts',
  'trousers',
  'skirt',
  'short_sleeved_dress',
  'long_sleeved_dress',
  'vest_dress',
  'sling_dress',
  'person',
  'bicycle',
  'car',
  'motorcycle',
  'airplane',
  'bus',
  'train',
  'truck',
  'boat',
  'traffic light',
  'fire hydrant',
  'stop sign',
  'parking meter',
  'bench',
  'bird',
  'cat',
  'dog',
  'horse',
  'sheep',
  'cow',
  'elephant',
  'bear',
  'zebra',
  'giraffe',
  'backpack',
  'umbrella',
  'handbag',
  'tie',
  'suitcase',
  'frisbee',
  'skis',
  'snowboard',
  'sports ball',
  'kite',
  'baseball bat',
  'baseball glove',
  'skateboard',
  'surfboard',
  'tennis racket',
  'bottle',
  'wine glass',
  'cup',
  'fork',
  'knife',
  'spoon',
  'bowl',
  'banana',
  'apple',
  'sandwich',
  'orange',
  'broccoli',
  'carrot',
  'hot dog',
  'pizza',
  'donut',
  'cake',
  'chair',
  'couch',
  'potted plant',
  'bed',
  'dining table',
  'toilet',
  'tv',
  'laptop',
  'mouse',
  'remote',
  'keyboard',
  'cell phone',
  'microwave',
  'oven',
  'toaster',
  'sink',
  'refrigerator',
  'book',
  'clock',
  'vase',
  'scissors',
  'teddy bear',
  'hair drier',
  'toothbrush',
];

/** SEGSLabelFilter: the segments whose label is listed, and the rest; `preset` only helps the editor fill `labels`. */
export const ImpactSEGSLabelFilter = defineNode({
  name: 'ImpactSEGSLabelFilter',
  displayName: 'SEGS Filter (label)',
  category: 'ImpactPack/Util',
  description: 'Keep the segments whose label is in the comma-separated list (all = every one).',
  searchAliases: ['segs label filter', 'filter segs', 'impact'],
  inputs: {
    required: {
      segs: { type: 'SEGS' },
      preset: { type: 'COMBO', options: ['all', ...DETECTION_LABELS] },
      labels: { type: 'STRING', multiline: true, placeholder: 'List the types of segments to be allowed, separated by commas' },
    },
  },
  outputs: [
    { type: 'SEGS', name: 'filtered_SEGS' },
    { type: 'SEGS', name: 'remained_SEGS' },
  ],
  run({ segs, labels }): [Segs, Segs] {
    const { kept, rest } = filterSegsByLabels(segs, labels);
    return [kept, rest];
  },
});

export const nodes = [MaskToSEGS, SegsToCombinedMask, SEGSToImageList, SEGSPreview, ImpactSEGSLabelFilter];
