import { copyFileSync, mkdirSync, readdirSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor/executor.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { OrtClip } from '../../engine/models/ort-clip.ts';
import { clipForwardRef } from '../../engine/models/families/sd1/reference/clip.ts';
import { unetForwardRef } from '../../engine/models/families/sd1/reference/unet.ts';
import { vaeDecodeRef } from '../../engine/models/families/sd1/reference/vae.ts';
import { modelToImage } from '../../engine/models/ort-vae.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { InterruptedError } from '../../engine/core/errors.ts';
import { writeSafetensors } from '../../engine/formats/safetensors.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import '../../nodes/model/services.ts';
import { lcg, makeTiny, relErr, type Tiny } from './tiny.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
let tiny: Tiny;
beforeAll(async () => {
  tiny = await makeTiny(4);
});
const manager = (extra: Partial<ConstructorParameters<typeof ModelManager>[0]> = {}) =>
  new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet, ...extra });

describe('ModelManager on the tiny checkpoint', () => {
  it('CLIPTextEncode semantics: chunks, the chosen layer, weights against the empty prompt, pooled at EOS', async () => {
    const parts = await manager().loadCheckpoint(tiny.file);
    const clip = parts.clip as OrtClip;
    const L = tiny.cfg.clip.numLayers;
    const H = tiny.cfg.clip.hiddenSize;
    const plain = await clip.encodeText('a photo of a cat');
    const toks = clip.tokenizer.tokenizeWithWeights('a photo of a cat')[0].map((t) => t.token);
    const ref = clipForwardRef(tiny.cfg.clip, tiny.clip, toks);
    expect(plain.cond.shape).toEqual([1, 77, H]);
    expect(relErr(plain.cond.data, ref[L - 1].data)).toBeLessThan(1e-4);
    const eos = toks.indexOf(clip.tokenizer.eos);
    expect(relErr(plain.pooled.data, ref[L - 1].data.subarray(eos * H, (eos + 1) * H))).toBeLessThan(1e-4);

    // Clip skip −2 is the previous layer's output, final-normed; beyond the depth means "last".
    const skip = await clip.withLayer(-2).encodeText('a photo of a cat');
    expect(relErr(skip.cond.data, ref[L - 2].data)).toBeLessThan(1e-4);
    expect(relErr(skip.pooled.data, plain.pooled.data)).toBe(0);
    expect(relErr((await clip.withLayer(-24).encodeText('a photo of a cat')).cond.data, plain.cond.data)).toBe(0);

    // (cat:1.5): weighted tokens move away from the empty prompt's encoding, others stay.
    const weighted = await clip.encodeText('a photo of a (cat:1.5)');
    const wt = clip.tokenizer.tokenizeWithWeights('a photo of a (cat:1.5)')[0];
    const emptyToks = [clip.tokenizer.bos, ...new Array<number>(76).fill(clip.tokenizer.eos)];
    const refW = clipForwardRef(
      tiny.cfg.clip,
      tiny.clip,
      wt.map((t) => t.token),
    )[L - 1].data;
    const refE = clipForwardRef(tiny.cfg.clip, tiny.clip, emptyToks)[L - 1].data;
    const expected = new Float32Array(77 * H);
    wt.forEach((t, j) => {
      for (let c = 0; c < H; c++) expected[j * H + c] = (refW[j * H + c] - refE[j * H + c]) * t.weight + refE[j * H + c];
    });
    expect(wt.some((t) => t.weight === 1.5)).toBe(true);
    expect(relErr(weighted.cond.data, expected)).toBeLessThan(1e-4);
    expect(relErr(weighted.cond.data, refW)).toBeGreaterThan(1e-3);

    // Over 75 tokens → two chunks concatenated on the token axis.
    const long = await clip.encodeText(Array.from({ length: 60 }, (_, i) => `word${i % 7} cat`).join(' '));
    expect(long.cond.shape[1] % 77).toBe(0);
    expect(long.cond.shape[1]).toBeGreaterThan(77);
  });

  it('UNet and VAE handles agree with the reference; the control path and interruption work', async () => {
    const { model, vae } = await manager().loadCheckpoint(tiny.file);
    const D = tiny.cfg.unet.contextDim;
    const x = { shape: [2, 4, 8, 8], data: lcg(2 * 256, 11) };
    const ctx = { shape: [2, 77, D], data: lcg(2 * 77 * D, 12) };
    const t = new Float32Array([700, 3]);
    const out = await model.unet.run({ x, timesteps: t, context: ctx });
    expect(relErr(out.data, unetForwardRef(tiny.cfg.unet, tiny.unet, x, t, ctx).data)).toBeLessThan(1e-4);
    const ac = new AbortController();
    ac.abort();
    await expect(model.unet.run({ x, timesteps: t, context: ctx, signal: ac.signal })).rejects.toBeInstanceOf(InterruptedError);
    await expect(model.unet.run({ x, timesteps: new Float32Array([1]), context: ctx })).rejects.toThrow(/1 timesteps for a batch of 2/);

    const lat = { shape: [1, 4, 6, 5], data: lcg(120, 13) };
    const img = await vae.decode(lat);
    expect(img.shape).toEqual([1, 48, 40, 3]);
    expect(relErr(img.data, modelToImage(vaeDecodeRef(tiny.cfg.vae, tiny.vae, lat)).data)).toBeLessThan(1e-4);
    const back = await vae.encode(img);
    expect(back.shape).toEqual([1, 4, 6, 5]);
  });

  it('caches built graphs on disk: a second manager builds nothing and gives identical outputs', async () => {
    const cacheDir = join(tiny.dir, 'cache2');
    const a = manager({ cacheDir });
    const pa = await a.loadCheckpoint(tiny.file);
    const ea = await pa.clip.encodeText('red apple');
    expect(a.stats().builds).toBe(1);
    const dirs = readdirSync(cacheDir).filter((d) => d.startsWith('clip-'));
    expect(dirs).toHaveLength(1);
    expect(dirs[0]).toMatch(/^clip-[0-9a-f]{20}-float32-cpu-mha-v\d+$/);
    const b = manager({ cacheDir });
    const eb = await (await b.loadCheckpoint(tiny.file)).clip.encodeText('red apple');
    expect(b.stats().builds).toBe(0);
    expect(relErr(eb.cond.data, ea.cond.data)).toBe(0);
    // The same bytes under another file name hit the same cache entry (keyed by content).
    const copy = join(tiny.dir, 'checkpoints', 'renamed.safetensors');
    copyFileSync(tiny.file, copy);
    mkdirSync(`${copy.replace(/\.safetensors$/, '')}.tokenizer`, { recursive: true });
    for (const f of ['vocab.json', 'merges.txt'])
      copyFileSync(
        join(`${tiny.file.replace(/\.safetensors$/, '')}.tokenizer`, f),
        join(`${copy.replace(/\.safetensors$/, '')}.tokenizer`, f),
      );
    await (await b.loadCheckpoint(copy)).clip.encodeText('red apple');
    expect(b.stats().builds).toBe(0);
  });

  it('keeps sessions under the memory budget, unloading the least recently used', async () => {
    const m = manager({ memoryBudgetBytes: 36 * 2 ** 20 });
    const { model, vae } = await m.loadCheckpoint(tiny.file);
    const D = tiny.cfg.unet.contextDim;
    await model.unet.run({
      x: { shape: [1, 4, 8, 8], data: lcg(256, 1) },
      timesteps: new Float32Array([10]),
      context: { shape: [1, 77, D], data: lcg(77 * D, 2) },
    });
    await vae.decode({ shape: [1, 4, 4, 4], data: lcg(64, 3) });
    const s = m.stats();
    expect(s.evictions).toBeGreaterThanOrEqual(1);
    expect(s.loaded.map((l) => l.key.split('-')[0])).toEqual(['vae_decoder']);
    expect(s.bytes).toBeLessThanOrEqual(36 * 2 ** 20);
  });

  it('refuses malformed, pickled and unsupported files with errors naming the file and the problem', async () => {
    const m = manager();
    const bad = join(tiny.dir, 'checkpoints', 'truncated.safetensors');
    copyFileSync(tiny.file, bad);
    truncateSync(bad, Math.floor(statSync(bad).size / 2));
    await expect(m.loadCheckpoint(bad)).rejects.toThrow(/truncated\.safetensors/);
    const pickle = join(tiny.dir, 'checkpoints', 'old.ckpt');
    writeFileSync(pickle, Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00]));
    await expect(m.loadCheckpoint(pickle)).rejects.toThrow(/safetensors/i);
    const sdxl = join(tiny.dir, 'checkpoints', 'sdxl.safetensors');
    await writeSafetensors(sdxl, [
      {
        name: 'conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight',
        dtype: 'F32',
        shape: [2, 2],
        data: new Float32Array(4),
      },
      { name: 'model.diffusion_model.input_blocks.0.0.weight', dtype: 'F32', shape: [1, 1, 1, 1], data: new Float32Array(1) },
    ]);
    await expect(m.loadCheckpoint(sdxl)).rejects.toThrow(/not supported yet: detected SDXL/);
  });
});

