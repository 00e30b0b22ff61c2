import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Latent, Tensor } from '../../engine/core/tensor.ts';
import { ControlNetControl } from '../../engine/models/controlnet/control.ts';
import { makeControlNetFile } from '../../engine/models/controlnet/generate.ts';
import { readControlNet, type ControlNetFile } from '../../engine/models/controlnet/load.ts';
import type { ControlNetModel } from '../../engine/models/controlnet/model.ts';
import type { ControlResiduals, ModelHandle } from '../../engine/models/handles.ts';
import { controlNetRef } from '../../engine/models/families/sd1/reference/controlnet.ts';
import { commonUpscale } from '../../engine/image/resize.ts';
import { nhwcToNchw } from '../../engine/image/layout.ts';
import type { Conditioning, Control, ControlRequest } from '../../engine/sampling/conditioning.ts';
import { chainResiduals } from '../../engine/sampling/control.ts';
import { ksample, type KSamplerArgs } from '../../engine/sampling/ksampler.ts';
import { ModelSamplingDiscrete } from '../../engine/sampling/model-sampling.ts';
import { ksamplerSigmas } from '../../engine/sampling/schedulers.ts';
import { ControlNetApply, ControlNetApplyAdvanced, ControlNetLoader } from '../../nodes/controlnet/controlnet.ts';
import '../../nodes/model/services.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { loadSd1ControlRig } from './helpers.ts';

/*
 * ControlNet in a whole KSampler run on the tiny model with a random tiny ControlNet, through
 * ComfyUI's nodes: against a run fed the reference residuals, and the rules of strength, range,
 * chains, the hint encoder's single run and cond/uncond sharing.
 */

let model: ModelHandle;
let pos: Conditioning;
let neg: Conditioning;
let net: ControlNetModel;
let cn: ControlNetFile;
let base: KSamplerArgs;
let plain: Latent;
const ms = new ModelSamplingDiscrete();
/** A 40×72 hint for a 64×64 output: centre-cropped and resized, as ComfyUI does. */
const image: Tensor = { shape: [1, 40, 72, 3], data: lcg(40 * 72 * 3, 5).map((v) => (v + 1) / 2) };
const noCtx = {} as never;

const applyAdvanced = (
  positive: Conditioning,
  negative: Conditioning,
  strength: number,
  start = 0,
  end = 1,
  cnet = net,
): [Conditioning, Conditioning] =>
  ControlNetApplyAdvanced.run(
    { positive, negative, control_net: cnet, image, strength, start_percent: start, end_percent: end },
    noCtx,
  ) as [Conditioning, Conditioning];

beforeAll(async () => {
  const rig = await loadSd1ControlRig(7, 'a red fox in the snow', { seed: 42n, steps: 4, cfg: 7 });
  const { tiny, ctx } = rig;
  ({ model, pos, neg, base } = rig);
  const file = join(tiny.dir, 'controlnet', 'weft-tiny-controlnet.safetensors');
  makeControlNetFile(file, { unet: tiny.cfg.unet, hintChannels: 3 }, { seed: 8 });
  cn = readControlNet(file);
  net = (ControlNetLoader.run({ control_net_name: 'weft-tiny-controlnet.safetensors' }, ctx) as [ControlNetModel])[0];
  plain = await ksample(base);
}, 120_000);

/** The ControlNet as the reference computes it, as a Control: cldm in plain loops on the same inputs ComfyUI gives it. */
function referenceControl(strength: number): Control {
  return {
    async getControl(req: ControlRequest): Promise<ControlResiduals> {
      const [, , h, w] = req.x.shape;
      const hint = commonUpscale(nhwcToNchw(image), w * 8, h * 8, 'nearest-exact', 'center');
      const x = { shape: req.x.shape, data: ms.calculateInput(req.sigma, req.x.data) };
      const r = controlNetRef(cn.config, cn.weights, x, req.timesteps, req.context, hint);
      const scale = (t: Tensor): Tensor => ({ shape: t.shape, data: t.data.map((v) => Math.fround(v * strength)) });
      return { input: r.input.map(scale), middle: scale(r.middle) };
    },
  };
}

