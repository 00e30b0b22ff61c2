import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeSafetensors, type TensorToWrite } from '../../engine/formats/safetensors.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { EmbeddingLibrary, loadEmbeddingFile, MAX_EMBEDDING_VECTORS } from '../../engine/text/embeddings.ts';

/** n vectors of width w, vector k filled with seed + k / 8 (exact in F16 too). */
const values = (n: number, w: number, seed: number) => Float32Array.from({ length: n * w }, (_, i) => seed + Math.floor(i / w) / 8);
const expectVectors = (got: Float32Array[], n: number, w: number, seed: number) => {
  expect(got).toHaveLength(n);
  got.forEach((x, k) => {
    expect(x).toBeInstanceOf(Float32Array);
    expect(x).toHaveLength(w);
    expect(x.every((y) => y === seed + k / 8)).toBe(true);
  });
};

let dir = '';
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-emb-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const write = (name: string, tensors: TensorToWrite[]) => {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeSafetensors(file, tensors);
  return file;
};

describe('loadEmbeddingFile', () => {
  it.each<[string, TensorToWrite[], number, number]>([
    ['emb_params [n, w] (kohya)', [{ name: 'emb_params', dtype: 'F32', shape: [2, 768], data: values(2, 768, 1) }], 2, 768],
    [
      "A1111's string_to_param.* beside string_to_token.*",
      [
        { name: 'string_to_token.*', dtype: 'I64', shape: [1], data: BigInt64Array.of(265n) },
        { name: 'string_to_param.*', dtype: 'F32', shape: [3, 768], data: values(3, 768, 1) },
      ],
      3,
      768,
    ],
    [
      'a single tensor of another name (diffusers concept)',
      [{ name: '<cat-toy>', dtype: 'F32', shape: [1, 768], data: values(1, 768, 1) }],
      1,
      768,
    ],
    ['a 1-D tensor is one vector', [{ name: 'x', dtype: 'F32', shape: [768], data: values(1, 768, 1) }], 1, 768],
    ['leading dimensions are flattened', [{ name: 'x', dtype: 'F32', shape: [1, 2, 768], data: values(2, 768, 1) }], 2, 768],
    ['F16 values', [{ name: 'emb_params', dtype: 'F16', shape: [2, 768], data: values(2, 768, 1) }], 2, 768],
    ['BF16 values, SD2 width', [{ name: 'emb_params', dtype: 'BF16', shape: [2, 1024], data: values(2, 1024, 1) }], 2, 1024],
  ])('loads %s', (_what, tensors, n, w) => {
    expectVectors(loadEmbeddingFile(write('e.safetensors', tensors), w), n, w, 1);
  });

  it('takes clip_l from an SDXL-style file for SD1, clip_g for an encoder of width 1280', () => {
    const file = write('xl.safetensors', [
      { name: 'clip_g', dtype: 'F16', shape: [2, 1280], data: values(2, 1280, 5) },
      { name: 'clip_l', dtype: 'F16', shape: [2, 768], data: values(2, 768, 3) },
    ]);
    expectVectors(loadEmbeddingFile(file, 768), 2, 768, 3);
    expectVectors(loadEmbeddingFile(file, 1280), 2, 1280, 5);
    expect(() => loadEmbeddingFile(file, 1024)).toThrow(
      `${file}: tensor 'clip_l' has shape [2, 768], 'clip_g' [2, 1280], vectors of width 768, but this text encoder takes width 1024`,
    );
  });

  it('names the file, tensor and shapes when the width is wrong', () => {
    const file = write('sd2.safetensors', [{ name: 'emb_params', dtype: 'F32', shape: [4, 1024], data: values(4, 1024, 1) }]);
    expect(() => loadEmbeddingFile(file, 768)).toThrow(
      `${file}: tensor 'emb_params' has shape [4, 1024], vectors of width 1024, but this text encoder takes width 768`,
    );
  });

  it('refuses pickles, by name or by content, with a hint to convert them', () => {
    const pt = path.join(dir, 'old.pt');
    fs.writeFileSync(pt, Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]));
    expect(() => loadEmbeddingFile(pt, 768)).toThrow(/old\.pt.*pickle.*convert it to \.safetensors/s);
    const bin = path.join(dir, 'learned_embeds.bin');
    fs.writeFileSync(bin, Buffer.from('PK\u0003\u0004rest of a zip'));
    expect(() => loadEmbeddingFile(bin, 768)).toThrow(/learned_embeds\.bin.*safetensors/s);
    const disguised = path.join(dir, 'disguised.safetensors');
    fs.writeFileSync(disguised, Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e, 0, 0, 0, 0]));
    expect(() => loadEmbeddingFile(disguised, 768)).toThrow(/pickle stream/);
  });

  it('refuses files it cannot read as one embedding, saying why', () => {
    const two = write('two.safetensors', [
      { name: 'string_to_param.a', dtype: 'F32', shape: [1, 8], data: values(1, 8, 1) },
      { name: 'string_to_param.b', dtype: 'F32', shape: [1, 8], data: values(1, 8, 1) },
    ]);
    expect(() => loadEmbeddingFile(two, 8)).toThrow(/2 embedding terms \(string_to_param\.a, string_to_param\.b\)/);
    const unknown = write('unknown.safetensors', [
      { name: 'a', dtype: 'F32', shape: [1, 8], data: values(1, 8, 1) },
      { name: 'b', dtype: 'F32', shape: [1, 8], data: values(1, 8, 1) },
    ]);
    expect(() => loadEmbeddingFile(unknown, 8)).toThrow(
      /cannot tell which tensor holds the embedding vectors.*'a' \[1, 8\] F32, 'b' \[1, 8\] F32/,
    );
    const ints = write('ints.safetensors', [
      { name: 'emb_params', dtype: 'I32', shape: [1, 8], data: Int32Array.of(1, 2, 3, 4, 5, 6, 7, 8) },
    ]);
    expect(() => loadEmbeddingFile(ints, 8)).toThrow(/'emb_params' is I32/);
    const empty = write('empty.safetensors', [{ name: 'emb_params', dtype: 'F32', shape: [0, 8], data: new Float32Array(0) }]);
    expect(() => loadEmbeddingFile(empty, 8)).toThrow(/holds no vectors/);
    const many = write('many.safetensors', [
      { name: 'emb_params', dtype: 'F32', shape: [MAX_EMBEDDING_VECTORS + 1, 2], data: values(MAX_EMBEDDING_VECTORS + 1, 2, 1) },
    ]);
    expect(() => loadEmbeddingFile(many, 2)).toThrow(/257 vectors is more than the 256/);
    const nan = write('nan.safetensors', [{ name: 'emb_params', dtype: 'F32', shape: [2, 2], data: Float32Array.of(0, 1, Number.NaN, 2) }]);
    expect(() => loadEmbeddingFile(nan, 2)).toThrow(/non-finite value \(NaN\) at vector 1/);
    const none = write('none.safetensors', []);
    expect(() => loadEmbeddingFile(none, 8)).toThrow(/holds no tensors/);
    expect(() => loadEmbeddingFile(path.join(dir, 'absent.safetensors'), 8)).toThrow(/absent\.safetensors: cannot read/);
  });
});

