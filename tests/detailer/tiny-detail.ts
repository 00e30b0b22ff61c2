import { join } from 'node:path';
import type { Box, DetectOptions, Seg, Segs, SegsDetector } from '../../engine/image/segs.ts';
import type { ClipHandle, ModelHandle, VaeHandle } from '../../engine/models/handles.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import type { ImageTensor, MaskTensor } from '../../engine/core/tensor.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { DetailOptions } from '../../engine/sampling/detail/detail-for-each.ts';
import { makeTiny } from '../models-onnx/tiny.ts';

/** The tiny SD1 checkpoint's parts and two prompts, for the detail-pass tests. */
export interface TinyDetail {
  dir: string;
  model: ModelHandle;
  clip: ClipHandle;
  vae: VaeHandle;
  pos: Conditioning;
  neg: Conditioning;
}

export async function loadTinyDetail(): Promise<TinyDetail> {
  const quiet = { info: () => {}, warn: () => {}, error: () => {} };
  const tiny = await makeTiny(5);
  const parts = await new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet }).loadCheckpoint(tiny.file);
  return {
    dir: tiny.dir,
    model: parts.model,
    clip: parts.clip,
    vae: parts.vae,
    pos: [await parts.clip.encodeText('a detailed face')],
    neg: [await parts.clip.encodeText('blurry')],
  };
}

/** The detail pass the tests share, as the engine takes it: guide 64, max 128, seed 42, 3 euler steps at cfg 4, denoise 0.6. */
export function detailOptions(t: TinyDetail): DetailOptions {
  return {
    model: t.model,
    vae: t.vae,
    positive: t.pos,
    negative: t.neg,
    guideSize: 64,
    guideForBbox: true,
    maxSize: 128,
    seed: 42n,
    steps: 3,
    cfg: 4,
    samplerName: 'euler',
    scheduler: 'normal',
    denoise: 0.6,
    feather: 3,
    noiseMask: true,
    forceInpaint: false,
    cycle: 1,
    noiseMaskFeather: 4,
  };
}

/** The same pass as DetailerForEach's node inputs, with `over` on top. */
export function detailerInputs(t: TinyDetail, image: ImageTensor, segs: Segs | undefined, over: Record<string, unknown> = {}) {
  return {
    image,
    segs,
    model: t.model,
    clip: t.clip,
    vae: t.vae,
    guide_size: 64,
    guide_size_for: true,
    max_size: 128,
    seed: 42,
    steps: 3,
    cfg: 4,
    sampler_name: 'euler',
    scheduler: 'normal',
    positive: t.pos,
    negative: t.neg,
    denoise: 0.6,
    feather: 3,
    noise_mask: true,
    force_inpaint: false,
    wildcard: '',
    cycle: 1,
    noise_mask_feather: 4,
    ...over,
  };
}

/** FaceDetailer's node inputs of the FaceDetailer tests (2 steps, denoise 0.5, forced inpaint, no SAM), with `over` on top. */
export function faceDetailerInputs(t: TinyDetail, image: ImageTensor, over: Record<string, unknown> = {}) {
  return {
    image,
    model: t.model,
    clip: t.clip,
    vae: t.vae,
    guide_size: 64,
    guide_size_for: true,
    max_size: 128,
    seed: 1,
    steps: 2,
    cfg: 4,
    sampler_name: 'euler',
    scheduler: 'normal',
    positive: t.pos,
    negative: t.neg,
    denoise: 0.5,
    feather: 0,
    noise_mask: true,
    force_inpaint: true,
    wildcard: '',
    cycle: 1,
    bbox_threshold: 0.5,
    bbox_dilation: 0,
    bbox_crop_factor: 2,
    sam_detection_hint: 'center-1',
    sam_dilation: 0,
    sam_threshold: 0.93,
    sam_bbox_expansion: 0,
    sam_mask_hint_threshold: 0.7,
    sam_mask_hint_use_negative: 'False',
    drop_size: 10,
    ...over,
  };
}

/** A node context that keeps the info and warning lines the node logs, to assert on. */
export function loggingContext(nodeId: string, classType: string): { ctx: NodeContext; lines: string[] } {
  const lines: string[] = [];
  const ctx = {
    nodeId,
    classType,
    signal: new AbortController().signal,
    progress: () => {},
    log: { info: (l: string) => lines.push(l), warn: (l: string) => lines.push(l), error: () => {} },
  } as unknown as NodeContext;
  return { ctx, lines };
}

/** A smooth test picture [1, h, w, 3] (gradients, no dependence on the code under test). */
export function picture(h: number, w: number): ImageTensor {
  const data = new Float32Array(h * w * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      data[(y * w + x) * 3] = x / w;
      data[(y * w + x) * 3 + 1] = y / h;
      data[(y * w + x) * 3 + 2] = 0.5 + 0.4 * Math.sin((x + y) / 5);
    }
  return { shape: [1, h, w, 3], data };
}

/** A rectangular segment as a bbox detector makes it: crop region = bbox grown by crop_factor about its centre, clamped; mask = the bbox. */
export function boxSeg(bbox: Box, h: number, w: number, cropFactor: number, label = 'face'): Seg {
  const [x1, y1, x2, y2] = bbox;
  const cw = (x2 - x1) * cropFactor;
  const ch = (y2 - y1) * cropFactor;
  const norm = (limit: number, start: number, size: number): [number, number] =>
    start < 0
      ? [0, Math.min(limit, size)]
      : start + size > limit
        ? [Math.max(0, limit - size), limit]
        : [start, Math.min(limit, start + size)];
  const [cx1, cx2] = norm(w, Math.trunc(x1 + (x2 - x1) / 2 - cw / 2), cw).map(Math.trunc) as [number, number];
  const [cy1, cy2] = norm(h, Math.trunc(y1 + (y2 - y1) / 2 - ch / 2), ch).map(Math.trunc) as [number, number];
  const mw = cx2 - cx1;
  const mh = cy2 - cy1;
  const mask = new Float32Array(mw * mh);
  for (let y = Math.max(y1, cy1); y < Math.min(y2, cy2); y++)
    for (let x = Math.max(x1, cx1); x < Math.min(x2, cx2); x++) mask[(y - cy1) * mw + x - cx1] = 1;
  return { croppedMask: { shape: [mh, mw], data: mask }, confidence: 0.9, cropRegion: [cx1, cy1, cx2, cy2], bbox, label };
}

/** A detector over fixed boxes (for the FaceDetailer ≡ detection + DetailerForEach check). */
export function fixedDetector(boxes: Box[]): SegsDetector {
  return {
    kind: 'bbox',
    name: 'fixed',
    classNames: ['face'],
    async detect(image: ImageTensor, o: DetectOptions): Promise<Segs> {
      const [, h, w] = image.shape;
      return { shape: [h, w], segments: boxes.map((b) => boxSeg(b, h, w, o.cropFactor)) };
    },
    async detectCombined(image: ImageTensor): Promise<MaskTensor> {
      return { shape: [1, image.shape[1], image.shape[2]], data: new Float32Array(image.shape[1] * image.shape[2]) };
    },
  };
}
