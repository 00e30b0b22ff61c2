import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { SD1_PREFIX } from '../../engine/models/families/sd1/config.ts';
import { detectCheckpoint, sd1Weights } from '../../engine/models/families/sd1/detect.ts';
import { makeAdapter, makeDemoAdapters, makeEmbedding, DEMO_ADAPTERS } from '../../engine/models/generate/demo-adapters.ts';
import { buildUnetGraph } from '../../engine/models/families/sd1/graphs/unet-graph.ts';
import type { ClipHandle, ModelHandle } from '../../engine/models/handles.ts';
import { makeTinyCheckpoint } from '../../engine/models/make-model.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { SafetensorsFile, writeSafetensors } from '../../engine/formats/safetensors.ts';
import { f16ToF32 } from '../../engine/core/dtype.ts';
import { lowRankHook, splitPatches } from '../../engine/models/patching/low-rank.ts';
import { MapWeightSource, PrefixedWeightSource, type WeightSource } from '../../engine/core/weights.ts';
import { Executor } from '../../engine/executor/executor.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import { applyLora } from '../../nodes/model/lora.ts';
import { CLIPTextEncodeA1111 } from '../../nodes/conditioning/clip-text-a1111.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { parseA1111Attention } from '../../engine/text/a1111-prompt.ts';
import '../../nodes/model/services.ts';
import { lcg, makeTiny, relErr, type Tiny } from './tiny.ts';

/**
 * LoRA/LyCORIS patches, merges and embeddings through the model manager: patched sessions must run
 * exactly the weights the formulas give (computed here with plain loops from the adapter files),
 * rebuild only what changed, and leave unpatched parts alone.
 */

let tiny: Tiny;
let models: string;
const warnings: string[] = [];
const log = { info: () => {}, warn: (m: string) => void warnings.push(m), error: () => {} };

beforeAll(async () => {
  tiny = await makeTiny(5);
  models = tiny.dir;
  makeDemoAdapters(tiny.file, models, 5);
}, 120_000);

const manager = (): ModelManager =>
  new ModelManager({
    cacheDir: join(tiny.dir, 'cache'),
    device: 'cpu',
    log,
    paths: new FolderPaths({ baseDir: tiny.dir, modelsDir: tiny.dir }),
  });

const ctxFor = (m: ModelManager): NodeContext =>
  ({ services: { models: m }, log, paths: new FolderPaths({ baseDir: tiny.dir, modelsDir: tiny.dir }) }) as unknown as NodeContext;

/** W + s·(α/r)·up·down (LoRA, conv flattened) or W + s·(α/r)·(w1a·w1b)⊙(w2a·w2b) (LoHa), in float64 loops. */
function expectedWeights(base: WeightSource, adapters: { file: string; strength: number }[]): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  const mm = (a: Float32Array, m: number, k: number, b: Float32Array, n: number): Float64Array => {
    const r = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) r[i * n + j] += a[i * k + p] * b[p * n + j];
    return r;
  };
  for (const { file, strength } of adapters) {
    const a = SafetensorsFile.open(file);
    for (const key of a.names().filter((k) => k.endsWith('.alpha'))) {
      const stem = key.slice(0, -'.alpha'.length);
      const alpha = a.get(key)[0];
      const isTe = stem.startsWith('lora_te_');
      const rest = stem.slice(isTe ? 'lora_te_text_model_'.length : 'lora_unet_'.length);
      const prefix = isTe ? SD1_PREFIX.clip : SD1_PREFIX.unet;
      const target = base
        .names()
        .find((n) => n.startsWith(prefix) && n.endsWith('.weight') && n.slice(prefix.length, -7).replaceAll('.', '_') === rest)!;
      expect(target, stem).toBeDefined();
      const w = out.get(target) ?? base.get(target).slice();
      const out0 = base.shape(target)[0];
      const inner = w.length / out0;
      let delta: Float64Array;
      let rank: number;
      if (a.has(`${stem}.lora_up.weight`)) {
        rank = a.shape(`${stem}.lora_up.weight`)[1];
        delta = mm(a.get(`${stem}.lora_up.weight`), out0, rank, a.get(`${stem}.lora_down.weight`), inner);
      } else {
        rank = a.shape(`${stem}.hada_w1_a`)[1];
        const d1 = mm(a.get(`${stem}.hada_w1_a`), out0, rank, a.get(`${stem}.hada_w1_b`), inner);
        const d2 = mm(a.get(`${stem}.hada_w2_a`), out0, rank, a.get(`${stem}.hada_w2_b`), inner);
        delta = d1.map((v, i) => v * d2[i]);
      }
      for (let i = 0; i < w.length; i++) w[i] += strength * (alpha / rank) * delta[i];
      out.set(target, w);
    }
  }
  return out;
}

