import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import type { Box } from '../../engine/image/segs.ts';
import { makeTinyFaceDetectors, tinyFaceDetections } from '../../engine/models/detect/generate.ts';
import { YoloSegsDetector } from '../../engine/models/detect/segs-detector.ts';
import { openYolo } from '../../engine/models/detect/yolo.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { a1111MaskBlur, binaryMask, expandCropRegion, getCropRegion } from '../../engine/sampling/detail/a1111-inpaint.ts';
import {
  a1111Img2ImgSigmas,
  a1111InpaintPlan,
  adetailerMasks,
  adetailerPass,
  detections,
  type AdetailerOptions,
} from '../../engine/sampling/detail/adetailer.ts';
import {
  boxMaskU8,
  filterByRatio,
  filterK,
  maskPreprocess,
  sortDetections,
  type AdDetection,
} from '../../engine/sampling/detail/adetailer-masks.ts';
import { ADetailer, adetailerPrompts } from '../../nodes/detailer/adetailer.ts';
import { CLIPTextEncodeA1111 } from '../../nodes/conditioning/clip-text-a1111.ts';
import { fixedDetector, loadTinyDetail, picture, type TinyDetail } from './tiny-detail.ts';

/**
 * A1111 ADetailer's options, each against reference math written here from adetailer/mask.py and the
 * A1111 processing rules, then the pass on the tiny SD1 checkpoint with the deterministic weft-tiny-face
 * detector: nothing detected passes through, pixels outside every blurred mask keep their values bit
 * for bit, the node maps its use_* options onto the pass, and a face pass chains into a hand pass.
 */

const H = 48;
const W = 64;
const det = (bbox: Box, confidence = 0.5): AdDetection => ({ bbox, confidence, mask: boxMaskU8(H, W, bbox) });
const dets = [det([2, 2, 12, 10], 0.9), det([30, 5, 60, 40], 0.4), det([20, 30, 30, 46], 0.7), det([40, 0, 44, 4], 0.6)];
const area = (b: Box): number => (b[2] - b[0]) * (b[3] - b[1]);

