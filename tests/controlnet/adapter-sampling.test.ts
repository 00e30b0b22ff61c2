import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Latent, Tensor } from '../../engine/core/tensor.ts';
import { T2IAdapterControl } from '../../engine/models/controlnet/adapter-control.ts';
import type { T2IAdapterModel } from '../../engine/models/controlnet/adapter.ts';
import { adapterConfigFor, makeAdapterFile } from '../../engine/models/controlnet/generate-adapter.ts';
import { makeControlNetFile } from '../../engine/models/controlnet/generate.ts';
import { readControlModel } from '../../engine/models/controlnet/load.ts';
import type { ControlNetModel } from '../../engine/models/controlnet/model.ts';
import { t2iAdapterRef } from '../../engine/models/families/sd1/reference/t2i-adapter.ts';
import type { ControlResiduals, ModelHandle } from '../../engine/models/handles.ts';
import { commonUpscale } from '../../engine/image/resize.ts';
import { nhwcToNchw } from '../../engine/image/layout.ts';
import type { WeightSource } from '../../engine/core/weights.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { Conditioning, Control, ControlRequest } from '../../engine/sampling/conditioning.ts';
import { chainResiduals } from '../../engine/sampling/control.ts';
import { ksample, type KSamplerArgs } from '../../engine/sampling/ksampler.ts';
import { ModelSamplingDiscrete } from '../../engine/sampling/model-sampling.ts';
import { ControlNetApplyAdvanced, ControlNetLoader } from '../../nodes/controlnet/controlnet.ts';
import '../../nodes/model/services.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { loadSd1ControlRig } from './helpers.ts';
import type { T2IAdapterConfig } from '../../engine/models/controlnet/adapter-layout.ts';

/*
 * T2I-Adapters in a whole KSampler run on the tiny model, loaded and applied through ComfyUI's nodes:
 * against a run fed the reference adapter's residuals, the adapter's single run per sampling run,
 * strength, range, the one-channel average, and a chain with a ControlNet.
 */

let model: ModelHandle;
let pos: Conditioning;
let neg: Conditioning;
let base: KSamplerArgs;
let plain: Latent;
let ctx: NodeContext;
const ms = new ModelSamplingDiscrete();
/** A 40×72 hint for a 64×64 output: centre-cropped and resized as ComfyUI does. */
const image: Tensor = { shape: [1, 40, 72, 3], data: lcg(40 * 72 * 3, 5).map((v) => (v + 1) / 2) };
const noCtx = {} as never;
const files: Record<string, { cfg: T2IAdapterConfig; ws: WeightSource }> = {};

const load = (name: string): T2IAdapterModel | ControlNetModel =>
  (ControlNetLoader.run({ control_net_name: name }, ctx) as [T2IAdapterModel | ControlNetModel])[0];

const apply = (
  positive: Conditioning,
  negative: Conditioning,
  net: T2IAdapterModel | ControlNetModel,
  strength: number,
  start = 0,
  end = 1,
): [Conditioning, Conditioning] =>
  ControlNetApplyAdvanced.run({ positive, negative, control_net: net, image, strength, start_percent: start, end_percent: end }, noCtx) as [
    Conditioning,
    Conditioning,
  ];

beforeAll(async () => {
  const rig = await loadSd1ControlRig(7, 'a red fox in the snow', { seed: 42n, steps: 4, cfg: 7 });
  const { tiny } = rig;
  ({ model, pos, neg, ctx, base } = rig);
  const write = (name: string, cfg: T2IAdapterConfig, seed: number): void => {
    const file = join(tiny.dir, 'controlnet', name);
    makeAdapterFile(file, cfg, { seed });
    const r = readControlModel(file);
    if (r.kind !== 't2i-adapter') throw new Error('not an adapter');
    files[name] = { cfg, ws: r.adapter.weights };
  };
  write('full.safetensors', adapterConfigFor(tiny.cfg.unet, { ksize: 1 }), 8);
  write('light.safetensors', adapterConfigFor(tiny.cfg.unet, { kind: 'light' }), 9);
  write('sketch.safetensors', adapterConfigFor(tiny.cfg.unet, { ksize: 3, useConv: true, imageChannels: 1 }), 10);
  makeControlNetFile(join(tiny.dir, 'controlnet', 'cn.safetensors'), { unet: tiny.cfg.unet, hintChannels: 3 }, { seed: 11 });
  plain = await ksample(base);
}, 120_000);

/** The adapter as the reference computes it, as a Control: adapter.py in plain loops on the hint ComfyUI gives it. */
function referenceControl(name: string, strength: number): Control {
  const { cfg, ws } = files[name];
  return {
    async getControl(req: ControlRequest): Promise<ControlResiduals> {
      const [rows, , h, w] = req.x.shape;
      let hint = commonUpscale(nhwcToNchw(image), w * 8, h * 8, 'nearest-exact', 'center');
      if (cfg.cin === 64) {
        const hw = h * 8 * w * 8;
        hint = {
          shape: [1, 1, h * 8, w * 8],
          data: Float32Array.from({ length: hw }, (_, i) => Math.fround((hint.data[i] + hint.data[hw + i] + hint.data[2 * hw + i]) / 3)),
        };
      }
      const afterInput: (Tensor | undefined)[] = Array.from({ length: 12 }, () => undefined);
      t2iAdapterRef(cfg, ws, hint).forEach((f, l) => {
        const data = new Float32Array(rows * f.data.length);
        for (let i = 0; i < data.length; i++) data[i] = Math.fround(f.data[i % f.data.length] * strength);
        afterInput[3 * l + 2] = { shape: [rows, ...f.shape.slice(1)], data };
      });
      return { input: [], afterInput };
    },
  };
}

