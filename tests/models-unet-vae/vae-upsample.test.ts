import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { MapWeightSource } from '../../engine/core/weights.ts';
import { buildVaeDecoderGraph, upsampleConv } from '../../engine/models/families/sd1/graphs/vae-graph.ts';
import { makeTiny } from '../models-onnx/tiny.ts';
import { conv2d, resizeNearest } from '../../engine/models/families/sd1/reference/layers.ts';
import { GraphBuilder } from '../../engine/onnx/graph.ts';
import { Net, type LayerHook, type NetOptions } from '../../engine/onnx/nn.ts';
import { Rng } from '../../engine/models/generate/rng.ts';

const F32: NetOptions = { dtype: 'float32', fusedAttention: true };

/** `upsampleConv` alone as a graph over a [B, C, H, W] input; returns its output and op types. */
async function run(x: { shape: number[]; data: Float32Array }, w: Float32Array, b: Float32Array, opts: NetOptions = F32) {
  const [, C] = x.shape;
  const ws = new MapWeightSource(
    new Map([
      ['up.conv.weight', { shape: [C, C, 3, 3], data: w }],
      ['up.conv.bias', { shape: [C], data: b }],
    ]),
  );
  const g = new GraphBuilder('up');
  const n = new Net(g, ws, opts);
  const input = g.input('x', 'float32', ['b', C, 'h', 'w']);
  g.output(upsampleConv(n, 'up.conv', input), 'y', 'float32', ['b', C, 'oh', 'ow']);
  const model = g.toBuffer();
  const ops = onnxProto.onnx.ModelProto.decode(model).graph!.node!.map((node) => node.opType ?? '');
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'all' });
  const out = await session.run({ x: new ort.Tensor('float32', x.data, x.shape) });
  await session.release();
  const y = out.y as ort.Tensor;
  return { dims: [...y.dims], data: y.data as Float32Array, ops };
}

function random(seed: number, n: number, scale: number): Float32Array {
  return new Rng(seed).normal(new Float32Array(n), scale);
}

describe('VAE decoder upsampling fused into its conv', () => {
  it('equals nearest 2× upsampling then the 3×3 conv (reference layers), non-square, batch 2', async () => {
    const [B, C, H, W] = [2, 16, 5, 7];
    const x = { shape: [B, C, H, W], data: random(1, B * C * H * W, 1) };
    const w = random(2, C * C * 9, 1 / Math.sqrt(C * 9));
    const b = random(3, C, 0.1);
    const y = await run(x, w, b);
    const ref = conv2d(resizeNearest(x, 2 * H, 2 * W), w, [C, C, 3, 3], b, { pad: 1 });
    expect(y.dims).toEqual([B, C, 2 * H, 2 * W]);
    let maxErr = 0;
    let maxRef = 0;
    for (let i = 0; i < ref.data.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(y.data[i] - ref.data[i]));
      maxRef = Math.max(maxRef, Math.abs(ref.data[i]));
    }
    // Float rounding only (the fused taps are summed before the multiply); a wrong pad or phase order
    // would be off by the size of the values themselves.
    expect(maxRef).toBeGreaterThan(0.5);
    expect(maxErr / maxRef).toBeLessThan(1e-6);
  });

  it('an all-ones kernel on a one-hot input lights exactly the 4×4 block the unfused pair would', async () => {
    // One input pixel at (1, 2) upsamples to the 2×2 block rows 2–3, cols 4–5; a 3×3 box filter spreads
    // it to rows 1–4, cols 3–6, where each output counts how many of the 4 upsampled copies it covers.
    const [H, W] = [4, 5];
    const data = new Float32Array(H * W);
    data[1 * W + 2] = 1;
    const y = await run({ shape: [1, 1, H, W], data }, new Float32Array(9).fill(1), new Float32Array(1));
    const expected = new Float32Array(4 * H * W);
    for (let r = 1; r <= 4; r++)
      for (let c = 3; c <= 6; c++) expected[r * 2 * W + c] = (r === 1 || r === 4 ? 1 : 2) * (c === 3 || c === 6 ? 1 : 2);
    expect([...y.data]).toEqual([...expected]);
  });

  it('keeps the resize and the checkpoint conv when a layer hook may change that conv (a LoRA branch)', async () => {
    const C = 4;
    const x = { shape: [1, C, 3, 3], data: random(4, C * 9, 1) };
    const w = random(5, C * C * 9, 0.3);
    const b = new Float32Array(C);
    const seen: string[] = [];
    const hook: LayerHook = {
      layer: (_n, call) => {
        seen.push(call.key);
        return undefined;
      },
      touches: (key) => key === 'up.conv',
    };
    const hooked = await run(x, w, b, { ...F32, layerHooks: [hook] });
    const fused = await run(x, w, b);
    expect(seen).toEqual(['up.conv']);
    // Unfused: Resize + Conv; fused: four Convs, a Concat and a DepthToSpace.
    expect(hooked.ops.filter((op) => op !== 'Identity')).toEqual(['Resize', 'Conv']);
    expect(fused.ops.filter((op) => op !== 'Identity')).toEqual(['Conv', 'Conv', 'Conv', 'Conv', 'Concat', 'DepthToSpace']);
    const ref = conv2d(resizeNearest(x, 6, 6), w, [C, C, 3, 3], b, { pad: 1 });
    for (const y of [hooked, fused]) for (let i = 0; i < ref.data.length; i++) expect(y.data[i]).toBeCloseTo(ref.data[i], 5);
  });
});

describe('the decoder checkpoints build by default', () => {
  it('keeps nearest resize + conv unless fuseUpsample is asked for, so SD1 decodes stay bit-identical', async () => {
    const tiny = await makeTiny(3);
    const ops = (fuseUpsample?: boolean) =>
      onnxProto.onnx.ModelProto.decode(buildVaeDecoderGraph(tiny.cfg.vae, tiny.vae, F32, { fuseUpsample }).toBuffer()).graph!.node!.map(
        (node) => node.opType ?? '',
      );
    const levels = tiny.cfg.vae.chMult.length - 1;
    const plain = ops();
    expect(plain.filter((op) => op === 'Resize').length).toBe(levels);
    expect(plain).not.toContain('DepthToSpace');
    const fused = ops(true);
    expect(fused.filter((op) => op === 'DepthToSpace').length).toBe(levels);
    expect(fused).not.toContain('Resize');
  });
});
