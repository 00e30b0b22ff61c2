import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { MapWeightSource, type WeightSource } from '../../engine/core/weights.ts';
import type { UNetConfig } from '../../engine/models/families/sd1/config.ts';
import {
  buildUnetGraph,
  controlInputName,
  inputAndMiddle,
  unetEmbedding,
  UNET_IO,
} from '../../engine/models/families/sd1/graphs/unet-graph.ts';
import { tinyConfig } from '../../engine/models/make-model.ts';
import { unetEncodeRef, unetForwardRef, type RefLayerHook } from '../../engine/models/families/sd1/reference/unet.ts';
import { attention, linear } from '../../engine/models/families/sd1/reference/layers.ts';
import { unetLayout } from '../../engine/models/families/sd1/layout.ts';
import { unetPlan } from '../../engine/models/families/sd1/unet-plan.ts';
import { GraphBuilder } from '../../engine/onnx/graph.ts';
import { Net, transpose2d, type LayerCall, type LayerHook, type NetOptions } from '../../engine/onnx/nn.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';

const TOL = 1e-4;

/** Random weights for a layout at a scale that keeps activations near 1 (fan-in scaled, norms near 1). */
function randomWeights(cfg: UNetConfig, seed: number): WeightSource {
  const map = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  let i = 0;
  for (const [name, shape] of unetLayout(cfg, '')) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = lcg(n, seed * 100_003 + i++);
    if (shape.length >= 2) {
      const s = 1 / Math.sqrt(n / shape[0]);
      for (let k = 0; k < n; k++) data[k] *= s;
    } else if (name.endsWith('.weight')) for (let k = 0; k < n; k++) data[k] = 1 + 0.1 * data[k];
    else for (let k = 0; k < n; k++) data[k] *= 0.05;
    map.set(name, { shape, data });
  }
  return new MapWeightSource(map);
}

const SD1_TINY: UNetConfig = tinyConfig(1000).unet;

/** SDXL's structure at tiny widths: 3 levels, no transformer at level 0, deeper ones below, 16-wide heads, linear projections, a label_emb. */
const XL_TINY: UNetConfig = {
  ...SD1_TINY,
  channelMult: [1, 2, 4],
  contextDim: 48,
  useLinearInProj: true,
  numHeadChannels: 16,
  admInChannels: 24,
  transformerDepths: { input: [0, 0, 1, 1, 2, 2], middle: 2, output: [0, 0, 0, 1, 1, 1, 2, 2, 2] },
};

interface Case {
  cfg: UNetConfig;
  ws: WeightSource;
  x: Tensor;
  t: Float32Array;
  ctx: Tensor;
  y?: Tensor;
}

function makeCase(cfg: UNetConfig, B: number, H: number, W: number, seed: number): Case {
  const c: Case = {
    cfg,
    ws: randomWeights(cfg, seed),
    x: { shape: [B, cfg.inChannels, H, W], data: lcg(B * cfg.inChannels * H * W, seed + 1) },
    t: Float32Array.from({ length: B }, (_, i) => 999 - 321.5 * i),
    ctx: { shape: [B, 7, cfg.contextDim], data: lcg(B * 7 * cfg.contextDim, seed + 2) },
  };
  if (cfg.admInChannels !== undefined) c.y = { shape: [B, cfg.admInChannels], data: lcg(B * cfg.admInChannels, seed + 3) };
  return c;
}

async function runGraph(c: Case, opts: Partial<NetOptions> = {}, y: Tensor | undefined = c.y): Promise<Float32Array> {
  const g = buildUnetGraph(c.cfg, c.ws, { dtype: 'float32', fusedAttention: false, ...opts });
  const s = await ort.InferenceSession.create(g.toBuffer(), { logSeverityLevel: 3 });
  const zero = new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]);
  const feeds: Record<string, ort.Tensor> = {
    [UNET_IO.x]: new ort.Tensor('float32', c.x.data, c.x.shape),
    [UNET_IO.timesteps]: new ort.Tensor('float32', c.t, [c.t.length]),
    [UNET_IO.context]: new ort.Tensor('float32', c.ctx.data, c.ctx.shape),
    [UNET_IO.controlMid]: zero,
  };
  if (y) feeds[UNET_IO.y] = new ort.Tensor('float32', y.data, y.shape);
  for (let i = 0; i < unetPlan(c.cfg).input.length; i++) feeds[controlInputName(i)] = zero;
  const out = (await s.run(feeds))[UNET_IO.out];
  await s.release();
  if (!(out.data instanceof Float32Array)) throw new Error('no float32 output');
  return out.data;
}

