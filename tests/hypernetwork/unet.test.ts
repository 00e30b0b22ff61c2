import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { writeSafetensors } from '../../engine/formats/safetensors.ts';
import { SD1_PREFIX } from '../../engine/models/families/sd1/config.ts';
import { linear } from '../../engine/models/families/sd1/reference/layers.ts';
import { unetForwardRef, type RefLayerHook } from '../../engine/models/families/sd1/reference/unet.ts';
import type { ModelHandle } from '../../engine/models/handles.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { HypernetworkLoader } from '../../nodes/model/loaders.ts';
import { applyLora } from '../../nodes/model/lora.ts';
import '../../nodes/model/services.ts';
import { kohyaUnetLdm } from '../lora/make-adapters.ts';
import { lcg, makeTiny, relErr, type Tiny } from '../models-onnx/tiny.ts';
import { comfyLayers, makeHypernet, moduleRef, writeHypernetPt, writeHypernetSafetensors, type HnFile } from './make-hypernet.ts';

/**
 * HypernetworkLoader on the tiny SD1 UNet against the plain-loop reference net with ComfyUI's
 * attention patch written into its to_k/to_v layers: k ← k + h_k(k)·strength on the value each reads
 * (the normed tokens for attn1, the text context for attn2), chosen by width. Stacked with a second
 * hypernetwork and a LoRA, a new strength as a feed, .pt and .safetensors alike, the plain model untouched.
 */

const TOL = 1e-4;
let tiny: Tiny;
let models: string;
const warnings: string[] = [];
const log = { info: () => {}, warn: (m: string) => void warnings.push(m), error: () => {} };
let manager: ModelManager;
let ctx: NodeContext;
let base: ModelHandle;

const A: HnFile = makeHypernet({ dims: [64, 32, 128], structure: [1, 2, 1], activation: 'relu', layerNorm: true, seed: 3, scale: 0.5 });
const B: HnFile = makeHypernet({ dims: [64], structure: [1, 1.5, 1], activation: 'softsign', seed: 4, scale: 0.5 });

const x: Tensor = { shape: [1, 4, 8, 8], data: lcg(256, 41) };
const t = new Float32Array([600]);
let context: Tensor;

beforeAll(async () => {
  tiny = await makeTiny(8);
  models = tiny.dir;
  mkdirSync(join(models, 'hypernetworks'), { recursive: true });
  writeHypernetPt(join(models, 'hypernetworks', 'a.pt'), A);
  writeHypernetSafetensors(join(models, 'hypernetworks', 'a.safetensors'), A);
  writeHypernetPt(join(models, 'hypernetworks', 'b.pt'), B, 'legacy');
  const paths = new FolderPaths({ baseDir: models, modelsDir: models });
  manager = new ModelManager({ cacheDir: join(models, 'cache'), device: 'cpu', log, paths });
  ctx = { services: { models: manager }, log, paths } as unknown as NodeContext;
  base = (await manager.loadCheckpoint(tiny.file)).model;
  const D = tiny.cfg.unet.contextDim;
  context = { shape: [1, 77, D], data: lcg(77 * D, 42) };
}, 120_000);

const run = async (m: ModelHandle): Promise<Float32Array> => (await m.unet.run({ x, timesteps: t, context })).data;
const load = async (model: ModelHandle, name: string, strength: number): Promise<ModelHandle> =>
  ((await HypernetworkLoader.run({ model, hypernetwork_name: name, strength }, ctx)) as [ModelHandle])[0];

/** The reference UNet with hypernetworks (file, strength, in order) on every to_k/to_v whose input width they have, and optional extra weight deltas. */
function reference(stack: { hn: HnFile; strength: number }[], deltas: Map<string, Float64Array> = new Map()): Float32Array {
  const hook: RefLayerHook = (key, kind, y, input) => {
    const m = /\.attn[12]\.to_([kv])$/.exec(key);
    if (!m || kind !== 'linear') return undefined;
    const dim = input.shape[input.shape.length - 1];
    let v: ArrayLike<number> = input.data;
    for (const { hn, strength } of stack) {
      const mod = hn.modules.get(dim);
      if (mod) v = moduleRef(comfyLayers(mod[m[1] === 'k' ? 0 : 1], hn.spec), v, dim, strength);
    }
    const wKey = `${SD1_PREFIX.unet}${key}.weight`;
    const w = tiny.unet.get(`${key}.weight`);
    const d = deltas.get(wKey);
    const wd = d ? Float32Array.from(w, (a, i) => a + d[i]) : w;
    const bias = tiny.unet.has(`${key}.bias`) ? tiny.unet.get(`${key}.bias`) : undefined;
    return linear({ shape: input.shape, data: Float32Array.from(v) }, wd, tiny.unet.shape(`${key}.weight`), bias);
  };
  return unetForwardRef(tiny.cfg.unet, tiny.unet, x, t, context, undefined, { layerHook: hook }).data;
}

