import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FolderPaths } from '../../engine/paths/folders.ts';
import {
  bundledVocabularyDir,
  ClipTokenizer,
  loadClipTokenizer,
  normalizeClipText,
  type WeightedToken,
} from '../../engine/text/clip-tokenizer.ts';

// The project's own copy of the CLIP ViT-L/14 vocabulary (the default for SD1 checkpoints).
const DIR = bundledVocabularyDir('clip-vit-large-patch14');
const vocab = JSON.parse(fs.readFileSync(path.join(DIR, 'vocab.json'), 'utf8')) as Record<string, number>;
const tok = ClipTokenizer.fromFiles(path.join(DIR, 'vocab.json'), path.join(DIR, 'merges.txt'));
/** Expected ids looked up in vocab.json directly, independent of the BPE code. */
const v = (...syms: string[]) =>
  syms.map((s) => {
    expect(vocab[s], s).toBeTypeOf('number');
    return vocab[s];
  });
const BOS = 49406;
const EOS = 49407;
const CAT = vocab['cat</w>'];

const ids = (chunk: WeightedToken[]) => chunk.map((t) => t.token);
const weights = (chunk: WeightedToken[]) => chunk.map((t) => t.weight);

describe('CLIP BPE tokenizer (real CLIP ViT-L/14 vocabulary)', () => {
  it('encodes whole words that are single vocabulary entries', () => {
    expect(tok.bos).toBe(BOS);
    expect(tok.eos).toBe(EOS);
    expect(tok.vocabSize).toBe(49408);
    expect(tok.tokenize('a photo of a cat')).toEqual(v('a</w>', 'photo</w>', 'of</w>', 'a</w>', 'cat</w>'));
  });

  it('lower-cases, collapses whitespace and splits punctuation and digits as CLIP does', () => {
    expect(tok.tokenize('  A   PHOTO\n\tOF a Cat ')).toEqual(tok.tokenize('a photo of a cat'));
    expect(tok.tokenize('cat, dog.')).toEqual(v('cat</w>', ',</w>', 'dog</w>', '.</w>'));
    expect(tok.tokenize('2024')).toEqual(v('2</w>', '0</w>', '2</w>', '4</w>'));
    expect(tok.tokenize("it's")).toEqual(v('it</w>', "'s</w>"));
    expect(tok.tokenize('cat!!')).toEqual(v('cat</w>', '!!</w>'));
    expect(tok.tokenize('')).toEqual([]);
  });

  it('merges sub-words for words outside the vocabulary into known symbols that spell the word', () => {
    const out = tok.tokenize('lighthousekeeperish');
    expect(out.length).toBeGreaterThan(1);
    expect(out.map((i) => tok.symbol(i)).join('')).toBe('lighthousekeeperish</w>');
  });

  it('gives the ids of the Hugging Face CLIPTokenizer on 32 reference texts (punctuation, casing, accents, CJK, emoji, special tokens)', () => {
    const ref = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, 'fixtures/clip_references.json'), 'utf8')) as {
      cases: { text: string; ids: number[] }[];
    };
    expect(ref.cases.length).toBe(32);
    for (const c of ref.cases) expect(tok.tokenize(c.text), JSON.stringify(c.text)).toEqual(c.ids);
  });

  it('normalises as Hugging Face does: NFC, Unicode whitespace, per-character lower case', () => {
    expect(normalizeClipText('Cafe\u0301')).toBe('café');
    expect(normalizeClipText('a\u00a0b\u2003c\u000bd')).toBe('a b c d');
    expect(normalizeClipText('x\ufeffy')).toBe('x\ufeffy'); // BOM is not whitespace there
    expect(normalizeClipText('ΟΔΟΣ')).toBe('οδοσ'); // no final-sigma rule
    // Special tokens only as exact text; upper case is ordinary text.
    expect(tok.tokenize('a<|endoftext|>b')).toEqual([...v('a</w>'), EOS, ...v('b</w>')]);
    expect(tok.tokenize('<|ENDOFTEXT|>')).not.toContain(EOS);
  });
});

