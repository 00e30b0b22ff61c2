import { createHash } from 'node:crypto';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildClipGraph } from '../../engine/models/families/sd1/graphs/clip-graph.ts';
import { buildUnetGraph, controlInputName, unetSkipCount } from '../../engine/models/families/sd1/graphs/unet-graph.ts';
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from '../../engine/models/families/sd1/graphs/vae-graph.ts';
import { clipForwardRef } from '../../engine/models/families/sd1/reference/clip.ts';
import { unetForwardRef } from '../../engine/models/families/sd1/reference/unet.ts';
import { vaeDecodeRef, vaeEncodeRef } from '../../engine/models/families/sd1/reference/vae.ts';
import type { Tensor } from '../../engine/core/tensor.ts';
import { MapWeightSource } from '../../engine/core/weights.ts';
import { SafetensorsFile } from '../../engine/formats/safetensors.ts';
import { SD1_PREFIX } from '../../engine/models/families/sd1/config.ts';
import { sd1Weights } from '../../engine/models/families/sd1/detect.ts';
import { makeAdapter } from '../../engine/models/generate/demo-adapters.ts';
import { parseAdapter } from '../../engine/models/lora/index.ts';
import { lowRankHook, splitPatches } from '../../engine/models/patching/low-rank.ts';
import type { PatchEntry } from '../../engine/models/patching/patch-set.ts';
import { unetPlan } from '../../engine/models/families/sd1/unet-plan.ts';
import { GraphBuilder } from '../../engine/onnx/graph.ts';
import { Net, type LayerHook } from '../../engine/onnx/nn.ts';
import { lcg, makeTiny, relErr, type Tiny } from './tiny.ts';

const TOL = 1e-4;
let tiny: Tiny;
beforeAll(async () => {
  tiny = await makeTiny(3);
});

const session = (buf: Uint8Array) => ort.InferenceSession.create(buf, { logSeverityLevel: 3 });
const f32 = (v: ort.OnnxValue | undefined): Float32Array => {
  if (!v || !(v.data instanceof Float32Array)) throw new Error('no float32 output');
  return v.data;
};

