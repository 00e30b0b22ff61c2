import * as ort from 'onnxruntime-node';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { MapWeightSource } from '../../engine/core/weights.ts';
import { SafetensorsWriter } from '../../engine/formats/safetensors.ts';
import { pixelUnshuffle } from '../../engine/models/controlnet/adapter.ts';
import { ADAPTER_IO, adapterOutputName, buildAdapterGraph } from '../../engine/models/controlnet/adapter-graph.ts';
import { adapterLayout, type T2IAdapterConfig } from '../../engine/models/controlnet/adapter-layout.ts';
import { adapterConfigFor, makeAdapterFile, randomAdapterWeights } from '../../engine/models/controlnet/generate-adapter.ts';
import { readControlModel, readControlNet } from '../../engine/models/controlnet/load.ts';
import { buildUnetGraph, controlAfterInputName, controlInputName, UNET_IO } from '../../engine/models/families/sd1/graphs/unet-graph.ts';
import { pixelUnshuffleRef, t2iAdapterRef } from '../../engine/models/families/sd1/reference/t2i-adapter.ts';
import { unetForwardRef } from '../../engine/models/families/sd1/reference/unet.ts';
import { unetPlan } from '../../engine/models/families/sd1/unet-plan.ts';
import { lcg, makeTiny, relErr } from '../models-onnx/tiny.ts';
import { TINY_CN, tempDir } from './helpers.ts';

/*
 * T2I-Adapters: the adapter graph against ComfyUI's adapter.py in plain loops (full with 1×1 and 3×3
 * kernels, average-pool and conv downsampling, light), odd sizes included; the production pixel
 * unshuffle against torch's rule; the layouts ComfyUI's load_t2i_adapter reads; and the UNet's
 * input-block residuals against the reference UNet, with zero residuals leaving it bit-for-bit as is.
 */

const TOL = 1e-4;
/** Bitwise equality of two float arrays (vitest's deep equality walks large typed arrays slowly). */
const same = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const feed = (t: Tensor): ort.Tensor => new ort.Tensor('float32', t.data, [...t.shape]);
const hintOf = (b: number, c: number, h: number, w: number, seed: number): Tensor => ({
  shape: [b, c, h, w],
  data: lcg(b * c * h * w, seed).map((v) => (v + 1) / 2),
});

async function checkAdapter(cfg: T2IAdapterConfig, hint: Tensor, seed: number): Promise<void> {
  const ws = new MapWeightSource(randomAdapterWeights(cfg, seed));
  const s = await ort.InferenceSession.create(buildAdapterGraph(cfg, ws, { dtype: 'float32', fusedAttention: false }).toBuffer(), {
    logSeverityLevel: 3,
  });
  const out = await s.run({ [ADAPTER_IO.hint]: feed(pixelUnshuffle(hint, 8)) });
  const ref = t2iAdapterRef(cfg, ws, hint);
  expect(ref).toHaveLength(cfg.channels.length);
  ref.forEach((r, i) => {
    const o = out[adapterOutputName(i)];
    expect(o.dims, `level ${i}`).toEqual(r.shape);
    expect(r.shape[1]).toBe(cfg.channels[i]);
    expect(relErr(o.data as Float32Array, r.data), `level ${i}`).toBeLessThan(TOL);
  });
  await s.release();
}

