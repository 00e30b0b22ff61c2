import { beforeAll, describe, expect, it } from 'vitest';
import type { Latent, Tensor } from '../../engine/core/tensor.ts';
import type { ControlResiduals, ExtraConds, ModelCallArgs, ModelHandle, ModelWrapper, UNetRunArgs } from '../../engine/models/handles.ts';
import type { Conditioning, Control, ControlRequest } from '../../engine/sampling/conditioning.ts';
import { cfgDenoiser, cfgGuider, type Guider } from '../../engine/sampling/guider.ts';
import { ksample } from '../../engine/sampling/ksampler.ts';
import { ModelSamplingDiscrete } from '../../engine/sampling/model-sampling.ts';
import { disableNoise, randomNoise, type LatentNoise } from '../../engine/sampling/noise/index.ts';
import { sampleLatent } from '../../engine/sampling/run.ts';
import { samplerObject } from '../../engine/sampling/samplers/index.ts';
import { ksamplerSigmas } from '../../engine/sampling/schedulers.ts';
import { windowSigmas } from '../../engine/sampling/sigmas.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { loadTinyParts } from './tiny-parts.ts';

/*
 * The guider's seams with a stand-in UNet (the seam under test): its eps per row is the mean of the
 * row's context plus the first value of the row's first control residual, so what reached it can be
 * read back from the denoised result as well as from the recorded calls.
 */

const ms = new ModelSamplingDiscrete();
const sigma = 2;
const B = 2;
const x: Tensor = { shape: [B, 4, 8, 8], data: new Float32Array(B * 256).fill(0.5) };
const per = 256;

function fakeModel(extraConds?: ExtraConds, wrappers?: readonly ModelWrapper[]): { model: ModelHandle; calls: UNetRunArgs[] } {
  const calls: UNetRunArgs[] = [];
  const model: ModelHandle = {
    id: 'fake',
    family: 'fake',
    sampling: { prediction: 'eps', betaSchedule: 'scaled_linear', linearStart: 0.00085, linearEnd: 0.012, timesteps: 1000 },
    latentFormat: {
      channels: 4,
      scaleFactor: 1,
      rgbFactors: [
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
      ],
    },
    extraConds,
    wrappers,
    unet: {
      inChannels: 4,
      contextDim: 2,
      run: async (args) => {
        calls.push(args);
        const { x: xin, context, control } = args;
        const rows = xin.shape[0];
        const n = xin.data.length / rows;
        const T = context.shape[1];
        const out = new Float32Array(xin.data.length);
        for (let r = 0; r < rows; r++) {
          let m = 0;
          for (let i = 0; i < T * 2; i++) m += context.data[r * T * 2 + i];
          const res = control?.input[0];
          const add = res ? res.data[(r * res.data.length) / rows] : 0;
          out.fill(m / (T * 2) + add, r * n, (r + 1) * n);
        }
        return { shape: xin.shape, data: out };
      },
    },
  };
  return { model, calls };
}

const cond = (v: number, extra: Partial<Conditioning[number]> = {}): Conditioning[number] => ({
  cond: { shape: [1, 1, 2], data: new Float32Array(2).fill(v) },
  ...extra,
});
const ctxValues = (a: UNetRunArgs): number[] =>
  Array.from({ length: a.context.shape[0] }, (_, r) => a.context.data[r * a.context.shape[1] * 2]);
/** eps model: D = x − σ·eps. */
const denoisedOf = (eps: number): number => 0.5 - sigma * eps;
const evaluate = (model: ModelHandle, positive: Conditioning, negative: Conditioning, cfg: number) =>
  cfgDenoiser({ model, modelSampling: ms, positive, negative, cfg }, x.shape)(x, sigma);

/** A control whose residual for row r is value(r, request), recording what it was asked. */
function fakeControl(
  name: string,
  value: (r: number, req: ControlRequest) => number,
  log: string[],
  previous?: Control,
  middle?: number,
): Control & { reqs: ControlRequest[] } {
  const reqs: ControlRequest[] = [];
  return {
    previous,
    reqs,
    async getControl(req): Promise<ControlResiduals> {
      log.push(name);
      reqs.push(req);
      const rows = req.x.shape[0];
      const t: Tensor = { shape: [rows, 1, 1, 1], data: Float32Array.from({ length: rows }, (_, r) => value(r, req)) };
      return {
        input: [t],
        middle: middle === undefined ? undefined : { shape: [rows, 1, 1, 1], data: new Float32Array(rows).fill(middle) },
      };
    },
  };
}