describe('model nodes through the executor', () => {
  it('CheckpointLoaderSimple → CLIPTextEncode, EmptyLatentImage → VAEDecode → SaveImage', async () => {
    const paths = new FolderPaths({ baseDir: tiny.dir, modelsDir: tiny.dir });
    const registry = createBuiltinRegistry();
    const ex = new Executor(registry, { paths, services: { models: manager() }, log: quiet });
    const prompt = {
      '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'weft-tiny-sd1.safetensors' } },
      '2': { class_type: 'CLIPSetLastLayer', inputs: { clip: ['1', 1], stop_at_clip_layer: -2 } },
      '3': { class_type: 'CLIPTextEncode', inputs: { clip: ['2', 0], text: 'a (red:1.2) fox' } },
      '4': { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 48, batch_size: 2 } },
      '5': { class_type: 'VAEDecode', inputs: { samples: ['4', 0], vae: ['1', 2] } },
      '6': { class_type: 'SaveImage', inputs: { images: ['5', 0], filename_prefix: 'weft' } },
      '7': { class_type: 'PreviewImage', inputs: { images: ['5', 0] } },
    };
    const r = await ex.execute(prompt, { promptId: 'p', outputs: ['6', '3'] as never });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe('success');
    const saved = (r.outputs['6'] as { images: { filename: string }[] }).images;
    expect(saved).toHaveLength(2);
    expect(readdirSync(paths.outputDir).filter((f) => f.startsWith('weft_'))).toHaveLength(2);
    const info = registry.objectInfo({ paths });
    expect((info.CheckpointLoaderSimple.input.required as Record<string, unknown[]>).ckpt_name[0]).toContain('weft-tiny-sd1.safetensors');
  });
});