/** A WeightSource of the checkpoint with some tensors replaced. */
function overlay(base: WeightSource, changed: Map<string, Float32Array>): WeightSource {
  return new MapWeightSource(new Map(base.names().map((n) => [n, { shape: base.shape(n), data: changed.get(n) ?? base.get(n) }])));
}

const x = { shape: [1, 4, 8, 8], data: lcg(256, 3) };
const timesteps = new Float32Array([420]);
const context = { shape: [1, 77, 64], data: lcg(77 * 64, 4, 0.5) };

async function unetOut(model: ModelHandle): Promise<Float32Array> {
  return (await model.unet.run({ x, timesteps, context })).data;
}

/** The UNet built straight from given weights (inline, one session), the oracle for patched handles. */
async function unetFrom(ws: WeightSource): Promise<Float32Array> {
  const unet = new PrefixedWeightSource(ws, SD1_PREFIX.unet);
  const s = await ort.InferenceSession.create(buildUnetGraph(tiny.cfg.unet, unet, { dtype: 'float32', fusedAttention: true }).toBuffer());
  const zero = new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]);
  const feeds: Record<string, ort.Tensor> = {
    x: new ort.Tensor('float32', x.data, x.shape),
    timesteps: new ort.Tensor('float32', timesteps, [1]),
    context: new ort.Tensor('float32', context.data, context.shape),
    control_mid: zero,
  };
  for (let i = 0; i < 12; i++) feeds[`control_in_${i}`] = zero;
  const r = (await s.run(feeds)).out.data as Float32Array;
  await s.release();
  return r;
}

