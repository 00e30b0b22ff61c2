import fs from 'node:fs';
import path from 'node:path';
import type { FolderPaths } from '../paths/folders.ts';
import { parsePromptWeights } from './prompt-weights.ts';

/** Bound on the tokenizer files read (the real CLIP ones are 1.6 MB and 0.5 MB). */
const MAX_FILE = 64 * 1024 * 1024;

/** GPT-2/CLIP's reversible byte → printable character map. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const map: string[] = new Array(256);
  bs.forEach((b, i) => (map[b] = String.fromCodePoint(cs[i])));
  return map;
}

const PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

export interface WeightedToken {
  token: number;
  weight: number;
}

/**
 * CLIP's byte-level BPE (as OpenAI's simple_tokenizer and Hugging Face's CLIPTokenizer without
 * ftfy): whitespace collapsed, lower-cased, split by CLIP's pattern, bytes mapped to printable
 * characters, `</w>` on each word's last symbol, merges applied by rank.
 */
export class ClipTokenizer {
  readonly bos: number;
  readonly eos: number;
  private readonly byteMap = bytesToUnicode();
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();

  constructor(
    private readonly vocab: ReadonlyMap<string, number>,
    merges: readonly [string, string][],
    readonly maxLength = 77,
  ) {
    merges.forEach(([a, b], i) => this.ranks.set(`${a} ${b}`, i));
    const bos = vocab.get('<|startoftext|>');
    const eos = vocab.get('<|endoftext|>');
    if (bos === undefined || eos === undefined) throw new Error('vocab.json has no <|startoftext|>/<|endoftext|> tokens');
    this.bos = bos;
    this.eos = eos;
  }

  static fromFiles(vocabFile: string, mergesFile: string): ClipTokenizer {
    for (const f of [vocabFile, mergesFile]) {
      const size = fs.statSync(f).size;
      if (size > MAX_FILE) throw new Error(`${f}: ${size} bytes is too large for a tokenizer file`);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(vocabFile, 'utf8'));
    } catch (e) {
      throw new Error(`${vocabFile}: not valid JSON: ${(e as Error).message}`);
    }
    if (typeof raw !== 'object' || raw === null) throw new Error(`${vocabFile}: expected an object of token → id`);
    const vocab = new Map<string, number>();
    for (const [k, v] of Object.entries(raw)) {
      if (!Number.isInteger(v)) throw new Error(`${vocabFile}: id of ${JSON.stringify(k)} is not an integer`);
      vocab.set(k, v as number);
    }
    const lines = fs.readFileSync(mergesFile, 'utf8').split('\n');
    const merges: [string, string][] = [];
    lines.forEach((line, i) => {
      if (i === 0 && line.startsWith('#version')) return;
      if (!line.trim()) return;
      const parts = line.split(' ');
      if (parts.length !== 2) throw new Error(`${mergesFile}:${i + 1}: expected two symbols, got ${JSON.stringify(line)}`);
      merges.push([parts[0], parts[1]]);
    });
    return new ClipTokenizer(vocab, merges);
  }

  private bpe(word: string): string[] {
    const chars = [...word];
    let parts = [...chars.slice(0, -1), `${chars[chars.length - 1]}</w>`];
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < parts.length - 1; i++) {
        const r = this.ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) return parts;
      const a = parts[best];
      const b = parts[best + 1];
      const next: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i < parts.length - 1 && parts[i] === a && parts[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(parts[i]);
      }
      parts = next;
    }
  }

  /** Token ids of a text, without BOS/EOS. */
  encode(text: string): number[] {
    const clean = text.replace(/\s+/g, ' ').trim().toLowerCase();
    const out: number[] = [];
    for (const m of clean.matchAll(PATTERN)) {
      const piece = m[0];
      if (piece === '<|startoftext|>' || piece === '<|endoftext|>') {
        out.push(this.vocab.get(piece)!);
        continue;
      }
      let ids = this.cache.get(piece);
      if (!ids) {
        const mapped = [...new TextEncoder().encode(piece)].map((b) => this.byteMap[b]).join('');
        ids = this.bpe(mapped).map((sym) => {
          const id = this.vocab.get(sym);
          if (id === undefined) throw new Error(`BPE symbol ${JSON.stringify(sym)} is not in the vocabulary (merges and vocab do not match)`);
          return id;
        });
        if (this.cache.size < 100_000) this.cache.set(piece, ids);
      }
      out.push(...ids);
    }
    return out;
  }

  /**
   * ComfyUI's SD1 tokenize_with_weights: weights parsed from `(text:1.2)` syntax, each word tokenized on
   * its own, chunks of BOS + 75 tokens + EOS padded with EOS to 77; a word is not split across chunks
   * unless it is 8 tokens or longer.
   */
  tokenizeWithWeights(text: string): WeightedToken[][] {
    const groups: WeightedToken[][] = [];
    for (const [segment, weight] of parsePromptWeights(text)) {
      for (const word of segment.replaceAll('\n', ' ').split(' ')) {
        if (!word) continue;
        const ids = this.encode(word);
        if (ids.length) groups.push(ids.map((token) => ({ token, weight })));
      }
    }
    const max = this.maxLength;
    const start: WeightedToken = { token: this.bos, weight: 1 };
    const end: WeightedToken = { token: this.eos, weight: 1 };
    const batches: WeightedToken[][] = [];
    let batch: WeightedToken[] = [start];
    batches.push(batch);
    for (let group of groups) {
      const isLarge = group.length >= 8;
      while (group.length) {
        if (group.length + batch.length > max - 1) {
          const remaining = max - batch.length - 1;
          if (isLarge) {
            batch.push(...group.slice(0, remaining), end);
            group = group.slice(remaining);
          } else {
            batch.push(end);
            for (let i = 0; i < remaining; i++) batch.push({ token: this.eos, weight: 1 });
          }
          batch = [start];
          batches.push(batch);
        } else {
          batch.push(...group);
          group = [];
        }
      }
    }
    batch.push(end);
    while (batch.length < max) batch.push({ token: this.eos, weight: 1 });
    return batches;
  }
}

/**
 * Find vocab.json + merges.txt: an explicit folder, next to the model (`<model>.tokenizer/` or the
 * model's own folder), or `tokenizers/clip-vit-large-patch14/` in the model folders.
 */
export function loadClipTokenizer(opts: { explicitDir?: string; modelPath?: string; paths?: FolderPaths }): ClipTokenizer {
  const candidates: string[] = [];
  if (opts.explicitDir) candidates.push(opts.explicitDir);
  if (opts.modelPath) {
    candidates.push(`${opts.modelPath.replace(/\.[^.\\/]+$/, '')}.tokenizer`);
    candidates.push(path.dirname(opts.modelPath));
  }
  for (const root of opts.paths?.searchPaths('tokenizers') ?? []) candidates.push(path.join(root, 'clip-vit-large-patch14'));
  for (const dir of candidates) {
    const v = path.join(dir, 'vocab.json');
    const m = path.join(dir, 'merges.txt');
    if (fs.existsSync(v) && fs.existsSync(m)) return ClipTokenizer.fromFiles(v, m);
  }
  throw new Error(
    `CLIP tokenizer not found: put vocab.json and merges.txt (from ComfyUI's comfy/sd1_tokenizer/ or any Hugging Face ` +
      `CLIP ViT-L/14 tokenizer) in one of: ${candidates.join(', ') || 'models/tokenizers/clip-vit-large-patch14/'}`,
  );
}
