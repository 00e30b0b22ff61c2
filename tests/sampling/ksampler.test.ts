import { beforeAll, describe, expect, it } from 'vitest';
import type { Latent, Tensor } from '../../engine/core/tensor.ts';
import type { ModelHandle, UNetRunArgs } from '../../engine/models/handles.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { SD1_LATENT_RGB } from '../../engine/models/families/sd1/latent.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { cfgDenoiser } from '../../engine/sampling/guider.ts';
import { ksample, toSeed } from '../../engine/sampling/ksampler.ts';
import { ModelSamplingDiscrete } from '../../engine/sampling/model-sampling.ts';
import { SAMPLER_NAMES } from '../../engine/sampling/samplers/index.ts';
import { SCHEDULER_NAMES } from '../../engine/sampling/schedulers.ts';
import { torchRandn } from '../../engine/sampling/noise/index.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { loadTinyParts } from './tiny-parts.ts';

let model: ModelHandle;
let pos: Conditioning;
let neg: Conditioning;
const empty = (b = 1, h = 8, w = 8): Latent => ({ samples: { shape: [b, 4, h, w], data: new Float32Array(b * 4 * h * w) } });
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

beforeAll(async () => {
  ({ model, pos, neg } = await loadTinyParts());
}, 60_000);

const run = (o: Partial<Parameters<typeof ksample>[0]> = {}) =>
  ksample({
    model,
    seed: 42n,
    steps: 4,
    cfg: 7,
    samplerName: 'euler',
    scheduler: 'normal',
    positive: pos,
    negative: neg,
    latent: empty(),
    ...o,
  });

describe('KSampler on the tiny checkpoint', () => {
  // In four groups of samplers, each under its own time limit (44 samplers × 9 schedulers × 3 runs).
  const groups = [0, 1, 2, 3].map((g) => SAMPLER_NAMES.filter((_, k) => k % 4 === g));
  for (const [g, names] of groups.entries())
    it(`every sampler × scheduler runs, is deterministic for a seed and differs for another seed (group ${g + 1}/4: ${names.join(', ')})`, async () => {
      const failures: string[] = [];
      for (const samplerName of names) {
        for (const scheduler of SCHEDULER_NAMES) {
          const a = await run({ samplerName, scheduler });
          const b = await run({ samplerName, scheduler });
          const c = await run({ samplerName, scheduler, seed: 43n });
          const d = a.samples.data;
          if (!d.every(Number.isFinite)) failures.push(`${samplerName}/${scheduler}: non-finite`);
          else if (maxDiff(d, b.samples.data) !== 0) failures.push(`${samplerName}/${scheduler}: not deterministic`);
          else if (maxDiff(d, c.samples.data) < 1e-3) failures.push(`${samplerName}/${scheduler}: seed has no effect`);
        }
      }
      expect(failures).toEqual([]);
    }, 600_000);

  it('starts from torch noise for the seed: one step of euler at cfg 1 from σ_max is x − σ·ε̂ with x = ε·√(1+σ²)', async () => {
    let seen: Tensor | undefined;
    const spy: ModelHandle = {
      ...model,
      unet: {
        ...model.unet,
        run: async (args: UNetRunArgs) => {
          seen ??= args.x;
          return model.unet.run(args);
        },
      },
    };
    await ksample({
      model: spy,
      seed: 123n,
      steps: 1,
      cfg: 1,
      samplerName: 'euler',
      scheduler: 'normal',
      positive: pos,
      negative: neg,
      latent: empty(),
    });
    const ms = new ModelSamplingDiscrete();
    const noise = torchRandn(123n, [1, 4, 8, 8]);
    const sigma = ms.sigmaMax;
    // The UNet sees calculate_input(σ, noise·√(1+σ²)) = noise (up to float32 rounding).
    const expected = noise.map((v) => (v * Math.sqrt(1 + sigma * sigma)) / Math.sqrt(sigma * sigma + 1));
    expect(relErr(seen!.data, expected)).toBeLessThan(1e-5);
  });

  it('img2img at denoise 0 returns the input latent; at denoise 0.5 it changes it', async () => {
    const input: Latent = { samples: { shape: [1, 4, 8, 8], data: lcg(256, 3) } };
    const same = await run({ latent: input, denoise: 0 });
    expect(same.samples.data).toEqual(input.samples.data);
    const half = await run({ latent: input, denoise: 0.5 });
    expect(maxDiff(half.samples.data, input.samples.data)).toBeGreaterThan(1e-3);
  });

  it('inpainting leaves unmasked latent pixels as they were', async () => {
    const input: Latent = { samples: { shape: [1, 4, 8, 8], data: lcg(256, 4) } };
    const mask = new Float32Array(64);
    for (let y = 0; y < 8; y++) for (let x = 0; x < 4; x++) mask[y * 8 + x] = 1;
    for (const samplerName of ['euler', 'dpmpp_2m', 'euler_ancestral', 'dpmpp_sde']) {
      const out = await run({ samplerName, latent: { ...input, noiseMask: { shape: [1, 1, 8, 8], data: mask } } });
      let changedMasked = 0;
      for (let c = 0; c < 4; c++)
        for (let y = 0; y < 8; y++)
          for (let x = 0; x < 8; x++) {
            const i = (c * 8 + y) * 8 + x;
            if (x >= 4) expect(Math.abs(out.samples.data[i] - input.samples.data[i])).toBeLessThan(1e-5);
            else changedMasked = Math.max(changedMasked, Math.abs(out.samples.data[i] - input.samples.data[i]));
          }
      expect(changedMasked).toBeGreaterThan(1e-2);
    }
  });

  it('KSamplerAdvanced: steps 0–2 with leftover noise, then 2–end without new noise, equals one full run', async () => {
    const full = await run({ steps: 6 });
    const first = await run({ steps: 6, startStep: 0, lastStep: 3, forceFullDenoise: false });
    const second = await run({ steps: 6, latent: first, startStep: 3, lastStep: 10000, disableNoise: true, forceFullDenoise: true });
    expect(relErr(second.samples.data, full.samples.data)).toBeLessThan(1e-5);
    expect(maxDiff(first.samples.data, full.samples.data)).toBeGreaterThan(1e-2);
  });

  it('batch_index picks the same noise as in the full batch (LatentFromBatch semantics)', async () => {
    const batch = await run({ latent: empty(3) });
    const one = await run({ latent: { ...empty(1), batchIndex: [2] } });
    expect(relErr(one.samples.data, batch.samples.data.subarray(2 * 256))).toBeLessThan(1e-5);
  });

  it('reports every step, with latent previews every N steps', async () => {
    const steps: [number, number, boolean][] = [];
    await run({ steps: 5, previewEvery: 2, onStep: (s, t, p) => steps.push([s, t, !!p && p.width === 8 && p.rgb.length === 8 * 8 * 3]) });
    expect(steps).toEqual([
      [1, 5, false],
      [2, 5, true],
      [3, 5, false],
      [4, 5, true],
      [5, 5, true],
    ]);
  });

  it('is interrupted by the signal', async () => {
    const ac = new AbortController();
    await expect(run({ signal: ac.signal, onStep: () => ac.abort(), steps: 10 })).rejects.toThrow(/interrupt/i);
  });

  it('64-bit seeds', () => {
    expect(toSeed(0)).toBe(0n);
    expect(toSeed('18446744073709551615')).toBe(2n ** 64n - 1n);
    expect(() => toSeed('18446744073709551616')).toThrow(/outside/);
    expect(() => toSeed(-1)).toThrow(/outside/);
  });
});

