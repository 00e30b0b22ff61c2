import type { ImageTensor, Latent, MaskTensor } from '../../core/tensor.ts';
import { quantize8 } from '../../image/quantize.ts';
import type { SegsDetector } from '../../image/segs.ts';
import type { ModelHandle, VaeHandle } from '../../models/handles.ts';
import type { Conditioning } from '../conditioning.ts';
import { cfgGuider } from '../guider.ts';
import { randomNoise } from '../noise/index.ts';
import { sampleLatent } from '../run.ts';
import { samplerObject } from '../samplers/index.ts';
import { calculateSigmas } from '../schedulers.ts';
import type { PreviewImage } from '../../core/preview.ts';
import {
  a1111MaskBlur,
  applyOverlay,
  binaryMask,
  cropPlanar,
  expandCropRegion,
  getCropRegion,
  lanczosPlanar,
  resizeImage,
  type CropBox,
  type PlanarU8,
} from './a1111-inpaint.ts';
import {
  boxMaskU8,
  filterByRatio,
  filterK,
  maskPreprocess,
  segMaskU8,
  sortDetections,
  type AdDetection,
  type AdMergeInvert,
  type AdSortBy,
} from './adetailer-masks.ts';
import { batchMixing, stackItems } from './batch-rules.ts';

/**
 * One A1111 ADetailer pass (scripts/!adetailer.py `_postprocess_image_inner`) on one image: detect,
 * filter by area ratio and top-k, sort, mask_preprocess, then for each mask j an A1111 img2img
 * inpaint of the image as the previous mask left it, seeded seed + j, with the j-th `[SEP]` prompt
 * (the last one for any further masks). The inpaint follows A1111's geometry (binary mask, blur,
 * "only masked" crop with padding grown to the processing aspect, resize-and-fill, paste back through
 * the blurred mask) and A1111's img2img step count (the last ⌊denoise·steps⌋ + 1 steps of the steps-long
 * schedule); the sampler itself is Weft's (ComfyUI's) with a noise mask, so it does not reproduce
 * A1111's noise.
 */

export interface AdetailerOptions {
  detector: SegsDetector;
  confidence: number;
  maskK: number;
  maskFilterMethod: 'Area' | 'Confidence';
  minRatio: number;
  maxRatio: number;
  dilateErode: number;
  xOffset: number;
  yOffset: number;
  mergeInvert: AdMergeInvert;
  sortBy: AdSortBy;
  maskBlur: number;
  denoise: number;
  onlyMasked: boolean;
  padding: number;
  /** Processing size; undefined = the image's (A1111's p.width/p.height of the generation). */
  inpaintSize?: { width: number; height: number };
  steps: number;
  cfg: number;
  samplerName: string;
  scheduler: string;
  noiseMultiplier: number;
  seed: bigint;
  model: ModelHandle;
  vae: VaeHandle;
  /** One conditioning per `[SEP]` part; undefined where the part is `[SKIP]`. */
  positives: readonly (Conditioning | undefined)[];
  negatives: readonly Conditioning[];
  /**
   * Inpaint masks with the same prompts as one batch where that cannot change the result beyond the
   * UNet's batch arithmetic (see batchRefusal); A1111 inpaints them one after the other.
   */
  batch?: boolean;
  signal?: AbortSignal;
  log?: (line: string) => void;
  onStep?: (step: number, total: number, preview?: PreviewImage) => void;
}

export interface AdetailerResult {
  image: ImageTensor;
  /** The masks after mask_preprocess, OR-ed (before the blur), [1, H, W]. */
  mask: MaskTensor;
  /** How many masks were inpainted. */
  processed: number;
}

function toPlanar(image: ImageTensor): PlanarU8 {
  const [, h, w, c] = image.shape;
  const data = new Uint8Array(3 * h * w);
  for (let p = 0; p < h * w; p++) for (let k = 0; k < 3; k++) data[k * h * w + p] = quantize8(image.data[p * c + k]);
  return { c: 3, h, w, data };
}

function planarToImage(p: PlanarU8): ImageTensor {
  const data = new Float32Array(p.h * p.w * 3);
  for (let i = 0; i < p.h * p.w; i++) for (let k = 0; k < 3; k++) data[i * 3 + k] = p.data[k * p.h * p.w + i] / 255;
  return { shape: [1, p.h, p.w, 3], data };
}