describe('guider: control residuals', () => {
  it('reach the UNet only for the entries that carry the control; they do not share a call with entries without it', async () => {
    const log: string[] = [];
    const ten = fakeControl('ten', () => 10, log);
    const { model, calls } = fakeModel();
    const d = await evaluate(model, [cond(1, { control: ten })], [cond(3)], 4);
    expect(calls).toHaveLength(2);
    const withCtl = calls.find((c) => c.control);
    const without = calls.find((c) => !c.control);
    expect(ctxValues(withCtl!)).toEqual([1, 1]);
    expect(ctxValues(without!)).toEqual([3, 3]);
    expect(Array.from(withCtl!.control!.input[0]!.data)).toEqual([10, 10]);
    // The control is asked with the batch it is for: B rows of sampler-space x, σ, the model's timestep.
    expect(ten.reqs).toHaveLength(1);
    expect(ten.reqs[0].x.shape).toEqual([B, 4, 8, 8]);
    expect(ten.reqs[0].x.data[0]).toBe(0.5);
    expect(ten.reqs[0].sigma).toBe(sigma);
    expect(Array.from(ten.reqs[0].timesteps)).toEqual([ms.timestep(sigma), ms.timestep(sigma)]);
    expect(ten.reqs[0].chunks).toBe(1);
    expect(d.data[0]).toBeCloseTo(denoisedOf(3 + (1 + 10 - 3) * 4), 4);
    expect(d.data[per]).toBeCloseTo(denoisedOf(3 + (1 + 10 - 3) * 4), 4);
  });

  it('entries sharing a control run in one call; row r of the residual goes with row r of x and back to its entry and image', async () => {
    const log: string[] = [];
    const rows = fakeControl('rows', (r) => 100 * (r + 1), log);
    const { model, calls } = fakeModel();
    const d = await evaluate(model, [cond(1, { control: rows }), cond(5, { control: rows })], [cond(0)], 1);
    expect(calls).toHaveLength(1);
    expect(rows.reqs[0].chunks).toBe(2);
    expect(rows.reqs[0].x.shape[0]).toBe(2 * B);
    expect(ctxValues(calls[0])).toEqual([1, 1, 5, 5]);
    expect(Array.from(calls[0].control!.input[0]!.data)).toEqual([100, 200, 300, 400]);
    // Image b averages its two entries' rows: (1 + 100(b+1)) and (5 + 100(b+3)).
    expect(d.data[0]).toBeCloseTo(denoisedOf((1 + 100 + 5 + 300) / 2), 3);
    expect(d.data[per]).toBeCloseTo(denoisedOf((1 + 200 + 5 + 400) / 2), 3);
  });

  it('entries with different controls never share a call', async () => {
    const log: string[] = [];
    const a = fakeControl('a', () => 1, log);
    const b = fakeControl('b', () => 2, log);
    const { model, calls } = fakeModel();
    await evaluate(model, [cond(1, { control: a }), cond(5, { control: b })], [cond(0)], 3);
    expect(calls).toHaveLength(3);
    expect(calls.map((c) => [ctxValues(c)[0], c.control?.input[0]?.data[0]])).toEqual([
      [1, 1],
      [5, 2],
      [0, undefined],
    ]);
  });

  it("a chain adds its controls' residuals (previous first, as control_merge), middle where only one has it", async () => {
    const log: string[] = [];
    const first = fakeControl('first', () => 1, log);
    const second = fakeControl('second', () => 10, log, first, 7);
    const { model, calls } = fakeModel();
    const d = await evaluate(model, [cond(2, { control: second })], [cond(0)], 1);
    expect(log).toEqual(['first', 'second']);
    expect(Array.from(calls[0].control!.input[0]!.data)).toEqual([11, 11]);
    expect(Array.from(calls[0].control!.middle!.data)).toEqual([7, 7]);
    expect(d.data[0]).toBeCloseTo(denoisedOf(2 + 11), 4);
  });
});

