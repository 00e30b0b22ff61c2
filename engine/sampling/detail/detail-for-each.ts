import { pyRound } from '../../core/py-round.ts';
import { cropRegion } from '../../core/regions.ts';
import { describeShape, type ImageTensor, type Tensor } from '../../core/tensor.ts';
import { resizeNCHW } from '../../image/resize.ts';
import type { Box, Seg, Segs } from '../../image/segs.ts';
import type { Conditioning } from '../conditioning.ts';
import { batchMixing } from './batch-rules.ts';
import { detailUpscalePlan, enhanceDetail, enhanceDetailBatch, type DetailSampling, type UpscalePlan } from './enhance.ts';
import { impactBlurMask } from './impact-blur.ts';

/**
 * The Impact Pack's `DetailerForEach.do_detail`: every segment of a single image detailed in turn
 * on the image as the earlier segments left it (so overlapping crops see each other's results),
 * segment i seeded seed + i, each refined crop pasted back through its cropped mask blurred by
 * `feather`. Where that blurred mask is 0 the pixel is the input's, bit for bit.
 */

export interface DetailOptions extends DetailSampling {
  guideSize: number;
  /** guide_size_for: true = bbox, false = crop_region. */
  guideForBbox: boolean;
  maxSize: number;
  seed: bigint;
  feather: number;
  noiseMask: boolean;
  forceInpaint: boolean;
  /**
   * Sample same-size segments as one batch where that cannot change the result beyond the UNet's
   * batch arithmetic (see batchRefusal). The nodes turn it on; the Impact Pack samples one by one.
   */
  batch?: boolean;
}

export interface DetailResult {
  image: ImageTensor;
  /** The segments' crops before detailing, largest shape first (the Impact Pack's cropped list). */
  cropped: ImageTensor[];
  /** The refined crops, largest first (FaceDetailer's cropped_refined). */
  enhanced: ImageTensor[];
  /** The refined crops as RGBA with the paste mask as alpha, largest first (cropped_enhanced_alpha). */
  enhancedAlpha: ImageTensor[];
  /** The segments with their refined crops as cropped_image. */
  segs: Segs;
}

/** segs_scale_match: segments found on an image of another size scaled to this one, with the Impact Pack's own axis use. */
export function segsScaleMatch(segs: Segs, height: number, width: number): Segs {
  const [h, w] = segs.shape;
  if ((h === height && w === width) || h === 0 || w === 0) return segs;
  const rh = height / h;
  const rw = width / w;
  const segments = segs.segments.map((seg): Seg => {
    // As the Impact Pack does: x1 and y1 by the width ratio, x2 and y2 by the height ratio.
    const [x1, y1, x2, y2] = seg.cropRegion;
    const [bx1, by1, bx2, by2] = seg.bbox;
    const cropRegion: Box = [Math.trunc(x1 * rw), Math.trunc(y1 * rw), Math.trunc(x2 * rh), Math.trunc(y2 * rh)];
    const bbox: Box = [Math.trunc(bx1 * rw), Math.trunc(by1 * rw), Math.trunc(bx2 * rh), Math.trunc(by2 * rh)];
    const nh = cropRegion[3] - cropRegion[1];
    const nw = cropRegion[2] - cropRegion[0];
    const [mh, mw] = maskDims(seg.croppedMask);
    const croppedMask = resizeNCHW({ shape: [1, 1, mh, mw], data: seg.croppedMask.data }, nh, nw, 'bilinear');
    return { ...seg, croppedImage: undefined, croppedMask: { shape: [nh, nw], data: croppedMask.data }, cropRegion, bbox };
  });
  return { shape: [height, width], segments };
}

function maskDims(m: Tensor): [number, number] {
  const s = m.shape;
  return [s[s.length - 2], s[s.length - 1]];
}

/** crop_condition_mask: a conditioning mask cut to the crop region, scaled as the Impact Pack scales it (height ratio for x1, y2; width ratio for y1, x2). */
function cropConditioning(cond: Conditioning, image: { h: number; w: number }, region: Box): Conditioning {
  return cond.map((e) => {
    if (!e.mask) return e;
    const s = e.mask.shape;
    const mh = s[s.length - 2];
    const mw = s[s.length - 1];
    const scale = [mh / image.h, mw / image.w];
    const [x1, y1, x2, y2] = region.map((v, i) => pyRound(v * scale[i % 2]));
    const b = e.mask.data.length / (mh * mw);
    const x2c = Math.min(x2, mw);
    const y2c = Math.min(y2, mh);
    const cw = Math.max(0, x2c - x1);
    const ch = Math.max(0, y2c - y1);
    const data = new Float32Array(b * ch * cw);
    for (let n = 0; n < b; n++)
      for (let y = 0; y < ch; y++)
        data.set(e.mask.data.subarray((n * mh + y1 + y) * mw + x1, (n * mh + y1 + y) * mw + x1 + cw), (n * ch + y) * cw);
    return { ...e, mask: { shape: [b, ch, cw], data } };
  });
}