describe('ControlNet in a KSampler run (tiny model)', () => {
  it("the ControlNet file has the model's UNet structure", () => {
    expect(net.config.unet).toEqual(cn.config.unet);
  });

  it('ControlNetApplyAdvanced equals a run fed the reference residuals, and changes the result', async () => {
    const [p, n] = applyAdvanced(pos, neg, 0.8);
    const got = await ksample({ ...base, positive: p, negative: n });
    const ref = referenceControl(0.8);
    const want = await ksample({
      ...base,
      positive: pos.map((e) => ({ ...e, control: ref })),
      negative: neg.map((e) => ({ ...e, control: ref })),
    });
    expect(relErr(got.samples.data, want.samples.data)).toBeLessThan(1e-4);
    expect(relErr(got.samples.data, plain.samples.data)).toBeGreaterThan(1e-3);
  }, 120_000);

  it('runs the hint encoder once per sampling run and the control net once per batched model call (cond and uncond share it)', async () => {
    const [p, n] = applyAdvanced(pos, neg, 1);
    expect(p[0].control).toBe(n[0].control);
    const before = { ...net.runs };
    await ksample({ ...base, positive: p, negative: n });
    expect(net.runs.hint - before.hint).toBe(1);
    expect(net.runs.net - before.net).toBe(base.steps);
  }, 120_000);

  it('strength 0 returns the conditioning unchanged (the run equals no ControlNet exactly); strength scales every residual', async () => {
    const [p, n] = applyAdvanced(pos, neg, 0);
    expect(p).toBe(pos);
    expect(n).toBe(neg);
    expect((await ksample({ ...base, positive: p, negative: n })).samples.data).toEqual(plain.samples.data);

    const [p1] = applyAdvanced(pos, neg, 1);
    const [p3] = applyAdvanced(pos, neg, 0.3);
    const req: ControlRequest = {
      x: { shape: [1, 4, 8, 8], data: lcg(256, 9) },
      sigma: 3,
      timesteps: new Float32Array([ms.timestep(3)]),
      context: pos[0].cond,
      chunks: 1,
      area: { x: 0, y: 0, h: 8, w: 8 },
      modelSampling: ms,
    };
    const r1 = (await p1[0].control!.getControl(req))!;
    const r3 = (await p3[0].control!.getControl(req))!;
    expect(r1.input).toHaveLength(12);
    r1.input.forEach((t, i) => expect(r3.input[i]!.data).toEqual(t!.data.map((v) => Math.fround(v * Math.fround(0.3)))));
    expect(r3.middle!.data).toEqual(r1.middle!.data.map((v) => Math.fround(v * Math.fround(0.3))));
  }, 120_000);

  it('a range outside the schedule equals no ControlNet exactly and never runs it', async () => {
    const [p, n] = applyAdvanced(pos, neg, 1, 1, 1);
    const before = net.runs.net;
    expect((await ksample({ ...base, positive: p, negative: n })).samples.data).toEqual(plain.samples.data);
    expect(net.runs.net).toBe(before);
  }, 120_000);

  it('start/end percent map to sigmas through the model (percent_to_sigma), not to steps', async () => {
    const [p] = applyAdvanced(pos, neg, 1, 0.25, 0.6);
    const c = p[0].control!;
    const hi = ms.percentToSigma(0.25);
    const lo = ms.percentToSigma(0.6);
    const req = (sigma: number): ControlRequest => ({
      x: { shape: [1, 4, 8, 8], data: lcg(256, 9) },
      sigma,
      timesteps: new Float32Array([ms.timestep(sigma)]),
      context: pos[0].cond,
      chunks: 1,
      area: { x: 0, y: 0, h: 8, w: 8 },
      modelSampling: ms,
    });
    expect(await c.getControl(req(hi * 1.001))).toBeUndefined();
    expect(await c.getControl(req(hi))).toBeDefined();
    expect(await c.getControl(req(lo))).toBeDefined();
    expect(await c.getControl(req(lo * 0.999))).toBeUndefined();

    // In a run: the control runs at exactly the steps whose sigma lies in [σ(0.6), σ(0.25)].
    const sigmas = ksamplerSigmas(ms, 'normal', 10, 1, 'euler');
    const inRange = Array.from(sigmas.subarray(0, -1)).filter((s) => s <= hi && s >= lo).length;
    expect(inRange).toBeGreaterThan(0);
    expect(inRange).toBeLessThan(10);
    const [pp, nn] = applyAdvanced(pos, neg, 1, 0.25, 0.6);
    const before = net.runs.net;
    await ksample({ ...base, steps: 10, positive: pp, negative: nn });
    expect(net.runs.net - before).toBe(inRange);
  }, 120_000);

  it('a chain of two ControlNets sums their residuals, each with its own strength and range', async () => {
    const [p1, n1] = applyAdvanced(pos, neg, 0.5);
    const [p2, n2] = applyAdvanced(p1, n1, 0.7, 0, 0.5);
    expect(p2[0].control!.previous).toBe(p1[0].control);
    expect(n2[0].control).toBe(p2[0].control);
    const req = (sigma: number): ControlRequest => ({
      x: { shape: [2, 4, 8, 8], data: lcg(512, 9) },
      sigma,
      timesteps: new Float32Array([ms.timestep(sigma), ms.timestep(sigma)]),
      context: { shape: [2, 77, 64], data: lcg(2 * 77 * 64, 3) },
      chunks: 2,
      area: { x: 0, y: 0, h: 8, w: 8 },
      modelSampling: ms,
    });
    const high = req(10);
    const a = (await p1[0].control!.getControl(high))!;
    const b = (await p2[0].control!.getControl(high))!;
    const sum = (await chainResiduals(p2[0].control!, high))!;
    sum.input.forEach((t, i) => expect(t!.data).toEqual(a.input[i]!.data.map((v, k) => v + b.input[i]!.data[k])));
    expect(sum.middle!.data).toEqual(a.middle!.data.map((v, k) => v + b.middle!.data[k]));
    // Below σ(0.5) only the first applies.
    const low = req(0.1);
    const onlyA = (await chainResiduals(p2[0].control!, low))!;
    expect(onlyA.middle!.data).toEqual((await p1[0].control!.getControl(low))!.middle!.data);

    const chained = await ksample({ ...base, positive: p2, negative: n2 });
    expect(relErr(chained.samples.data, plain.samples.data)).toBeGreaterThan(1e-3);
  }, 120_000);

  it('legacy ControlNetApply also reaches the negative (control_apply_to_uncond): the same run as ControlNetApplyAdvanced over the whole schedule', async () => {
    const [legacy] = ControlNetApply.run({ conditioning: pos, control_net: net, image, strength: 0.8 }, noCtx) as [Conditioning];
    expect(legacy[0].controlApplyToUncond).toBe(true);
    const [p, n] = applyAdvanced(pos, neg, 0.8);
    const a = await ksample({ ...base, positive: legacy, negative: neg });
    const b = await ksample({ ...base, positive: p, negative: n });
    expect(a.samples.data).toEqual(b.samples.data);
  }, 120_000);

  it('refuses a hint that is not RGB with a clear message', async () => {
    const grey: Tensor = { shape: [1, 64, 64, 1], data: new Float32Array(4096) };
    const [p, n] = ControlNetApplyAdvanced.run(
      { positive: pos, negative: neg, control_net: net, image: grey, strength: 1, start_percent: 0, end_percent: 1 },
      noCtx,
    ) as [Conditioning, Conditioning];
    await expect(ksample({ ...base, positive: p, negative: n })).rejects.toThrow(/hint image has 1 channels; this ControlNet takes 3/);
  }, 120_000);

  it("is the sampling layer's Control", () => {
    const [p] = applyAdvanced(pos, neg, 1);
    expect(p[0].control).toBeInstanceOf(ControlNetControl);
  });
});