describe('guider: named UNet inputs', () => {
  it("the family's extraConds and an entry's own modelConds are batched per entry into extra, in cond/uncond order", async () => {
    const infos: unknown[] = [];
    const hook: ExtraConds = (entry, info) => {
      infos.push(info);
      const p = entry.pooled?.data[0] ?? -1;
      return { y: { shape: [info.batch, 3], data: Float32Array.from({ length: info.batch * 3 }, (_, i) => p + 0.25 * Math.floor(i / 3)) } };
    };
    const { model, calls } = fakeModel(hook);
    const pooled = (v: number): Tensor => ({ shape: [1, 1], data: Float32Array.of(v) });
    await evaluate(model, [cond(1, { pooled: pooled(1) })], [cond(3, { pooled: pooled(2) })], 5);
    expect(infos).toEqual([
      { batch: B, height: 8, width: 8 },
      { batch: B, height: 8, width: 8 },
    ]);
    expect(calls).toHaveLength(1);
    const y = calls[0].extra!.y;
    expect(y.shape).toEqual([2 * B, 3]);
    expect(Array.from(y.data)).toEqual([1, 1, 1, 1.25, 1.25, 1.25, 2, 2, 2, 2.25, 2.25, 2.25]);

    // An entry's own (batch-1) input wins over the hook's and is repeated for every image.
    calls.length = 0;
    const own: Tensor = { shape: [1, 3], data: Float32Array.of(7, 8, 9) };
    await evaluate(model, [cond(1, { pooled: pooled(1), modelConds: { y: own } })], [cond(3, { pooled: pooled(2) })], 5);
    expect(Array.from(calls[0].extra!.y.data)).toEqual([7, 8, 9, 7, 8, 9, 2, 2, 2, 2.25, 2.25, 2.25]);
  });

  it("a latent-shaped input is cropped to the entry's area; entries with different input names do not share a call", async () => {
    const { model, calls } = fakeModel();
    const concat: Tensor = { shape: [1, 1, 8, 8], data: Float32Array.from({ length: 64 }, (_, i) => i) };
    const area = { height: 4, width: 4, y: 2, x: 2 };
    await evaluate(
      model,
      [cond(1), cond(5, { area, modelConds: { c_concat: concat } })],
      [cond(0, { modelConds: { c_concat: concat } })],
      2,
    );
    expect(calls).toHaveLength(3);
    const cropped = calls.find((c) => c.x.shape[2] === 4)!;
    expect(cropped.extra!.c_concat.shape).toEqual([B, 1, 4, 4]);
    const expected = Array.from({ length: 16 }, (_, i) => (2 + Math.floor(i / 4)) * 8 + 2 + (i % 4));
    expect(Array.from(cropped.extra!.c_concat.data)).toEqual([...expected, ...expected]);
    const full = calls.filter((c) => c.x.shape[2] === 8);
    expect(full.map((c) => [ctxValues(c)[0], c.extra?.c_concat.shape])).toEqual([
      [1, undefined],
      [0, [B, 1, 8, 8]],
    ]);
  });
});

describe('guider: areas from masks', () => {
  it("set_area_to_bounds runs the entry on its first mask's bounding box only", async () => {
    const { model, calls } = fakeModel();
    const mask = new Float32Array(2 * 64);
    for (let y = 2; y <= 5; y++) for (let xx = 1; xx <= 3; xx++) mask[y * 8 + xx] = 0.5;
    mask[64 + 7] = 1; // the second mask's pixels do not widen the box
    await evaluate(model, [cond(1), cond(5, { mask: { shape: [2, 8, 8], data: mask }, setAreaToBounds: true })], [cond(0)], 1);
    expect(calls.map((c) => c.x.shape)).toEqual([
      [B, 4, 8, 8],
      [B, 4, 4, 3],
    ]);
    expect(ctxValues(calls[1])).toEqual([5, 5]);
  });
});

/** The rows [start, end) of a model call's arguments. */
function rowsOf(a: ModelCallArgs, start: number, end: number): ModelCallArgs {
  const slice = (t: Tensor): Tensor => {
    const n = t.data.length / t.shape[0];
    return { shape: [end - start, ...t.shape.slice(1)], data: t.data.slice(start * n, end * n) };
  };
  const chunk = a.input.shape[0] / a.condOrUncond.length;
  const control = a.c.control && {
    input: a.c.control.input.map((t) => t && slice(t)),
    middle: a.c.control.middle && slice(a.c.control.middle),
  };
  const extra = a.c.extra && Object.fromEntries(Object.entries(a.c.extra).map(([k, t]) => [k, slice(t)]));
  return {
    ...a,
    input: slice(a.input),
    c: { context: slice(a.c.context), control, extra },
    condOrUncond: a.condOrUncond.slice(start / chunk, end / chunk),
  };
}