describe('ADetailer mask options (adetailer/mask.py)', () => {
  it('mask_min_ratio / mask_max_ratio keep low ≤ area/(W·H) ≤ high', () => {
    const got = filterByRatio(dets, 0.02, 0.2, H, W).map((d) => d.bbox);
    expect(got).toEqual(dets.filter((d) => area(d.bbox) / (H * W) >= 0.02 && area(d.bbox) / (H * W) <= 0.2).map((d) => d.bbox));
    expect(got.length).toBe(2);
  });

  it('mask_k_largest by Area and by Confidence: the k largest, largest first; 0 keeps all', () => {
    expect(filterK(dets, 2, 'Area').map((d) => d.bbox)).toEqual([dets[1].bbox, dets[2].bbox]);
    expect(filterK(dets, 3, 'Confidence').map((d) => d.confidence)).toEqual([0.9, 0.7, 0.6]);
    expect(filterK(dets, 0, 'Area')).toEqual(dets);
  });

  it('sort_bboxes: left to right by x1, centre to edge by distance of box centre to image centre, area large to small', () => {
    expect(sortDetections(dets, 'Position (left to right)', H, W).map((d) => d.bbox[0])).toEqual([2, 20, 30, 40]);
    const dist = (b: Box): number => Math.hypot((b[0] + b[2]) / 2 - W / 2, (b[1] + b[3]) / 2 - H / 2);
    const centre = sortDetections(dets, 'Position (center to edge)', H, W).map((d) => dist(d.bbox));
    expect(centre).toEqual([...centre].sort((a, b) => a - b));
    expect(sortDetections(dets, 'Area (large to small)', H, W).map((d) => area(d.bbox))).toEqual([1050, 160, 80, 16]);
    expect(sortDetections(dets, 'None', H, W)).toEqual(dets);
  });

  const ref = (m: Uint8Array, f: (y: number, x: number) => number): Uint8Array =>
    Uint8Array.from({ length: H * W }, (_, i) => f(Math.trunc(i / W), i % W));

  it('x_offset / y_offset roll the mask right and up, wrapping (ImageChops.offset(x, −y))', () => {
    const m = dets[0].mask;
    const [got] = maskPreprocess([m], H, W, { kernel: 0, xOffset: 5, yOffset: 3, mergeInvert: 'None' });
    const mod = (a: number, n: number): number => ((a % n) + n) % n;
    expect(got).toEqual(ref(m, (y, x) => m[mod(y + 3, H) * W + mod(x - 5, W)]));
    const [wrap] = maskPreprocess([m], H, W, { kernel: 0, xOffset: -10, yOffset: 0, mergeInvert: 'None' });
    expect(wrap[5 * W + W - 5]).toBe(255);
  });

  it('dilate_erode: a value×value rectangle (anchor ⌊value/2⌋) max, or min for negative values; masks eroded away are dropped', () => {
    const m = dets[0].mask;
    const win = (y: number, x: number, k: number, pick: (a: number, b: number) => number, init: number): number => {
      let v = init;
      const a = Math.floor(k / 2);
      for (let dy = -a; dy < k - a; dy++)
        for (let dx = -a; dx < k - a; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy >= 0 && yy < H && xx >= 0 && xx < W) v = pick(v, m[yy * W + xx]);
        }
      return v;
    };
    const [dil] = maskPreprocess([m], H, W, { kernel: 4, xOffset: 0, yOffset: 0, mergeInvert: 'None' });
    expect(dil).toEqual(ref(m, (y, x) => win(y, x, 4, Math.max, 0)));
    const [ero] = maskPreprocess([m], H, W, { kernel: -3, xOffset: 0, yOffset: 0, mergeInvert: 'None' });
    expect(ero).toEqual(ref(m, (y, x) => win(y, x, 3, Math.min, 255)));
    // the 5×5 box at (40, 0) vanishes under a 7×7 erosion
    expect(maskPreprocess([dets[3].mask, m], H, W, { kernel: -7, xOffset: 0, yOffset: 0, mergeInvert: 'None' })).toHaveLength(1);
  });

  it('mask_merge_invert: Merge ORs the masks into one; Merge and Invert then inverts', () => {
    const masks = dets.map((d) => d.mask);
    const [merged] = maskPreprocess(masks, H, W, { kernel: 0, xOffset: 0, yOffset: 0, mergeInvert: 'Merge' });
    expect(merged).toEqual(ref(masks[0], (y, x) => masks.reduce((a, m) => a | m[y * W + x], 0)));
    const inv = maskPreprocess(masks, H, W, { kernel: 0, xOffset: 0, yOffset: 0, mergeInvert: 'Merge and Invert' });
    expect(inv).toHaveLength(1);
    expect(inv[0]).toEqual(merged.map((v) => 255 - v));
  });

  it('pred_preprocessing order: ratio filter, top-k, sort, then offset/dilate/merge', () => {
    const o = {
      minRatio: 0.01,
      maxRatio: 1,
      maskK: 2,
      maskFilterMethod: 'Confidence',
      sortBy: 'Position (left to right)',
      dilateErode: 0,
      xOffset: 0,
      yOffset: 0,
      mergeInvert: 'None',
    } as AdetailerOptions;
    // ratio drops the 16-px box; the two most confident of the rest are 0.9 and 0.7; sorted by x1
    expect(adetailerMasks(dets, H, W, o)).toEqual([dets[0].mask, dets[2].mask]);
  });

  it('prompts: [SEP] splits, a blank part is the main prompt, [PROMPT] is replaced by it', () => {
    expect(adetailerPrompts('a face [SEP]  [SEP][PROMPT], detailed', 'main')).toEqual(['a face', 'main', 'main, detailed']);
    expect(adetailerPrompts('', 'main')).toEqual(['main']);
  });

  it('denoising_strength: sigmas[steps − t_enc − 1:] of the steps-long schedule, t_enc = ⌊min(d, 0.999)·steps⌋ (t_enc + 1 steps)', () => {
    const full = Float64Array.from({ length: 21 }, (_, i) => 20 - i);
    expect(Array.from(a1111Img2ImgSigmas(full, 20, 0.4))).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    expect(a1111Img2ImgSigmas(full, 20, 1).length).toBe(21);
  });

  it('mask_blur, inpaint_only_masked + padding, inpaint width/height: the crop, sizes and overlay mask', () => {
    const img = { c: 3, h: H, w: W, data: new Uint8Array(3 * H * W) };
    const m = dets[0].mask;
    const p = a1111InpaintPlan(img, m, { maskBlur: 4, onlyMasked: true, padding: 6, inpaintSize: { width: 96, height: 64 } });
    const blurred = a1111MaskBlur(binaryMask(m), H, W, 4);
    expect(p?.overlayMask).toEqual(blurred);
    const cr = expandCropRegion(getCropRegion(blurred, H, W, 6)!, 96, 64, W, H);
    expect(p?.pasteTo).toEqual([cr[0], cr[1], cr[2] - cr[0], cr[3] - cr[1]]);
    expect([p?.image.w, p?.image.h, p?.mask.w, p?.mask.h]).toEqual([96, 64, 96, 64]);
    const whole = a1111InpaintPlan(img, m, { maskBlur: 4, onlyMasked: false, padding: 6 });
    expect(whole?.pasteTo).toBeUndefined();
    expect([whole?.image.w, whole?.image.h]).toEqual([W, H]);
    // the whole-picture overlay is the blurred mask doubled and clipped (A1111's np_mask · 2)
    expect(whole?.overlayMask).toEqual(blurred.map((v) => Math.min(255, v * 2)));
    expect(a1111InpaintPlan(img, new Uint8Array(H * W), { maskBlur: 4, onlyMasked: true, padding: 6 })).toBeUndefined();
  });
});