describe('CFG guider against hand math', () => {
  // A stand-in UNet whose eps is the mean of its context row: cond predictions are then known exactly.
  const calls: number[] = [];
  const fake: ModelHandle = {
    id: 'fake',
    family: 'sd1',
    sampling: { prediction: 'eps', betaSchedule: 'scaled_linear', linearStart: 0.00085, linearEnd: 0.012, timesteps: 1000 },
    latentFormat: { channels: 4, scaleFactor: 1, rgbFactors: SD1_LATENT_RGB },
    unet: {
      inChannels: 4,
      contextDim: 2,
      run: async ({ x, context }) => {
        const [B] = x.shape;
        calls.push(B);
        const per = x.data.length / B;
        const T = context.shape[1];
        const out = new Float32Array(x.data.length);
        for (let b = 0; b < B; b++) {
          let m = 0;
          for (let i = 0; i < T * 2; i++) m += context.data[b * T * 2 + i];
          out.fill(m / (T * 2), b * per, (b + 1) * per);
        }
        return { shape: x.shape, data: out };
      },
    },
  };
  const cond = (v: number, tokens = 1): Conditioning => [{ cond: { shape: [1, tokens, 2], data: new Float32Array(tokens * 2).fill(v) } }];
  const ms = new ModelSamplingDiscrete();
  const x: Tensor = { shape: [1, 4, 16, 16], data: new Float32Array(1024).fill(0.5) };
  const sigma = 2;

  it('denoised = x − σ·(u + (c − u)·cfg), cond and uncond in one UNet call; cfg 1 skips the negative', async () => {
    calls.length = 0;
    const d = await cfgDenoiser({ model: fake, modelSampling: ms, positive: cond(1), negative: cond(3), cfg: 4 }, x.shape)(x, sigma);
    expect(calls).toEqual([2]);
    const eps = 3 + (1 - 3) * 4;
    expect(d.data[0]).toBeCloseTo(0.5 - sigma * eps, 5);
    calls.length = 0;
    const d1 = await cfgDenoiser({ model: fake, modelSampling: ms, positive: cond(1), negative: cond(3), cfg: 1 }, x.shape)(x, sigma);
    expect(calls).toEqual([1]);
    expect(d1.data[0]).toBeCloseTo(0.5 - sigma * 1, 5);
  });

  it('areas: an area entry applies inside its box (feathered at inner edges), the full entry elsewhere', async () => {
    const area: Conditioning = [{ cond: cond(5)[0].cond, area: { height: 8, width: 8, y: 0, x: 0 }, strength: 1 }];
    const d = await cfgDenoiser({ model: fake, modelSampling: ms, positive: [...cond(1), ...area], negative: cond(0), cfg: 1 }, x.shape)(
      x,
      sigma,
    );
    const at = (y: number, xx: number) => d.data[y * 16 + xx];
    // Inside the area away from its inner edge: average of the two predictions (1 and 5) with weights 1 and 1.
    expect(at(0, 0)).toBeCloseTo(0.5 - sigma * 3, 4);
    // Outside: only the full-image entry.
    expect(at(12, 12)).toBeCloseTo(0.5 - sigma * 1, 4);
    // The area's last row is feathered (weight 1/2 at rr = 2): (1·1 + 5·0.5)/(1.5).
    expect(at(7, 0)).toBeCloseTo(0.5 - sigma * ((1 + 5 * 0.5) / 1.5), 4);
  });

  it('step ranges (A1111 prompt editing) pick entries by the sampler step a sigma belongs to', async () => {
    const sigmas = [10, 5, 2, 1, 0];
    const edit: Conditioning = [
      { ...cond(1)[0], stepRange: { start: 0, end: 0.5 } },
      { ...cond(7)[0], stepRange: { start: 0.5, end: 1 } },
    ];
    const at = async (s: number): Promise<number> =>
      (await cfgDenoiser({ model: fake, modelSampling: ms, positive: edit, negative: cond(0), cfg: 1, sigmas }, x.shape)(x, s)).data[0];
    expect(await at(10)).toBeCloseTo(0.5 - 10 * 1, 3);
    expect(await at(5)).toBeCloseTo(0.5 - 5 * 1, 3);
    // Between steps 1 and 2 (a second-order sampler's midpoint) still counts as step 1.
    expect(await at(3)).toBeCloseTo(0.5 - 3 * 1, 3);
    expect(await at(2)).toBeCloseTo(0.5 - 2 * 7, 3);
    expect(await at(1)).toBeCloseTo(0.5 - 1 * 7, 3);
  });

  it('timestep ranges switch entries on and off by sigma; masks weight per pixel', async () => {
    const late: Conditioning = [{ cond: cond(9)[0].cond, startPercent: 0.5, endPercent: 1 }];
    const hi = await cfgDenoiser({ model: fake, modelSampling: ms, positive: [...cond(1), ...late], negative: cond(0), cfg: 1 }, x.shape)(
      x,
      14,
    );
    expect(hi.data[0]).toBeCloseTo(0.5 - 14 * 1, 3);
    const lo = await cfgDenoiser({ model: fake, modelSampling: ms, positive: [...cond(1), ...late], negative: cond(0), cfg: 1 }, x.shape)(
      x,
      0.1,
    );
    expect(lo.data[0]).toBeCloseTo(0.5 - 0.1 * 5, 4);
    const mask = new Float32Array(256);
    mask.fill(1, 0, 128);
    const masked: Conditioning = [{ cond: cond(5)[0].cond, mask: { shape: [1, 16, 16], data: mask }, strength: 1 }];
    const m = await cfgDenoiser({ model: fake, modelSampling: ms, positive: [...cond(1), ...masked], negative: cond(0), cfg: 1 }, x.shape)(
      x,
      sigma,
    );
    expect(m.data[0]).toBeCloseTo(0.5 - sigma * 3, 4);
    expect(m.data[200]).toBeCloseTo(0.5 - sigma * 1, 4);
  });

  it('different token counts batch by repeating to their least common multiple', async () => {
    calls.length = 0;
    const d = await cfgDenoiser({ model: fake, modelSampling: ms, positive: cond(1, 154), negative: cond(3, 77), cfg: 2 }, x.shape)(
      x,
      sigma,
    );
    expect(calls).toEqual([2]);
    expect(d.data[0]).toBeCloseTo(0.5 - sigma * (3 + (1 - 3) * 2), 4);
  });
});