/** Runs the call on the first and second half of its rows and joins the results. */
const halves: ModelWrapper = async (apply, args) => {
  const rows = args.input.shape[0];
  const h = rows / 2;
  const a = await apply(rowsOf(args, 0, h));
  const b = await apply(rowsOf(args, h, rows));
  const data = new Float32Array(a.data.length + b.data.length);
  data.set(a.data);
  data.set(b.data, a.data.length);
  return { shape: args.input.shape, data };
};

describe('model wrappers', () => {
  it('are called once per model evaluation, outermost first, with the call as ComfyUI passes it', async () => {
    const log: string[] = [];
    const seen: ModelCallArgs[] = [];
    const tag =
      (name: string): ModelWrapper =>
      async (apply, args) => {
        log.push(`${name}>`);
        if (name === 'outer') seen.push(args);
        const out = await apply(args);
        log.push(`<${name}`);
        return out;
      };
    const { model, calls } = fakeModel(undefined, [tag('outer'), tag('inner')]);
    const denoise = cfgDenoiser({ model, modelSampling: ms, positive: [cond(1)], negative: [cond(3)], cfg: 4 }, x.shape);
    for (const s of [5, 2, 1]) await denoise(x, s);
    expect(calls).toHaveLength(3);
    expect(log).toEqual([
      'outer>',
      'inner>',
      '<inner',
      '<outer',
      'outer>',
      'inner>',
      '<inner',
      '<outer',
      'outer>',
      'inner>',
      '<inner',
      '<outer',
    ]);
    expect(seen.map((a) => a.sigma)).toEqual([5, 2, 1]);
    expect(seen[0].condOrUncond).toEqual([0, 1]);
    expect(seen[0].input.shape).toEqual([2 * B, 4, 8, 8]);
    expect(seen[0].input.data[0]).toBe(0.5);
  });

  it('a wrapper that runs the call on each half of the batch gives the same prediction', async () => {
    const log: string[] = [];
    const ctl = fakeControl('rows', (r) => r, log);
    const pos = [cond(1, { control: ctl, modelConds: { y: { shape: [1, 1], data: Float32Array.of(1) } } })];
    const neg = [cond(3, { control: ctl, modelConds: { y: { shape: [1, 1], data: Float32Array.of(2) } } })];
    const plain = fakeModel();
    const split = fakeModel(undefined, [halves]);
    const a = await evaluate(plain.model, pos, neg, 4);
    const b = await evaluate(split.model, pos, neg, 4);
    expect(plain.calls).toHaveLength(1);
    expect(split.calls).toHaveLength(2);
    expect(split.calls.map((c) => Array.from(c.extra!.y.data))).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(b.data).toEqual(a.data);
  });
});

describe('sampler objects', () => {
  it('carry the noise kind of the table; options that can make a sampler stochastic give it seeded noise', async () => {
    expect(['euler', 'euler_ancestral', 'dpmpp_2m_sde'].map((n) => samplerObject(n).noise)).toEqual(['none', 'default', 'brownian']);
    const churned = samplerObject('euler', { s_churn: 1 });
    expect(churned.noise).toBe('default');
    const { model } = fakeModel();
    const guider = cfgGuider({ model, positive: [cond(1)], negative: [cond(0)], cfg: 1 });
    const lat: Latent = { samples: { shape: [1, 4, 8, 8], data: new Float32Array(256) } };
    const sigmas = ksamplerSigmas(guider.modelSampling, 'karras', 4, 1);
    const run = (sampler: ReturnType<typeof samplerObject>, seed: bigint) =>
      sampleLatent({ guider, sampler, sigmas, noise: randomNoise(seed).generate(lat), latent: lat, seed });
    const plain = await run(samplerObject('euler'), 1n);
    const a = await run(churned, 1n);
    expect(await run(churned, 1n)).toEqual(a);
    expect(relErr(a.samples.data, plain.samples.data)).toBeGreaterThan(1e-3);
    expect(await run(samplerObject('euler', { s_churn: 0 }), 1n)).toEqual(plain);
  });
});

