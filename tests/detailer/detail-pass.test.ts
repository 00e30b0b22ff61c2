import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { detailForEach, type DetailOptions } from '../../engine/sampling/detail/detail-for-each.ts';
import { differentialMask } from '../../engine/sampling/detail/differential.ts';
import { detailUpscalePlan, enhanceDetail } from '../../engine/sampling/detail/enhance.ts';
import { impactBlurKernelSize, impactBlurMask } from '../../engine/sampling/detail/impact-blur.ts';
import { impactRunSigmas } from '../../engine/sampling/detail/impact-sample.ts';
import { modelSamplingFromConfig } from '../../engine/sampling/model-sampling-advanced.ts';
import { ksamplerStepSigmas } from '../../engine/sampling/sigmas.ts';
import { DetailerForEach } from '../../nodes/detailer/detailer-for-each.ts';
import { FaceDetailer } from '../../nodes/detailer/face-detailer.ts';
import { segsToCombinedMask } from '../../engine/models/detect/segs-build.ts';
import type { Segs } from '../../engine/image/segs.ts';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeTinyFaceDetectors } from '../../engine/models/detect/generate.ts';
import { YoloSegsDetector } from '../../engine/models/detect/segs-detector.ts';
import { openYolo } from '../../engine/models/detect/yolo.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { BboxDetectorSEGS } from '../../nodes/detect/detectors.ts';
import {
  boxSeg,
  detailerInputs,
  detailOptions,
  faceDetailerInputs,
  fixedDetector,
  loadTinyDetail,
  picture,
  type TinyDetail,
} from './tiny-detail.ts';

/**
 * The Impact Pack's detail pass (DetailerForEach / FaceDetailer) on the tiny SD1 checkpoint: the
 * size rule, the mask blur against torchvision's formula, differential diffusion's threshold, and
 * on real sampling the paste-back invariants (pixels outside the blurred mask bit-identical, no
 * segments = pass-through, zero-area and empty segments skipped, border crops clamped) and
 * FaceDetailer ≡ detection + DetailerForEach.
 */

describe('size rule (enhance_detail)', () => {
  const o = { guideSize: 512, guideForBbox: true, maxSize: 1024, forceInpaint: false };
  it('bbox 64² in a 192² crop: ×8 = 1536 capped to max_size 1024 (factor 8·1024/1536)', () => {
    const p = detailUpscalePlan({ width: 192, height: 192 }, [10, 10, 74, 74], o);
    expect(p.skip).toBeUndefined();
    expect(p.upscale).toBeCloseTo((8 * 1024) / 1536, 12);
    expect([p.width, p.height]).toEqual([1024, 1024]);
  });
  it('guide for crop_region uses the crop’s shorter side; sizes truncate', () => {
    const p = detailUpscalePlan({ width: 300, height: 200 }, [0, 0, 50, 40], { ...o, guideForBbox: false });
    expect(p.upscale).toBe(512 / 200);
    expect([p.width, p.height]).toEqual([Math.trunc(300 * 2.56), 512]);
  });
  it('skips a bbox already ≥ guide_size, or a factor ≤ 1, unless force_inpaint (which keeps the crop size)', () => {
    expect(detailUpscalePlan({ width: 600, height: 600 }, [0, 0, 520, 530], o).skip).toMatch(/enough big/);
    expect(detailUpscalePlan({ width: 600, height: 600 }, [0, 0, 520, 500], { ...o, guideForBbox: false }).skip).toMatch(/upscale factor/);
    const f = detailUpscalePlan({ width: 600, height: 600 }, [0, 0, 520, 530], { ...o, forceInpaint: true });
    expect(f).toEqual({ upscale: 1, width: 600, height: 600 });
  });
});

