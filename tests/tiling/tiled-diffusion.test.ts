import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Latent, Tensor } from '../../engine/core/tensor.ts';
import { nhwcToNchw } from '../../engine/image/layout.ts';
import { commonUpscale } from '../../engine/image/resize.ts';
import { softInjectionScales } from '../../engine/models/controlnet/a1111-control.ts';
import { a1111ResizeHint } from '../../engine/models/controlnet/a1111-resize.ts';
import { T2IAdapterControl } from '../../engine/models/controlnet/adapter-control.ts';
import type { T2IAdapterModel } from '../../engine/models/controlnet/adapter.ts';
import { ControlNetControl } from '../../engine/models/controlnet/control.ts';
import { adapterConfigFor, makeAdapterFile } from '../../engine/models/controlnet/generate-adapter.ts';
import { makeControlNetFile } from '../../engine/models/controlnet/generate.ts';
import type { ControlNetModel } from '../../engine/models/controlnet/model.ts';
import type { ModelApply, ModelHandle } from '../../engine/models/handles.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { ksample, type KSamplerArgs } from '../../engine/sampling/ksampler.ts';
import { modelCall } from '../../engine/sampling/model-call.ts';
import { ModelSamplingDiscrete } from '../../engine/sampling/model-sampling.ts';
import { tileGrid, type TileBox, type TiledDiffusionMethod } from '../../engine/sampling/tiled-diffusion/grid.ts';
import { torchRandint } from '../../engine/sampling/tiled-diffusion/spot-shifts.ts';
import { tiledDiffusionWrapper } from '../../engine/sampling/tiled-diffusion/wrapper.ts';
import { ControlNetApplyA1111 } from '../../nodes/controlnet/a1111.ts';
import { ControlNetApplyAdvanced, ControlNetLoader } from '../../nodes/controlnet/controlnet.ts';
import '../../nodes/model/services.ts';
import { SpotDiffusionParams, TiledDiffusion } from '../../nodes/sampling/tiled-diffusion.ts';
import { lcg, makeTiny, relErr } from '../models-onnx/tiny.ts';

/*
 * The TiledDiffusion wrapper on the tiny SD1 model: against an independent plain loop (one tile per
 * model call, float64 blending, the Gaussian written out again, SpotDiffusion's roll by hand), a tile
 * covering the whole latent against the untiled run through KSampler with several samplers, img2img
 * and an inpaint mask, ControlNet hints cropped per tile, and the wrapper kept across patching.
 */

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const noCtx = {} as never;
const ms = new ModelSamplingDiscrete();
let model: ModelHandle;
let pos: Conditioning;
let neg: Conditioning;
let net: ControlNetModel;
let adapter: T2IAdapterModel;
let apply: ModelApply;
const METHODS: TiledDiffusionMethod[] = ['MultiDiffusion', 'Mixture of Diffusers', 'SpotDiffusion'];

const tiled = (method: TiledDiffusionMethod, tile: number, overlap: number, batch = 4, tileH = tile, base = model): ModelHandle =>
  (
    TiledDiffusion.run(
      { model: base, method, tile_width: tile, tile_height: tileH, tile_overlap: overlap, tile_batch_size: batch },
      noCtx,
    ) as [ModelHandle]
  )[0];

beforeAll(async () => {
  const tiny = await makeTiny(7);
  const manager = new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet });
  const parts = await manager.loadCheckpoint(tiny.file);
  model = parts.model;
  pos = [await parts.clip.encodeText('a red fox in the snow')];
  neg = [await parts.clip.encodeText('blurry')];
  apply = modelCall(model, ms);
  makeControlNetFile(
    join(tiny.dir, 'controlnet', 'weft-tiny-controlnet.safetensors'),
    { unet: tiny.cfg.unet, hintChannels: 3 },
    { seed: 8 },
  );
  makeAdapterFile(join(tiny.dir, 'controlnet', 'weft-tiny-adapter.safetensors'), adapterConfigFor(tiny.cfg.unet), { seed: 9 });
  const ctx = {
    services: { models: manager },
    log: quiet,
    paths: new FolderPaths({ baseDir: tiny.dir, modelsDir: tiny.dir }),
  } as unknown as NodeContext;
  net = (ControlNetLoader.run({ control_net_name: 'weft-tiny-controlnet.safetensors' }, ctx) as [ControlNetModel])[0];
  adapter = (ControlNetLoader.run({ control_net_name: 'weft-tiny-adapter.safetensors' }, ctx) as [T2IAdapterModel])[0];
}, 120_000);