/**
 * A1111's img2img σs at denoising strength d (setup_img2img_steps without img2img_fix_steps):
 * sigmas[steps − t_enc − 1:] of the steps-long schedule, t_enc = ⌊min(d, 0.999)·steps⌋, so t_enc + 1 steps.
 */
export function a1111Img2ImgSigmas(full: Float64Array, steps: number, denoise: number): Float64Array {
  const tEnc = Math.trunc(Math.min(denoise, 0.999) * steps);
  return full.slice(steps - tEnc - 1);
}

export async function detections(image: ImageTensor, o: AdetailerOptions): Promise<AdDetection[]> {
  const [, h, w] = image.shape;
  const segs = await o.detector.detect(image, { threshold: o.confidence, dilation: 0, cropFactor: 1, dropSize: 1 });
  return segs.segments.map((s) => ({
    bbox: s.bbox,
    confidence: s.confidence,
    mask: o.detector.kind === 'segm' ? segMaskU8(s, h, w) : boxMaskU8(h, w, s.bbox),
  }));
}

/** pred_preprocessing: ratio filter, top-k, sort, then mask_preprocess. */
export function adetailerMasks(dets: readonly AdDetection[], h: number, w: number, o: AdetailerOptions): Uint8Array[] {
  let d = filterByRatio(dets, o.minRatio, o.maxRatio, h, w);
  d = filterK(d, o.maskK, o.maskFilterMethod);
  d = sortDetections(d, o.sortBy, h, w);
  return maskPreprocess(
    d.map((x) => x.mask),
    h,
    w,
    { kernel: o.dilateErode, xOffset: o.xOffset, yOffset: o.yOffset, mergeInvert: o.mergeInvert },
  );
}

export interface InpaintPlan {
  /** The blurred full-image mask the result is pasted back through (A1111's mask_for_overlay). */
  overlayMask: Uint8Array;
  /** The image and mask at the processing size. */
  image: PlanarU8;
  mask: PlanarU8;
  /** x, y, width, height of the crop in the image ("only masked"), or undefined for the whole picture. */
  pasteTo?: CropBox;
}

/** StableDiffusionProcessingImg2Img.init's mask and image preparation; undefined for a mask left blank. */
export function a1111InpaintPlan(
  img: PlanarU8,
  mask: Uint8Array,
  o: Pick<AdetailerOptions, 'maskBlur' | 'onlyMasked' | 'padding' | 'inpaintSize'>,
): InpaintPlan | undefined {
  const { h: H, w: W } = img;
  const { width: w, height: h } = o.inpaintSize ?? { width: W, height: H };
  const m = a1111MaskBlur(binaryMask(mask), H, W, o.maskBlur);
  const full: PlanarU8 = { c: 1, h: H, w: W, data: m };
  if (o.onlyMasked) {
    const r = getCropRegion(m, H, W, o.padding);
    if (!r) return undefined;
    const cr = expandCropRegion(r, w, h, W, H);
    return {
      overlayMask: m,
      image: resizeImage(2, cropPlanar(img, cr), w, h),
      mask: resizeImage(2, cropPlanar(full, cr), w, h),
      pasteTo: [cr[0], cr[1], cr[2] - cr[0], cr[3] - cr[1]],
    };
  }
  if (!m.some((v) => v !== 0)) return undefined;
  const pm = resizeImage(0, full, w, h);
  const doubled: PlanarU8 = { c: 1, h, w, data: pm.data.map((v) => Math.min(255, v * 2)) };
  const overlay = w === W && h === H ? doubled : resizeImage(0, doubled, W, H);
  return { overlayMask: overlay.data, image: resizeImage(0, img, w, h), mask: pm };
}

/** The crop at the processing size encoded, with the processing-size mask resized to the latent and rounded as noise mask. */
async function encodeFor(plan: InpaintPlan, o: AdetailerOptions): Promise<Latent> {
  const samples = await o.vae.encode(planarToImage(plan.image), o.signal);
  const [, , lh, lw] = samples.shape;
  // The latent mask: the processing-size mask resized to the latent and rounded (A1111 uses PIL's
  // bicubic here, Weft its lanczos; both then round to 0/1).
  const lm = lanczosPlanar(plan.mask, lw, lh).data;
  return { samples, noiseMask: { shape: [1, 1, lh, lw], data: Float32Array.from(lm, (v) => (v >= 128 ? 1 : 0)) } };
}