describe('weight patching through the model manager', () => {
  it('a LoRA (with conv LoCon) and a LoHa stacked: the patched UNet runs exactly the formula weights; strength 0 is the unpatched model', async () => {
    const m = manager();
    const parts = await m.loadCheckpoint(tiny.file);
    expect(context.shape[2]).toBe(tiny.cfg.unet.contextDim);
    const ctx = ctxFor(m);
    const lora = join(models, DEMO_ADAPTERS.lora);
    const loha = join(models, DEMO_ADAPTERS.loha);
    const [m1, c1] = applyLora(ctx, lora, 'lora', parts.model, parts.clip, 0.8, 0.6);
    const [m2, c2] = applyLora(ctx, loha, 'loha', m1, c1, 1.0, 1.0);
    const ws = sd1Weights(SafetensorsFile.open(tiny.file));
    const expected = expectedWeights(ws, [
      { file: lora, strength: 0.8 },
      { file: loha, strength: 1.0 },
    ]);
    const unetTargets = [...expected.keys()].filter((k) => k.startsWith(SD1_PREFIX.unet));
    expect(unetTargets.length).toBeGreaterThan(50);
    expect(unetTargets.some((k) => ws.shape(k).length === 4 && ws.shape(k)[2] === 3)).toBe(true);

    // The CLIP part: only the LoRA patches it (the LoHa is UNet-only), at strength_clip 0.6.
    const teExpected = expectedWeights(ws, [{ file: lora, strength: 0.6 }]);
    const clipTargets = [...teExpected.keys()].filter((k) => k.startsWith(SD1_PREFIX.clip));
    expect(clipTargets.length).toBeGreaterThan(0);
    for (const k of clipTargets) expect(relErr(await c2!.patching!.read(k), teExpected.get(k)!)).toBeLessThan(1e-6);

    const patched = await unetOut(m2!);
    const oracle = await unetFrom(overlay(ws, expected));
    const plain = await unetOut(parts.model);
    expect(relErr(patched, oracle)).toBeLessThan(1e-5);
    expect(relErr(patched, plain)).toBeGreaterThan(1e-3);
    // The patched model keeps the unpatched weights.bin and adds tensor files beside it.
    const dir = join(
      tiny.dir,
      'cache',
      readdirSync(join(tiny.dir, 'cache')).find((d) => d.startsWith('unet-'))!,
    );
    expect(readdirSync(dir).filter((f) => f.startsWith('pt-')).length).toBeGreaterThan(0);
    expect(readdirSync(dir).filter((f) => f.startsWith('patched-') && f.endsWith('.onnx'))).toHaveLength(1);

    // Strength 0 everywhere: the same handles come back, bit-identical outputs.
    const [m0, c0] = applyLora(ctx, lora, 'lora', parts.model, parts.clip, 0, 0);
    expect(m0).toBe(parts.model);
    expect(c0).toBe(parts.clip);
    expect(relErr(await unetOut(m0!), plain)).toBe(0);
    await m.pool.clear();
  }, 120_000);

  it('a plain LoRA runs as graph branches: a strength change reuses the session; other adapters re-patch only their tensors', async () => {
    const m = manager();
    const parts = await m.loadCheckpoint(tiny.file);
    const ctx = ctxFor(m);
    const lora = join(models, DEMO_ADAPTERS.lora);
    const loha = join(models, DEMO_ADAPTERS.loha);
    const ws = sd1Weights(SafetensorsFile.open(tiny.file));
    const targets = (file: string): string[] =>
      [...expectedWeights(ws, [{ file, strength: 1 }]).keys()].filter((k) => k.startsWith(SD1_PREFIX.unet));
    const loraT = targets(lora);
    const lohaT = targets(loha);
    const overlap = loraT.filter((t) => lohaT.includes(t)).length;

    const [a] = applyLora(ctx, lora, 'lora', parts.model, undefined, 0.5, 0);
    const outA = await unetOut(a!);
    // No weight is merged: every LoRA weight gets a branch, and its factors are read where the
    // adapter file holds them, through a link to that file in the build folder: nothing is written.
    expect(m.lastPatch).toMatchObject({ tensorsComputed: 0, branches: loraT.length, written: 0 });
    const unetDir = join(
      tiny.dir,
      'cache',
      readdirSync(join(tiny.dir, 'cache')).find((d) => d.startsWith('unet-'))!,
    );
    const links = readdirSync(unetDir).filter((f) => f.startsWith('ad-'));
    expect(links).toHaveLength(1);
    expect(statSync(join(unetDir, links[0])).ino).toBe(statSync(lora).ino);
    expect(readdirSync(unetDir).filter((f) => f.startsWith('lr-'))).toEqual([]);
    const loads = m.stats().loads;
    const [a9] = applyLora(ctx, lora, 'lora', parts.model, undefined, 0.9, 0);
    const outA9 = await unetOut(a9!);
    // A new strength is a new feed to the same session, and gives the formula's weights at 0.9.
    expect(m.stats().loads).toBe(loads);
    expect(relErr(outA9, outA)).toBeGreaterThan(1e-4);
    expect(relErr(outA9, await unetFrom(overlay(ws, expectedWeights(ws, [{ file: lora, strength: 0.9 }]))))).toBeLessThan(1e-5);

    // A LoHa on top: the weights it touches are merged (their LoRA with them), the rest stay branches.
    const [b] = applyLora(ctx, loha, 'loha', a, undefined, 0.7, 0);
    await unetOut(b!);
    expect(m.lastPatch).toMatchObject({ tensorsComputed: lohaT.length, branches: loraT.length - overlap });
    const [b2] = applyLora(ctx, loha, 'loha', a, undefined, 0.3, 0);
    await unetOut(b2!);
    expect(m.lastPatch!.tensorsComputed).toBe(lohaT.length);
    // Variants of one UNet replace each other in memory instead of piling up.
    expect(m.stats().loaded.filter((l) => l.key.startsWith('unet-'))).toHaveLength(1);
    // Going back to an earlier set finds its model on disk: nothing computed.
    const [b3] = applyLora(ctx, loha, 'loha', a, undefined, 0.7, 0);
    expect(relErr(await unetOut(b3!), await unetOut(b!))).toBe(0);
    expect(m.lastPatch!.tensorsComputed).toBe(0);

    // strength_clip 0: the CLIP handle is the original and runs the unpatched session.
    const [, c] = applyLora(ctx, lora, 'lora', parts.model, parts.clip, 1, 0);
    expect(c).toBe(parts.clip);
    await parts.clip.encodeText('a cat');
    expect(
      m
        .stats()
        .loaded.filter((l) => l.key.startsWith('clip-'))
        .map((l) => l.key),
    ).toEqual([expect.not.stringContaining('-p')]);
    await m.pool.clear();
  }, 120_000);

  it('LoRA factors in a dtype ORT cannot point at (F64) are converted into a file of their own; BF16 ones are cast by ORT in place', async () => {
    const lora = join(models, DEMO_ADAPTERS.lora);
    const src = SafetensorsFile.open(lora);
    const f64 = join(models, 'loras', 'weft-tiny-lora-f64.safetensors');
    writeSafetensors(
      f64,
      src.names().map((name) => ({ name, dtype: 'F64' as const, shape: [...src.shape(name)], data: src.get(name) })),
    );
    const m = manager();
    const parts = await m.loadCheckpoint(tiny.file);
    const [a] = applyLora(ctxFor(m), lora, 'lora', parts.model, undefined, 0.6, 0);
    const ref = await unetOut(a!);
    const [b] = applyLora(ctxFor(m), f64, 'lora f64', parts.model, undefined, 0.6, 0);
    const out = await unetOut(b!);
    expect(m.lastPatch!.written).toBeGreaterThan(0);
    expect(m.lastPatch!.branches).toBeGreaterThan(50);
    const unetDir = join(
      tiny.dir,
      'cache',
      readdirSync(join(tiny.dir, 'cache')).find((d) => d.startsWith('unet-'))!,
    );
    expect(readdirSync(unetDir).filter((f) => f.startsWith('lr-'))).toHaveLength(1);
    // F64 → F32 rounds each factor to the same float32 the F32 file holds.
    expect(relErr(out, ref)).toBeLessThan(1e-6);

    // BF16 factors are pointed at in place like F16 ones, and cast by ORT: the formula on the file's values.
    const bf16 = join(models, 'loras', 'weft-tiny-lora-bf16.safetensors');
    writeSafetensors(
      bf16,
      src.names().map((name) => ({ name, dtype: 'BF16' as const, shape: [...src.shape(name)], data: src.get(name) })),
    );
    const [c] = applyLora(ctxFor(m), bf16, 'lora bf16', parts.model, undefined, 0.6, 0);
    const outBf = await unetOut(c!);
    expect(m.lastPatch).toMatchObject({ written: 0, tensorsComputed: 0 });
    const ws = sd1Weights(SafetensorsFile.open(tiny.file));
    expect(relErr(outBf, await unetFrom(overlay(ws, expectedWeights(ws, [{ file: bf16, strength: 0.6 }]))))).toBeLessThan(1e-5);
    expect(relErr(outBf, ref)).toBeGreaterThan(0);
    await m.pool.clear();
  }, 120_000);

  it('a LoRA on another file system than the cache is copied in, where the cache cannot link to it, and gives the formula', async () => {
    // /dev/shm is a tmpfs on Linux, so a hard link from the cache fails there (EXDEV) and the copy path runs.
    const elsewhere = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/weft-lora-') : mkdtempSync(join(tmpdir(), 'weft-lora-'));
    const lora = join(elsewhere, 'other.safetensors');
    makeAdapter(tiny.file, lora, { kind: 'lora', rank: 4, seed: 913, scope: 'attention+conv', textEncoder: false, dtype: 'F16' });
    const m = manager();
    const parts = await m.loadCheckpoint(tiny.file);
    const [a] = applyLora(ctxFor(m), lora, 'other', parts.model, undefined, 0.7, 0);
    const out = await unetOut(a!);
    expect(m.lastPatch).toMatchObject({ tensorsComputed: 0, written: 0 });
    const cacheDir = join(tiny.dir, 'cache');
    const unetDir = join(
      cacheDir,
      readdirSync(cacheDir).find((d) => d.startsWith('unet-'))!,
    );
    const { hash } = m.loadAdapter(lora, sd1Weights(SafetensorsFile.open(tiny.file)));
    const inCache = join(unetDir, `ad-${hash.slice(0, 32)}.safetensors`);
    expect(readFileSync(inCache).equals(readFileSync(lora))).toBe(true);
    // A link where the file systems allow one, a copy where they do not.
    expect(statSync(inCache).ino === statSync(lora).ino).toBe(statSync(lora).dev === statSync(unetDir).dev);
    const ws = sd1Weights(SafetensorsFile.open(tiny.file));
    expect(relErr(out, await unetFrom(overlay(ws, expectedWeights(ws, [{ file: lora, strength: 0.7 }]))))).toBeLessThan(1e-5);
    // The copy is the cache's own: the original can go and the patched model still loads.
    rmSync(elsewhere, { recursive: true, force: true });
    await m.pool.clear();
    expect(relErr(await unetOut(a!), out)).toBe(0);
  }, 120_000);

  it('loraMode merge folds plain LoRAs into the weights: same output as branches, no strength inputs', async () => {
    const lora = join(models, DEMO_ADAPTERS.lora);
    const outs: Float32Array[] = [];
    for (const loraMode of ['branch', 'merge'] as const) {
      const m = new ModelManager({
        cacheDir: join(tiny.dir, 'cache'),
        device: 'cpu',
        log,
        loraMode,
        paths: new FolderPaths({ baseDir: tiny.dir, modelsDir: tiny.dir }),
      });
      const parts = await m.loadCheckpoint(tiny.file);
      const [a] = applyLora(ctxFor(m), lora, 'lora', parts.model, undefined, 0.65, 0);
      outs.push(await unetOut(a!));
      const { branches, tensorsComputed } = m.lastPatch!;
      expect(loraMode === 'merge' ? [branches, tensorsComputed > 50] : [branches > 50, tensorsComputed]).toEqual(
        loraMode === 'merge' ? [0, true] : [true, 0],
      );
      await m.pool.clear();
    }
    expect(relErr(outs[0], outs[1])).toBeLessThan(1e-5);
  }, 120_000);

  it('LoRA branches are valid in the float16 graphs GPU providers run, within half precision of float32', async () => {
    const ws = sd1Weights(SafetensorsFile.open(tiny.file));
    const m = manager();
    const { parsed, hash } = m.loadAdapter(join(models, DEMO_ADAPTERS.lora), ws);
    const own = new Map(
      parsed.patches
        .filter((p) => p.target.startsWith(SD1_PREFIX.unet))
        .map((p) => [
          p.target,
          [{ sig: `${hash}:${p.stem}`, strength: 0.8, strengthModel: 1, source: { kind: 'adapter' as const, patch: p } }],
        ]),
    );
    const split = splitPatches(own, SD1_PREFIX.unet, tiny.unet);
    expect(split.merged.size).toBe(0);
    const run = async (dtype: 'float32' | 'float16'): Promise<Float32Array> => {
      const g = buildUnetGraph(tiny.cfg.unet, tiny.unet, { dtype, fusedAttention: true, layerHooks: [lowRankHook(split.branches)] });
      const s = await ort.InferenceSession.create(g.toBuffer());
      const zero = new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]);
      const feeds: Record<string, ort.Tensor> = {
        x: new ort.Tensor('float32', x.data, x.shape),
        timesteps: new ort.Tensor('float32', timesteps, [1]),
        context: new ort.Tensor('float32', context.data, context.shape),
        control_mid: zero,
      };
      for (let i = 0; i < 12; i++) feeds[`control_in_${i}`] = zero;
      for (const [k, v] of split.strengths) feeds[k] = new ort.Tensor('float32', new Float32Array([v]), [1]);
      const out = (await s.run(feeds)).out;
      await s.release();
      return out.data instanceof Float32Array ? out.data : Float32Array.from(out.data as Uint16Array, (h) => f16ToF32(h));
    };
    const f32 = await run('float32');
    expect(
      relErr(f32, await unetFrom(overlay(ws, expectedWeights(ws, [{ file: join(models, DEMO_ADAPTERS.lora), strength: 0.8 }])))),
    ).toBeLessThan(1e-5);
    expect(relErr(await run('float16'), f32)).toBeLessThan(1e-2);
  }, 120_000);

  it('ModelMergeSimple and CLIPMergeSimple give ratio·A + (1−ratio)·B; CheckpointSave writes a checkpoint that loads and runs the same', async () => {
    const other = join(tiny.dir, 'checkpoints', 'other.safetensors');
    await makeTinyCheckpoint(other, { seed: 77 });
    const paths = new FolderPaths({ baseDir: tiny.dir, modelsDir: tiny.dir });
    const m = manager();
    const ex = new Executor(createBuiltinRegistry(), { paths, services: { models: m }, log });
    const prompt = {
      '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'weft-tiny-sd1.safetensors' } },
      '2': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'other.safetensors' } },
      '3': { class_type: 'ModelMergeSimple', inputs: { model1: ['1', 0], model2: ['2', 0], ratio: 0.3 } },
      '4': { class_type: 'CLIPMergeSimple', inputs: { clip1: ['1', 1], clip2: ['2', 1], ratio: 0.3 } },
      '5': {
        class_type: 'LoraLoader',
        inputs: { model: ['3', 0], clip: ['4', 0], lora_name: 'weft-tiny-lora.safetensors', strength_model: 0.5, strength_clip: 0.5 },
      },
      '6': {
        class_type: 'CheckpointSave',
        inputs: { model: ['5', 0], clip: ['5', 1], vae: ['1', 2], filename_prefix: 'checkpoints/merged' },
      },
    };
    const r = await ex.execute(prompt, { promptId: 'merge' });
    expect(r.status, JSON.stringify(r.error)).toBe('success');
    const saved = join(paths.outputDir, 'checkpoints', 'merged_00001_.safetensors');
    expect(existsSync(saved)).toBe(true);

    const a = sd1Weights(SafetensorsFile.open(tiny.file));
    const b = sd1Weights(SafetensorsFile.open(other));
    const merged = new Map<string, Float32Array>();
    for (const n of a.names()) {
      if (!n.startsWith(SD1_PREFIX.unet) && !n.startsWith(SD1_PREFIX.clip)) continue;
      if (n.endsWith('.position_ids')) continue;
      const bn = b.get(n);
      merged.set(
        n,
        a.get(n).map((v, i) => 0.3 * v + 0.7 * bn[i]),
      );
    }
    const mergedWs = overlay(a, merged);
    const expected = expectedWeights(mergedWs, [{ file: join(models, DEMO_ADAPTERS.lora), strength: 0.5 }]);
    const out = SafetensorsFile.open(saved);
    expect(detectCheckpoint(out).unet.modelChannels).toBe(tiny.cfg.unet.modelChannels);
    // Every UNet, CLIP and VAE tensor; the DDPM schedule buffers stay out, as ComfyUI's save leaves them.
    const parts3 = Object.values(SD1_PREFIX);
    expect(out.names().sort()).toEqual(
      a
        .names()
        .filter((n) => parts3.some((p) => n.startsWith(p)))
        .sort(),
    );
    // Saved as float16: compare within half precision.
    for (const n of [...expected.keys()].slice(0, 40)) expect(relErr(out.get(n), expected.get(n)!), n).toBeLessThan(2e-3);
    const plainMerged = [...merged.keys()].find((k) => !expected.has(k) && k.startsWith(SD1_PREFIX.unet))!;
    expect(relErr(out.get(plainMerged), merged.get(plainMerged)!)).toBeLessThan(2e-3);
    const vaeKey = a.names().find((n) => n.startsWith(SD1_PREFIX.vae))!;
    expect(relErr(out.get(vaeKey), a.get(vaeKey))).toBeLessThan(2e-3);
    // And the saved file runs: its UNet matches the patched weights' UNet.
    // The tiny model's own vocabulary sits beside its file; the saved one needs the same.
    cpSync(tiny.file.replace(/\.safetensors$/, '.tokenizer'), saved.replace(/\.safetensors$/, '.tokenizer'), { recursive: true });
    const reloaded = await m.loadCheckpoint(saved);
    expect(relErr(await unetOut(reloaded.model), await unetFrom(overlay(mergedWs, expected)))).toBeLessThan(5e-3);
    await m.pool.clear();
  }, 180_000);

  it('textual inversion: embedding:name puts its vectors in the prompt; a missing one warns by name and keeps the words', async () => {
    const m = manager();
    const parts = await m.loadCheckpoint(tiny.file);
    const clip = parts.clip as ClipHandle;
    const H = tiny.cfg.clip.hiddenSize;
    mkdirSync(join(tiny.dir, 'embeddings'), { recursive: true });
    makeEmbedding(join(tiny.dir, 'embeddings', 'three.safetensors'), H, 3, 9);
    const withEmb = await clip.encodeText('a photo of embedding:three cat');
    const toks = clip.tokenizer.tokenizeWithWeights('a photo of embedding:three cat', { embeddings: clip.embeddings })[0];
    const at = toks.findIndex((t) => t.token < 0);
    expect(toks.filter((t) => t.embedding)).toHaveLength(3);
    // Same as encoding the vectors directly through encodeChunks, and different from the plain words.
    const direct = await clip.encodeChunks([toks]);
    expect(relErr(withEmb.cond.data, direct.cond.data)).toBe(0);
    const plain = await clip.encodeText('a photo of three cat');
    expect(relErr(withEmb.cond.data.subarray(at * H, (at + 1) * H), plain.cond.data.subarray(at * H, (at + 1) * H))).toBeGreaterThan(1e-3);
    // Positions before the embedding are unchanged (causal attention).
    expect(relErr(withEmb.cond.data.subarray(0, at * H), plain.cond.data.subarray(0, at * H))).toBe(0);

    warnings.length = 0;
    const missing = await clip.encodeText('a photo of embedding:nothere cat');
    expect(warnings.join('\n')).toContain('nothere');
    expect(missing.cond.shape).toEqual([1, 77, H]);
    await m.pool.clear();
  }, 120_000);

  it('CLIPTextEncodeA1111: prompt editing and alternation become entries with sampler-step ranges; A1111 emphasis keeps each chunk mean; BREAK starts a chunk', async () => {
    const m = manager();
    const parts = await m.loadCheckpoint(tiny.file);
    const ctx = ctxFor(m);
    const H = tiny.cfg.clip.hiddenSize;
    const run = async (text: string, steps: number) =>
      (await CLIPTextEncodeA1111.run({ text, clip: parts.clip, steps, bare_embedding_names: true }, ctx)) as [Conditioning];
    const [edit] = await run('a [cat:dog:0.5] photo', 10);
    expect(edit.map((e) => e.stepRange)).toEqual([
      { start: 0, end: 0.5 },
      { start: 0.5, end: 1 },
    ]);
    const enc = async (t: string) =>
      (await parts.clip.encodeChunks(parts.clip.tokenizer.tokenizeA1111(parseA1111Attention(t)), undefined, { emphasis: 'a1111' })).cond
        .data;
    expect(relErr(edit[0].cond.data, await enc('a cat photo'))).toBe(0);
    expect(relErr(edit[1].cond.data, await enc('a dog photo'))).toBe(0);
    const [alt] = await run('a [cat|dog] photo', 4);
    expect(alt.map((e) => e.stepRange)).toEqual([0, 1, 2, 3].map((i) => ({ start: i / 4, end: (i + 1) / 4 })));
    expect(relErr(alt[2].cond.data, alt[0].cond.data)).toBe(0);
    expect(relErr(alt[1].cond.data, alt[0].cond.data)).toBeGreaterThan(1e-3);
    const [plain] = await run('a cat photo', 10);
    expect(plain[0].stepRange).toBeUndefined();
    const [weighted] = await run('a (cat:1.5) photo', 10);
    const mean = (a: Float32Array) => a.reduce((x, y) => x + y, 0) / a.length;
    expect(Math.abs(mean(weighted[0].cond.data) - mean(plain[0].cond.data))).toBeLessThan(
      1e-6 * Math.max(1, Math.abs(mean(plain[0].cond.data))) + 1e-7,
    );
    expect(relErr(weighted[0].cond.data, plain[0].cond.data)).toBeGreaterThan(1e-3);
    const [broken] = await run('a cat BREAK a photo', 10);
    expect(broken[0].cond.shape).toEqual([1, 154, H]);
    await m.pool.clear();
  }, 60_000);

  it('adapters for another architecture or with wrong shapes are refused with the file named', async () => {
    const m = manager();
    const parts = await m.loadCheckpoint(tiny.file);
    const wrongCkpt = join(tiny.dir, 'wide.safetensors');
    // An adapter made for a checkpoint of other widths (the tiny one at another seed has equal shapes, so use SD1.5 names on a mismatched shape).
    const otherDir = join(tiny.dir, 'wide');
    mkdirSync(otherDir, { recursive: true });
    void wrongCkpt;
    const { writeSafetensors } = await import('../../engine/formats/safetensors.ts');
    const bad = join(otherDir, 'bad.safetensors');
    writeSafetensors(bad, [
      {
        name: 'lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_down.weight',
        dtype: 'F32',
        shape: [4, 2048],
        data: new Float32Array(4 * 2048),
      },
      {
        name: 'lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_up.weight',
        dtype: 'F32',
        shape: [32, 4],
        data: new Float32Array(32 * 4),
      },
    ]);
    expect(() => applyLora(ctxFor(m), bad, `lora_name 'bad.safetensors'`, parts.model, parts.clip, 1, 1)).toThrow(/bad\.safetensors/);
    void makeAdapter;
    await m.pool.clear();
  });
});