/** Rows [n, C, h, w] of the tile at b. */
function crop(x: Tensor, b: TileBox): Tensor {
  const [n, c, H, W] = x.shape;
  const data = new Float32Array(n * c * b.h * b.w);
  for (let p = 0; p < n * c; p++)
    for (let y = 0; y < b.h; y++)
      for (let xx = 0; xx < b.w; xx++) data[(p * b.h + y) * b.w + xx] = x.data[(p * H + b.y + y) * W + b.x + xx];
  return { shape: [n, c, b.h, b.w], data };
}

type HintKind = 'ControlNet' | 'T2I-Adapter';

/** ControlNetApplyAdvanced on the two prompts with the tiny ControlNet or adapter over the whole schedule. */
function applyHint(kind: HintKind, image: Tensor, strength = 0.9): [Conditioning, Conditioning] {
  return ControlNetApplyAdvanced.run(
    {
      positive: pos,
      negative: neg,
      control_net: kind === 'ControlNet' ? net : adapter,
      image,
      strength,
      start_percent: 0,
      end_percent: 1,
    },
    noCtx,
  ) as [Conditioning, Conditioning];
}

/** The reference's own control for one tile: the whole-latent hint `full` cut to the tile at b (in latent cells), encoded alone. */
function tileResiduals(kind: HintKind, full: Tensor, t: Tensor, b: TileBox, sigma: number, context: Tensor) {
  const hint = crop(full, { x: b.x * 8, y: b.y * 8, w: b.w * 8, h: b.h * 8 });
  const app = { hint, strength: 0.9, startPercent: 0, endPercent: 1 };
  const own = kind === 'ControlNet' ? new ControlNetControl(net, app) : new T2IAdapterControl(adapter, app);
  return own.residuals({
    x: t,
    sigma,
    timesteps: new Float32Array(1).fill(ms.timestep(sigma)),
    context,
    chunks: 1,
    modelSampling: ms,
  });
}

function rollRef(x: Float64Array | Float32Array, shape: readonly number[], dy: number, dx: number): Float64Array {
  const [n, c, H, W] = shape;
  const out = new Float64Array(x.length);
  for (let p = 0; p < n * c; p++)
    for (let y = 0; y < H; y++)
      for (let xx = 0; xx < W; xx++) out[(p * H + ((((y + dy) % H) + H) % H)) * W + ((((xx + dx) % W) + W) % W)] = x[(p * H + y) * W + xx];
  return out;
}

/** The package's Gaussian, written out again in float64: x centred at (w−1)/2, y at h/2, both over w². */
const gauss = (x: number, y: number, w: number, h: number): number => {
  const g = (d: number) => Math.exp(-(d * d) / (w * w) / 0.02) / Math.sqrt(0.02 * Math.PI);
  return g(x - (w - 1) / 2) * g(y - h / 2);
};

interface RefArgs {
  method: TiledDiffusionMethod;
  x: Tensor;
  sigma: number;
  context: Tensor;
  tile: number;
  overlap: number;
  sigmas?: number[];
  seed?: bigint;
  /** SpotDiffusion's shift order (random by default): 'sorted' sorts the draw ascending. */
  sorted?: boolean;
  /** Residuals per tile, for the ControlNet check. */
  control?: (tileX: Tensor, b: TileBox, dy: number, dx: number) => Promise<Awaited<ReturnType<ControlNetControl['residuals']>>>;
}

