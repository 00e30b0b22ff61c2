import type { ImageTensor, MaskTensor, Tensor } from '../core/tensor.ts';

/**
 * The Impact Pack's SEGS value: the size of the image the segments were found in and one SEG per
 * detection. Shared by the detector nodes (which make SEGS) and the detailers (which consume them),
 * so it sits below both.
 */
export interface Segs {
  /** [height, width] of the image the segments refer to (the Impact Pack's `segs[0]`). */
  readonly shape: readonly [number, number];
  readonly segments: readonly Seg[];
}

/** [x1, y1, x2, y2] in pixels, x2/y2 exclusive, as the Impact Pack stores crop_region and bbox. */
export type Box = readonly [number, number, number, number];

/** One detection (the Impact Pack's `SEG` namedtuple). */
export interface Seg {
  /** The image cropped to `cropRegion` when a detector kept it (IMAGE [1, h, w, 3]); most leave it out. */
  readonly croppedImage?: ImageTensor;
  /** Float mask over `cropRegion` only, [h, w] with h = y2 − y1 and w = x2 − x1, values 0..1. */
  readonly croppedMask: Tensor;
  readonly confidence: number;
  /** The region the detailer crops: the bbox grown by crop_factor, clamped to the image. */
  readonly cropRegion: Box;
  /** The detection's box in image pixels. */
  readonly bbox: Box;
  /** Class name (`face`, `hand`, `person`, ...), or the Impact Pack's `A` for masks without a class. */
  readonly label: string;
  /** A ControlNet to apply during this segment's detail pass (the Impact Pack's control_net_wrapper). */
  readonly controlNet?: unknown;
}

/** Options of the Impact Pack's BBOX_DETECTOR.detect / SEGM_DETECTOR.detect. */
export interface DetectOptions {
  /** Confidence threshold, 0..1. */
  readonly threshold: number;
  /** Mask dilation in pixels (negative erodes). */
  readonly dilation: number;
  /** crop_region = bbox scaled by this about its centre, clamped to the image. */
  readonly cropFactor: number;
  /** Detections whose box is smaller than this in either side are dropped. */
  readonly dropSize: number;
  /** Comma-separated class names to keep; `all` or empty keeps every class. */
  readonly labels?: string;
}

/**
 * The value on a BBOX_DETECTOR or SEGM_DETECTOR socket: a loaded detection model. `detect` returns
 * SEGS for a single image ([1, H, W, 3]); `detectCombined` the union of the detection masks as one
 * MASK [1, H, W].
 */
export interface SegsDetector {
  readonly kind: 'bbox' | 'segm';
  /** File name as listed by the provider (for messages and cache keys). */
  readonly name: string;
  /** Class names from the model's metadata, in class-index order. */
  readonly classNames: readonly string[];
  detect(image: ImageTensor, opts: DetectOptions): Promise<Segs>;
  detectCombined(image: ImageTensor, opts: Pick<DetectOptions, 'threshold' | 'dilation'>): Promise<MaskTensor>;
}