describe('Impact mask blur (torchvision GaussianBlur, σ = 10)', () => {
  it('kernel 2·feather+1, shrunk to an odd size below half the shorter side, none under 3', () => {
    expect(impactBlurKernelSize(5, 100, 100)).toBe(11);
    expect(impactBlurKernelSize(20, 30, 100)).toBe(15);
    expect(impactBlurKernelSize(20, 40, 100)).toBe(21);
    expect(impactBlurKernelSize(5, 4, 100)).toBe(3);
    expect(impactBlurKernelSize(5, 3, 100)).toBe(0);
    expect(impactBlurKernelSize(0, 100, 100)).toBe(0);
  });
  it('matches a direct 2-D convolution with the reflect-padded outer-product kernel', () => {
    const h = 23;
    const w = 31;
    const m = new Float32Array(h * w);
    for (let y = 5; y < 15; y++) for (let x = 8; x < 25; x++) m[y * w + x] = 1;
    m[0] = 0.7;
    const k = 11;
    const r = 5;
    const g = Array.from({ length: k }, (_, i) => Math.exp(-0.5 * ((i - r) / 10) ** 2));
    const sum = g.reduce((a, b) => a + b, 0);
    const refl = (i: number, n: number): number => (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);
    const want = new Float64Array(h * w);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let a = 0; a < k; a++)
          for (let b = 0; b < k; b++) s += (g[a] / sum) * (g[b] / sum) * m[refl(y + a - r, h) * w + refl(x + b - r, w)];
        want[y * w + x] = s;
      }
    const got = impactBlurMask({ shape: [1, h, w], data: m }, 5).data;
    let err = 0;
    for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
    expect(err).toBeLessThan(2e-6);
  });
});

describe('sampling schedule and differential diffusion', () => {
  const ms = modelSamplingFromConfig({
    prediction: 'eps',
    betaSchedule: 'scaled_linear',
    linearStart: 0.00085,
    linearEnd: 0.012,
    timesteps: 1000,
  });
  it('⌊steps/denoise⌋ steps from step ⌊steps/denoise⌋ − steps equals KSamplerAdvanced’s window', () => {
    for (const [steps, denoise] of [
      [20, 0.5],
      [7, 0.3],
      [4, 1],
    ] as const) {
      const adv = Math.floor(steps / denoise);
      const want = ksamplerStepSigmas(ms, { scheduler: 'karras', steps: adv, samplerName: 'euler', startStep: adv - steps });
      expect(Array.from(impactRunSigmas(ms, { samplerName: 'euler', scheduler: 'karras', steps, denoise }))).toEqual(Array.from(want));
    }
  });
  it('threshold = (t(σ) − t(σ_min)) / (t(σ_0) − t(σ_min)); mask ≥ threshold', () => {
    const sigmas = impactRunSigmas(ms, { samplerName: 'euler', scheduler: 'normal', steps: 10, denoise: 0.6 });
    const mask = Float32Array.from({ length: 101 }, (_, i) => i / 100);
    const sigma = sigmas[3];
    const f = Math.fround;
    const th = f(f(ms.timestep(sigma) - ms.timestep(ms.sigmaMin)) / f(ms.timestep(sigmas[0]) - ms.timestep(ms.sigmaMin)));
    expect(th).toBeGreaterThan(0.2);
    expect(th).toBeLessThan(0.9);
    const got = differentialMask(mask, sigma, sigmas, ms);
    for (let i = 0; i <= 100; i++) expect(got[i]).toBe(mask[i] >= th ? 1 : 0);
    expect(Array.from(differentialMask(mask, sigmas[0], sigmas, ms)).filter((v) => v === 1)).toEqual([1]);
  });
});