/** One img2img run over the latents (a batch when several), each with its own seed's starting noise; the decoded pictures. */
async function sampleItems(
  latents: readonly Latent[],
  seeds: readonly bigint[],
  positive: Conditioning,
  negative: Conditioning,
  o: AdetailerOptions,
): Promise<PlanarU8[]> {
  const one = latents[0].samples.shape;
  const mshape = latents[0].noiseMask!.shape;
  const latent: Latent =
    latents.length === 1
      ? latents[0]
      : {
          samples: { shape: [latents.length, ...one.slice(1)], data: stackItems(latents.map((l) => l.samples.data)) },
          noiseMask: { shape: [latents.length, ...mshape.slice(1)], data: stackItems(latents.map((l) => l.noiseMask!.data)) },
        };
  const guider = cfgGuider({ model: o.model, positive, negative, cfg: o.cfg });
  const sigmas = a1111Img2ImgSigmas(calculateSigmas(guider.modelSampling, o.scheduler, o.steps), o.steps, o.denoise);
  let noise = stackItems(latents.map((l, i) => randomNoise(seeds[i]).generate(l)));
  if (o.noiseMultiplier !== 1) noise = noise.map((v) => v * o.noiseMultiplier);
  const out = await sampleLatent({
    guider,
    sampler: samplerObject(o.samplerName),
    sigmas,
    noise,
    latent,
    seed: seeds[0],
    signal: o.signal,
    onStep: o.onStep,
    previewEvery: 0,
  });
  const decoded = await o.vae.decode(out.samples, o.signal);
  const [B, h, w, c] = decoded.shape;
  return Array.from({ length: B }, (_, i) =>
    toPlanar({ shape: [1, h, w, c], data: decoded.data.subarray(i * h * w * c, (i + 1) * h * w * c) }),
  );
}

/** The decoded picture resized to the processing size and pasted back through the overlay mask (apply_overlay). */
function pasteResult(cur: PlanarU8, plan: InpaintPlan, decoded: PlanarU8): PlanarU8 {
  const processed = decoded.w === plan.image.w && decoded.h === plan.image.h ? decoded : lanczosPlanar(decoded, plan.image.w, plan.image.h);
  if (plan.pasteTo) return applyOverlay(cur, plan.overlayMask, processed, plan.pasteTo);
  const whole = processed.w === cur.w && processed.h === cur.h ? processed : lanczosPlanar(processed, cur.w, cur.h);
  return applyOverlay(cur, plan.overlayMask, whole);
}

const overlaps = (a: CropBox, b: CropBox): boolean => a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3];

/**
 * Why the masks must be inpainted one after the other, or undefined when those with the same prompts
 * may share a run: each mask's crop must lie apart from every other (a later crop sees the earlier
 * pastes otherwise; the whole-picture mode always overlaps), and nothing may mix the batch (step noise,
 * dpm_adaptive's norm, MODEL wrappers or CFG functions).
 */
function batchRefusal(plans: readonly InpaintPlan[], o: AdetailerOptions): string | undefined {
  if (plans.some((p) => !p.pasteTo)) return 'whole-picture inpaints overlap';
  const mixing = batchMixing(o.samplerName, o.model);
  if (mixing) return mixing;
  for (let a = 0; a < plans.length; a++)
    for (let b = a + 1; b < plans.length; b++) if (overlaps(plans[a].pasteTo!, plans[b].pasteTo!)) return 'crop regions overlap';
  return undefined;
}

async function inpaintOnce(cur: PlanarU8, plan: InpaintPlan, j: number, o: AdetailerOptions, positive: Conditioning): Promise<PlanarU8> {
  const negative = o.negatives[Math.min(j, o.negatives.length - 1)];
  const [decoded] = await sampleItems([await encodeFor(plan, o)], [o.seed + BigInt(j)], positive, negative, o);
  return pasteResult(cur, plan, decoded);
}

