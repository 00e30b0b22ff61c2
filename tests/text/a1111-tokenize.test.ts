import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../engine/formats/safetensors.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { parseA1111Attention } from '../../engine/text/a1111-prompt.ts';
import { bundledVocabularyDir, ClipTokenizer, type EmbeddingLookup, type WeightedToken } from '../../engine/text/clip-tokenizer.ts';
import { EmbeddingLibrary } from '../../engine/text/embeddings.ts';

// The project's own copy of the CLIP ViT-L/14 vocabulary (the default for SD1 checkpoints).
const DIR = bundledVocabularyDir('clip-vit-large-patch14');

const BOS = 49406;
const EOS = 49407;
const W = 768;

/** A recognisable vector: every component of vector k of embedding `seed` is seed * 100 + k. */
const vec = (seed: number, k: number) => new Float32Array(W).fill(seed * 100 + k);
const TWO = [vec(2, 0), vec(2, 1)];
const THREE = [vec(3, 0), vec(3, 1), vec(3, 2)];

const ids = (chunk: WeightedToken[]) => chunk.map((t) => t.token);
const weights = (chunk: WeightedToken[]) => chunk.map((t) => t.weight);
/** A chunk's content between BOS and the first EOS (the chunker never puts EOS inside). */
const body = (chunk: WeightedToken[]) => {
  expect(chunk).toHaveLength(77);
  expect(chunk[0]).toEqual({ token: BOS, weight: 1 });
  const end = chunk.findIndex((t, i) => i > 0 && t.token === EOS);
  expect(chunk.slice(end).every((t) => t.token === EOS && t.weight === 1 && !t.embedding)).toBe(true);
  return chunk.slice(1, end);
};
const words = (n: number, w: string) => Array.from({ length: n }, () => w).join(' ');

