import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageTensor } from '../../engine/core/tensor.ts';
import type { UsduParams } from '../../engine/image/usdu/geometry.ts';
import { usduJobs } from '../../engine/image/usdu/geometry.ts';
import { gaussianBlur } from '../../engine/image/usdu/pil-ops.ts';
import { ModelManager, type CheckpointParts } from '../../engine/models/manager.ts';
import { compactArch, makeUpscaleFile } from '../../engine/models/upscale/generate.ts';
import { UpscaleModelLoader } from '../../engine/models/upscale/loader.ts';
import type { UpscaleModel } from '../../engine/models/upscale/model.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { cfgGuider } from '../../engine/sampling/guider.ts';
import { ksample } from '../../engine/sampling/ksampler.ts';
import { samplerObject } from '../../engine/sampling/samplers/index.ts';
import { ksamplerStepSigmas } from '../../engine/sampling/sigmas.ts';
import { ultimateSdUpscale, type UsduSampling } from '../../nodes/upscale/usdu-process.ts';
import { makeTiny, type Tiny } from '../models-onnx/tiny.ts';
import { maxAbsDiff, quiet, ramp } from './helpers.ts';

/*
 * Ultimate SD Upscale end to end on the tiny SD1 checkpoint and a tiny compact ×2 upscaler: the
 * canvas, what the redraw and the seam fixes change, that pixels outside every pass's mask keep the
 * upscaled value exactly, batching, and refusals.
 */

let tiny: Tiny;
let parts: CheckpointParts;
let upscaler: UpscaleModel;
let positive: Conditioning;
let negative: Conditioning;

beforeAll(async () => {
  tiny = await makeTiny(4);
  const paths = new FolderPaths({ baseDir: tiny.dir, modelsDir: tiny.dir });
  const m = new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet, paths });
  parts = await m.loadCheckpoint(tiny.file);
  const file = join(tiny.dir, 'upscale_models', 'tiny-compact-x2.safetensors');
  makeUpscaleFile(file, compactArch({ nf: 4, numConv: 1, scale: 2 }), { seed: 9 });
  upscaler = new UpscaleModelLoader(m.runtime, { cacheDir: join(tiny.dir, 'cache') }).load(file);
  const enc = async (t: string): Promise<Conditioning> => {
    const { cond, pooled } = await parts.clip!.encodeText(t);
    return [{ cond, pooled }];
  };
  positive = await enc('a red house');
  negative = await enc('');
}, 180_000);
afterAll(() => rmSync(tiny.dir, { recursive: true, force: true }));

const P: UsduParams = {
  tileWidth: 64,
  tileHeight: 64,
  padding: 16,
  maskBlur: 4,
  mode: 'Linear',
  seamFix: 'None',
  seamFixWidth: 16,
  seamFixPadding: 8,
  seamFixMaskBlur: 4,
  uniform: true,
};

function sampling(over: Partial<UsduSampling> = {}): UsduSampling {
  return {
    model: parts.model!,
    positive,
    negative,
    vae: parts.vae!,
    seed: 3n,
    steps: 2,
    cfg: 5,
    samplerName: 'euler',
    scheduler: 'normal',
    denoise: 0.6,
    tiledDecode: false,
    batchSize: 1,
    ...over,
  };
}

const input: ImageTensor = { shape: [1, 40, 48, 3], data: ramp(40 * 48 * 3, 21) };

/** The union over passes of each pass's (blurred) mask: where any pass may write. */
function touched(W: number, H: number, p: UsduParams): Uint8Array {
  const any = new Uint8Array(W * H);
  for (const j of usduJobs(W, H, p)) {
    const m = j.blur > 0 ? gaussianBlur(j.mask(), j.blur) : j.mask();
    for (let i = 0; i < any.length; i++) if (m.data[i] > 0) any[i] = 1;
  }
  return any;
}