describe.each([
  ['explicit attention', false],
  ['ORT MultiHeadAttention', true],
])('graphs against the TypeScript reference (%s)', (_label, fusedAttention) => {
  const opts = { dtype: 'float32' as const, fusedAttention };

  it('UNet: batch 2, odd latent size, fractional timestep', async () => {
    const { cfg } = tiny;
    const s = await session(buildUnetGraph(cfg.unet, tiny.unet, opts).toBuffer());
    const B = 2,
      H = 9,
      W = 11,
      D = cfg.unet.contextDim;
    const x: Tensor = { shape: [B, 4, H, W], data: lcg(B * 4 * H * W, 1) };
    const ctx: Tensor = { shape: [B, 77, D], data: lcg(B * 77 * D, 2) };
    const t = new Float32Array([999, 10.5]);
    const zero = new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]);
    const feeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor('float32', x.data, x.shape),
      timesteps: new ort.Tensor('float32', t, [B]),
      context: new ort.Tensor('float32', ctx.data, ctx.shape),
      control_mid: zero,
    };
    for (let i = 0; i < unetSkipCount(cfg.unet); i++) feeds[controlInputName(i)] = zero;
    const out = await s.run(feeds);
    const ref = unetForwardRef(cfg.unet, tiny.unet, x, t, ctx);
    expect(out.out.dims).toEqual([B, 4, H, W]);
    expect(relErr(f32(out.out), ref.data)).toBeLessThan(TOL);
  });

  it('UNet: ControlNet residuals fed to the control inputs match the reference with the same residuals', async () => {
    const { cfg } = tiny;
    const s = await session(buildUnetGraph(cfg.unet, tiny.unet, opts).toBuffer());
    const B = 1,
      H = 8,
      W = 8,
      D = cfg.unet.contextDim;
    const x: Tensor = { shape: [B, 4, H, W], data: lcg(B * 4 * H * W, 5) };
    const ctx: Tensor = { shape: [B, 77, D], data: lcg(B * 77 * D, 6) };
    const t = new Float32Array([400]);
    // Skip shapes: level l has modelChannels·mult channels at H/2^l.
    const shapes: number[][] = [[B, cfg.unet.modelChannels, H, W]];
    cfg.unet.channelMult.forEach((m, l) => {
      for (let r = 0; r < cfg.unet.numResBlocks; r++) shapes.push([B, cfg.unet.modelChannels * m, H >> l, W >> l]);
      if (l < cfg.unet.channelMult.length - 1) shapes.push([B, cfg.unet.modelChannels * m, H >> (l + 1), W >> (l + 1)]);
    });
    expect(shapes.length).toBe(unetSkipCount(cfg.unet));
    const input = shapes.map((sh, i) =>
      i % 3 === 0
        ? {
            shape: sh,
            data: lcg(
              sh.reduce((a, b) => a * b, 1),
              100 + i,
              0.5,
            ),
          }
        : undefined,
    );
    const lastMult = cfg.unet.channelMult[cfg.unet.channelMult.length - 1];
    const ms = [B, cfg.unet.modelChannels * lastMult, H >> (cfg.unet.channelMult.length - 1), W >> (cfg.unet.channelMult.length - 1)];
    const middle = {
      shape: ms,
      data: lcg(
        ms.reduce((a, b) => a * b, 1),
        99,
        0.5,
      ),
    };
    const feeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor('float32', x.data, x.shape),
      timesteps: new ort.Tensor('float32', t, [B]),
      context: new ort.Tensor('float32', ctx.data, ctx.shape),
      control_mid: new ort.Tensor('float32', middle.data, middle.shape),
    };
    input.forEach((c, i) => {
      feeds[controlInputName(i)] = c
        ? new ort.Tensor('float32', c.data, c.shape)
        : new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]);
    });
    const withControl = f32((await s.run(feeds)).out);
    const ref = unetForwardRef(cfg.unet, tiny.unet, x, t, ctx, { input, middle });
    expect(relErr(withControl, ref.data)).toBeLessThan(TOL);
    const plain = unetForwardRef(cfg.unet, tiny.unet, x, t, ctx);
    expect(relErr(withControl, plain.data)).toBeGreaterThan(1e-3);
  });

  it('VAE decoder and encoder (non-square, posterior mean)', async () => {
    const { cfg } = tiny;
    const dec = await session(buildVaeDecoderGraph(cfg.vae, tiny.vae, opts).toBuffer());
    const lat: Tensor = { shape: [2, 4, 5, 7], data: lcg(2 * 4 * 35, 7) };
    const img = await dec.run({ latent: new ort.Tensor('float32', lat.data, lat.shape) });
    const refImg = vaeDecodeRef(cfg.vae, tiny.vae, lat);
    expect(img.image.dims).toEqual([2, 3, 40, 56]);
    expect(relErr(f32(img.image), refImg.data)).toBeLessThan(TOL);

    const enc = await session(buildVaeEncoderGraph(cfg.vae, tiny.vae, opts).toBuffer());
    const px: Tensor = { shape: [1, 3, 48, 40], data: lcg(3 * 48 * 40, 8) };
    const z = await enc.run({ image: new ort.Tensor('float32', px.data, px.shape) });
    const refZ = vaeEncodeRef(cfg.vae, tiny.vae, px);
    expect(z.latent.dims).toEqual([1, 4, 6, 5]);
    expect(relErr(f32(z.latent), refZ.data)).toBeLessThan(TOL);
  });

  it('CLIP: every layer after the final layer norm, batch of two chunks', async () => {
    const { cfg } = tiny;
    const s = await session(buildClipGraph(cfg.clip, tiny.clip, opts).toBuffer());
    const V = cfg.clip.vocabSize;
    const a = Array.from({ length: 77 }, (_, i) => (i * 37 + 5) % V);
    const b = Array.from({ length: 77 }, (_, i) => (i * 11 + 3) % V);
    const none = {
      embeds: new ort.Tensor('float32', new Float32Array(1), [1, 1, 1]),
      embeds_mask: new ort.Tensor('float32', new Float32Array(1), [1, 1, 1]),
    };
    const out = await s.run({ tokens: new ort.Tensor('int64', BigInt64Array.from([...a, ...b].map(BigInt)), [2, 77]), ...none });
    const L = cfg.clip.numLayers,
      per = 77 * cfg.clip.hiddenSize;
    expect(out.hidden.dims).toEqual([L, 2, 77, cfg.clip.hiddenSize]);
    const h = f32(out.hidden);
    [a, b].forEach((toks, bi) => {
      const ref = clipForwardRef(cfg.clip, tiny.clip, toks);
      for (let l = 0; l < L; l++) expect(relErr(h.subarray((l * 2 + bi) * per, (l * 2 + bi + 1) * per), ref[l].data)).toBeLessThan(TOL);
    });
    // Causality: changing a later token leaves earlier positions' outputs unchanged.
    const a2 = [...a];
    a2[50] = (a2[50] + 1) % V;
    const out2 = f32(
      (await s.run({ tokens: new ort.Tensor('int64', BigInt64Array.from([...a2, ...b].map(BigInt)), [2, 77]), ...none })).hidden,
    );
    const H = cfg.clip.hiddenSize;
    const lastA = (L - 1) * 2 * per;
    expect(relErr(out2.subarray(lastA, lastA + 50 * H), h.subarray(lastA, lastA + 50 * H))).toBe(0);
    expect(relErr(out2.subarray(lastA + 50 * H, lastA + 51 * H), h.subarray(lastA + 50 * H, lastA + 51 * H))).toBeGreaterThan(1e-3);

    // Textual-inversion vectors at positions 3 and 4 of the second row replace those tokens' embeddings.
    const vecs = [lcg(H, 71), lcg(H, 72)];
    const embeds = new Float32Array(2 * 77 * H);
    const mask = new Float32Array(2 * 77);
    vecs.forEach((v, i) => {
      embeds.set(v, (77 + 3 + i) * H);
      mask[77 + 3 + i] = 1;
    });
    const out3 = f32(
      (
        await s.run({
          tokens: new ort.Tensor('int64', BigInt64Array.from([...a, ...b].map(BigInt)), [2, 77]),
          embeds: new ort.Tensor('float32', embeds, [2, 77, H]),
          embeds_mask: new ort.Tensor('float32', mask, [2, 77, 1]),
        })
      ).hidden,
    );
    const overrides: (Float32Array | undefined)[] = [];
    overrides[3] = vecs[0];
    overrides[4] = vecs[1];
    const refE = clipForwardRef(cfg.clip, tiny.clip, b, overrides);
    for (let l = 0; l < L; l++) {
      expect(relErr(out3.subarray((l * 2 + 1) * per, (l * 2 + 2) * per), refE[l].data)).toBeLessThan(TOL);
      expect(relErr(out3.subarray(l * 2 * per, (l * 2 + 1) * per), h.subarray(l * 2 * per, (l * 2 + 1) * per))).toBe(0);
    }
  });
});