describe('EmbeddingLibrary', () => {
  const setup = () => {
    const paths = new FolderPaths({ baseDir: dir });
    const root = path.join(dir, 'models/embeddings');
    const emb = (rel: string, n: number, seed: number, w = 8) =>
      write(path.join('models/embeddings', rel), [{ name: 'emb_params', dtype: 'F32', shape: [n, w], data: values(n, w, seed) }]);
    return { paths, root, emb };
  };

  it('finds names case-insensitively, with or without extension, in subfolders as ComfyUI does', () => {
    const { paths, emb } = setup();
    emb('Style.safetensors', 2, 1);
    emb('chars/Hero.safetensors', 3, 2);
    emb('chars/deep/er/villain.sft', 1, 3);
    const warnings: string[] = [];
    const lib = new EmbeddingLibrary(paths, 8, (m) => warnings.push(m));
    expectVectors(lib.lookup('Style') as Float32Array[], 2, 8, 1);
    expectVectors(lib.lookup('style') as Float32Array[], 2, 8, 1);
    expectVectors(lib.lookup('STYLE.safetensors') as Float32Array[], 2, 8, 1);
    expectVectors(lib.lookup('hero') as Float32Array[], 3, 8, 2);
    expectVectors(lib.lookup('chars/hero') as Float32Array[], 3, 8, 2);
    expectVectors(lib.lookup('chars\\Hero.safetensors') as Float32Array[], 3, 8, 2);
    expectVectors(lib.lookup('er/villain') as Float32Array[], 1, 8, 3);
    expect(lib.lookup('nosuch')).toBeUndefined();
    expect(lib.lookup('')).toBeUndefined();
    expect(lib.lookup('../models/embeddings/Style')).toBeUndefined();
    expect(lib.lookup('tyle')).toBeUndefined();
    expect(warnings).toEqual([]);
    expect(lib.names().sort()).toEqual(['Hero', 'Style', 'villain']);
    expect([...lib.lookup.names()].sort()).toEqual(['Hero', 'Style', 'villain']);
  });

  it('prefers exact case, then the root, then .safetensors, then the first folder', () => {
    const { paths, emb } = setup();
    emb('a/x.safetensors', 1, 1);
    emb('x.safetensors', 1, 2);
    emb('X.sft', 1, 3);
    const lib = new EmbeddingLibrary(paths, 8);
    expectVectors(lib.lookup('x') as Float32Array[], 1, 8, 2);
    expectVectors(lib.lookup('X') as Float32Array[], 1, 8, 3);
    const other = path.join(dir, 'other');
    fs.mkdirSync(other);
    writeSafetensors(path.join(other, 'y.safetensors'), [{ name: 'emb_params', dtype: 'F32', shape: [1, 8], data: values(1, 8, 4) }]);
    emb('y.safetensors', 1, 5);
    paths.addPath('embeddings', other, { first: true });
    expectVectors(new EmbeddingLibrary(paths, 8).lookup('y') as Float32Array[], 1, 8, 4);
  });

  it('caches loaded vectors per file version and sees new and changed files', () => {
    const { paths, emb } = setup();
    const lib = new EmbeddingLibrary(paths, 8);
    expect(lib.lookup('late')).toBeUndefined();
    const file = emb('late.safetensors', 2, 1);
    const first = lib.lookup('late');
    expectVectors(first as Float32Array[], 2, 8, 1);
    expect(lib.lookup('late')).toBe(first);
    writeSafetensors(file, [{ name: 'emb_params', dtype: 'F32', shape: [3, 8], data: values(3, 8, 7) }]);
    fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
    expectVectors(lib.lookup('late') as Float32Array[], 3, 8, 7);
  });

  it('reports a file that fails to load once, and looks it up as missing', () => {
    const { paths, root, emb } = setup();
    emb('wide.safetensors', 2, 1, 16);
    fs.writeFileSync(path.join(root, 'old.pt'), Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]));
    const warnings: string[] = [];
    const lib = new EmbeddingLibrary(paths, 8, (m) => warnings.push(m));
    expect(lib.lookup('wide')).toBeUndefined();
    expect(lib.lookup('wide')).toBeUndefined();
    expect(lib.lookup('old')).toBeUndefined();
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/embedding "wide" could not be loaded: .*wide\.safetensors: tensor 'emb_params' has shape \[2, 16\]/);
    expect(warnings[1]).toMatch(/embedding "old" could not be loaded: .*old\.pt.*convert it to \.safetensors/s);
    expect(lib.names().sort()).toEqual(['old', 'wide']);
  });

  it('copes with a missing embeddings folder', () => {
    const lib = new EmbeddingLibrary(new FolderPaths({ baseDir: path.join(dir, 'nowhere') }), 768);
    expect(lib.names()).toEqual([]);
    expect(lib.lookup('x')).toBeUndefined();
  });
});