describe('an SDXL-shaped UNet (per-block depths, head width, linear projections, label_emb) from the same plan', () => {
  const c = makeCase(XL_TINY, 2, 9, 11, 40);

  it.each([false, true])('graph matches the reference net (fused attention: %s)', async (fusedAttention) => {
    const out = await runGraph(c, { fusedAttention });
    const ref = unetForwardRef(c.cfg, c.ws, c.x, c.t, c.ctx, undefined, { y: c.y });
    expect(ref.shape).toEqual([2, 4, 9, 11]);
    expect(relErr(out, ref.data)).toBeLessThan(TOL);
  });

  it('the y vector reaches the output through label_emb', async () => {
    const y2: Tensor = { shape: c.y!.shape, data: c.y!.data.map((v) => v + 0.5) };
    const out = await runGraph(c, {}, y2);
    expect(relErr(out, unetForwardRef(c.cfg, c.ws, c.x, c.t, c.ctx, undefined, { y: y2 }).data)).toBeLessThan(TOL);
    expect(relErr(out, unetForwardRef(c.cfg, c.ws, c.x, c.t, c.ctx, undefined, { y: c.y }).data)).toBeGreaterThan(1e-3);
  });

  it('refuses to build without the weights its plan names', () => {
    const sd1Weights = randomWeights(SD1_TINY, 1);
    expect(() => buildUnetGraph(XL_TINY, sd1Weights, { dtype: 'float32', fusedAttention: false })).toThrow(
      /weight 'label_emb\.0\.0\.weight' is missing/,
    );
  });
});