describe('float16 graphs (what CUDA and WebGPU run)', () => {
  it('are valid ONNX that ORT runs, and stay within half-precision error of the float32 reference', async () => {
    const { cfg } = tiny;
    for (const fusedAttention of [false, true]) {
      const opts = { dtype: 'float16' as const, fusedAttention };
      const s = await session(buildUnetGraph(cfg.unet, tiny.unet, opts).toBuffer());
      const B = 1,
        H = 8,
        W = 8,
        D = cfg.unet.contextDim;
      const x: Tensor = { shape: [B, 4, H, W], data: lcg(B * 4 * H * W, 31) };
      const ctx: Tensor = { shape: [B, 77, D], data: lcg(B * 77 * D, 32) };
      const t = new Float32Array([500]);
      const zero = new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]);
      const feeds: Record<string, ort.Tensor> = {
        x: new ort.Tensor('float32', x.data, x.shape),
        timesteps: new ort.Tensor('float32', t, [B]),
        context: new ort.Tensor('float32', ctx.data, ctx.shape),
        control_mid: zero,
      };
      for (let i = 0; i < unetSkipCount(cfg.unet); i++) feeds[controlInputName(i)] = zero;
      const out = f32((await s.run(feeds)).out);
      const err = relErr(out, unetForwardRef(cfg.unet, tiny.unet, x, t, ctx).data);
      expect(err).toBeLessThan(1e-2);
      // Half precision really is in use: the error is well above float32 round-off.
      expect(err).toBeGreaterThan(1e-5);
    }
    const dec = await session(buildVaeDecoderGraph(cfg.vae, tiny.vae, { dtype: 'float16', fusedAttention: true }).toBuffer());
    const lat: Tensor = { shape: [1, 4, 4, 4], data: lcg(64, 33) };
    const img = f32((await dec.run({ latent: new ort.Tensor('float32', lat.data, lat.shape) })).image);
    expect(relErr(img, vaeDecodeRef(cfg.vae, tiny.vae, lat).data)).toBeLessThan(1e-2);
  });
});