/** One tile per model call, blended in float64. */
async function plainLoop(a: RefArgs): Promise<Float64Array> {
  const [n, c, H, W] = a.x.shape;
  const boxes = tileGrid({
    w: W,
    h: H,
    tileW: a.tile,
    tileH: a.tile,
    overlap: a.overlap,
    tileBatchSize: 1,
    method: a.method,
  }).batches.flat();
  let dy = 0;
  let dx = 0;
  let x: Tensor = a.x;
  if (a.method === 'SpotDiffusion') {
    const steps = a.sigmas!.length - 1;
    const i = a.sigmas!.findIndex((s) => Math.fround(s) === Math.fround(a.sigma));
    const draw = Array.from(torchRandint(a.seed!, a.tile, steps));
    const sh = (a.sorted ? draw.sort((p, q) => p - q) : draw)[i];
    // Square tiles: odd steps roll the rows, even steps the columns.
    if (i % 2 !== 0) dy = sh;
    else dx = sh;
    x = { shape: a.x.shape, data: Float32Array.from(rollRef(a.x.data, a.x.shape, dy, dx)) };
  }
  const sum = new Float64Array(a.x.data.length);
  const weight = new Float64Array(H * W);
  for (const b of boxes) {
    const t = crop(x, b);
    const control = a.control ? await a.control(t, b, dy, dx) : undefined;
    const out = await apply({ input: t, sigma: a.sigma, c: { context: a.context, control }, condOrUncond: [0] });
    for (let p = 0; p < n * c; p++)
      for (let y = 0; y < b.h; y++)
        for (let xx = 0; xx < b.w; xx++) {
          const v = out.data[(p * b.h + y) * b.w + xx];
          const gi = (p * H + b.y + y) * W + b.x + xx;
          const wt = a.method === 'Mixture of Diffusers' ? gauss(xx, y, b.w, b.h) : 1;
          if (a.method === 'SpotDiffusion') sum[gi] = v;
          else sum[gi] += v * wt;
          if (p === 0) weight[(b.y + y) * W + b.x + xx] += wt;
        }
  }
  if (a.method === 'SpotDiffusion') return rollRef(sum, a.x.shape, -dy, -dx);
  return sum.map((v, i) => (a.method === 'MultiDiffusion' && weight[i % (H * W)] <= 1 ? v : v / weight[i % (H * W)]));
}

