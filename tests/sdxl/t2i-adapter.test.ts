import * as ort from 'onnxruntime-node';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { MapWeightSource, type WeightSource } from '../../engine/core/weights.ts';
import { nhwcToNchw } from '../../engine/image/layout.ts';
import { commonUpscale } from '../../engine/image/resize.ts';
import { pixelUnshuffle, type T2IAdapterModel } from '../../engine/models/controlnet/adapter.ts';
import { ADAPTER_IO, adapterOutputName, buildAdapterGraph } from '../../engine/models/controlnet/adapter-graph.ts';
import type { T2IAdapterConfig } from '../../engine/models/controlnet/adapter-layout.ts';
import {
  adapterConfigFor,
  DEMO_SDXL_ADAPTER,
  makeDemoSdxlAdapter,
  randomAdapterWeights,
} from '../../engine/models/controlnet/generate-adapter.ts';
import { readControlModel } from '../../engine/models/controlnet/load.ts';
import { t2iAdapterRef } from '../../engine/models/families/sd1/reference/t2i-adapter.ts';
import type { ControlResiduals, ModelHandle } from '../../engine/models/handles.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { Conditioning, Control, ControlRequest } from '../../engine/sampling/conditioning.ts';
import { ksample, type KSamplerArgs } from '../../engine/sampling/ksampler.ts';
import { ControlNetApplyAdvanced, ControlNetLoader } from '../../nodes/controlnet/controlnet.ts';
import '../../nodes/model/services.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { loadSdxlControlRig } from './control-rig.ts';
import type { TinySdxl } from './tiny.ts';

/*
 * SDXL T2I-Adapters (ComfyUI's `Adapter(xl=True)`: a 16× pixel unshuffle, one downsample before level
 * 2, features after input blocks 3, 5, 8 and on the middle block): the graph against adapter.py in
 * plain loops, the diffusers layout TencentARC ships, and a KSampler run on the tiny SDXL against one
 * fed the reference adapter's residuals where ComfyUI's popping of control['input'] puts them.
 */

const TOL = 1e-4;
let tiny: TinySdxl;
let model: ModelHandle;
let pos: Conditioning;
let neg: Conditioning;
let base: KSamplerArgs;
let ctx: NodeContext;
let adapter: { cfg: T2IAdapterConfig; ws: WeightSource };
/** A 40×72 hint for a latent of another aspect: centre-cropped and resized as ComfyUI does. */
const image: Tensor = { shape: [1, 40, 72, 3], data: lcg(40 * 72 * 3, 5).map((v) => (v + 1) / 2) };

function readWs(file: string): { cfg: T2IAdapterConfig; ws: WeightSource; layout: string } {
  const r = readControlModel(file);
  if (r.kind !== 't2i-adapter') throw new Error(`${file} did not load as a T2I-Adapter`);
  return { cfg: r.adapter.config, ws: r.adapter.weights, layout: r.adapter.layout };
}

const hintOf = (c: number, h: number, w: number, seed: number): Tensor => ({
  shape: [1, c, h, w],
  data: lcg(c * h * w, seed).map((v) => (v + 1) / 2),
});

beforeAll(async () => {
  // 9×10: odd sizes, so the hint is rounded up to 16 (80×80) and the adapter's features meet the UNet's rounded-up sizes.
  ({ tiny, model, pos, neg, ctx, base } = await loadSdxlControlRig(21, { seed: 7n, steps: 3, latent: [1, 4, 9, 10] }));
  const file = makeDemoSdxlAdapter(tiny.file, tiny.dir, 3);
  adapter = readWs(file);
}, 120_000);
afterAll(() => tiny && rmSync(tiny.dir, { recursive: true, force: true }));

async function checkGraph(cfg: T2IAdapterConfig, hint: Tensor, seed: number): Promise<void> {
  const ws = new MapWeightSource(randomAdapterWeights(cfg, seed));
  const s = await ort.InferenceSession.create(buildAdapterGraph(cfg, ws, { dtype: 'float32', fusedAttention: false }).toBuffer(), {
    logSeverityLevel: 3,
  });
  const out = await s.run({
    [ADAPTER_IO.hint]: new ort.Tensor('float32', pixelUnshuffle(hint, 16).data, [1, cfg.cin, hint.shape[2] / 16, hint.shape[3] / 16]),
  });
  const ref = t2iAdapterRef(cfg, ws, hint);
  expect(ref).toHaveLength(4);
  ref.forEach((r, i) => {
    const o = out[adapterOutputName(i)];
    expect(o.dims, `level ${i}`).toEqual(r.shape);
    expect(relErr(o.data as Float32Array, r.data), `level ${i}`).toBeLessThan(TOL);
  });
  await s.release();
}