describe('T2I-Adapter graph against the reference (adapter.py in plain loops)', () => {
  const unet = TINY_CN.unet;

  it('pixel unshuffle follows torch.nn.PixelUnshuffle exactly', () => {
    const t = hintOf(2, 3, 16, 24, 1);
    const a = pixelUnshuffle(t, 8);
    const b = pixelUnshuffleRef(t, 8);
    expect(a.shape).toEqual([2, 192, 2, 3]);
    expect(a.data).toEqual(b.data);
  });

  it('full adapter, 1×1 kernels, average-pool downsampling (t2iadapter_*_sd14v1), RGB, batch 2', async () => {
    await checkAdapter(adapterConfigFor(unet, { ksize: 1 }), hintOf(2, 3, 64, 64, 2), 11);
  });

  it('full adapter, 3×3 kernels, conv downsampling, one-channel hint, odd feature sizes (a 72×40 hint: 9×5 → 5×3 → 3×2 → 2×1)', async () => {
    await checkAdapter(adapterConfigFor(unet, { ksize: 3, useConv: true, imageChannels: 1 }), hintOf(1, 1, 72, 40, 3), 12);
  });

  it('full adapter with average pooling at odd sizes (padding H % 2, W % 2 with zeros counted)', async () => {
    await checkAdapter(adapterConfigFor(unet, { ksize: 1 }), hintOf(1, 3, 56, 88, 4), 13);
  });

  it('light adapter (extractors with ResnetBlock_light), odd sizes', async () => {
    await checkAdapter(adapterConfigFor(unet, { kind: 'light' }), hintOf(1, 3, 72, 40, 5), 14);
  });
});

describe('T2I-Adapter files', () => {
  it("reads ComfyUI's full and light layouts and diffusers' full layout (renamed as ComfyUI does) to the same weights", () => {
    const dir = tempDir();
    const full = adapterConfigFor(TINY_CN.unet, { ksize: 1 });
    const w = makeAdapterFile(join(dir, 'full.safetensors'), full, { seed: 3 });
    makeAdapterFile(join(dir, 'diff.safetensors'), full, { seed: 3, layout: 'diffusers' });
    const a = readControlModel(join(dir, 'full.safetensors'));
    const b = readControlModel(join(dir, 'diff.safetensors'));
    if (a.kind !== 't2i-adapter' || b.kind !== 't2i-adapter') throw new Error('not read as adapters');
    expect(a.adapter.config).toEqual(full);
    expect(b.adapter.config).toEqual(full);
    expect(b.adapter.layout).toBe('diffusers');
    expect(b.adapter.weights.names().sort()).toEqual([...adapterLayout(full).keys()].sort());
    for (const [k, t] of w) expect(same(b.adapter.weights.get(k), t.data), k).toBe(true);

    const light = adapterConfigFor(TINY_CN.unet, { kind: 'light' });
    makeAdapterFile(join(dir, 'light.safetensors'), light, { seed: 4, dtype: 'F16' });
    const l = readControlModel(join(dir, 'light.safetensors'));
    expect(l.kind === 't2i-adapter' && l.adapter.config).toEqual(light);
    const conv = adapterConfigFor(TINY_CN.unet, { ksize: 3, useConv: true, imageChannels: 1 });
    makeAdapterFile(join(dir, 'conv.safetensors'), conv, { seed: 5 });
    const c = readControlModel(join(dir, 'conv.safetensors'));
    expect(c.kind === 't2i-adapter' && c.adapter.config).toEqual(conv);
    // A ControlNet file is still a ControlNet; the ControlNet reader names an adapter for what it is.
    expect(() => readControlNet(join(dir, 'full.safetensors'))).toThrow(/full\.safetensors is a T2I-Adapter/);
  });

  it('reads a conv_in of 768 as an SDXL adapter (tests/sdxl/t2i-adapter.test.ts runs it), and refuses a truncated or inconsistent one naming the tensor', () => {
    const dir = tempDir();
    const xl = { ...adapterConfigFor(TINY_CN.unet, { ksize: 1 }), cin: 768 };
    makeAdapterFile(join(dir, 'xl.safetensors'), xl);
    const r = readControlModel(join(dir, 'xl.safetensors'));
    expect(r.kind === 't2i-adapter' && r.adapter.config.xl).toBe(true);
    // ComfyUI's xl adapter has four levels; three with a conv_in of 768 are refused, naming the file.
    const three = { ...xl, channels: xl.channels.slice(0, 3) };
    makeAdapterFile(join(dir, 'xl3.safetensors'), three);
    expect(() => readControlModel(join(dir, 'xl3.safetensors'))).toThrow(/xl3\.safetensors: SDXL T2I-Adapter .* has 3 levels/);

    const cfg = adapterConfigFor(TINY_CN.unet, { ksize: 1 });
    const w = randomAdapterWeights(cfg);
    const keys = [...adapterLayout(cfg)].filter(([k]) => k !== 'body.5.block2.bias');
    const f = join(dir, 'partial.safetensors');
    const sw = SafetensorsWriter.create(
      f,
      keys.map(([k, s]) => ({ name: k, dtype: 'F32' as const, shape: s })),
    );
    for (const [k] of keys) sw.write(k, w.get(k)!.data);
    sw.finish();
    expect(() => readControlModel(f)).toThrow(/partial\.safetensors.*missing body\.5\.block2\.bias/);
  });
});