describe('T2I-Adapters in a KSampler run (tiny model)', () => {
  it.each(['full.safetensors', 'light.safetensors', 'sketch.safetensors'])(
    '%s through ControlNetApplyAdvanced equals a run fed the reference residuals, and changes the result',
    async (name) => {
      const net = load(name);
      expect(net.kind).toBe('t2i-adapter');
      const [p, n] = apply(pos, neg, net, 0.8);
      expect(p[0].control).toBeInstanceOf(T2IAdapterControl);
      const got = await ksample({ ...base, positive: p, negative: n });
      const ref = referenceControl(name, 0.8);
      const want = await ksample({
        ...base,
        positive: pos.map((e) => ({ ...e, control: ref })),
        negative: neg.map((e) => ({ ...e, control: ref })),
      });
      expect(relErr(got.samples.data, want.samples.data)).toBeLessThan(1e-4);
      expect(relErr(got.samples.data, plain.samples.data)).toBeGreaterThan(1e-3);
    },
    120_000,
  );

  it('runs the adapter once per sampling run (it depends only on the hint), not once per step', async () => {
    const net = load('full.safetensors') as T2IAdapterModel;
    const [p, n] = apply(pos, neg, net, 1);
    const before = net.runs.adapter;
    await ksample({ ...base, positive: p, negative: n });
    expect(net.runs.adapter - before).toBe(1);
  }, 120_000);

  it('strength 0 and a range outside the schedule equal no adapter exactly; strength scales every feature', async () => {
    const net = load('full.safetensors');
    const [p0, n0] = apply(pos, neg, net, 0);
    expect(p0).toBe(pos);
    expect(n0).toBe(neg);
    const [p, n] = apply(pos, neg, net, 1, 1, 1);
    expect((await ksample({ ...base, positive: p, negative: n })).samples.data).toEqual(plain.samples.data);

    const req: ControlRequest = {
      x: { shape: [1, 4, 8, 8], data: lcg(256, 9) },
      sigma: 3,
      timesteps: new Float32Array([ms.timestep(3)]),
      context: pos[0].cond,
      chunks: 1,
      area: { x: 0, y: 0, h: 8, w: 8 },
      modelSampling: ms,
    };
    const r1 = (await apply(pos, neg, net, 1)[0][0].control!.getControl(req))!;
    const r3 = (await apply(pos, neg, net, 0.3)[0][0].control!.getControl(req))!;
    expect(r1.afterInput!.map((t) => t !== undefined)).toEqual([
      false,
      false,
      true,
      false,
      false,
      true,
      false,
      false,
      true,
      false,
      false,
      true,
    ]);
    r1.afterInput!.forEach((t, i) =>
      t ? expect(r3.afterInput![i]!.data).toEqual(t.data.map((v) => Math.fround(v * Math.fround(0.3)))) : undefined,
    );
    // Outside [σ(end), σ(start)] the adapter gives nothing.
    const late = apply(pos, neg, net, 1, 0.5, 1)[0][0].control!;
    expect(await late.getControl({ ...req, sigma: ms.percentToSigma(0.5) * 1.001 })).toBeUndefined();
    expect(await late.getControl({ ...req, sigma: ms.percentToSigma(0.5) })).toBeDefined();
  }, 120_000);

  it('chained after a ControlNet: the ControlNet residuals at the skips, the adapter features after the input blocks', async () => {
    const cn = load('cn.safetensors');
    const ad = load('full.safetensors');
    const [p1, n1] = apply(pos, neg, cn, 0.6);
    const [p2, n2] = apply(p1, n1, ad, 0.9);
    const req: ControlRequest = {
      x: { shape: [2, 4, 8, 8], data: lcg(512, 9) },
      sigma: 5,
      timesteps: new Float32Array([ms.timestep(5), ms.timestep(5)]),
      context: { shape: [2, 77, 64], data: lcg(2 * 77 * 64, 3) },
      chunks: 2,
      area: { x: 0, y: 0, h: 8, w: 8 },
      modelSampling: ms,
    };
    const a = (await p1[0].control!.getControl(req))!;
    const b = (await p2[0].control!.getControl(req))!;
    const sum = (await chainResiduals(p2[0].control!, req))!;
    sum.input.forEach((t, i) => expect(t!.data).toEqual(a.input[i]!.data));
    expect(sum.afterInput!.map((t) => t?.data)).toEqual(b.afterInput!.map((t) => t?.data));
    const chained = await ksample({ ...base, positive: p2, negative: n2 });
    const onlyCn = await ksample({ ...base, positive: p1, negative: n1 });
    expect(relErr(chained.samples.data, onlyCn.samples.data)).toBeGreaterThan(1e-3);
  }, 120_000);

  it('refuses an RGB adapter given a one-channel hint, naming the channel counts', async () => {
    const grey: Tensor = { shape: [1, 64, 64, 1], data: new Float32Array(4096) };
    const [p, n] = ControlNetApplyAdvanced.run(
      { positive: pos, negative: neg, control_net: load('full.safetensors'), image: grey, strength: 1, start_percent: 0, end_percent: 1 },
      noCtx,
    ) as [Conditioning, Conditioning];
    await expect(ksample({ ...base, positive: p, negative: n })).rejects.toThrow(/hint image has 1 channels; this adapter takes 3/);
  }, 120_000);
});
