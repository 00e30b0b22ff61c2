import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { MapWeightSource, type WeightSource } from '../../engine/core/weights.ts';
import { randomControlNetWeights } from '../../engine/models/controlnet/generate.ts';
import { buildControlNetGraph, buildHintGraph, CONTROLNET_IO, controlOutputName, HINT_IO } from '../../engine/models/controlnet/graph.ts';
import type { ControlNetConfig } from '../../engine/models/controlnet/layout.ts';
import { controlNetRef, hintEncodeRef } from '../../engine/models/families/sd1/reference/controlnet.ts';
import { unetPlan } from '../../engine/models/families/sd1/unet-plan.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { TINY_CN } from './helpers.ts';

const TOL = 1e-4;

async function session(g: { toBuffer(): Uint8Array }): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(g.toBuffer(), { logSeverityLevel: 3 });
}
const feed = (t: Tensor): ort.Tensor => new ort.Tensor('float32', t.data, [...t.shape]);

async function check(cfg: ControlNetConfig, ws: WeightSource, B: number, h: number, w: number, hintBatch: number): Promise<void> {
  const x: Tensor = { shape: [B, cfg.unet.inChannels, h, w], data: lcg(B * cfg.unet.inChannels * h * w, 11) };
  const t = Float32Array.from({ length: B }, (_, i) => 981 - 400.5 * i);
  const ctx: Tensor = { shape: [B, 7, cfg.unet.contextDim], data: lcg(B * 7 * cfg.unet.contextDim, 12) };
  const hint: Tensor = {
    shape: [hintBatch, cfg.hintChannels, h * 8, w * 8],
    data: lcg(hintBatch * cfg.hintChannels * h * w * 64, 13).map((v) => (v + 1) / 2),
  };

  const hs = await session(buildHintGraph(cfg, ws, { dtype: 'float32', fusedAttention: false }));
  const feats = (await hs.run({ [HINT_IO.hint]: feed(hint) }))[HINT_IO.out];
  const refFeats = hintEncodeRef(ws, hint);
  expect(feats.dims).toEqual(refFeats.shape);
  expect(relErr(feats.data as Float32Array, refFeats.data)).toBeLessThan(TOL);

  const ns = await session(buildControlNetGraph(cfg, ws, { dtype: 'float32', fusedAttention: true }));
  const out = await ns.run({
    [CONTROLNET_IO.x]: feed(x),
    [CONTROLNET_IO.timesteps]: new ort.Tensor('float32', t, [B]),
    [CONTROLNET_IO.context]: feed(ctx),
    [CONTROLNET_IO.hintFeatures]: feats,
  });
  const ref = controlNetRef(cfg, ws, x, t, ctx, hint);
  const plan = unetPlan(cfg.unet);
  expect(ref.input).toHaveLength(plan.input.length);
  ref.input.forEach((r, i) => {
    const o = out[controlOutputName(i)];
    expect(o.dims, `control_${i}`).toEqual(r.shape);
    expect(r.shape[1]).toBe(plan.skipChannels[i]);
    expect(relErr(o.data as Float32Array, r.data), `control_${i}`).toBeLessThan(TOL);
  });
  expect(relErr(out[CONTROLNET_IO.outMiddle].data as Float32Array, ref.middle.data)).toBeLessThan(TOL);
}

describe('ControlNet graphs against the reference (cldm in plain loops)', () => {
  const ws = new MapWeightSource(randomControlNetWeights(TINY_CN, 21));

  it('the hint encoder and the control net match, batch 2 with a batch-1 hint broadcast', async () => {
    await check(TINY_CN, ws, 2, 8, 8, 1);
  });

  it('odd latent sizes and a per-row hint', async () => {
    await check(TINY_CN, ws, 2, 5, 7, 2);
  });

  it('the residuals carry the hint: another hint changes every residual', async () => {
    const x: Tensor = { shape: [1, 4, 8, 8], data: lcg(256, 1) };
    const ctx: Tensor = { shape: [1, 7, 64], data: lcg(448, 2) };
    const t = new Float32Array([500]);
    const a = controlNetRef(TINY_CN, ws, x, t, ctx, { shape: [1, 3, 64, 64], data: new Float32Array(3 * 4096) });
    const b = controlNetRef(TINY_CN, ws, x, t, ctx, { shape: [1, 3, 64, 64], data: new Float32Array(3 * 4096).fill(1) });
    for (let i = 0; i < a.input.length; i++) expect(relErr(a.input[i].data, b.input[i].data), `${i}`).toBeGreaterThan(1e-3);
  });
});