describe('SDXL T2I-Adapter graph against adapter.py (xl) in plain loops', () => {
  it('RGB hint, 1×1 kernels, average pooling; one downsample only (levels at 1/16, 1/16, 1/32, 1/32 of the hint)', async () => {
    const cfg = adapterConfigFor(tiny.cfg.unet, { xl: true });
    expect(cfg.cin).toBe(768);
    await checkGraph(cfg, hintOf(3, 80, 48, 2), 11);
    const ref = t2iAdapterRef(cfg, new MapWeightSource(randomAdapterWeights(cfg, 11)), hintOf(3, 80, 48, 2));
    expect(ref.map((f) => f.shape.slice(2))).toEqual([
      [5, 3],
      [5, 3],
      [3, 2],
      [3, 2],
    ]);
  });

  it('one-channel hint (conv_in of 256), 3×3 kernels, conv downsampling', async () => {
    await checkGraph(adapterConfigFor(tiny.cfg.unet, { xl: true, imageChannels: 1, ksize: 3, useConv: true }), hintOf(1, 48, 64, 3), 12);
  });
});

describe('SDXL T2I-Adapter files', () => {
  it('the diffusers layout (TencentARC t2i-adapter-*-sdxl) reads as ComfyUI reads it: xl told by a conv_in of 768', () => {
    expect(adapter.cfg).toMatchObject({ kind: 'full', cin: 768, xl: true, channels: [64, 128, 128, 128] });
    // The width change of level 1 is an in_conv without a downsample; level 2 has both.
    expect(adapter.ws.has('body.2.in_conv.weight')).toBe(true);
    expect(adapter.ws.has('body.4.in_conv.weight')).toBe(false);
    expect(adapter.cfg.useConv).toBe(false);
    expect(DEMO_SDXL_ADAPTER).toMatch(/^t2i_adapter\//);
  });
});

describe('SDXL T2I-Adapter in a KSampler run on the tiny SDXL', () => {
  /** adapter.py on the hint ComfyUI gives it, residuals placed as openaimodel's apply_control pops them (written out here, not taken from the code under test). */
  function referenceControl(strength: number): Control {
    return {
      async getControl(req: ControlRequest): Promise<ControlResiduals> {
        const [rows, , h, w] = req.x.shape;
        const up = (n: number): number => Math.ceil((n * 8) / 16) * 16;
        const hint = commonUpscale(nhwcToNchw(image), up(w), up(h), 'nearest-exact', 'center');
        const feats = t2iAdapterRef(adapter.cfg, adapter.ws, hint).map((f) => {
          const data = new Float32Array(rows * f.data.length);
          for (let i = 0; i < data.length; i++) data[i] = Math.fround(f.data[i % f.data.length] * strength);
          return { shape: [rows, ...f.shape.slice(1)], data };
        });
        const afterInput: (Tensor | undefined)[] = Array.from({ length: 9 }, () => undefined);
        afterInput[3] = feats[0];
        afterInput[5] = feats[1];
        afterInput[8] = feats[2];
        return { input: [], afterInput, middle: feats[3] };
      },
    };
  }

  it('ControlNetLoader + ControlNetApplyAdvanced equal a run fed the reference residuals, and change the result', async () => {
    const net = (ControlNetLoader.run({ control_net_name: DEMO_SDXL_ADAPTER.replace(/^t2i_adapter\//, '') }, ctx) as [T2IAdapterModel])[0];
    expect(net.kind).toBe('t2i-adapter');
    const [p, n] = ControlNetApplyAdvanced.run(
      { positive: pos, negative: neg, control_net: net, image, strength: 0.8, start_percent: 0, end_percent: 1, vae: undefined },
      {} as never,
    ) as [Conditioning, Conditioning];
    const got = await ksample({ ...base, positive: p, negative: n });
    const ref = referenceControl(0.8);
    const want = await ksample({
      ...base,
      positive: pos.map((e) => ({ ...e, control: ref })),
      negative: neg.map((e) => ({ ...e, control: ref })),
    });
    expect(relErr(got.samples.data, want.samples.data)).toBeLessThan(TOL);
    // One adapter run for the whole sampling run (3 steps, cond and uncond): the features do not depend on the step.
    expect(net.runs.adapter).toBe(1);
    const plain = await ksample(base);
    expect(relErr(got.samples.data, plain.samples.data)).toBeGreaterThan(1e-3);
  }, 180_000);
});