// The real vocabulary ships in engine/text/vocab/ (as for tests/text/tokenizer.test.ts): these expectations are its ids.
describe('A1111 chunking (tokenizeA1111, real CLIP ViT-L/14 vocabulary)', () => {
  const vocab = JSON.parse(fs.readFileSync(path.join(DIR, 'vocab.json'), 'utf8')) as Record<string, number>;
  const tok = ClipTokenizer.fromFiles(path.join(DIR, 'vocab.json'), path.join(DIR, 'merges.txt'));
  const v = (s: string) => {
    expect(vocab[s], s).toBeTypeOf('number');
    return vocab[s];
  };
  const T = (token: number | string, weight = 1): WeightedToken => ({ token: typeof token === 'string' ? v(token) : token, weight });
  const E = (embedding: Float32Array, weight = 1): WeightedToken => ({ token: -1, weight, embedding });
  const a1111 = (text: string, opts?: Parameters<ClipTokenizer['tokenizeA1111']>[1]) => tok.tokenizeA1111(parseA1111Attention(text), opts);
  const known = new Map<string, Float32Array[]>([
    ['two', TWO],
    ['three', THREE],
    ['red cat', [vec(9, 0)]],
    ['red', [vec(8, 0)]],
    ['neg_hands', [vec(7, 0)]],
  ]);
  const lookup: EmbeddingLookup = (name) => known.get(name);

  it('gives the same chunk as ComfyUI for a plain prompt', () => {
    expect(a1111('a photo of a cat')).toEqual(tok.tokenizeWithWeights('a photo of a cat'));
    expect(a1111('')).toEqual(tok.tokenizeWithWeights(''));
    expect(ids(a1111('')[0])).toEqual([BOS, ...Array(76).fill(EOS)]);
  });

  it.each<[string, WeightedToken[]]>([
    ['a (cat:1.5) on [mat]', [T('a</w>'), T('cat</w>', 1.5), T('on</w>'), T('mat</w>', 1 / 1.1)]],
    ['((cat)) [[dog]]', [T('cat</w>', 1.1 * 1.1), T('dog</w>', (1 / 1.1) * (1 / 1.1))]],
    ['(a (cat:2) b:0.5)', [T('a</w>', 0.5), T('cat</w>', 1), T('b</w>', 0.5)]],
    ['\\(cat\\) \\[dog\\]', [T('(</w>'), T('cat</w>'), T(')</w>'), T('[</w>'), T('dog</w>'), T(']</w>')]],
    ['(open cat [dog', [T('open</w>', 1.1), T('cat</w>', 1.1), T('dog</w>', 1.1 * (1 / 1.1))]],
    ['cat) dog]', [T('cat</w>'), T(')</w>'), T('dog</w>'), T(']</w>')]],
    // BREAK inside brackets is multiplied (to -1.1), so A1111 reads it as the word.
    ['(a BREAK b)', [T('a</w>', 1.1), T('break</w>', -1.1), T('b</w>', 1.1)]],
  ])('weights %j', (text, expected) => {
    const chunks = a1111(text);
    expect(chunks).toHaveLength(1);
    expect(body(chunks[0])).toEqual(expected);
  });

  it('tokenizes CJK and emoji as the tokenizer does, in one segment', () => {
    for (const text of ['一只猫在屋顶上', '🐱 cat 🎉🎉', '(猫:1.3) 犬']) {
      const segs = parseA1111Attention(text);
      const chunks = tok.tokenizeA1111(segs);
      expect(chunks).toHaveLength(1);
      const got = body(chunks[0]);
      expect(got.map((t) => t.token)).toEqual(segs.flatMap(([s]) => tok.tokenize(s)));
      expect(got.length).toBeGreaterThan(2);
      expect(got.some((t) => t.token === EOS)).toBe(false);
    }
    expect(weights(a1111('(猫:1.3) 犬')[0]).slice(1, 3)).toEqual([1.3, 1.3]);
  });

  it('starts a new chunk at each BREAK, padding the current one', () => {
    const [c1, c2, ...rest] = a1111('a cat BREAK a dog');
    expect(rest).toEqual([]);
    expect(body(c1)).toEqual([T('a</w>'), T('cat</w>')]);
    expect(body(c2)).toEqual([T('a</w>'), T('dog</w>')]);
    // A leading BREAK leaves an empty first chunk; a trailing one adds nothing; two make an empty middle.
    const lead = a1111('BREAK a');
    expect(lead).toHaveLength(2);
    expect(body(lead[0])).toEqual([]);
    expect(a1111('a BREAK')).toHaveLength(1);
    const two = a1111('a BREAK BREAK b');
    expect(two.map((c) => body(c).length)).toEqual([1, 0, 1]);
    // Weights end with their group; inside a weighted group BREAK is a word with that group's (negated) weight.
    const w = a1111('(a BREAK:1.0) (b BREAK c:1.5)');
    expect(w.map((c) => body(c).map((t) => t.weight))).toEqual([[1], [1.5, -1.5, 1.5]]);
  });

  it('splits a long prompt into chunks of 75 tokens', () => {
    const CAT = v('cat</w>');
    const c100 = a1111(words(100, 'cat'));
    expect(c100).toHaveLength(2);
    expect(ids(c100[0])).toEqual([BOS, ...Array(75).fill(CAT), EOS]);
    expect(ids(c100[1])).toEqual([BOS, ...Array(25).fill(CAT), ...Array(51).fill(EOS)]);
    expect(a1111(words(75, 'cat'))).toHaveLength(1);
    const c151 = a1111(words(151, 'cat'));
    expect(c151.map((c) => body(c).length)).toEqual([75, 75, 1]);
    // A BREAK right at a full chunk closes it; no empty chunk appears.
    expect(a1111(`${words(75, 'cat')} BREAK dog`).map((c) => body(c).length)).toEqual([75, 1]);
  });

  it("moves the words after the last comma to the next chunk when it is within 20 tokens of the end (A1111's backtrack)", () => {
    const CAT = v('cat</w>');
    const DOG = v('dog</w>');
    const COMMA = v(',</w>');
    // 70 cats, a comma, 10 dogs: at the overflow the comma is 5 from the end, so 4 dogs move.
    const near = a1111(`${words(70, 'cat')}, ${words(10, 'dog')}`);
    expect(near.map((c) => ids(body(c)))).toEqual([[...Array(70).fill(CAT), COMMA], Array(10).fill(DOG)]);
    // Exactly 20 from the end still moves; 21 does not.
    expect(a1111(`${words(55, 'cat')}, ${words(25, 'dog')}`).map((c) => body(c).length)).toEqual([56, 25]);
    expect(a1111(`${words(54, 'cat')}, ${words(26, 'dog')}`).map((c) => body(c).length)).toEqual([75, 6]);
    // Turned off, the chunk is cut at 75 like ComfyUI's.
    expect(a1111(`${words(70, 'cat')}, ${words(10, 'dog')}`, { commaPaddingBacktrack: 0 }).map((c) => body(c).length)).toEqual([75, 6]);
    // Moved words keep their weights.
    const w = a1111(`${words(70, 'cat')}, (${words(10, 'dog')}:1.3)`);
    expect(weights(body(w[1]))).toEqual(Array(10).fill(1.3));
  });

  it('resolves embedding:name to its vectors, with the weight of its segment', () => {
    expect(body(a1111('a embedding:two cat', { embeddings: lookup })[0])).toEqual([T('a</w>'), E(TWO[0]), E(TWO[1]), T('cat</w>')]);
    expect(body(a1111('(embedding:three:1.2), dog', { embeddings: lookup })[0])).toEqual([
      E(THREE[0], 1.2),
      E(THREE[1], 1.2),
      E(THREE[2], 1.2),
      T(',</w>'),
      T('dog</w>'),
    ]);
    // The prompt's comma after the name is cut off the name and kept as text (ComfyUI's retry).
    expect(body(a1111('embedding:three, dog', { embeddings: lookup })[0])).toEqual([
      E(THREE[0]),
      E(THREE[1]),
      E(THREE[2]),
      T(',</w>'),
      T('dog</w>'),
    ]);
    // Only at the start of a word.
    expect(ids(body(a1111('xembedding:two', { embeddings: lookup })[0]))).toEqual(tok.tokenize('xembedding:two'));
    // Without a lookup it is text.
    expect(ids(body(a1111('embedding:two')[0]))).toEqual(tok.tokenize('embedding:two'));
  });

  it('warns about a missing embedding by name and keeps its words as text', () => {
    const warnings: string[] = [];
    const chunks = a1111('a embedding:nosuch cat, embedding:alsomissing,', { embeddings: lookup, onWarning: (m) => warnings.push(m) });
    expect(ids(body(chunks[0]))).toEqual(tok.tokenize('a embedding:nosuch cat, embedding:alsomissing,'));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain('embedding:nosuch');
    expect(warnings[1]).toContain('embedding:alsomissing');
  });

  it('matches bare embedding names on tokens, longest first, when asked (A1111)', () => {
    const names = ['two', 'three', 'red', 'red cat', 'neg_hands'];
    const opts = { embeddings: lookup, bareEmbeddingNames: true, embeddingNames: names };
    expect(body(a1111('a two (three:0.5)', opts)[0])).toEqual([
      T('a</w>'),
      E(TWO[0]),
      E(TWO[1]),
      E(THREE[0], 0.5),
      E(THREE[1], 0.5),
      E(THREE[2], 0.5),
    ]);
    expect(body(a1111('a red cat, red dog', opts)[0])).toEqual([T('a</w>'), E(vec(9, 0)), T(',</w>'), E(vec(8, 0)), T('dog</w>')]);
    // A name of several tokens matches only that token sequence; case does not matter (CLIP lower-cases).
    expect(body(a1111('NEG_HANDS', opts)[0])).toEqual([E(vec(7, 0))]);
    expect(ids(body(a1111('neg hands', opts)[0]))).toEqual(tok.tokenize('neg hands'));
    // Off by default; the names can also come from the lookup's own names().
    expect(ids(body(a1111('a two', { embeddings: lookup })[0]))).toEqual(tok.tokenize('a two'));
    const named = Object.assign((n: string) => lookup(n), { names: () => ['two'] });
    expect(body(a1111('a two three', { embeddings: named, bareEmbeddingNames: true })[0])).toEqual([
      T('a</w>'),
      E(TWO[0]),
      E(TWO[1]),
      T('three</w>'),
    ]);
  });

  it('starts a new chunk for an embedding that does not fit, and keeps vectors with text the backtrack moves', () => {
    const CAT = v('cat</w>');
    const fit = a1111(`${words(74, 'cat')} embedding:three`, { embeddings: lookup });
    expect(fit.map((c) => body(c).length)).toEqual([74, 3]);
    expect(body(fit[1])).toEqual([E(THREE[0]), E(THREE[1]), E(THREE[2])]);
    const fits = a1111(`${words(72, 'cat')} embedding:three`, { embeddings: lookup });
    expect(fits.map((c) => body(c).length)).toEqual([75]);
    const moved = a1111(`${words(70, 'cat')}, embedding:three dog dog`, { embeddings: lookup });
    expect(ids(body(moved[0]))).toEqual([...Array(70).fill(CAT), v(',</w>')]);
    expect(body(moved[1])).toEqual([E(THREE[0]), E(THREE[1]), E(THREE[2]), T('dog</w>'), T('dog</w>')]);
    // Longer than a chunk (which A1111 cannot encode): continued across chunks instead.
    const big = Array.from({ length: 80 }, (_, k) => vec(5, k));
    const long = a1111('a embedding:big', { embeddings: (n) => (n === 'big' ? big : undefined) });
    expect(long.map((c) => body(c).length)).toEqual([1, 75, 5]);
    expect(long.slice(1).flatMap((c) => body(c).map((t) => t.embedding))).toEqual(big);
  });

  it('sets every weight to 1 with disableWeights, still splitting at BREAK', () => {
    const chunks = a1111('(cat:1.5) [dog] BREAK (x)', { disableWeights: true });
    expect(chunks).toHaveLength(2);
    expect(chunks.flat().every((t) => t.weight === 1)).toBe(true);
  });

  describe('with embedding files from an EmbeddingLibrary', () => {
    let base = '';
    let lib: EmbeddingLibrary;
    const warnings: string[] = [];
    beforeAll(() => {
      base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-a1111-emb-'));
      const dir = path.join(base, 'models/embeddings');
      fs.mkdirSync(path.join(dir, 'styles'), { recursive: true });
      const flat = (vs: Float32Array[]) => Float32Array.from(vs.flatMap((x) => [...x]));
      writeSafetensors(path.join(dir, 'twovec.safetensors'), [{ name: 'emb_params', dtype: 'F32', shape: [2, W], data: flat(TWO) }]);
      writeSafetensors(path.join(dir, 'styles/ThreeVec.safetensors'), [
        { name: 'string_to_param.*', dtype: 'F32', shape: [3, W], data: flat(THREE) },
      ]);
      fs.writeFileSync(path.join(dir, 'old.pt'), Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]));
      lib = new EmbeddingLibrary(new FolderPaths({ baseDir: base }), W, (m) => warnings.push(m));
    });
    afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

    it('encodes embedding:name and bare names from files of 2 and 3 vectors', () => {
      const got = a1111('embedding:twovec, (embedding:threevec:1.1) cat', { embeddings: lib.lookup });
      expect(got).toHaveLength(1);
      expect(body(got[0])).toEqual([E(TWO[0]), E(TWO[1]), T(',</w>'), E(THREE[0], 1.1), E(THREE[1], 1.1), E(THREE[2], 1.1), T('cat</w>')]);
      const bare = a1111('twovec and ThreeVec', { embeddings: lib.lookup, bareEmbeddingNames: true });
      expect(body(bare[0])).toEqual([E(TWO[0]), E(TWO[1]), T('and</w>'), E(THREE[0]), E(THREE[1]), E(THREE[2])]);
    });

    it('reports a pickle embedding and keeps its words', () => {
      warnings.length = 0;
      const got = a1111('embedding:old cat', { embeddings: lib.lookup, onWarning: (m) => warnings.push(m) });
      expect(ids(body(got[0]))).toEqual(tok.tokenize('embedding:old cat'));
      expect(warnings.some((m) => m.includes('old.pt') && /safetensors/.test(m))).toBe(true);
      expect(warnings.some((m) => m.includes('embedding:old'))).toBe(true);
    });
  });
});