describe('the pieces composed by hand on the tiny checkpoint', () => {
  let model: ModelHandle;
  let pos: Conditioning;
  let neg: Conditioning;
  const latent = (b = 1): Latent => ({ samples: { shape: [b, 4, 8, 8], data: new Float32Array(b * 256) } });

  /** ComfyUI's SamplerCustomAdvanced: guider, sampler, sigmas and noise composed by hand. */
  const byHand = (guider: Guider, samplerName: string, sigmas: Float64Array, noise: LatentNoise, lat: Latent): Promise<Latent> =>
    sampleLatent({ guider, sampler: samplerObject(samplerName), sigmas, noise: noise.generate(lat), latent: lat, seed: noise.seed });

  beforeAll(async () => {
    ({ model, pos, neg } = await loadTinyParts());
  }, 60_000);

  for (const samplerName of ['euler', 'euler_ancestral', 'dpmpp_2m_sde']) {
    it(`sigmas + noise + guider + run give exactly ksample's latent (${samplerName})`, async () => {
      const lat = latent(2);
      const ref = await ksample({
        model,
        seed: 42n,
        steps: 5,
        cfg: 7,
        samplerName,
        scheduler: 'karras',
        positive: pos,
        negative: neg,
        latent: lat,
      });
      const guider = cfgGuider({ model, positive: pos, negative: neg, cfg: 7 });
      const out = await byHand(
        guider,
        samplerName,
        ksamplerSigmas(guider.modelSampling, 'karras', 5, 1, samplerName),
        randomNoise(42n),
        lat,
      );
      expect(out.samples.data).toEqual(ref.samples.data);
    });
  }

  it('KSamplerAdvanced by hand: inpainting, a step window and no added noise, as ksample', async () => {
    const mask = new Float32Array(64).fill(1, 0, 32);
    const lat: Latent = { samples: { shape: [1, 4, 8, 8], data: lcg(256, 4) }, noiseMask: { shape: [1, 1, 8, 8], data: mask } };
    const args = {
      model,
      seed: 9n,
      steps: 6,
      cfg: 5,
      samplerName: 'dpmpp_sde',
      scheduler: 'normal',
      positive: pos,
      negative: neg,
      latent: lat,
    };
    const ref = await ksample({ ...args, startStep: 2, lastStep: 4, disableNoise: true, forceFullDenoise: true });
    const guider = cfgGuider({ model, positive: pos, negative: neg, cfg: 5 });
    const sigmas = windowSigmas(ksamplerSigmas(guider.modelSampling, 'normal', 6, 1, 'dpmpp_sde'), {
      startStep: 2,
      lastStep: 4,
      forceFullDenoise: true,
    });
    expect(sigmas).toHaveLength(3);
    const out = await byHand(guider, 'dpmpp_sde', sigmas, disableNoise(9n), lat);
    expect(out.samples.data).toEqual(ref.samples.data);
  });

  it('a counting wrapper sees one call per model evaluation; one that halves the batch changes nothing beyond ORT rounding', async () => {
    let wrapped = 0;
    let unetRuns = 0;
    const count: ModelWrapper = (apply, args) => {
      wrapped++;
      return apply(args);
    };
    const spy: ModelHandle = { ...model, wrappers: [count], unet: { ...model.unet, run: (a) => (unetRuns++, model.unet.run(a)) } };
    const args = { seed: 42n, steps: 4, cfg: 7, scheduler: 'normal', positive: pos, negative: neg, latent: latent() };
    await ksample({ ...args, model: spy, samplerName: 'euler' });
    expect([wrapped, unetRuns]).toEqual([4, 4]);
    wrapped = unetRuns = 0;
    // heun evaluates twice per step except onto σ = 0
    await ksample({ ...args, model: spy, samplerName: 'heun' });
    expect([wrapped, unetRuns]).toEqual([7, 7]);

    const ref = await ksample({ ...args, model, samplerName: 'euler_ancestral' });
    const split = await ksample({ ...args, model: { ...model, wrappers: [halves] }, samplerName: 'euler_ancestral' });
    expect(relErr(split.samples.data, ref.samples.data)).toBeLessThan(1e-5);
  });
});