describe('TiledDiffusion wrapper against a plain loop (tiny SD1)', () => {
  const x: Tensor = { shape: [1, 4, 16, 24], data: lcg(4 * 16 * 24, 11, 3) };
  const sigmas = [6.1, 3.3, 1.7, 0.6, 0];

  for (const method of METHODS) {
    it(`${method}: 8×8 latent tiles, overlap 2, in batches of 3, equal one-tile-per-call blending`, async () => {
      const context = pos[0].cond;
      for (const sigma of [3.3, 1.7]) {
        const wrapper = tiledDiffusionWrapper({ method, tileWidth: 64, tileHeight: 64, tileOverlap: 16, tileBatchSize: 3 });
        const got = await wrapper(apply, { input: x, sigma, c: { context }, condOrUncond: [0], run: { sigmas, seed: 5n } });
        const want = await plainLoop({ method, x, sigma, context, tile: 8, overlap: 2, sigmas, seed: 5n });
        expect(relErr(got.data, want)).toBeLessThan(2e-5);
        // Tiling changes the prediction: the check is not vacuous.
        const whole = await apply({ input: x, sigma, c: { context }, condOrUncond: [0] });
        expect(relErr(got.data, whole.data)).toBeGreaterThan(1e-3);
      }
    }, 120_000);
  }

  const perTileCases = [
    { kind: 'ControlNet', what: 'encoded per tile', method: 'MultiDiffusion', seed: 5 },
    { kind: 'T2I-Adapter', what: 'run through the adapter per tile', method: 'Mixture of Diffusers', seed: 6 },
  ] as const;
  for (const { kind, what, method, seed } of perTileCases) {
    it(`${kind}: the hint is resized to the whole latent, cut per tile and ${what}`, async () => {
      const image: Tensor = { shape: [1, 40, 56, 3], data: lcg(40 * 56 * 3, seed).map((v) => (v + 1) / 2) };
      const [p] = applyHint(kind, image);
      const context = pos[0].cond;
      const sigma = 3.3;
      const full = commonUpscale(nhwcToNchw(image), 24 * 8, 16 * 8, 'nearest-exact', 'center');
      const perTile = async (t: Tensor, b: TileBox) => {
        return tileResiduals(kind, full, t, b, sigma, context);
      };
      const want = await plainLoop({ method, x, sigma, context, tile: 8, overlap: 2, control: perTile });
      const got = await ksampleOnce(tiled(method, 64, 16, 3), p, x, sigma);
      expect(relErr(got, want)).toBeLessThan(2e-5);
      // The control changes the prediction: the check is not vacuous.
      const without = await plainLoop({ method, x, sigma, context, tile: 8, overlap: 2 });
      expect(relErr(without, want)).toBeGreaterThan(1e-3);
    }, 120_000);
  }

  it('SpotDiffusion: ControlNet and T2I-Adapter hints are rolled with the latent before they are cut', async () => {
    const image: Tensor = { shape: [1, 40, 56, 3], data: lcg(40 * 56 * 3, 4).map((v) => (v + 1) / 2) };
    const context = pos[0].cond;
    const full = commonUpscale(nhwcToNchw(image), 24 * 8, 16 * 8, 'nearest-exact', 'center');
    for (const kind of ['ControlNet', 'T2I-Adapter'] as const) {
      const [p] = applyHint(kind, image);
      // σ 3.3 is step 1 (rows roll), 1.7 step 2 (columns roll).
      for (const sigma of [3.3, 1.7]) {
        const perTile = async (t: Tensor, b: TileBox, dy: number, dx: number) => {
          const rolled: Tensor = { shape: full.shape, data: Float32Array.from(rollRef(full.data, full.shape, dy * 8, dx * 8)) };
          return tileResiduals(kind, rolled, t, b, sigma, context);
        };
        const want = await plainLoop({
          method: 'SpotDiffusion',
          x,
          sigma,
          context,
          tile: 8,
          overlap: 2,
          sigmas,
          seed: 5n,
          control: perTile,
        });
        const got = await ksampleOnce(tiled('SpotDiffusion', 64, 16, 3), p, x, sigma, sigmas, 5n);
        expect(relErr(got, want), `${kind} at σ ${sigma}`).toBeLessThan(2e-5);
      }
    }
  }, 120_000);

  for (const kind of ['ControlNet', 'T2I-Adapter'] as const) {
    it(`A1111 unit (${kind}, "ControlNet is more important"): cut per tile, soft weights, control on each tile's cond rows only`, async () => {
      const image: Tensor = { shape: [1, 40, 56, 3], data: lcg(40 * 56 * 3, 7).map((v) => Math.round(((v + 1) / 2) * 255) / 255) };
      const control = kind === 'ControlNet' ? net : adapter;
      const mode = 'ControlNet is more important';
      const [p, n] = ControlNetApplyA1111.run(
        {
          positive: pos,
          negative: neg,
          control_net: control,
          image,
          weight: 0.8,
          guidance_start: 0,
          guidance_end: 1,
          control_mode: mode,
          resize_mode: 'Crop and Resize',
        },
        noCtx,
      ) as [Conditioning, Conditioning];
      const sigma = 3.3;
      const cfg = 5;
      const full = a1111ResizeHint(nhwcToNchw(image), 'Crop and Resize', 24 * 8, 16 * 8);
      // The cond rows get the unit's soft-weighted residuals of the tile's own hint; the uncond rows none.
      const perTile = async (t: Tensor, b: TileBox) => {
        const hint = crop(full, { x: b.x * 8, y: b.y * 8, w: b.w * 8, h: b.h * 8 });
        const app = { hint, strength: 0.8, startPercent: 0, endPercent: 1 };
        const scales = softInjectionScales(kind === 'ControlNet' ? 'controlnet' : 't2i-adapter', kind === 'ControlNet' ? 13 : 4);
        const inner = kind === 'ControlNet' ? new ControlNetControl(net, app) : new T2IAdapterControl(adapter, app);
        const req = {
          x: t,
          sigma,
          timesteps: new Float32Array(1).fill(ms.timestep(sigma)),
          context: pos[0].cond,
          chunks: 1,
          modelSampling: ms,
        };
        return inner.residuals(req, scales);
      };
      const condP = await plainLoop({ method: 'MultiDiffusion', x, sigma, context: pos[0].cond, tile: 8, overlap: 2, control: perTile });
      const uncondP = await plainLoop({ method: 'MultiDiffusion', x, sigma, context: neg[0].cond, tile: 8, overlap: 2 });
      const want = condP.map((c, i) => uncondP[i] + (c - uncondP[i]) * cfg);
      const { cfgGuider } = await import('../../engine/sampling/guider.ts');
      const d = cfgGuider({ model: tiled('MultiDiffusion', 64, 16, 3), positive: p, negative: n, cfg }).denoiser(x.shape, {
        sigmas: [sigma, 0],
      });
      const got = (await d(x, sigma)).data;
      expect(relErr(got, want)).toBeLessThan(2e-5);
    }, 120_000);
  }
});