/** A crop region clamped to the image (numpy slicing clamps the same way). */
export function clampBox(b: Box, h: number, w: number): Box {
  const c = (v: number, hi: number): number => Math.min(Math.max(Math.trunc(v), 0), hi);
  return [c(b[0], w), c(b[1], h), c(b[2], w), c(b[3], h)];
}

/** tensor_paste in float32: (1 − m)·dest + m·src over the crop, m the blurred mask; nothing else is written. */
function pasteBlended(image: Float32Array, h: number, w: number, src: Tensor, mask: Float32Array, x0: number, y0: number): void {
  const [, sh, sw, c] = src.shape;
  const ph = Math.min(h, y0 + sh) - y0;
  const pw = Math.min(w, x0 + sw) - x0;
  const f = Math.fround;
  for (let y = 0; y < ph; y++) {
    for (let x = 0; x < pw; x++) {
      const m = mask[y * sw + x];
      const inv = f(1 - m);
      const d = ((y0 + y) * w + x0 + x) * c;
      const s = (y * sw + x) * c;
      for (let k = 0; k < c; k++) image[d + k] = f(f(inv * image[d + k]) + f(m * src.data[s + k]));
    }
  }
}

/** Stable sort, largest shape first (Python's sort(key=shape, reverse=True) keeps equal shapes in order). */
function byShapeDesc(list: Tensor[]): Tensor[] {
  const cmp = (a: Tensor, b: Tensor): number => {
    for (let i = 0; i < Math.max(a.shape.length, b.shape.length); i++) {
      const d = (b.shape[i] ?? -1) - (a.shape[i] ?? -1);
      if (d !== 0) return d;
    }
    return 0;
  };
  return [...list].sort(cmp);
}

interface PreparedSegment {
  region: Box;
  rw: number;
  rh: number;
  mask2d: Float32Array;
  plan: UpscalePlan;
  seed: bigint;
  bbox: Box;
}

/** The checks and sizes of one segment, or why it is skipped (an empty reason: skipped silently). */
function prepareSegment(seg: Seg, i: number, image: Tensor, o: DetailOptions): PreparedSegment | { skip: string } {
  const [, h, w] = image.shape;
  const region = clampBox(seg.cropRegion, h, w);
  const rw = region[2] - region[0];
  const rh = region[3] - region[1];
  const [mh, mw] = maskDims(seg.croppedMask);
  if (rw <= 0 || rh <= 0 || seg.bbox[2] - seg.bbox[0] <= 0 || seg.bbox[3] - seg.bbox[1] <= 0) {
    return {
      skip: `Detailer: segment ${i} (${seg.label}) skipped: zero-area box [${seg.bbox.join(', ')}] / crop region [${region.join(', ')}]`,
    };
  }
  if (mh !== seg.cropRegion[3] - seg.cropRegion[1] || mw !== seg.cropRegion[2] - seg.cropRegion[0]) {
    throw new Error(
      `segment ${i} (${seg.label}): cropped_mask is ${mw}x${mh} but its crop_region [${seg.cropRegion.join(', ')}] is ` +
        `${seg.cropRegion[2] - seg.cropRegion[0]}x${seg.cropRegion[3] - seg.cropRegion[1]}`,
    );
  }
  // A region running past the image (a detector that did not clamp) keeps the mask's inside part.
  const mask2d = cropMaskTo(seg.croppedMask.data, mw, region[0] - seg.cropRegion[0], region[1] - seg.cropRegion[1], rw, rh);
  if (mask2d.every((v) => v === 0)) return { skip: 'Detailer: segment skip [empty mask]' };
  const plan = detailUpscalePlan({ width: rw, height: rh }, seg.bbox, o);
  return { region, rw, rh, mask2d, plan, seed: o.seed + BigInt(i), bbox: seg.bbox };
}

const disjoint = (a: Box, b: Box): boolean => a[2] <= b[0] || b[2] <= a[0] || a[3] <= b[1] || b[3] <= a[1];

/**
 * Why same-size segments may not share a sampling run, or undefined when they may. A batch gives each
 * crop its own run up to the UNet's batch arithmetic only when nothing mixes the items: step noise
 * would be one stream for the batch, an area mask is cut per crop, a wrapper or CFG hook on the model
 * may treat the batch as a whole, and overlapping crops must see each other's results in order.
 */
function batchRefusal(live: readonly { p: PreparedSegment }[], o: DetailOptions): string | undefined {
  if ([...o.positive, ...o.negative].some((e) => e.mask)) return 'the prompts carry masks, which are cut per crop';
  if (o.inpaintModel && o.noiseMask) return 'inpaint_model gives each crop its own inpaint conditioning';
  const mixing = batchMixing(o.samplerName, o.model);
  if (mixing) return mixing;
  for (let a = 0; a < live.length; a++)
    for (let b = a + 1; b < live.length; b++) if (!disjoint(live[a].p.region, live[b].p.region)) return 'crop regions overlap';
  return undefined;
}

/**
 * The `batch` option: segments with the same crop and upscaled sizes share one sampling run when
 * batchRefusal finds nothing against it (it is logged when it does). Returns their refined crops by index.
 */