describe('the UNet with T2I-Adapter residuals after its input blocks', () => {
  it('matches the reference UNet (residuals after blocks 2, 5, 8, 11, batch-1 broadcast), and zero residuals change nothing, bit for bit', async () => {
    const tiny = await makeTiny(3);
    const cfg = tiny.cfg.unet;
    const plan = unetPlan(cfg);
    const B = 2;
    const H = 6;
    const W = 10;
    const x: Tensor = { shape: [B, 4, H, W], data: lcg(B * 4 * H * W, 21) };
    const t = new Float32Array([800, 120.5]);
    const ctx: Tensor = { shape: [B, 77, cfg.contextDim], data: lcg(B * 77 * cfg.contextDim, 22) };
    const zero = new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]);
    const base = (): Record<string, ort.Tensor> => {
      const f: Record<string, ort.Tensor> = {
        [UNET_IO.x]: feed(x),
        [UNET_IO.timesteps]: new ort.Tensor('float32', t, [B]),
        [UNET_IO.context]: feed(ctx),
        [UNET_IO.controlMid]: zero,
      };
      for (let i = 0; i < plan.input.length; i++) f[controlInputName(i)] = zero;
      return f;
    };
    const opts = { dtype: 'float32' as const, fusedAttention: true };
    const withInputs = await ort.InferenceSession.create(buildUnetGraph(cfg, tiny.unet, opts, { adapterInputs: true }).toBuffer(), {
      logSeverityLevel: 3,
    });
    const without = await ort.InferenceSession.create(buildUnetGraph(cfg, tiny.unet, opts).toBuffer(), { logSeverityLevel: 3 });

    const zeros = base();
    for (let i = 0; i < plan.input.length; i++) zeros[controlAfterInputName(i)] = zero;
    const a = (await withInputs.run(zeros))[UNET_IO.out].data as Float32Array;
    const b = (await without.run(base()))[UNET_IO.out].data as Float32Array;
    expect(same(a, b)).toBe(true);

    // Residuals shaped like the adapter's features: block 3l + 2's output, one row broadcast over the batch.
    const afterInput: (Tensor | undefined)[] = plan.input.map(() => undefined);
    const fed = base();
    for (let i = 0; i < plan.input.length; i++) fed[controlAfterInputName(i)] = zero;
    const sizes = [
      [H, W],
      [3, 5],
      [2, 3],
      [1, 2],
    ];
    [2, 5, 8, 11].forEach((blk, l) => {
      const [h, w] = sizes[l];
      const c = plan.input[blk].channels;
      const r: Tensor = { shape: [1, c, h, w], data: lcg(c * h * w, 30 + l, 0.5) };
      afterInput[blk] = { shape: [B, c, h, w], data: Float32Array.from({ length: B * c * h * w }, (_, k) => r.data[k % r.data.length]) };
      fed[controlAfterInputName(blk)] = feed(r);
    });
    const got = (await withInputs.run(fed))[UNET_IO.out].data as Float32Array;
    const ref = unetForwardRef(cfg, tiny.unet, x, t, ctx, { input: [], afterInput });
    expect(relErr(got, ref.data)).toBeLessThan(TOL);
    expect(relErr(got, b)).toBeGreaterThan(1e-3);
    await withInputs.release();
    await without.release();
  }, 120_000);
});