/** One model evaluation through the guider (cfg 1, positive only) at σ: the guider's control seam included. */
async function ksampleOnce(
  m: ModelHandle,
  positive: Conditioning,
  x: Tensor,
  sigma: number,
  sigmas = [sigma, 0],
  seed?: bigint,
): Promise<Float32Array> {
  const { cfgGuider } = await import('../../engine/sampling/guider.ts');
  const g = cfgGuider({ model: m, positive, negative: [], cfg: 1 });
  const d = g.denoiser(x.shape, { sigmas, seed });
  return (await d(x, sigma)).data;
}

describe('SpotDiffusionParams_TiledDiffusion', () => {
  it('has the package’s class name, display name, category and inputs', () => {
    expect(SpotDiffusionParams.name).toBe('SpotDiffusionParams_TiledDiffusion');
    expect(SpotDiffusionParams.displayName).toBe('SpotDiffusion Parameters');
    expect(SpotDiffusionParams.category).toBe('_for_testing');
    const required = SpotDiffusionParams.inputs?.required ?? {};
    expect(Object.keys(required)).toEqual(['model', 'shift_method', 'seed']);
    const { shift_method, seed } = required;
    expect(shift_method).toMatchObject({ type: 'COMBO', options: ['random', 'sorted', 'fibonacci'], default: 'random' });
    expect(seed).toMatchObject({ type: 'INT', default: 0, min: 0, max: 0xffffffffffffffff });
  });

  it('its seed and sorted order drive the shifts, whether it stands before or after TiledDiffusion', async () => {
    const x: Tensor = { shape: [1, 4, 16, 24], data: lcg(4 * 16 * 24, 11, 3) };
    const sigmas = [6.1, 3.3, 1.7, 0.6, 0];
    const context = pos[0].cond;
    const params = (m: ModelHandle): ModelHandle =>
      (SpotDiffusionParams.run({ model: m, shift_method: 'sorted', seed: 123 }, noCtx) as [ModelHandle])[0];
    const after = params(tiled('SpotDiffusion', 64, 16, 3));
    const before = tiled('SpotDiffusion', 64, 16, 3, 64, params(model));
    let moved = 0;
    for (const sigma of [3.3, 1.7, 0.6]) {
      const want = await plainLoop({ method: 'SpotDiffusion', x, sigma, context, tile: 8, overlap: 2, sigmas, seed: 123n, sorted: true });
      // The run's own seed (5) is overridden by the node's.
      for (const m of [after, before]) expect(relErr(await ksampleOnce(m, pos, x, sigma, sigmas, 5n), want)).toBeLessThan(2e-5);
      const unsorted = await plainLoop({ method: 'SpotDiffusion', x, sigma, context, tile: 8, overlap: 2, sigmas, seed: 123n });
      if (relErr(unsorted, want) > 1e-3) moved++;
    }
    // The sorted order shifts differently from the random one at some step: the check is not vacuous.
    expect(moved).toBeGreaterThan(0);
  }, 120_000);
});