/**
 * The batch option: every mask's plan made on the input (its crop cannot see another's paste, since
 * batchRefusal found them apart), masks grouped by their prompt parts, each group one run, then all
 * pasted in mask order. Undefined when the masks must go one by one.
 */
async function inpaintBatched(
  image: PlanarU8,
  jobs: readonly { j: number; plan: InpaintPlan; positive: Conditioning }[],
  o: AdetailerOptions,
): Promise<PlanarU8 | undefined> {
  if (jobs.length < 2) return undefined;
  const refusal = batchRefusal(
    jobs.map((x) => x.plan),
    o,
  );
  if (refusal) {
    o.log?.(`masks inpainted one by one (${refusal})`);
    return undefined;
  }
  const groups = new Map<string, (typeof jobs)[number][]>();
  for (const x of jobs) {
    const key = `${o.positives.indexOf(x.positive)}/${Math.min(x.j, o.negatives.length - 1)}`;
    groups.set(key, [...(groups.get(key) ?? []), x]);
  }
  const decoded = new Map<number, PlanarU8>();
  for (const group of groups.values()) {
    if (group.length > 1) o.log?.(`masks ${group.map((x) => x.j).join(', ')} sampled as one batch`);
    const latents: Latent[] = [];
    for (const x of group) latents.push(await encodeFor(x.plan, o));
    const negative = o.negatives[Math.min(group[0].j, o.negatives.length - 1)];
    const out = await sampleItems(
      latents,
      group.map((x) => o.seed + BigInt(x.j)),
      group[0].positive,
      negative,
      o,
    );
    group.forEach((x, i) => decoded.set(x.j, out[i]));
  }
  let cur = image;
  for (const x of jobs) cur = pasteResult(cur, x.plan, decoded.get(x.j)!);
  return cur;
}

export async function adetailerPass(image: ImageTensor, o: AdetailerOptions): Promise<AdetailerResult> {
  const [, H, W] = image.shape;
  const masks = adetailerMasks(await detections(image, o), H, W, o);
  const union = new Float32Array(H * W);
  for (const m of masks) for (let i = 0; i < union.length; i++) if (m[i] > 0) union[i] = Math.max(union[i], m[i] / 255);
  const unchanged = { image, mask: { shape: [1, H, W], data: union }, processed: 0 };
  if (masks.length === 0) {
    o.log?.('ADetailer: nothing detected; the image passes through unchanged');
    return unchanged;
  }
  let cur = toPlanar(image);
  // Where every overlay mask is 0 the result is the input's own value, not its 8-bit rounding.
  const touched = new Uint8Array(H * W);
  let processed = 0;
  const jobs: { j: number; plan: InpaintPlan; positive: Conditioning }[] = [];
  for (const [j, mask] of masks.entries()) {
    const positive = o.positives[Math.min(j, o.positives.length - 1)];
    if (!positive) {
      o.log?.(`ADetailer: mask ${j} skipped ([SKIP] prompt)`);
      continue;
    }
    // The plan's geometry depends on the mask only; its pixels are taken again below when masks go one by one.
    const plan = a1111InpaintPlan(cur, mask, o);
    if (!plan) {
      o.log?.(`ADetailer: mask ${j} is blank after preprocessing; skipped`);
      continue;
    }
    jobs.push({ j, plan, positive });
  }
  const batched = o.batch ? await inpaintBatched(cur, jobs, { ...o, log: o.log && ((l) => o.log?.(`ADetailer: ${l}`)) }) : undefined;
  for (const { j, plan, positive } of jobs) {
    if (!batched) cur = await inpaintOnce(cur, a1111InpaintPlan(cur, masks[j], o)!, j, o, positive);
    for (let i = 0; i < H * W; i++) if (plan.overlayMask[i] !== 0) touched[i] = 1;
    processed++;
  }
  if (batched) cur = batched;
  if (processed === 0) return unchanged;
  const out = planarToImage(cur);
  for (let p = 0; p < H * W; p++) if (!touched[p]) for (let k = 0; k < 3; k++) out.data[p * 3 + k] = image.data[p * image.shape[3] + k];
  return { image: out, mask: unchanged.mask, processed };
}
