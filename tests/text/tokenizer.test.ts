import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClipTokenizer, loadClipTokenizer } from '../../engine/text/clip-tokenizer.ts';
import { parsePromptWeights } from '../../engine/text/prompt-weights.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';

const DIR = path.resolve(import.meta.dirname, '../../../shared/tokenizers/clip-vit-large-patch14');
const vocab = JSON.parse(fs.readFileSync(path.join(DIR, 'vocab.json'), 'utf8')) as Record<string, number>;
const tok = ClipTokenizer.fromFiles(path.join(DIR, 'vocab.json'), path.join(DIR, 'merges.txt'));
/** Expected ids looked up in vocab.json directly, independent of the BPE code. */
const v = (...syms: string[]) => syms.map((s) => {
  expect(vocab[s], s).toBeTypeOf('number');
  return vocab[s];
});

describe('CLIP BPE tokenizer (real CLIP ViT-L/14 vocabulary)', () => {
  it('encodes whole words that are single vocabulary entries', () => {
    expect(tok.bos).toBe(49406);
    expect(tok.eos).toBe(49407);
    expect(tok.encode('a photo of a cat')).toEqual(v('a</w>', 'photo</w>', 'of</w>', 'a</w>', 'cat</w>'));
    expect(tok.encode('a photo of a cat')).toEqual([320, 1125, 539, 320, 2368]);
  });

  it('lower-cases, collapses whitespace and splits punctuation and digits as CLIP does', () => {
    expect(tok.encode('  A   PHOTO\n\tOF a Cat ')).toEqual(tok.encode('a photo of a cat'));
    expect(tok.encode('cat, dog.')).toEqual(v('cat</w>', ',</w>', 'dog</w>', '.</w>'));
    expect(tok.encode('2024')).toEqual(v('2</w>', '0</w>', '2</w>', '4</w>'));
    expect(tok.encode("it's")).toEqual(v('it</w>', "'s</w>"));
  });

  it('merges sub-words for words outside the vocabulary, using only known symbols', () => {
    const ids = tok.encode('lighthousekeeperish');
    expect(ids.length).toBeGreaterThan(1);
    const inv = new Map(Object.entries(vocab).map(([k, id]) => [id, k]));
    const text = ids.map((i) => inv.get(i)!).join('');
    expect(text).toBe('lighthousekeeperish</w>');
  });

  it('handles CJK and emoji through the byte alphabet', () => {
    const inv = new Map(Object.entries(vocab).map(([k, id]) => [id, k]));
    for (const s of ['一只猫', '🐱']) {
      const ids = tok.encode(s);
      expect(ids.length).toBeGreaterThan(0);
      expect(ids.every((i) => inv.has(i))).toBe(true);
    }
  });

  it("chunks and pads as ComfyUI's SD1 tokenizer: BOS + 75 + EOS, padded with EOS", () => {
    const [chunk] = tok.tokenizeWithWeights('a photo of a cat');
    expect(chunk).toHaveLength(77);
    expect(chunk.slice(0, 7).map((t) => t.token)).toEqual([49406, 320, 1125, 539, 320, 2368, 49407]);
    expect(chunk.slice(7).every((t) => t.token === 49407 && t.weight === 1)).toBe(true);
    const long = tok.tokenizeWithWeights(Array.from({ length: 100 }, () => 'cat').join(' '));
    expect(long).toHaveLength(2);
    expect(long.every((c) => c.length === 77 && c[0].token === 49406)).toBe(true);
    expect(long[0].slice(1, 76).every((t) => t.token === 2368)).toBe(true);
    expect(long[0][76].token).toBe(49407);
    expect(long[1].slice(1, 26).every((t) => t.token === 2368)).toBe(true);
    expect(long[1][26].token).toBe(49407);
    const empty = tok.tokenizeWithWeights('');
    expect(empty[0].slice(0, 2).map((t) => t.token)).toEqual([49406, 49407]);
  });

  it('applies (text:w), (text) ×1.1, nesting and escapes to token weights', () => {
    expect(parsePromptWeights('a (cat:1.5) on (a (mat)) \\(not\\)')).toEqual([
      ['a ', 1],
      ['cat', 1.5],
      [' on ', 1],
      ['a ', 1.1],
      ['mat', 1.1 * 1.1],
      [' (not)', 1],
    ]);
    expect(parsePromptWeights('unclosed (cat')).toEqual([
      ['unclosed ', 1],
      ['(cat', 1],
    ]);
    const [chunk] = tok.tokenizeWithWeights('a (cat:1.5)');
    expect(chunk.slice(1, 3)).toEqual([
      { token: 320, weight: 1 },
      { token: 2368, weight: 1.5 },
    ]);
  });

  it('is found in models/tokenizers/clip-vit-large-patch14/, and a missing one says where to put it', () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-tok-'));
    try {
      const paths = new FolderPaths({ baseDir: base });
      expect(() => loadClipTokenizer({ paths })).toThrow(/put vocab\.json and merges\.txt .*tokenizers\/clip-vit-large-patch14/);
      const dest = path.join(base, 'models/tokenizers/clip-vit-large-patch14');
      fs.mkdirSync(dest, { recursive: true });
      fs.copyFileSync(path.join(DIR, 'vocab.json'), path.join(dest, 'vocab.json'));
      fs.copyFileSync(path.join(DIR, 'merges.txt'), path.join(dest, 'merges.txt'));
      expect(loadClipTokenizer({ paths }).encode('cat')).toEqual([2368]);
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});