async function sampleBatched(
  prepared: readonly (PreparedSegment | { skip: string })[],
  image: Tensor,
  o: DetailOptions,
): Promise<Map<number, Tensor>> {
  const out = new Map<number, Tensor>();
  const live = prepared.map((p, i) => ({ p, i })).filter((e): e is { p: PreparedSegment; i: number } => !('skip' in e.p) && !e.p.plan.skip);
  const groups = new Map<string, { p: PreparedSegment; i: number }[]>();
  for (const e of live) {
    const key = `${e.p.rw}x${e.p.rh}>${e.p.plan.width}x${e.p.plan.height}`;
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  if (![...groups.values()].some((g) => g.length > 1)) return out;
  const refusal = batchRefusal(live, o);
  if (refusal) {
    o.log?.(`Detailer: same-size segments sampled one by one (${refusal})`);
    return out;
  }
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    o.log?.(`Detailer: ${group.length} segments of ${group[0].p.rw}x${group[0].p.rh} sampled as one batch`);
    const items = group.map(({ p }) => ({
      image: cropRegion(image, { x: p.region[0], y: p.region[1], width: p.rw, height: p.rh }, 'NHWC'),
      bbox: p.bbox,
      noiseMask: o.noiseMask ? { shape: [p.rh, p.rw], data: p.mask2d } : undefined,
      seed: p.seed,
    }));
    const refined = await enhanceDetailBatch(items, group[0].p.plan, o);
    group.forEach((e, k) => out.set(e.i, refined[k]));
  }
  return out;
}

export async function detailForEach(image: ImageTensor, segsIn: Segs, o: DetailOptions): Promise<DetailResult> {
  if (image.shape.length !== 4 || image.shape[0] !== 1) {
    throw new Error(`DetailerForEach does not allow image batches: image is ${describeShape(image.shape)} (use one image)`);
  }
  const [, h, w, c] = image.shape;
  const data = Float32Array.from(image.data);
  const segs = segsScaleMatch(segsIn, h, w);
  const cropped: Tensor[] = [];
  const enhanced: Tensor[] = [];
  const enhancedAlpha: Tensor[] = [];
  const newSegments: Seg[] = [];
  if (segs.segments.length === 0) o.log?.('Detailer: no segments; the image passes through unchanged');
  const prepared = segs.segments.map((seg, i) => prepareSegment(seg, i, { shape: [1, h, w, c], data }, o));
  const batched = o.batch ? await sampleBatched(prepared, { shape: [1, h, w, c], data }, o) : new Map<number, Tensor>();
  for (const [i, p] of prepared.entries()) {
    if ('skip' in p) {
      if (p.skip) o.log?.(p.skip);
      continue;
    }
    const seg = segs.segments[i];
    const { region, mask2d, plan } = p;
    // Later segments see the earlier ones' results, so the crop is taken again here.
    const crop = cropRegion({ shape: [1, h, w, c], data }, { x: region[0], y: region[1], width: p.rw, height: p.rh }, 'NHWC');
    const pasteMask = impactBlurMask({ shape: [1, p.rh, p.rw], data: mask2d }, o.feather).data;
    let refined: Tensor | undefined;
    if (plan.skip) o.log?.(`Detailer: ${plan.skip}`);
    else {
      refined = batched.get(i);
      if (!refined) {
        const positive = cropConditioning(o.positive, { h, w }, region);
        const negative = cropConditioning(o.negative, { h, w }, region);
        const noiseMask = o.noiseMask ? { shape: [p.rh, p.rw], data: mask2d } : undefined;
        refined = await enhanceDetail(crop, seg.bbox, noiseMask, p.seed, plan, { ...o, positive, negative });
      }
      pasteBlended(data, h, w, refined, pasteMask, region[0], region[1]);
      enhanced.push(refined);
      enhancedAlpha.push(withAlpha(refined, pasteMask));
    }
    cropped.push(crop);
    newSegments.push({ ...seg, croppedImage: refined });
  }
  return {
    image: { shape: [1, h, w, c], data },
    cropped: byShapeDesc(cropped),
    enhanced: byShapeDesc(enhanced),
    enhancedAlpha: byShapeDesc(enhancedAlpha),
    segs: { shape: segs.shape, segments: newSegments },
  };
}

function cropMaskTo(mask: Float32Array, mw: number, dx: number, dy: number, rw: number, rh: number): Float32Array {
  if (dx === 0 && dy === 0 && rw === mw) return mask.slice(0, rw * rh);
  const out = new Float32Array(rw * rh);
  for (let y = 0; y < rh; y++) out.set(mask.subarray((dy + y) * mw + dx, (dy + y) * mw + dx + rw), y * rw);
  return out;
}

/** tensor_convert_rgba + tensor_putalpha: the RGB crop with the paste mask as its fourth channel. */
function withAlpha(rgb: Tensor, alpha: Float32Array): Tensor {
  const [, h, w, c] = rgb.shape;
  const out = new Float32Array(h * w * 4);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) out[p * 4 + k] = rgb.data[p * c + k];
    out[p * 4 + 3] = alpha[p];
  }
  return { shape: [1, h, w, 4], data: out };
}