describe("ComfyUI's SD1 chunking", () => {
  it('wraps a short prompt in BOS … EOS and pads with EOS to 77', () => {
    const [chunk] = tok.tokenizeWithWeights('a photo of a cat');
    expect(chunk).toHaveLength(77);
    expect(ids(chunk).slice(0, 7)).toEqual([BOS, ...v('a</w>', 'photo</w>', 'of</w>', 'a</w>', 'cat</w>'), EOS]);
    expect(chunk.slice(7).every((t) => t.token === EOS && t.weight === 1)).toBe(true);
    const empty = tok.tokenizeWithWeights('');
    expect(empty).toHaveLength(1);
    expect(ids(empty[0])).toEqual([BOS, ...Array(76).fill(EOS)]);
  });

  it('splits a long segment (≥ 8 tokens) at 75 tokens per chunk', () => {
    const long = tok.tokenizeWithWeights(Array.from({ length: 100 }, () => 'cat').join(' '));
    expect(long).toHaveLength(2);
    expect(ids(long[0])).toEqual([BOS, ...Array(75).fill(CAT), EOS]);
    expect(ids(long[1])).toEqual([BOS, ...Array(25).fill(CAT), ...Array(51).fill(EOS)]);
    const exact = tok.tokenizeWithWeights(Array.from({ length: 75 }, () => 'cat').join(' '));
    expect(exact).toHaveLength(1);
    expect(ids(exact[0])).toEqual([BOS, ...Array(75).fill(CAT), EOS]);
  });

  it('moves a short weighted segment whole to the next chunk instead of splitting it', () => {
    // 73 cats fill BOS + 73; the 5-token segment would need 79 > 76 slots, so chunk 1 closes with EOS
    // and 2 pads, and the segment starts chunk 2.
    const text = `${Array.from({ length: 73 }, () => 'cat').join(' ')} (a photo of a dog:1.2)`;
    const [c1, c2] = tok.tokenizeWithWeights(text);
    expect(ids(c1)).toEqual([BOS, ...Array(73).fill(CAT), EOS, EOS, EOS]);
    expect(ids(c2).slice(0, 7)).toEqual([BOS, ...v('a</w>', 'photo</w>', 'of</w>', 'a</w>', 'dog</w>'), EOS]);
    expect(weights(c2).slice(0, 7)).toEqual([1, 1.2, 1.2, 1.2, 1.2, 1.2, 1]);
  });

  it('splits a long weighted segment at the chunk boundary', () => {
    // BOS + 70 cats leaves 5 slots before EOS: a 10-token segment (≥ 8) puts 5 there and 5 in chunk 2.
    const text = `${Array.from({ length: 70 }, () => 'cat').join(' ')} (${Array.from({ length: 10 }, () => 'dog').join(' ')}:0.5)`;
    const [c1, c2] = tok.tokenizeWithWeights(text);
    const DOG = vocab['dog</w>'];
    expect(ids(c1)).toEqual([BOS, ...Array(70).fill(CAT), ...Array(5).fill(DOG), EOS]);
    expect(weights(c1).slice(71, 76)).toEqual(Array(5).fill(0.5));
    expect(ids(c2).slice(0, 7)).toEqual([BOS, ...Array(5).fill(DOG), EOS]);
  });

  it('applies prompt weights to the tokens of each segment', () => {
    const [chunk] = tok.tokenizeWithWeights('a (cat:1.5) on ((mat)) \\(literal\\)');
    const mat = 1.1 * 1.1;
    expect(chunk.slice(0, 8)).toEqual(
      [
        { token: BOS, weight: 1 },
        { token: vocab['a</w>'], weight: 1 },
        { token: CAT, weight: 1.5 },
        { token: vocab['on</w>'], weight: 1 },
        { token: vocab['mat</w>'], weight: mat },
        ...v('(</w>').map((token) => ({ token, weight: 1 })),
        ...tok.tokenize('literal').map((token) => ({ token, weight: 1 })),
        ...v(')</w>').map((token) => ({ token, weight: 1 })),
      ].slice(0, 8),
    );
    const plain = tok.tokenizeWithWeights('a (cat:1.5)', { disableWeights: true });
    expect(weights(plain[0]).every((w) => w === 1)).toBe(true);
    const raw = tok.tokenize('a (cat:1.5)');
    expect(raw).toEqual(v('a</w>', '(</w>', 'cat</w>', ':</w>', '1</w>', '.</w>', '5</w>', ')</w>'));
    expect(ids(plain[0]).slice(1, 1 + raw.length)).toEqual(raw);
  });

  it('resolves embedding:name words through a lookup, keeping the text around them; a missing one stays as text with a warning', () => {
    const e1 = Float32Array.of(1, 2);
    const e2 = Float32Array.of(3, 4);
    const lookup = (name: string) => (name === 'style' ? [e1, e2] : undefined);
    const warnings: string[] = [];
    const [chunk] = tok.tokenizeWithWeights('a embedding:style, cat embedding:missing dog', {
      embeddings: lookup,
      onWarning: (m) => warnings.push(m),
    });
    // "style," is not found, "style" is; the comma and "cat" stay text; the missing one stays as typed.
    const missing = tok.tokenize('embedding:missing dog');
    expect(chunk.slice(0, 7 + missing.length)).toEqual([
      { token: BOS, weight: 1 },
      { token: vocab['a</w>'], weight: 1 },
      { token: -1, weight: 1, embedding: e1 },
      { token: -1, weight: 1, embedding: e2 },
      { token: vocab[',</w>'], weight: 1 },
      { token: CAT, weight: 1 },
      ...missing.map((token) => ({ token, weight: 1 })),
      { token: EOS, weight: 1 },
    ]);
    expect(warnings).toEqual(['embedding:missing was not found in the embeddings folders; the words are kept as text']);
    // Without a lookup the words are plain text.
    expect(
      ids(tok.tokenizeWithWeights('embedding:style')[0])
        .slice(1, -1)
        .filter((t) => t !== EOS),
    ).toEqual(tok.tokenize('embedding:style'));
  });
});