describe('UltimateSDUpscale on the tiny model', () => {
  it('with no redraw and no seam fix it is the upscaler on a canvas of w·upscale_by rounded to 8, through 8-bit', async () => {
    const base = await ultimateSdUpscale(input, 2, upscaler, { ...P, mode: 'None' }, sampling());
    expect(base.shape).toEqual([1, 80, 96, 3]);
    const direct = await upscaler.upscale(input);
    // The canvas equals the model's 2× output (80×96 already): only the uint8 round trip differs.
    for (let i = 0; i < base.data.length; i++)
      expect(base.data[i]).toBe(Math.fround(Math.min(255, Math.trunc(Math.fround(255 * direct.data[i]))) / 255));
  });

  it('the redraw changes every tile; the Band Pass seam fix changes only pixels under its masks', async () => {
    const base = await ultimateSdUpscale(input, 2, upscaler, { ...P, mode: 'None' }, sampling());
    const redrawn = await ultimateSdUpscale(input, 2, upscaler, P, sampling());
    const W = 96;
    for (const [x0, y0] of [
      [10, 10],
      [80, 10],
      [10, 70],
      [80, 70],
    ]) {
      let diff = 0;
      for (let y = y0; y < y0 + 8; y++)
        for (let x = x0; x < x0 + 8; x++)
          for (let c = 0; c < 3; c++) diff += Math.abs(redrawn.data[(y * W + x) * 3 + c] - base.data[(y * W + x) * 3 + c]);
      expect(diff, `tile at ${x0},${y0}`).toBeGreaterThan(0.05);
    }
    const bandP: UsduParams = { ...P, mode: 'None', seamFix: 'Band Pass' };
    const banded = await ultimateSdUpscale(input, 2, upscaler, bandP, sampling());
    const any = touched(96, 80, bandP);
    let inside = 0;
    let outsideChanged = 0;
    for (let i = 0; i < any.length; i++)
      for (let c = 0; c < 3; c++) {
        const d = Math.abs(banded.data[i * 3 + c] - base.data[i * 3 + c]);
        if (any[i]) inside += d;
        else if (d !== 0) outsideChanged++;
      }
    expect(any.some((v) => v === 0)).toBe(true);
    expect(outsideChanged).toBe(0);
    expect(inside).toBeGreaterThan(0.1);
  }, 120_000);

  it('is deterministic; Half Tile + Intersections and a batched Chess redraw run; NoUpscale (factor 1) keeps the size', async () => {
    const p: UsduParams = { ...P, mode: 'Chess', seamFix: 'Half Tile + Intersections' };
    const progress: number[] = [];
    const a = await ultimateSdUpscale(input, 2, upscaler, p, sampling(), { onProgress: (d, t) => progress.push(d / t) });
    const b = await ultimateSdUpscale(input, 2, upscaler, p, sampling());
    expect(Buffer.from(a.data.buffer).equals(Buffer.from(b.data.buffer))).toBe(true);
    expect(progress.at(-1)).toBe(1);
    const batched = await ultimateSdUpscale(input, 2, upscaler, { ...P, mode: 'Chess' }, sampling({ batchSize: 4 }));
    expect(batched.shape).toEqual([1, 80, 96, 3]);
    const same = await ultimateSdUpscale({ shape: [1, 80, 96, 3], data: ramp(80 * 96 * 3, 5) }, 1, undefined, P, sampling({ denoise: 0 }));
    expect(same.shape).toEqual([1, 80, 96, 3]);
  }, 180_000);

  it('mask conditioning: one tile over the whole canvas equals the untiled KSampler run with the same mask; the mask matters; split tiles run', async () => {
    const W = 64;
    const H = 48;
    const image: ImageTensor = { shape: [1, H, W, 3], data: ramp(W * H * 3, 77) };
    // A binary mask at the canvas size survives the 8-bit crop unchanged, so the tile's conditioning is the untiled one.
    const mask = { shape: [1, H, W], data: Float32Array.from({ length: W * H }, (_, i) => (i % W < 40 && i / W > 10 ? 1 : 0)) };
    const house = await parts.clip!.encodeText('a blue door');
    const pos: Conditioning = [...positive, { cond: house.cond, pooled: house.pooled, mask, maskStrength: 1 }];
    const whole: UsduParams = { ...P, tileWidth: W, tileHeight: H, padding: 0, maskBlur: 0, seamFix: 'None' };
    const usdu = await ultimateSdUpscale(image, 1, undefined, whole, sampling({ positive: pos }));
    const img8 = Float32Array.from(image.data, (v) => Math.fround(Math.trunc(Math.fround(255 * v)) / 255));
    const samples = await parts.vae!.encode({ shape: image.shape, data: img8 });
    const s = sampling();
    const out = await ksample({ ...s, positive: pos, latent: { samples } });
    const decoded = await parts.vae!.decode(out.samples);
    const expected = Float32Array.from(decoded.data, (v) =>
      Math.fround(Math.min(255, Math.trunc(Math.fround(255 * Math.max(0, v)))) / 255),
    );
    expect(usdu.shape).toEqual([1, H, W, 3]);
    expect(maxAbsDiff(usdu.data, expected)).toBe(0);
    const unmasked = await ultimateSdUpscale(
      image,
      1,
      undefined,
      whole,
      sampling({ positive: [...positive, { cond: house.cond, pooled: house.pooled }] }),
    );
    expect(maxAbsDiff(usdu.data, unmasked.data)).toBeGreaterThan(1 / 255);
    const split = await ultimateSdUpscale(image, 1, undefined, { ...whole, tileWidth: 32, padding: 8 }, sampling({ positive: pos }));
    expect(split.shape).toEqual([1, H, W, 3]);
  }, 180_000);

  it('out-of-proportion inputs run to the canvas size: a tile larger than the canvas, padding and seam-fix width larger than the tile, a 2×2 image', async () => {
    const big: UsduParams = { ...P, tileWidth: 256, tileHeight: 128, padding: 16, mode: 'Chess', seamFix: 'Band Pass', seamFixWidth: 200 };
    const a = await ultimateSdUpscale(input, 2, upscaler, big, sampling({ steps: 1 }));
    expect(a.shape).toEqual([1, 80, 96, 3]);
    expect(a.data.every((v) => v >= 0 && v <= 1)).toBe(true);
    const half: UsduParams = {
      ...P,
      tileWidth: 64,
      tileHeight: 64,
      padding: 80,
      seamFix: 'Half Tile + Intersections',
      seamFixPadding: 100,
      seamFixMaskBlur: 64,
    };
    const b = await ultimateSdUpscale(input, 2, upscaler, half, sampling({ steps: 1 }));
    expect(b.shape).toEqual([1, 80, 96, 3]);
    // A 2×2 image ×4 with the ×2 model: an 8×8 canvas, one tile (a 1×1 one rounds to a 0×0 canvas, refused below).
    const one = await ultimateSdUpscale(
      { shape: [1, 2, 2, 3], data: ramp(12, 4) },
      4,
      upscaler,
      { ...P, tileWidth: 64, tileHeight: 64 },
      sampling({ steps: 1 }),
    );
    expect(one.shape).toEqual([1, 8, 8, 3]);
  }, 180_000);

  it("UltimateSDUpscaleCustomSample: euler on KSampler's own sigmas for (steps, scheduler, denoise) gives UltimateSDUpscale's image exactly; other sigmas differ", async () => {
    const p: UsduParams = { ...P, mode: 'Chess' };
    const plain = await ultimateSdUpscale(input, 2, upscaler, p, sampling());
    const s = sampling();
    const sigmas = ksamplerStepSigmas(cfgGuider({ model: s.model, positive, negative, cfg: s.cfg }).modelSampling, {
      steps: s.steps,
      scheduler: s.scheduler,
      denoise: s.denoise,
    });
    const custom = await ultimateSdUpscale(input, 2, upscaler, p, sampling({ custom: { sampler: samplerObject('euler'), sigmas } }));
    expect(maxAbsDiff(custom.data, plain.data)).toBe(0);
    const other = await ultimateSdUpscale(
      input,
      2,
      upscaler,
      p,
      sampling({ custom: { sampler: samplerObject('euler'), sigmas: sigmas.slice(1) } }),
    );
    expect(maxAbsDiff(other.data, plain.data)).toBeGreaterThan(1 / 255);
  }, 180_000);

  it('refuses batch_size > 1 without uniform tiles, a non-RGB image and a too-small canvas, by name', async () => {
    await expect(ultimateSdUpscale(input, 2, upscaler, { ...P, uniform: false }, sampling({ batchSize: 2 }))).rejects.toThrow(
      /batch_size greater than 1 requires force_uniform_tiles/,
    );
    await expect(ultimateSdUpscale({ shape: [1, 8, 8, 4], data: new Float32Array(256) }, 2, upscaler, P, sampling())).rejects.toThrow(
      /RGB IMAGE \[B, H, W, 3\], got \[1, 8, 8, 4\]/,
    );
    await expect(ultimateSdUpscale({ shape: [1, 1, 1, 3], data: new Float32Array(3) }, 1, undefined, P, sampling())).rejects.toThrow(
      /gives a 0x0 canvas/,
    );
  });
});