describe('layer hooks', () => {
  const c = makeCase(SD1_TINY, 1, 8, 8, 50);
  const addTo = (target: string, value: number): LayerHook => ({
    touches: (key) => key === target,
    layer: (n, call) => (call.key === target ? n.g.op1('Add', [call.output, n.scalar(value)]) : undefined),
  });
  const refAddTo =
    (target: string, value: number): RefLayerHook =>
    (key, _kind, y) =>
      key === target ? { shape: y.shape, data: y.data.map((v) => v + value) } : undefined;

  it('are called once for every linear and conv layer of the UNet, with its kind and conv geometry, from time_embed.0 to out.2', () => {
    const calls: LayerCall[] = [];
    const g = buildUnetGraph(SD1_TINY, c.ws, {
      dtype: 'float32',
      fusedAttention: false,
      layerHooks: [{ layer: (_n, call) => void calls.push(call) }],
    });
    const plain = buildUnetGraph(SD1_TINY, c.ws, { dtype: 'float32', fusedAttention: false });
    const layers = [...unetLayout(SD1_TINY, '')].filter(([k, s]) => k.endsWith('.weight') && s.length >= 2);
    expect(calls.map((k) => k.key).sort()).toEqual(layers.map(([k]) => k.slice(0, -'.weight'.length)).sort());
    for (const call of calls)
      expect(call.kind, call.key).toBe(unetLayout(SD1_TINY, '').get(`${call.key}.weight`)!.length === 4 ? 'conv' : 'linear');
    expect(calls[0].key).toBe('time_embed.0');
    expect(calls.at(-1)!.key).toBe('out.2');
    expect(calls.find((k) => k.key === 'input_blocks.3.0.op')!.conv).toEqual({ kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
    // A hook that returns nothing adds nothing.
    expect(g.nodeCount).toBe(plain.nodeCount);
  });

  it('a constant added to one named layer changes the output exactly as the same edit in the reference net', async () => {
    const layer = 'input_blocks.4.1.transformer_blocks.0.attn2.to_out.0';
    const plain = await runGraph(c);
    const hooked = await runGraph(c, { layerHooks: [addTo(layer, 0.25)] });
    const ref = unetForwardRef(c.cfg, c.ws, c.x, c.t, c.ctx, undefined, { layerHook: refAddTo(layer, 0.25) });
    expect(relErr(hooked, ref.data)).toBeLessThan(TOL);
    expect(relErr(hooked, plain)).toBeGreaterThan(1e-3);
    expect(relErr(plain, unetForwardRef(c.cfg, c.ws, c.x, c.t, c.ctx).data)).toBeLessThan(TOL);
  });

  it('on the last conv, the output moves by exactly that constant, and hooks run in order on the previous output', async () => {
    const plain = await runGraph(c);
    const twice = await runGraph(c, {
      layerHooks: [
        addTo('out.2', 0.5),
        { layer: (n, call) => (call.key === 'out.2' ? n.g.op1('Mul', [call.output, n.scalar(2)]) : undefined) },
      ],
    });
    let worst = 0;
    for (let i = 0; i < plain.length; i++) worst = Math.max(worst, Math.abs(twice[i] - 2 * (plain[i] + 0.5)));
    expect(worst).toBeLessThan(1e-5);
  });
});

describe('the exported blocks build a ControlNet-shaped graph (input blocks + middle block, hint after block 0)', () => {
  it.each([
    ['SD1', SD1_TINY],
    ['SDXL-shaped', XL_TINY],
  ])('%s: skips and middle match the reference encoder with the same hint', async (_name, cfg) => {
    const c = makeCase(cfg, 1, 8, 8, 60);
    const plan = unetPlan(cfg);
    const g = new GraphBuilder('controlnet_like');
    const n = new Net(g, c.ws, { dtype: 'float32', fusedAttention: false });
    const x = g.input('x', 'float32', ['batch', cfg.inChannels, 'h', 'w']);
    const t = g.input('timesteps', 'float32', ['batch']);
    const ctx = g.input('context', 'float32', ['batch', 'tokens', cfg.contextDim]);
    const y = cfg.admInChannels !== undefined ? g.input('y', 'float32', ['batch', cfg.admInChannels]) : undefined;
    const hint = g.input('hint', 'float32', ['batch', cfg.modelChannels, 'h', 'w']);
    const emb = unetEmbedding(n, plan, t, y);
    // cldm.py adds the guided hint to input block 0's output, before it becomes skip 0.
    const { skips, middle } = inputAndMiddle(n, plan, x, emb, ctx, (b, h) => (b.index === 0 ? g.op1('Add', [h, hint]) : h));
    skips.forEach((s, i) => g.output(s, `skip_${i}`, 'float32', ['batch', plan.skipChannels[i], `h${i}`, `w${i}`]));
    g.output(middle, 'middle', 'float32', ['batch', plan.skipChannels.at(-1)!, 'hm', 'wm']);
    const hintT: Tensor = { shape: [1, cfg.modelChannels, 8, 8], data: lcg(cfg.modelChannels * 64, 61, 0.5) };
    const s = await ort.InferenceSession.create(g.toBuffer(), { logSeverityLevel: 3 });
    const feeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor('float32', c.x.data, c.x.shape),
      timesteps: new ort.Tensor('float32', c.t, [1]),
      context: new ort.Tensor('float32', c.ctx.data, c.ctx.shape),
      hint: new ort.Tensor('float32', hintT.data, hintT.shape),
    };
    if (c.y) feeds.y = new ort.Tensor('float32', c.y.data, c.y.shape);
    const out = await s.run(feeds);
    const ref = unetEncodeRef(cfg, c.ws, c.x, c.t, c.ctx, {
      y: c.y,
      afterInputBlock: (i, h) => (i === 0 ? { shape: h.shape, data: h.data.map((v, k) => v + hintT.data[k]) } : h),
    });
    expect(ref.skips.map((r) => r.shape[1])).toEqual(plan.skipChannels);
    ref.skips.forEach((r, i) => {
      expect(out[`skip_${i}`].dims, `skip ${i}`).toEqual(r.shape);
      expect(relErr(out[`skip_${i}`].data as Float32Array, r.data), `skip ${i}`).toBeLessThan(TOL);
    });
    expect(relErr(out.middle.data as Float32Array, ref.middle.data)).toBeLessThan(TOL);
    await s.release();
  });
});

describe('an attention patch as a layer hook (the shape of IP-Adapter)', () => {
  /**
   * out = to_out(attn(q, k, v) + s · attn(q, t, t)) for extra tokens t fed as a graph input: the hook
   * keeps q from `to_q` and, at `to_out.0` (linear, so to_out(a + b) = to_out(a) + W·b), adds W·b.
   * IP-Adapter does this with its own k/v projections of image tokens.
   */
  const target = 'input_blocks.4.1.transformer_blocks.0.attn2';
  const c = makeCase(SD1_TINY, 1, 8, 8, 70);
  const width = 64;
  const heads = SD1_TINY.numHeads;
  const tokens: Tensor = { shape: [1, 4, width], data: lcg(4 * width, 71) };
  const scale = 0.7;

  const graphPatch = (): LayerHook => {
    const qs = new WeakMap<Net, string>();
    return {
      touches: (key) => key === `${target}.to_q` || key === `${target}.to_out.0`,
      layer(n, call) {
        if (call.key === `${target}.to_q`) qs.set(n, call.output);
        if (call.key !== `${target}.to_out.0`) return undefined;
        const t = n.g.input('extra_tokens', 'float32', [1, 4, width]);
        const extra = n.g.op1('Mul', [n.attention(qs.get(n)!, t, t, heads, width), n.scalar(scale)]);
        const w = n.weight(`${call.key}.weight`, [width, width], transpose2d, `${call.key}.weight.T`);
        return n.g.op1('Add', [call.output, n.g.op1('MatMul', [extra, w])]);
      },
    };
  };

  it('matches the reference net with the same extra attention, which does change the output', async () => {
    const g = buildUnetGraph(SD1_TINY, c.ws, { dtype: 'float32', fusedAttention: false, layerHooks: [graphPatch()] });
    const s = await ort.InferenceSession.create(g.toBuffer(), { logSeverityLevel: 3 });
    const zero = new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]);
    const feeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor('float32', c.x.data, c.x.shape),
      timesteps: new ort.Tensor('float32', c.t, [1]),
      context: new ort.Tensor('float32', c.ctx.data, c.ctx.shape),
      control_mid: zero,
      extra_tokens: new ort.Tensor('float32', tokens.data, tokens.shape),
    };
    for (let i = 0; i < unetPlan(SD1_TINY).input.length; i++) feeds[controlInputName(i)] = zero;
    const out = (await s.run(feeds)).out.data as Float32Array;
    await s.release();

    let q: Tensor | undefined;
    const refHook: RefLayerHook = (key, _kind, y) => {
      if (key === `${target}.to_q`) q = y;
      if (key !== `${target}.to_out.0`) return undefined;
      const a = attention(q!, tokens, tokens, heads);
      const b: Tensor = { shape: a.shape, data: a.data.map((v) => v * scale) };
      const wb = linear(b, c.ws.get(`${key}.weight`), c.ws.shape(`${key}.weight`), undefined);
      return { shape: y.shape, data: y.data.map((v, i) => v + wb.data[i]) };
    };
    const ref = unetForwardRef(SD1_TINY, c.ws, c.x, c.t, c.ctx, undefined, { layerHook: refHook });
    expect(relErr(out, ref.data)).toBeLessThan(TOL);
    expect(relErr(out, unetForwardRef(SD1_TINY, c.ws, c.x, c.t, c.ctx).data)).toBeGreaterThan(1e-3);
  });
});