describe('HypernetworkLoader on the UNet', () => {
  it('matches the reference with the patch on every attention, changes the output, and leaves the plain model bit for bit', async () => {
    const plain = await run(base);
    const hm = await load(base, 'a.pt', 0.8);
    expect(hm.id).not.toBe(base.id);
    const got = await run(hm);
    const want = reference([{ hn: A, strength: 0.8 }]);
    expect(relErr(got, want)).toBeLessThan(TOL);
    expect(relErr(got, plain)).toBeGreaterThan(1e-2);
    expect(Buffer.from((await run(base)).buffer).equals(Buffer.from(plain.buffer))).toBe(true);
  });

  it('a new strength is a feed to the same patched model; strength 0 is the model itself', async () => {
    await run(await load(base, 'a.pt', 0.8));
    const builds = manager.stats().builds;
    manager.lastPatch = undefined;
    const got = await run(await load(base, 'a.pt', -0.6));
    const report = manager.lastPatch as { written: number; tensorsComputed: number } | undefined;
    expect([report?.written ?? 0, report?.tensorsComputed ?? 0]).toEqual([0, 0]);
    expect(manager.stats().builds).toBe(builds);
    expect(relErr(got, reference([{ hn: A, strength: -0.6 }]))).toBeLessThan(TOL);
    expect(await load(base, 'a.pt', 0)).toBe(base);
  });

  it('the .safetensors form of the file gives the .pt result exactly', async () => {
    const a = await run(await load(base, 'a.pt', 0.5));
    const b = await run(await load(base, 'a.safetensors', 0.5));
    expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
  });

  it('stacks in order with a second hypernetwork and under a LoRA, whose branch reads the patched input', async () => {
    const target = `${SD1_PREFIX.unet}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight`;
    const [out, inp] = tiny.unet.shape('input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight');
    const r = 2;
    const up = lcg(out * r, 51, 0.5);
    const down = lcg(r * inp, 52, 0.5);
    const stem = kohyaUnetLdm(target);
    const loraFile = join(models, 'loras', 'k.safetensors');
    mkdirSync(join(models, 'loras'), { recursive: true });
    writeSafetensors(loraFile, [
      { name: `${stem}.lora_up.weight`, dtype: 'F32', shape: [out, r], data: up },
      { name: `${stem}.lora_down.weight`, dtype: 'F32', shape: [r, inp], data: down },
      { name: `${stem}.alpha`, dtype: 'F32', shape: [], data: new Float32Array([1]) },
    ]);
    const stacked = await load(await load(base, 'a.pt', 0.7), 'b.pt', 1.3);
    const [withLora] = applyLora(ctx, loraFile, 'test', stacked, undefined, 0.9, 0);
    const delta = new Float64Array(out * inp);
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inp; i++) for (let k = 0; k < r; k++) delta[o * inp + i] += 0.9 * 0.5 * up[o * r + k] * down[k * inp + i];
    const stack = [
      { hn: A, strength: 0.7 },
      { hn: B, strength: 1.3 },
    ];
    const want = reference(stack);
    expect(relErr(await run(stacked), want)).toBeLessThan(TOL);
    expect(relErr(await run(withLora!), reference(stack, new Map([[target, delta]])))).toBeLessThan(TOL);
    // The other order of the two hypernetworks is another model.
    expect(relErr(await run(await load(await load(base, 'b.pt', 1.3), 'a.pt', 0.7)), want)).toBeGreaterThan(1e-4);
  });

  it('a hypernetwork for widths the model does not have changes nothing, with a warning', async () => {
    const c = makeHypernet({ dims: [48], structure: [1, 1], seed: 5 });
    writeHypernetPt(join(models, 'hypernetworks', 'c.pt'), c);
    warnings.length = 0;
    expect(await load(base, 'c.pt', 1)).toBe(base);
    expect(warnings.join('\n')).toMatch(/c\.pt has modules for widths 48; no attention of this model has those/);
  });
});