describe('the SD1 UNet graph is the one built before the UNet plan and the layer hook', () => {
  /**
   * Recorded from the builder at commit 6cad7b9 (before the plan, the exported blocks and the layer
   * hook) for the tiny model, bare and with rank-4 LoRA branches on the attention layers and on every
   * conv as well: node count, the initializer names that are not numbered constants (hashed, in
   * order), and the number of numbered ones. That builder's GroupNorm took 6 nodes (8 in float16)
   * and 2 numbered constants; GroupNorm's current cost is measured below, so that a later change to
   * GroupNorm alone (a VAE speed-up) does not move these figures.
   */
  const BEFORE = {
    none: { float32: 1633, float16: 1932, names: '706ceb86b70d5aa2', numbered: 144 },
    attention: { float32: 2721, float16: 3405, names: '15cd426a1f234ad2', numbered: 144 },
    'attention+conv': { float32: 2985, float16: 3801, names: 'c2591a38f4713e49', numbered: 144 },
  } as const;
  const OLD_GROUP_NORM = { float32: 6, float16: 8, numbered: 2 };

  /** Nodes and numbered constants one more GroupNorm adds to a graph that already has one. */
  const groupNormCost = (dtype: 'float32' | 'float16'): { nodes: number; numbered: number } => {
    const ws = new MapWeightSource(
      new Map([
        ['n.weight', { shape: [32], data: new Float32Array(32) }],
        ['n.bias', { shape: [32], data: new Float32Array(32) }],
      ]),
    );
    const g = new GraphBuilder('probe');
    const n = new Net(g, ws, { dtype, fusedAttention: false });
    const x = g.input('x', 'float32', [1, 32, 4, 4]);
    n.groupNorm('n', x, 32, 1e-5);
    const [nodes, inits] = [g.nodeCount, g.layout().length];
    n.groupNorm('n', x, 32, 1e-5);
    return { nodes: g.nodeCount - nodes, numbered: g.layout().length - inits };
  };

  it.each(['none', 'attention', 'attention+conv'] as const)('LoRA branches: %s', (scope) => {
    let layerHooks: LayerHook[] = [];
    if (scope !== 'none') {
      const ws = sd1Weights(SafetensorsFile.open(tiny.file));
      const file = join(tiny.dir, `identity-${scope.replace('+', '-')}.safetensors`);
      makeAdapter(tiny.file, file, { kind: 'lora', rank: 4, seed: 7, scope, textEncoder: false });
      const parsed = parseAdapter(file, SafetensorsFile.open(file), ws);
      const entry = (p: (typeof parsed.patches)[number]): PatchEntry => ({
        sig: `demo:${p.stem}`,
        strength: 0.8,
        strengthModel: 1,
        source: { kind: 'adapter', patch: p },
      });
      const own = new Map(parsed.patches.filter((p) => p.target.startsWith(SD1_PREFIX.unet)).map((p) => [p.target, [entry(p)]]));
      const split = splitPatches(own, SD1_PREFIX.unet, tiny.unet);
      expect(split.merged.size).toBe(0);
      layerHooks = [lowRankHook(split.branches)];
    }
    const plan = unetPlan(tiny.cfg.unet);
    const resBlocks = plan.input.filter((b) => b.res).length + plan.middle.res.length + plan.output.length;
    const transformers = [...plan.input, plan.middle, ...plan.output].filter((b) => b.transformer).length;
    const groupNorms = 2 * resBlocks + transformers + 1;
    expect(groupNorms).toBe(61);
    for (const dtype of ['float32', 'float16'] as const) {
      const g = buildUnetGraph(tiny.cfg.unet, tiny.unet, { dtype, fusedAttention: false, layerHooks });
      const gn = groupNormCost(dtype);
      expect(g.nodeCount, dtype).toBe(BEFORE[scope][dtype] + groupNorms * (gn.nodes - OLD_GROUP_NORM[dtype]));
      const names = g.layout().map((p) => p.name);
      const named = names.filter((n) => !/_\d+$/.test(n));
      expect(createHash('sha256').update(named.join('\n')).digest('hex').slice(0, 16), dtype).toBe(BEFORE[scope].names);
      expect(names.length - named.length, dtype).toBe(BEFORE[scope].numbered + groupNorms * (gn.numbered - OLD_GROUP_NORM.numbered));
    }
  });
});