describe('detail pass on the tiny SD1 checkpoint', () => {
  let t: TinyDetail;
  beforeAll(async () => {
    t = await loadTinyDetail();
  }, 120_000);
  afterAll(() => rmSync(t.dir, { recursive: true, force: true }));

  const H = 64;
  const W = 80;
  const opts = (): DetailOptions => detailOptions(t);

  const changed = (a: Tensor, b: Tensor): number[] => {
    const out: number[] = [];
    for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) out.push(i);
    return out;
  };

  it('pixels outside the blurred mask (and the crop) are the input’s, bit for bit; inside they change', async () => {
    const img = picture(H, W);
    const seg = boxSeg([30, 20, 46, 36], H, W, 2);
    const out = await detailForEach(img, { shape: [H, W], segments: [seg] }, opts());
    const blurred = impactBlurMask({ shape: [1, 32, 32], data: seg.croppedMask.data }, 3).data;
    const [cx, cy] = seg.cropRegion;
    let inside = 0;
    for (const i of changed(out.image, img)) {
      const p = Math.trunc(i / 3);
      const y = Math.trunc(p / W) - cy;
      const x = (p % W) - cx;
      expect(x >= 0 && x < 32 && y >= 0 && y < 32 && blurred[y * 32 + x] > 0).toBe(true);
      inside++;
    }
    expect(inside).toBeGreaterThan(200);
    expect(out.enhanced).toHaveLength(1);
    expect(out.enhanced[0].shape).toEqual([1, 32, 32, 3]);
    expect(out.enhancedAlpha[0].shape).toEqual([1, 32, 32, 4]);
  }, 120_000);

  it('paste = (1 − m)·image + m·refined in float32, the refined crop from enhanceDetail with seed + index', async () => {
    const img = picture(H, W);
    const a = boxSeg([4, 4, 20, 20], H, W, 2);
    const b = boxSeg([50, 30, 66, 46], H, W, 2);
    const o = opts();
    const out = await detailForEach(img, { shape: [H, W], segments: [a, b] }, o);
    const [x1, y1] = b.cropRegion;
    const crop = new Float32Array(32 * 32 * 3);
    for (let y = 0; y < 32; y++) crop.set(img.data.subarray(((y1 + y) * W + x1) * 3, ((y1 + y) * W + x1 + 32) * 3), y * 96);
    const plan = detailUpscalePlan({ width: 32, height: 32 }, b.bbox, o);
    const refined = await enhanceDetail({ shape: [1, 32, 32, 3], data: crop }, b.bbox, b.croppedMask, 43n, plan, o);
    const m = impactBlurMask({ shape: [1, 32, 32], data: b.croppedMask.data }, 3).data;
    const f = Math.fround;
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++)
        for (let k = 0; k < 3; k++) {
          const mv = m[y * 32 + x];
          const want = f(f(f(1 - mv) * crop[(y * 32 + x) * 3 + k]) + f(mv * refined.data[(y * 32 + x) * 3 + k]));
          expect(out.image.data[((y1 + y) * W + x1 + x) * 3 + k]).toBe(want);
        }
    // seed 42 for the first segment: the second's crop with seed 42 differs from seed 43's
    const other = await enhanceDetail({ shape: [1, 32, 32, 3], data: crop }, b.bbox, b.croppedMask, 42n, plan, o);
    expect(changed(other, refined).length).toBeGreaterThan(0);
  }, 120_000);

  it('batch: two same-size, disjoint crops in one sampling run give the one-by-one result (up to one 8-bit step)', async () => {
    const img = picture(H, W);
    const segs = { shape: [H, W] as const, segments: [boxSeg([4, 4, 20, 20], H, W, 2), boxSeg([50, 30, 66, 46], H, W, 2)] };
    const lines: string[] = [];
    const one = await detailForEach(img, segs, { ...opts(), cycle: 2 });
    const both = await detailForEach(img, segs, { ...opts(), cycle: 2, batch: true, log: (l) => lines.push(l) });
    expect(lines.join('\n')).toMatch(/2 segments of 32x32 sampled as one batch/);
    let worst = 0;
    let differ = 0;
    for (let i = 0; i < img.data.length; i++) {
      const d = Math.abs(one.image.data[i] - both.image.data[i]);
      worst = Math.max(worst, d);
      if (d > 0) differ++;
    }
    expect(worst).toBeLessThanOrEqual(1 / 255 + 1e-6);
    expect(differ).toBeLessThan(img.data.length / 100);
    // a sampler with step noise is never batched
    const anc: string[] = [];
    await detailForEach(img, segs, { ...opts(), samplerName: 'euler_ancestral', batch: true, log: (l) => anc.push(l) });
    expect(anc.join('\n')).not.toMatch(/one batch/);
  }, 120_000);

  it('no segments: the image passes through unchanged with a log line', async () => {
    const img = picture(H, W);
    const lines: string[] = [];
    const out = await detailForEach(img, { shape: [H, W], segments: [] }, { ...opts(), log: (l) => lines.push(l) });
    expect(out.image.data).toEqual(img.data);
    expect(lines.join('\n')).toMatch(/no segments/);
  });

  it('zero-area and empty-mask segments are skipped; a crop region past the border is clamped', async () => {
    const img = picture(H, W);
    const zero = { ...boxSeg([10, 10, 26, 26], H, W, 2), bbox: [10, 10, 10, 26] as const };
    const empty = boxSeg([10, 10, 26, 26], H, W, 2);
    const emptySeg = { ...empty, croppedMask: { shape: empty.croppedMask.shape, data: new Float32Array(empty.croppedMask.data.length) } };
    const lines: string[] = [];
    const out = await detailForEach(img, { shape: [H, W], segments: [zero, emptySeg] }, { ...opts(), log: (l) => lines.push(l) });
    expect(out.image.data).toEqual(img.data);
    expect(lines.join('\n')).toMatch(/zero-area/);
    expect(lines.join('\n')).toMatch(/empty mask/);
    // a detector that did not clamp: region [-8, -8, 24, 24]
    const edge = boxSeg([0, 0, 16, 16], H, W, 1);
    const over = {
      ...edge,
      cropRegion: [-8, -8, 24, 24] as const,
      croppedMask: {
        shape: [32, 32],
        data: Float32Array.from({ length: 32 * 32 }, (_, i) => (i % 32 >= 8 && Math.trunc(i / 32) >= 8 ? 1 : 0)),
      },
    };
    const clamped = await detailForEach(img, { shape: [H, W], segments: [over] }, opts());
    for (const i of changed(clamped.image, img)) {
      const p = Math.trunc(i / 3);
      expect(Math.trunc(p / W) < 24 && p % W < 24).toBe(true);
    }
  }, 120_000);

  it('a mask of all ones replaces the whole crop with the refined crop', async () => {
    const img = picture(H, W);
    const seg = boxSeg([30, 20, 46, 36], H, W, 2);
    const ones = { ...seg, croppedMask: { shape: seg.croppedMask.shape, data: new Float32Array(32 * 32).fill(1) } };
    const out = await detailForEach(img, { shape: [H, W], segments: [ones] }, opts());
    const [x1, y1] = ones.cropRegion;
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32 * 3; x++) expect(out.image.data[((y1 + y) * W + x1) * 3 + x]).toBe(out.enhanced[0].data[y * 96 + x]);
  }, 120_000);

  const ctx = {
    nodeId: '7',
    classType: 'FaceDetailer',
    signal: new AbortController().signal,
    progress: () => {},
    log: { info: () => {}, warn: () => {}, error: () => {} },
  } as unknown as NodeContext;

  it('FaceDetailer equals BboxDetectorSEGS + DetailerForEach on the same seed, bit for bit (weft-tiny-face)', async () => {
    const dir = join(t.dir, 'models', 'ultralytics');
    mkdirSync(dir, { recursive: true });
    const [file] = makeTinyFaceDetectors(dir);
    const manager = new ModelManager({
      cacheDir: join(t.dir, 'det-cache'),
      device: 'cpu',
      log: { info: () => {}, warn: () => {}, error: () => {} },
    });
    const detector = new YoloSegsDetector('bbox', openYolo(file), manager.runtime.fileRunner(file));
    const FH = 160;
    const FW = 200;
    const img = picture(FH, FW);
    const common = { seed: 5, steps: 3, denoise: 0.5, feather: 5, force_inpaint: true, cycle: 2, noise_mask_feather: 20 };
    const face = (await FaceDetailer.run(
      faceDetailerInputs(t, img, { ...common, bbox_dilation: 4, bbox_detector: detector }) as never,
      ctx,
    )) as unknown as [Tensor, Tensor[], Tensor[], Tensor];
    const [segs] = (await BboxDetectorSEGS.run(
      { bbox_detector: detector, image: img, threshold: 0.5, dilation: 4, crop_factor: 2, drop_size: 10, labels: 'all' },
      ctx,
    )) as unknown as [Segs];
    expect(segs.segments.length).toBe(3);
    const each = (await DetailerForEach.run(detailerInputs(t, img, segs, common) as never, ctx)) as unknown as [Tensor];
    expect(face[0].data).toEqual(each[0].data);
    expect(changed(face[0], img).length).toBeGreaterThan(100);
    expect(face[1]).toHaveLength(3);
    expect(face[2][0].shape[3]).toBe(4);
    expect(face[3].shape).toEqual([1, FH, FW]);
    expect(face[3].data).toEqual(segsToCombinedMask(segs).data);
  }, 240_000);

  it('FaceDetailer with segm_detector_opt: the bbox segments ANDed with the segm masks', async () => {
    const img = picture(H, W);
    const boxes = [[8, 8, 24, 24] as const];
    const segm = fixedDetector([[12, 12, 40, 40]]);
    const lines: string[] = [];
    const logCtx = { ...ctx, log: { info: (l: string) => lines.push(l), warn: () => {}, error: () => {} } } as unknown as NodeContext;
    const out = (await FaceDetailer.run(
      faceDetailerInputs(t, img, { bbox_detector: fixedDetector(boxes.map((b) => [...b] as const)), segm_detector_opt: segm }) as never,
      logCtx,
    )) as unknown as [Tensor, Tensor[], Tensor[], Tensor];
    // only the overlap [12, 24) × [12, 24) of the two boxes is left in the mask
    expect(out[3].data.reduce((a, v) => a + v, 0)).toBe(12 * 12);
    expect(lines.join('\n')).toMatch(/ANDed/);
  }, 120_000);

  it('FaceDetailer outputs as enhance_face: per image a placeholder for each empty list (cnet_images too); the 14-slot detailer_pipe', async () => {
    const detector = fixedDetector([]);
    const two = picture(H, W);
    const batch = { shape: [2, H, W, 3], data: new Float32Array([...two.data, ...two.data]) };
    const out = (await FaceDetailer.run(
      faceDetailerInputs(t, batch, { wildcard: 'w', bbox_detector: detector }) as never,
      ctx,
    )) as unknown as [Tensor, Tensor[], Tensor[], Tensor, unknown[], Tensor[]];
    expect(out[0].data).toEqual(batch.data);
    for (const list of [out[1], out[2], out[5]]) {
      expect(list).toHaveLength(2);
      for (const e of list) {
        expect(e.shape).toEqual([1, 64, 64, 3]);
        expect(e.data.every((v) => v === 0)).toBe(true);
      }
    }
    const pipe = out[4];
    expect(pipe).toHaveLength(14);
    expect(pipe.slice(0, 7)).toEqual([t.model, t.clip, t.vae, t.pos, t.neg, 'w', detector]);
    expect(pipe.slice(7).every((v) => v === undefined)).toBe(true);
  });

  it('refuses sam_model_opt by name (inpaint_model is supported: tests/detailer/inpaint-model.test.ts)', async () => {
    await expect(
      FaceDetailer.run({ image: picture(H, W), sam_model_opt: {}, bbox_detector: fixedDetector([]) } as never, ctx),
    ).rejects.toThrow(/sam_model_opt is not supported/);
  });
});