describe('ADetailer on the tiny SD1 checkpoint and weft-tiny-face', () => {
  let t: TinyDetail;
  let manager: ModelManager;
  let base: string;
  let ctx: NodeContext;
  let detector: YoloSegsDetector;
  const IH = 64;
  const IW = 80;
  beforeAll(async () => {
    t = await loadTinyDetail();
    base = join(t.dir, 'base');
    mkdirSync(join(base, 'models'), { recursive: true });
    const [bbox] = makeTinyFaceDetectors(join(base, 'models', 'ultralytics'));
    manager = new ModelManager({
      cacheDir: join(t.dir, 'cache2'),
      device: 'cpu',
      log: { info: () => {}, warn: () => {}, error: () => {} },
    });
    detector = new YoloSegsDetector('bbox', openYolo(bbox), manager.runtime.fileRunner(bbox));
    ctx = {
      nodeId: '9',
      classType: 'ADetailer',
      signal: new AbortController().signal,
      progress: () => {},
      checkInterrupted: () => {},
      paths: new FolderPaths({ baseDir: base }),
      services: { models: manager },
      log: { info: () => {}, warn: () => {}, error: () => {} },
    } as unknown as NodeContext;
  }, 120_000);
  afterAll(() => rmSync(t.dir, { recursive: true, force: true }));

  const options = async (over: Partial<AdetailerOptions> = {}): Promise<AdetailerOptions> => ({
    detector,
    confidence: 0.3,
    maskK: 0,
    maskFilterMethod: 'Area',
    minRatio: 0,
    maxRatio: 1,
    dilateErode: 4,
    xOffset: 0,
    yOffset: 0,
    mergeInvert: 'None',
    sortBy: 'None',
    maskBlur: 4,
    denoise: 0.4,
    onlyMasked: true,
    padding: 8,
    inpaintSize: { width: 64, height: 64 },
    steps: 5,
    cfg: 5,
    samplerName: 'euler',
    scheduler: 'karras',
    noiseMultiplier: 1,
    seed: 3n,
    model: t.model,
    vae: t.vae,
    positives: [t.pos],
    negatives: [t.neg],
    ...over,
  });

  it('confidence: the detections are the detector’s boxes above the threshold', async () => {
    const img = picture(IH, IW);
    for (const c of [0.3, 0.7]) {
      const got = await detections(img, await options({ confidence: c }));
      const want = tinyFaceDetections(IW, IH, c);
      expect(got.map((d) => d.bbox)).toEqual(want.map((d) => d.box));
      expect(got.map((d) => d.mask)).toEqual(want.map((d) => boxMaskU8(IH, IW, d.box)));
    }
  });

  it('nothing detected: the image passes through unchanged', async () => {
    const img = picture(IH, IW);
    const out = await adetailerPass(img, await options({ confidence: 0.99 }));
    expect(out.processed).toBe(0);
    expect(out.image.data).toEqual(img.data);
  });

  it('[SKIP] prompts skip their masks (the last part serves the masks beyond the parts)', async () => {
    const img = picture(IH, IW);
    const lines: string[] = [];
    const out = await adetailerPass(img, await options({ positives: [undefined], log: (l) => lines.push(l) }));
    expect(out.processed).toBe(0);
    expect(out.image.data).toEqual(img.data);
    expect(lines.filter((l) => /\[SKIP\]/.test(l))).toHaveLength(3);
  });

  it('batch: two masks whose crops lie apart share a run, within 2/255 of one by one; overlapping crops or step noise go one by one, bit for bit', async () => {
    const BW = 160;
    const img = picture(IH, BW);
    const apart = fixedDetector([
      [8, 20, 24, 36],
      [130, 20, 146, 36],
    ]);
    const lines: string[] = [];
    const one = await adetailerPass(img, await options({ detector: apart }));
    const both = await adetailerPass(img, await options({ detector: apart, batch: true, log: (l) => lines.push(l) }));
    expect(lines.join('\n')).toMatch(/masks 0, 1 sampled as one batch/);
    expect(both.processed).toBe(2);
    let worst = 0;
    let differ = 0;
    let changed = 0;
    for (let i = 0; i < img.data.length; i++) {
      const d = Math.abs(one.image.data[i] - both.image.data[i]);
      worst = Math.max(worst, d);
      if (d > 0) differ++;
      if (both.image.data[i] !== img.data[i]) changed++;
    }
    expect(worst).toBeLessThanOrEqual(2 / 255 + 1e-6);
    expect(differ).toBeLessThan(img.data.length / 50);
    expect(changed).toBeGreaterThan(200);
    for (const [detector, over, reason] of [
      [
        fixedDetector([
          [8, 20, 24, 36],
          [20, 24, 36, 40],
        ]),
        {},
        /one by one \(crop regions overlap\)/,
      ],
      [apart, { samplerName: 'euler_ancestral' }, /one by one \(euler_ancestral draws step noise/],
    ] as const) {
      const log: string[] = [];
      const a = await adetailerPass(img, await options({ detector, ...over }));
      const b = await adetailerPass(img, await options({ detector, ...over, batch: true, log: (l) => log.push(l) }));
      expect(log.join('\n')).toMatch(reason);
      expect(b.image.data).toEqual(a.image.data);
    }
  }, 180_000);

  it('a mask of all ones (a box over the whole picture): the whole picture is inpainted, whole or only masked; inverted, it is blank and skipped', async () => {
    const img = picture(IH, IW);
    const whole = fixedDetector([[0, 0, IW, IH]]);
    for (const onlyMasked of [true, false]) {
      const out = await adetailerPass(img, await options({ detector: whole, onlyMasked }));
      expect(out.processed).toBe(1);
      expect(out.mask.data.every((v) => v === 1)).toBe(true);
      expect(out.image.shape).toEqual(img.shape);
      expect(out.image.data.every((v) => v >= 0 && v <= 1)).toBe(true);
      let changed = 0;
      for (let i = 0; i < img.data.length; i++) if (out.image.data[i] !== img.data[i]) changed++;
      expect(changed).toBeGreaterThan(img.data.length / 2);
    }
    const lines: string[] = [];
    const inverted = await adetailerPass(
      img,
      await options({ detector: whole, mergeInvert: 'Merge and Invert', log: (l) => lines.push(l) }),
    );
    expect(inverted.processed).toBe(0);
    expect(inverted.image.data).toEqual(img.data);
    expect(lines.join('\n')).toMatch(/blank|nothing detected/);
  }, 120_000);

  it('pixels outside every blurred mask keep their values bit for bit; inside they change', async () => {
    const img = picture(IH, IW);
    const o = await options();
    const out = await adetailerPass(img, o);
    expect(out.processed).toBe(3);
    const masks = adetailerMasks(await detections(img, o), IH, IW, o);
    const anyMask = new Uint8Array(IH * IW);
    for (const m of masks) a1111MaskBlur(binaryMask(m), IH, IW, 4).forEach((v, i) => (anyMask[i] |= v));
    let changed = 0;
    for (let p = 0; p < IH * IW; p++)
      for (let k = 0; k < 3; k++) {
        if (anyMask[p] === 0) expect(out.image.data[p * 3 + k]).toBe(img.data[p * 3 + k]);
        else if (out.image.data[p * 3 + k] !== img.data[p * 3 + k]) changed++;
      }
    expect(changed).toBeGreaterThan(100);
  }, 120_000);

  const nodeInputs = (image: Tensor, over: Record<string, unknown> = {}): Record<string, unknown> => ({
    image,
    sd_model: t.model,
    clip: t.clip,
    vae: t.vae,
    model: 'bbox/weft-tiny-face.onnx',
    seed: 3,
    prompt: 'a detailed face',
    negative_prompt: 'blurry',
    confidence: 0.3,
    mask_filter_method: 'Area',
    mask_k_largest: 1,
    mask_min_ratio: 0,
    mask_max_ratio: 1,
    dilate_erode: 4,
    x_offset: 0,
    y_offset: 0,
    mask_merge_invert: 'None',
    mask_blur: 4,
    denoising_strength: 0.4,
    inpaint_only_masked: true,
    inpaint_only_masked_padding: 8,
    use_inpaint_width_height: true,
    inpaint_width: 64,
    inpaint_height: 64,
    use_steps: true,
    steps: 4,
    use_cfg_scale: true,
    cfg_scale: 6,
    use_sampler: true,
    sampler: 'euler_ancestral',
    scheduler: 'karras',
    use_noise_multiplier: true,
    noise_multiplier: 1.2,
    use_clip_skip: true,
    clip_skip: 2,
    sort_bboxes: 'None',
    main_steps: 20,
    main_cfg: 7,
    main_sampler_name: 'euler',
    main_scheduler: 'normal',
    ...over,
  });

  it('the node: steps, cfg_scale, sampler/scheduler, noise_multiplier and clip_skip reach the pass; a hand pass chains after the face pass', async () => {
    const img = picture(IH, IW);
    const run = async (inputs: Record<string, unknown>): Promise<Tensor> =>
      ((await ADetailer.run(inputs as never, ctx)) as unknown as [Tensor])[0];
    const got = await run(nodeInputs(img));
    const enc = async (text: string) =>
      (
        (await CLIPTextEncodeA1111.run({ text, clip: t.clip.withLayer(-2), steps: 4, bare_embedding_names: true }, ctx)) as unknown as [
          never,
        ]
      )[0];
    const want = await adetailerPass(
      img,
      await options({
        maskK: 1,
        steps: 4,
        cfg: 6,
        samplerName: 'euler_ancestral',
        scheduler: 'karras',
        noiseMultiplier: 1.2,
        positives: [await enc('a detailed face')],
        negatives: [await enc('blurry')],
      }),
    );
    expect(got.data).toEqual(want.image.data);
    // each use_* switch changes the result when turned off
    for (const off of ['use_steps', 'use_cfg_scale', 'use_sampler', 'use_noise_multiplier', 'use_clip_skip']) {
      const other = await run(nodeInputs(img, { [off]: false }));
      expect(other.data, off).not.toEqual(got.data);
    }
    // face then hand: the second pass starts from the first one's output
    const hand = await run(nodeInputs(got, { prompt: 'a hand', mask_k_largest: 0, sort_bboxes: 'Area (large to small)', seed: 4 }));
    expect(hand.data).not.toEqual(got.data);
  }, 240_000);
});
