import path from 'node:path';
import type { ImageTensor, MaskTensor } from '../../core/tensor.ts';
import type { DetectOptions, Seg, Segs, SegsDetector } from '../../image/segs.ts';
import type { RunSession } from '../runtime/part.ts';
import { applyLabelFilter, boxMask, cropImage, cropPlane, makeCropRegion, morphRect } from './segs-build.ts';
import { runYolo, type YoloDetection, type YoloModel } from './yolo.ts';

/**
 * The Impact Subpack's UltraBBoxDetector / UltraSegmDetector over an ONNX YOLO model. A bbox detector
 * gives each detection a box-shaped mask (cv2.rectangle of the truncated corners); a segm detector the
 * model's mask. Both dilate the full-image masks when dilation > 0 (the Subpack ignores a negative
 * one here), drop detections no larger than drop_size on either side, and cut a crop region of
 * crop_factor × the box out of the mask and the image.
 */

/** The Impact Pack's conf passed to YOLO is the node's threshold; NMS uses ultralytics' default IoU. */
const IOU = 0.7;

interface FullMask {
  det: YoloDetection;
  mask: Float32Array;
}

function fullMasks(kind: 'bbox' | 'segm', dets: readonly YoloDetection[], h: number, w: number, dilation: number): FullMask[] {
  return dets.map((det) => {
    const base = kind === 'segm' && det.mask ? det.mask : boxMask(h, w, det.box);
    return { det, mask: dilation > 0 ? morphRect(base, h, w, dilation) : base };
  });
}

export class YoloSegsDetector implements SegsDetector {
  readonly classNames: readonly string[];
  readonly name: string;

  constructor(
    readonly kind: 'bbox' | 'segm',
    private readonly model: YoloModel,
    private readonly run: RunSession,
    name?: string,
  ) {
    if (kind === 'segm' && !model.segmentation) throw new Error(`${path.basename(model.file)} is a detection model without masks; it cannot be a SEGM_DETECTOR`);
    this.classNames = model.meta.names;
    this.name = name ?? path.basename(model.file);
  }

  private async masks(image: ImageTensor, threshold: number, dilation: number): Promise<FullMask[]> {
    const [, h, w] = image.shape;
    const dets = await runYolo(this.model, this.run, image, { conf: threshold, iou: IOU });
    return fullMasks(this.kind, dets, h, w, dilation);
  }

  async detect(image: ImageTensor, opts: DetectOptions): Promise<Segs> {
    const [, h, w] = image.shape;
    const drop = Math.max(opts.dropSize, 1);
    const segments: Seg[] = [];
    for (const { det, mask } of await this.masks(image, opts.threshold, opts.dilation)) {
      const [x1, y1, x2, y2] = det.box;
      if (!(x2 - x1 > drop && y2 - y1 > drop)) continue;
      const cropRegion = makeCropRegion(w, h, det.box, opts.cropFactor);
      const cm = cropPlane(mask, h, w, cropRegion);
      segments.push({
        croppedImage: cropImage(image, cropRegion),
        croppedMask: { shape: [cm.h, cm.w], data: cm.data },
        confidence: det.confidence,
        cropRegion,
        bbox: det.box,
        label: det.label,
      });
    }
    return applyLabelFilter({ shape: [h, w], segments }, opts.labels);
  }

  /** detect_combined: the masks OR-ed as cv2.bitwise_or does on float32 (bit patterns), MASK [1, H, W]. */
  async detectCombined(image: ImageTensor, opts: Pick<DetectOptions, 'threshold' | 'dilation'>): Promise<MaskTensor> {
    const [, h, w] = image.shape;
    const acc = new Float32Array(h * w);
    const bits = new Uint32Array(acc.buffer);
    for (const { mask } of await this.masks(image, opts.threshold, opts.dilation)) {
      const mb = new Uint32Array(mask.buffer, mask.byteOffset, mask.length);
      for (let i = 0; i < bits.length; i++) bits[i] |= mb[i];
    }
    return { shape: [1, h, w], data: acc };
  }
}

/** What the provider gives for a bbox-only model's SEGM_DETECTOR (the Impact Pack's NO_SEGM_DETECTOR): refuses with the reason. */
export function noSegmDetector(name: string): SegsDetector {
  const refuse = (): never => {
    throw new Error(`${name} is a bbox model (bbox/...): it has no SEGM_DETECTOR; use its BBOX_DETECTOR or a segm/ model`);
  };
  return {
    kind: 'segm',
    name,
    classNames: [],
    detect: async () => refuse(),
    detectCombined: async () => refuse(),
  };
}