describe('a tile covering the whole latent is the untiled run', () => {
  const latent: Latent = {
    samples: { shape: [1, 4, 8, 16], data: lcg(512, 3) },
    noiseMask: { shape: [1, 1, 8, 16], data: new Float32Array(128).fill(1, 0, 80) },
  };
  const base = (m: ModelHandle, samplerName: string): KSamplerArgs => ({
    model: m,
    seed: 42n,
    steps: 3,
    cfg: 6,
    samplerName,
    scheduler: 'normal',
    positive: pos,
    negative: neg,
    latent,
    denoise: 0.6,
  });

  for (const samplerName of ['euler', 'heun', 'dpmpp_2m', 'euler_ancestral']) {
    it(`${samplerName}, img2img at denoise 0.6 with an inpaint mask: all three methods`, async () => {
      const plain = await ksample(base(model, samplerName));
      for (const method of METHODS) {
        const got = await ksample(base(tiled(method, 512, 64), samplerName));
        // Mixture of Diffusers multiplies by g·(1/g), which float32 leaves within an ulp of 1 per
        // evaluation; cfg 6 over up to 6 evaluations grows that to a few 1e-6 (5.1e-6 measured).
        if (method === 'Mixture of Diffusers') expect(relErr(got.samples.data, plain.samples.data), method).toBeLessThan(2e-5);
        else expect(got.samples.data, method).toEqual(plain.samples.data);
      }
    }, 120_000);
  }

  it('with a ControlNet: the whole-latent tile gives the untiled ControlNet run exactly', async () => {
    const image: Tensor = { shape: [1, 40, 72, 3], data: lcg(40 * 72 * 3, 5).map((v) => (v + 1) / 2) };
    const [p, n] = applyHint('ControlNet', image, 0.8);
    const args = { ...base(model, 'euler'), positive: p, negative: n };
    const plain = await ksample(args);
    const got = await ksample({ ...args, model: tiled('MultiDiffusion', 512, 64) });
    expect(got.samples.data).toEqual(plain.samples.data);
  }, 120_000);

  it('with a T2I-Adapter: the whole-latent tile gives the untiled adapter run exactly', async () => {
    const image: Tensor = { shape: [1, 40, 72, 3], data: lcg(40 * 72 * 3, 6).map((v) => (v + 1) / 2) };
    const [p, n] = applyHint('T2I-Adapter', image, 0.8);
    const args = { ...base(model, 'euler'), positive: p, negative: n };
    const plain = await ksample(args);
    for (const method of ['MultiDiffusion', 'SpotDiffusion'] as const) {
      const got = await ksample({ ...args, model: tiled(method, 512, 64) });
      expect(got.samples.data, method).toEqual(plain.samples.data);
    }
    expect(relErr(plain.samples.data, (await ksample(base(model, 'euler'))).samples.data)).toBeGreaterThan(1e-3);
  }, 120_000);

  for (const mode of ['Balanced', 'ControlNet is more important'] as const)
    it(`with the A1111 unit (${mode}, ControlNet and T2I-Adapter): the whole-latent tile gives the untiled run exactly`, async () => {
      const image: Tensor = { shape: [1, 40, 72, 3], data: lcg(40 * 72 * 3, 8).map((v) => Math.round(((v + 1) / 2) * 255) / 255) };
      for (const control of [net, adapter]) {
        const [p, n] = ControlNetApplyA1111.run(
          {
            positive: pos,
            negative: neg,
            control_net: control,
            image,
            weight: 0.9,
            guidance_start: 0,
            guidance_end: 0.7,
            control_mode: mode,
            resize_mode: 'Crop and Resize',
          },
          noCtx,
        ) as [Conditioning, Conditioning];
        const args = { ...base(model, 'euler'), positive: p, negative: n };
        const plain = await ksample(args);
        const got = await ksample({ ...args, model: tiled('MultiDiffusion', 512, 64) });
        expect(got.samples.data).toEqual(plain.samples.data);
      }
    }, 120_000);

  it('a 1×1 latent runs as one 1×1 tile', async () => {
    const one: Latent = { samples: { shape: [1, 4, 1, 1], data: lcg(4, 9) } };
    const plain = await ksample({ ...base(model, 'euler'), latent: one });
    const got = await ksample({ ...base(tiled('Mixture of Diffusers', 768, 64), 'euler'), latent: one });
    expect(relErr(got.samples.data, plain.samples.data)).toBeLessThan(2e-6);
  }, 120_000);
});

describe('the wrapper survives patching and tiles with any tile count', () => {
  /** KSampler euler, 2 steps at cfg 5 and denoise 0.5 from a 16×16 latent; the model is each test's. */
  const halfDenoise = () => {
    const latent: Latent = { samples: { shape: [1, 4, 16, 16], data: lcg(1024, 4) } };
    return { seed: 1n, steps: 2, cfg: 5, samplerName: 'euler', scheduler: 'normal', positive: pos, negative: neg, latent, denoise: 0.5 };
  };

  it('LoRA-style repatching (withPatches) keeps the wrapper; the result is unchanged', async () => {
    const m = tiled('MultiDiffusion', 64, 16, 2);
    const again = m.patching!.withPatches(m.patching!.patches);
    expect(again.wrappers).toEqual(m.wrappers);
    const args = halfDenoise();
    expect((await ksample({ ...args, model: again })).samples.data).toEqual((await ksample({ ...args, model: m })).samples.data);
  }, 120_000);

  it('tile_batch_size changes the batching, not the result', async () => {
    const args = halfDenoise();
    const one = await ksample({ ...args, model: tiled('Mixture of Diffusers', 64, 16, 1) });
    const four = await ksample({ ...args, model: tiled('Mixture of Diffusers', 64, 16, 4) });
    expect(relErr(four.samples.data, one.samples.data)).toBeLessThan(1e-5);
  }, 120_000);
});