describe('loading', () => {
  it('is found in models/tokenizers/clip-vit-large-patch14/ or next to the model; a missing one says where to put it', () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-tok-'));
    try {
      const paths = new FolderPaths({ baseDir: base });
      const model = path.join(base, 'models/checkpoints/m.safetensors');
      expect(() => loadClipTokenizer({ paths, modelPath: model })).toThrow(
        `CLIP tokenizer not found: put vocab.json and merges.txt (from any Hugging Face CLIP ViT-L/14 tokenizer, e.g. openai/clip-vit-large-patch14, or ComfyUI's comfy/sd1_tokenizer/) in one of: ${path.join(base, 'models/checkpoints/m.tokenizer')}, ${path.join(base, 'models/checkpoints')}, ${path.join(base, 'models/tokenizers/clip-vit-large-patch14')}`,
      );
      const dest = path.join(base, 'models/tokenizers/clip-vit-large-patch14');
      fs.mkdirSync(dest, { recursive: true });
      fs.copyFileSync(path.join(DIR, 'vocab.json'), path.join(dest, 'vocab.json'));
      expect(() => loadClipTokenizer({ paths })).toThrow(/has only vocab\.json/);
      fs.copyFileSync(path.join(DIR, 'merges.txt'), path.join(dest, 'merges.txt'));
      expect(loadClipTokenizer({ paths }).tokenize('cat')).toEqual([CAT]);
      expect(loadClipTokenizer({ paths })).toBe(loadClipTokenizer({ paths })); // loaded once
      expect(() => loadClipTokenizer({ paths, explicitDir: path.join(base, 'nowhere') })).toThrow(
        /not found in .*nowhere: it needs both vocab\.json and merges\.txt there \(missing: vocab\.json, merges\.txt\)/,
      );
      expect(loadClipTokenizer({ explicitDir: dest }).eos).toBe(EOS);
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });

  it("falls back to the project's CLIP ViT-L/14 copy only when asked (SD1), after the model's own and models/tokenizers", () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-tokdef-'));
    try {
      const paths = new FolderPaths({ baseDir: base });
      const model = path.join(base, 'models/checkpoints/m.safetensors');
      expect(() => loadClipTokenizer({ paths, modelPath: model })).toThrow(/CLIP tokenizer not found/);
      const bundled = loadClipTokenizer({ paths, modelPath: model, bundled: true });
      expect(bundled).toBe(loadClipTokenizer({ explicitDir: DIR })); // the project's copy, one cached instance
      expect(bundled.tokenize('a photo of a cat')).toEqual(v('a</w>', 'photo</w>', 'of</w>', 'a</w>', 'cat</w>'));
      // A model's own vocabulary (the demo model ships a small one in `<model>.tokenizer/`) wins.
      const own = path.join(base, 'models/checkpoints/m.tokenizer');
      fs.mkdirSync(own, { recursive: true });
      fs.writeFileSync(
        path.join(own, 'vocab.json'),
        JSON.stringify({
          c: 0,
          a: 1,
          t: 2,
          'c</w>': 3,
          'a</w>': 4,
          't</w>': 5,
          'at</w>': 6,
          'cat</w>': 7,
          '<|startoftext|>': 8,
          '<|endoftext|>': 9,
        }),
      );
      fs.writeFileSync(path.join(own, 'merges.txt'), '#version: 0.2\na t</w>\nc at</w>\n');
      const small = loadClipTokenizer({ paths, modelPath: model, bundled: true });
      expect(small.vocabSize).toBe(10);
      expect(small.tokenize('cat')).toEqual([7]);
      // So does models/tokenizers/<vocabulary>/ over the bundled copy.
      fs.rmSync(own, { recursive: true });
      const shelf = path.join(base, 'models/tokenizers/my-vocab');
      fs.mkdirSync(shelf, { recursive: true });
      for (const f of ['vocab.json', 'merges.txt']) fs.copyFileSync(path.join(DIR, f), path.join(shelf, f));
      expect(() => loadClipTokenizer({ paths, modelPath: model, vocabulary: 'my-vocab' })).not.toThrow();
      expect(() => loadClipTokenizer({ paths, modelPath: model, vocabulary: 'other', bundled: true })).toThrow(
        `in one of: ${path.join(base, 'models/checkpoints/m.tokenizer')}, ${path.join(base, 'models/checkpoints')}, ${path.join(base, 'models/tokenizers/other')}, ${bundledVocabularyDir('other')}`,
      );
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });

  it('refuses tokenizer files that are malformed or do not belong together', () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-tokbad-'));
    try {
      const vf = path.join(d, 'vocab.json');
      const mf = path.join(d, 'merges.txt');
      fs.writeFileSync(vf, JSON.stringify({ a: 0, b: 1, '<|startoftext|>': 2, '<|endoftext|>': 3 }));
      fs.writeFileSync(mf, '#version: 0.2\na b\n');
      expect(() => ClipTokenizer.fromFiles(vf, mf)).toThrow(`${mf}:2: merge 'a b' makes 'ab', which is not in ${vf}`);
      fs.writeFileSync(mf, '#version: 0.2\na b c\n');
      expect(() => ClipTokenizer.fromFiles(vf, mf)).toThrow(`${mf}:2: expected two symbols`);
      fs.writeFileSync(vf, JSON.stringify({ a: 0, b: 0 }));
      expect(() => ClipTokenizer.fromFiles(vf, mf)).toThrow('id 0 is given to both "a" and "b"');
      fs.writeFileSync(vf, JSON.stringify({ a: 0 }));
      fs.writeFileSync(mf, '');
      expect(() => ClipTokenizer.fromFiles(vf, mf)).toThrow('no <|startoftext|> / <|endoftext|> tokens');
      fs.writeFileSync(vf, '[1, 2');
      expect(() => ClipTokenizer.fromFiles(vf, mf)).toThrow(`${vf}: not valid JSON`);
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});
