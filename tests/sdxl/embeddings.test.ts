import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { writeSafetensors } from '../../engine/formats/safetensors.ts';
import { openClipForwardRef } from '../../engine/models/families/openclip/reference/openclip.ts';
import { clipForwardRef } from '../../engine/models/families/sd1/reference/clip.ts';
import type { SdxlClip } from '../../engine/models/families/sdxl/clip.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { CLIPTextEncodeA1111 } from '../../nodes/conditioning/clip-text-a1111.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { makeTinySdxl, type TinySdxl } from './tiny.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
let tiny: TinySdxl;
beforeAll(async () => {
  tiny = await makeTinySdxl(9);
});
afterAll(() => tiny && rmSync(tiny.dir, { recursive: true, force: true }));

describe('SDXL textual-inversion embeddings', () => {
  it('an SDXL embedding file gives its clip_l vectors to CLIP-L and its clip_g vectors to CLIP-G', async () => {
    const wl = tiny.cfg.clipL!.hiddenSize;
    const wg = tiny.cfg.clipG.width;
    const l = lcg(2 * wl, 31, 0.05);
    const g = lcg(2 * wg, 32, 0.05);
    mkdirSync(join(tiny.dir, 'models', 'embeddings'), { recursive: true });
    writeSafetensors(join(tiny.dir, 'models', 'embeddings', 'xl-style.safetensors'), [
      { name: 'clip_g', dtype: 'F32', shape: [2, wg], data: g },
      { name: 'clip_l', dtype: 'F32', shape: [2, wl], data: l },
    ]);
    const paths = new FolderPaths({ baseDir: tiny.dir });
    const parts = await new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet, paths }).loadCheckpoint(tiny.file);
    const clip = parts.clip as SdxlClip;
    const text = 'a embedding:xl-style cat';
    const out = await clip.encodeText(text);

    const chunk = clip.tokenize('l', text)[0];
    const at = chunk.findIndex((t) => t.embedding);
    expect(at).toBeGreaterThan(0);
    const toks = chunk.map((t) => Math.max(0, t.token));
    const eos = toks.lastIndexOf(
      clip.tokenizer.eos,
      toks.findIndex((t, i) => i > at + 1 && t === clip.tokenizer.eos),
    );
    const vecs = (data: Float32Array, w: number): (Float32Array | undefined)[] =>
      chunk.map((_t, i) => (i === at || i === at + 1 ? data.subarray((i - at) * w, (i - at + 1) * w) : undefined));
    const refL = clipForwardRef(tiny.cfg.clipL!, tiny.clipL!, toks, vecs(l, wl), false)[tiny.cfg.clipL!.numLayers - 2].data;
    const firstEos = toks.indexOf(clip.tokenizer.eos, at + 2);
    const gToks = toks.map((t, i) => (i > firstEos ? 0 : t));
    const refG = openClipForwardRef(tiny.cfg.clipG, tiny.clipG, gToks, vecs(g, wg)).raw[tiny.cfg.clipG.layers - 2];
    const W = wl + wg;
    const got = (from: number, w: number): Float32Array =>
      Float32Array.from({ length: 77 * w }, (_v, k) => out.cond.data[Math.floor(k / w) * W + from + (k % w)]);
    expect(relErr(got(0, wl), refL)).toBeLessThan(1e-4);
    expect(relErr(got(wl, wg), refG)).toBeLessThan(1e-4);
  }, 120_000);

  it('CLIPTextEncodeA1111 (bare name): each encoder tokenizes with its own vectors; an SD1-only embedding is text to both, as A1111 skips it', async () => {
    const wl = tiny.cfg.clipL!.hiddenSize;
    const wg = tiny.cfg.clipG.width;
    const l = lcg(2 * wl, 41, 0.05);
    const g = lcg(2 * wg, 42, 0.05);
    const folder = join(tiny.dir, 'models', 'embeddings');
    mkdirSync(folder, { recursive: true });
    writeSafetensors(join(folder, 'xlstyle.safetensors'), [
      { name: 'clip_g', dtype: 'F32', shape: [2, wg], data: g },
      { name: 'clip_l', dtype: 'F32', shape: [2, wl], data: l },
    ]);
    writeSafetensors(join(folder, 'oldstyle.safetensors'), [{ name: 'emb_params', dtype: 'F32', shape: [1, wl], data: lcg(wl, 43, 0.05) }]);
    const paths = new FolderPaths({ baseDir: tiny.dir });
    const parts = await new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet, paths }).loadCheckpoint(tiny.file);
    const clip = parts.clip as SdxlClip;
    const warnings: string[] = [];
    const ctx = { log: { ...quiet, warn: (m: string) => warnings.push(m) }, progress: () => {} } as unknown as NodeContext;
    const encode = async (text: string, bare = true): Promise<Tensor> => {
      const [cond] = (await CLIPTextEncodeA1111.run({ text, clip, steps: 20, bare_embedding_names: bare }, ctx)) as [Conditioning];
      return cond[0].cond;
    };

    const out = await encode('a xlstyle cat');
    // The reference: the same chunk through each reference encoder with that encoder's vectors in it.
    const chunk = clip.tokenize('l', 'a embedding:xlstyle cat')[0];
    const at = chunk.findIndex((t) => t.embedding);
    expect(at).toBeGreaterThan(0);
    const toks = chunk.map((t) => Math.max(0, t.token));
    const vecs = (data: Float32Array, w: number): (Float32Array | undefined)[] =>
      chunk.map((_t, i) => (i === at || i === at + 1 ? data.subarray((i - at) * w, (i - at + 1) * w) : undefined));
    const refL = clipForwardRef(tiny.cfg.clipL!, tiny.clipL!, toks, vecs(l, wl), false)[tiny.cfg.clipL!.numLayers - 2].data;
    const firstEos = toks.indexOf(clip.tokenizer.eos, at + 2);
    const gToks = toks.map((t, i) => (i > firstEos ? 0 : t));
    const refG = openClipForwardRef(tiny.cfg.clipG, tiny.clipG, gToks, vecs(g, wg)).raw[tiny.cfg.clipG.layers - 2];
    const W = wl + wg;
    const got = (from: number, w: number): Float32Array =>
      Float32Array.from({ length: 77 * w }, (_v, k) => out.data[Math.floor(k / w) * W + from + (k % w)]);
    expect(out.shape).toEqual([1, 77, W]);
    expect(relErr(got(0, wl), refL)).toBeLessThan(1e-4);
    expect(relErr(got(wl, wg), refG)).toBeLessThan(1e-4);

    // oldstyle has CLIP-L's width only: A1111 skips it on SDXL, so its name stays words for both encoders.
    const skipped = await encode('a oldstyle cat');
    const asText = await encode('a oldstyle cat', false);
    expect(Array.from(skipped.data)).toEqual(Array.from(asText.data));
    expect(relErr(skipped.data, (await encode('a cat')).data)).toBeGreaterThan(1e-3);
    expect(warnings).toEqual([]);
  }, 120_000);
});
