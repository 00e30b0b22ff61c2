import fs from 'node:fs';
import path from 'node:path';
import type { FolderPaths } from '../paths/folders.ts';
import { escapeImportant, tokenWeights, unescapeImportant } from './prompt-weights.ts';

/** Bound on the tokenizer files read (the real CLIP ones are 1.0 MB and 0.5 MB). */
const MAX_FILE = 64 * 1024 * 1024;
/** Bound on words kept in the BPE cache (prompts reuse few words; the bound only stops abuse). */
const CACHE_LIMIT = 100_000;

/**
 * Most tokens one prompt may have: 64 chunks of 75 (ComfyUI has no bound; a megabyte of CJK text
 * took 20 GB there and here). Beyond it tokenizing stops with PromptTooLongError.
 */
export const MAX_PROMPT_TOKENS = 64 * 75;
/** Most characters of one prompt, checked before any parsing (~40 per allowed token). */
export const MAX_PROMPT_CHARS = 200_000;

export class PromptTooLongError extends Error {
  constructor(detail: string) {
    super(`prompt too long: ${detail}; at most ${MAX_PROMPT_TOKENS} tokens (${MAX_PROMPT_TOKENS / 75} chunks of 75) are encoded`);
    this.name = 'PromptTooLongError';
  }
}

/** Tokens still allowed in the prompt being tokenized. */
interface TokenBudget {
  left: number;
}

/** Bounds a prompt before any parsing, so a huge text costs no more than this check. */
export function checkPromptLength(text: string): void {
  if (text.length > MAX_PROMPT_CHARS) throw new PromptTooLongError(`${text.length} characters (limit ${MAX_PROMPT_CHARS})`);
}

const BOS_TEXT = '<|startoftext|>';
const EOS_TEXT = '<|endoftext|>';

/**
 * GPT-2/CLIP's reversible byte → printable character map. `map[b]` is byte b's character; `order`
 * lists the characters in CLIP's vocabulary order (printable bytes first, then the remapped ones).
 */
export function bytesToUnicode(): { map: string[]; order: string[] } {
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
  return { map, order: cs.map((c) => String.fromCodePoint(c)) };
}

/**
 * CLIP's pre-tokenizer pattern. `\s` is spelled \p{White_Space} because JavaScript's `\s` also
 * matches U+FEFF, which the Rust/Python regex engines treat as an ordinary character.
 */
const PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\p{White_Space}\p{L}\p{N}]+/gu;
const WHITESPACE = /\p{White_Space}+/gu;
const SPECIAL_SPLIT = /(<\|startoftext\|>|<\|endoftext\|>)/;

/**
 * CLIP's normalisation without ftfy, as Hugging Face's CLIPTokenizer does it: NFC, whitespace runs →
 * one space, lower case character by character (so a final capital sigma becomes σ, not ς).
 */
export function normalizeClipText(text: string): string {
  let out = '';
  for (const ch of text.normalize('NFC').replace(WHITESPACE, ' ')) out += ch.toLowerCase();
  return out;
}

export interface WeightedToken {
  /** Vocabulary id; -1 when this position carries an `embedding` vector instead. */
  token: number;
  weight: number;
  /** A textual-inversion vector (ComfyUI's `embedding:name`), present only with an embedding lookup. */
  embedding?: Float32Array;
}

/** Vectors of a textual-inversion embedding by name (one per token it stands for), or undefined if none. */
export type EmbeddingLookup = (name: string) => readonly Float32Array[] | undefined;

export interface TokenizeOptions {
  /** Resolve `embedding:name` words; without it they are tokenized as plain text. */
  embeddings?: EmbeddingLookup;
  /** Told about `embedding:name` words that resolve to nothing (tokenizeWithWeights drops them, as ComfyUI does; tokenizeA1111 keeps them as text). */
  onWarning?: (message: string) => void;
  /** Skip the `(text:1.2)` syntax (ComfyUI's disable_weights). */
  disableWeights?: boolean;
}

/** An embedding lookup that can also list the names it knows (EmbeddingLibrary's is one). */
export type NamedEmbeddingLookup = EmbeddingLookup & { names(): readonly string[] };

export interface A1111TokenizeOptions extends TokenizeOptions {
  /**
   * Also match embeddings by bare name, as A1111 does: wherever the tokens of a name appear in a
   * segment, longest name first. The names come from `embeddingNames`, else from the lookup's own
   * `names()`.
   */
  bareEmbeddingNames?: boolean;
  embeddingNames?: readonly string[];
  /** A1111's "prompt word wrap length limit" (comma_padding_backtrack); 0 turns it off. Default 20. */
  commaPaddingBacktrack?: number;
}

/** One position of a segment before chunking: a vocabulary id, or the vectors of one embedding. */
type A1111Item = number | readonly Float32Array[];

/** ComfyUI's SD1 settings: a word of 8 tokens or more may be split across 77-token chunks. */
const MAX_WORD_LENGTH = 8;
const EMBEDDING_PREFIX = 'embedding:';

/**
 * CLIP's byte-level BPE, matching Hugging Face's CLIPTokenizer (and so ComfyUI) token for token:
 * special tokens split out first (exact text only), NFC + whitespace collapse + lower case, CLIP's
 * pre-tokenizer pattern, bytes mapped to printable characters, `</w>` on each word's last symbol,
 * merges applied lowest rank first. Symbols missing from the vocabulary become the unknown token
 * (`<|endoftext|>`), as there.
 */
export class ClipTokenizer {
  readonly bos: number;
  readonly eos: number;
  /** Number of ids (max id + 1): the text encoder's embedding table must have at least this many rows. */
  readonly vocabSize: number;
  private readonly byteMap = bytesToUnicode().map;
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();
  private readonly encoder = new TextEncoder();
  /** Longest vocabulary symbol in bytes: a word of n bytes has at least n / this tokens. */
  private readonly maxSymbolBytes: number;

  constructor(
    private readonly vocab: ReadonlyMap<string, number>,
    merges: readonly (readonly [string, string])[],
    readonly maxLength = 77,
  ) {
    merges.forEach(([a, b], i) => {
      const k = `${a} ${b}`;
      if (!this.ranks.has(k)) this.ranks.set(k, i);
    });
    const bos = vocab.get(BOS_TEXT);
    const eos = vocab.get(EOS_TEXT);
    if (bos === undefined || eos === undefined) throw new Error(`the vocabulary has no ${BOS_TEXT} / ${EOS_TEXT} tokens`);
    this.bos = bos;
    this.eos = eos;
    let max = -1;
    for (const id of vocab.values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    let longest = 1;
    for (const sym of vocab.keys()) longest = Math.max(longest, [...sym.replace(/<\/w>$/, '')].length);
    this.maxSymbolBytes = longest;
  }

  /** Load vocab.json + merges.txt, checking that they are well-formed and agree with each other. */
  static fromFiles(vocabFile: string, mergesFile: string): ClipTokenizer {
    const vocab = readVocab(vocabFile);
    const merges = readMerges(mergesFile);
    merges.forEach(([a, b, line]) => {
      if (!vocab.has(a + b))
        throw new Error(
          `${mergesFile}:${line}: merge '${a} ${b}' makes '${a + b}', which is not in ${vocabFile} (files from different tokenizers?)`,
        );
    });
    return new ClipTokenizer(
      vocab,
      merges.map(([a, b]) => [a, b] as const),
    );
  }

  private bpe(word: string): string[] {
    const chars = [...word];
    let parts = [...chars.slice(0, -1), `${chars[chars.length - 1]}</w>`];
    while (parts.length > 1) {
      let bestRank = Infinity;
      let best = -1;
      for (let i = 0; i < parts.length - 1; i++) {
        const r = this.ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
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
    return parts;
  }

  private encodeWord(piece: string, budget?: TokenBudget): number[] {
    let ids = this.cache.get(piece);
    if (!ids) {
      const bytes = this.encoder.encode(piece);
      // BPE is quadratic in a word's length: refuse a word that cannot fit before merging it.
      if (budget && Math.ceil(bytes.length / this.maxSymbolBytes) > budget.left)
        throw new PromptTooLongError(`a word of ${bytes.length} bytes does not fit`);
      let mapped = '';
      for (const b of bytes) mapped += this.byteMap[b];
      ids = this.bpe(mapped).map((sym) => this.vocab.get(sym) ?? this.eos);
      if (this.cache.size < CACHE_LIMIT) this.cache.set(piece, ids);
    }
    return ids;
  }

  /** Token ids of a text, without BOS/EOS. The exact strings `<|startoftext|>`/`<|endoftext|>` are those tokens. */
  tokenize(text: string, budget?: TokenBudget): number[] {
    const out: number[] = [];
    const spend = (n: number): void => {
      if (!budget) return;
      budget.left -= n;
      if (budget.left < 0) throw new PromptTooLongError('more tokens than allowed');
    };
    for (const part of text.split(SPECIAL_SPLIT)) {
      if (part === BOS_TEXT || part === EOS_TEXT) {
        spend(1);
        out.push(part === BOS_TEXT ? this.bos : this.eos);
      } else {
        for (const m of normalizeClipText(part).matchAll(PATTERN)) {
          const ids = this.encodeWord(m[0], budget);
          spend(ids.length);
          for (const id of ids) out.push(id);
        }
      }
    }
    return out;
  }

  /** Alias of `tokenize`. */
  encode(text: string): number[] {
    return this.tokenize(text);
  }

  /** The vocabulary string of an id (for debugging and tests). */
  symbol(id: number): string | undefined {
    for (const [k, v] of this.vocab) if (v === id) return k;
    return undefined;
  }

  /**
   * ComfyUI's SD1 tokenize_with_weights: the prompt is split into weighted segments (`(text:1.2)`,
   * `(text)` ×1.1, `\(` escapes), each segment tokenized as a whole (only ` embedding:` starts a new
   * piece), then packed into chunks of BOS + 75 + EOS padded with EOS to 77. A piece that does not
   * fit in the current chunk moves whole to the next one, unless it has 8 tokens or more, in which
   * case it is split at the chunk boundary.
   */
  tokenizeWithWeights(text: string, opts: TokenizeOptions = {}): WeightedToken[][] {
    checkPromptLength(text);
    const budget: TokenBudget = { left: MAX_PROMPT_TOKENS };
    const escaped = escapeImportant(text);
    const segments: [string, number][] = opts.disableWeights ? [[escaped, 1]] : tokenWeights(escaped, 1);
    const groups: WeightedToken[][] = [];
    for (const [segment, weight] of segments) {
      const pieces = unescapeImportant(segment).split(/ embedding:|\nembedding:/);
      const words = [pieces[0], ...pieces.slice(1).map((p) => EMBEDDING_PREFIX + p)].filter((w) => w !== '');
      for (let word of words) {
        if (word.startsWith(EMBEDDING_PREFIX) && opts.embeddings) {
          const r = this.resolveEmbedding(word.slice(EMBEDDING_PREFIX.length).replace(/^\n+|\n+$/g, ''), opts.embeddings);
          if (r.vectors) {
            groups.push(r.vectors.map((embedding) => ({ token: -1, weight, embedding })));
            if (r.leftover === '') continue;
            word = r.leftover;
          } else {
            // ComfyUI drops a missing embedding; Weft keeps what was typed, so the prompt still says it.
            opts.onWarning?.(`embedding:${r.name} was not found in the embeddings folders; the words are kept as text`);
          }
        }
        groups.push(this.tokenize(word, budget).map((token) => ({ token, weight })));
      }
    }
    return this.chunk(groups);
  }

  /** ComfyUI's _try_get_embedding: the first whitespace-separated word names it; trailing commas may be cut. */
  private resolveEmbedding(text: string, lookup: EmbeddingLookup): { name: string; vectors?: readonly Float32Array[]; leftover: string } {
    const split = text.split(/\p{White_Space}+/u).filter(Boolean);
    const name = split[0] ?? '';
    const leftover = split.slice(1).join(' ');
    let vectors = name ? lookup(name) : undefined;
    if (!vectors) {
      const stripped = name.replace(/^,+|,+$/g, '');
      if (stripped.length < name.length) {
        vectors = stripped ? lookup(stripped) : undefined;
        return { name, vectors, leftover: `${name.slice(stripped.length)} ${leftover}` };
      }
    }
    return { name, vectors, leftover };
  }

  /**
   * A1111's tokenize_line (modules/sd_hijack_clip.py) over segments from parseA1111Attention. Each
   * segment is tokenized on its own; `['BREAK', -1]` closes the current chunk, padding it. A chunk holds
   * 75 tokens between BOS and EOS; when a token would overflow it and the last comma is within
   * `commaPaddingBacktrack` (20) tokens of the end, everything after that comma moves to the next chunk.
   * An embedding that does not fit in what is left of a chunk starts the next one (one longer than a
   * whole chunk, which A1111 cannot encode, continues across chunks). The output has the shape and
   * padding of tokenizeWithWeights (BOS, tokens, EOS, EOS padding to 77, padding weight 1), so the same
   * CLIP handle encodes it.
   *
   * Embeddings: ComfyUI's `embedding:name` wherever it starts a word (a name that does not resolve is
   * reported by name through onWarning and kept as text, where ComfyUI drops it) and, with
   * `bareEmbeddingNames`, A1111's bare names matched on tokens. Vectors travel with their positions,
   * so text moved by the comma backtrack keeps its embeddings. `disableWeights` makes every weight 1
   * (BREAK still splits).
   */
  tokenizeA1111(segments: readonly (readonly [string, number])[], opts: A1111TokenizeOptions = {}): WeightedToken[][] {
    const chunkLength = this.maxLength - 2;
    const backtrack = opts.commaPaddingBacktrack ?? 20;
    const comma = this.vocab.get(',</w>');
    const cache = new Map<string, readonly Float32Array[] | undefined>();
    const lookup = opts.embeddings
      ? (name: string): readonly Float32Array[] | undefined => {
          if (!cache.has(name)) cache.set(name, (opts.embeddings as EmbeddingLookup)(name));
          return cache.get(name);
        }
      : undefined;
    const bare =
      opts.bareEmbeddingNames && opts.embeddings ? this.bareNameIndex(opts.embeddingNames ?? namesOf(opts.embeddings)) : undefined;
    let chars = 0;
    for (const [text] of segments) chars += text.length;
    if (chars > MAX_PROMPT_CHARS) throw new PromptTooLongError(`${chars} characters (limit ${MAX_PROMPT_CHARS})`);
    const budget: TokenBudget = { left: MAX_PROMPT_TOKENS };

    const chunks: WeightedToken[][] = [];
    let chunk: WeightedToken[] = [];
    let lastComma = -1;
    const nextChunk = (): void => {
      const out: WeightedToken[] = [{ token: this.bos, weight: 1 }, ...chunk];
      while (out.length < this.maxLength) out.push({ token: this.eos, weight: 1 });
      chunks.push(out);
      chunk = [];
      lastComma = -1;
    };

    for (const [text, weight] of segments) {
      if (text === 'BREAK' && weight === -1) {
        nextChunk();
        continue;
      }
      const w = opts.disableWeights ? 1 : weight;
      for (const item of this.a1111Items(text, lookup, bare, opts.onWarning, budget)) {
        if (typeof item === 'number' && item === comma) lastComma = chunk.length;
        else if (backtrack > 0 && chunk.length === chunkLength && lastComma !== -1 && chunk.length - lastComma <= backtrack) {
          const moved = chunk.slice(lastComma + 1);
          chunk = chunk.slice(0, lastComma + 1);
          nextChunk();
          chunk = moved;
        }
        if (chunk.length === chunkLength) nextChunk();
        if (typeof item === 'number') {
          chunk.push({ token: item, weight: w });
          continue;
        }
        if (chunk.length > 0 && chunk.length + item.length > chunkLength) nextChunk();
        for (const embedding of item) {
          if (chunk.length === chunkLength) nextChunk();
          chunk.push({ token: -1, weight: w, embedding });
        }
      }
    }
    if (chunk.length > 0 || chunks.length === 0) nextChunk();
    return chunks;
  }

  /**
   * One segment as ids and embeddings. Text between resolved `embedding:` words is tokenized in one
   * piece, so a name that does not resolve leaves exactly the tokens the plain text would have.
   */
  private a1111Items(
    text: string,
    lookup: EmbeddingLookup | undefined,
    bare: BareNameIndex | undefined,
    onWarning: ((message: string) => void) | undefined,
    budget: TokenBudget,
  ): A1111Item[] {
    const items: A1111Item[] = [];
    const addText = (t: string): void => {
      if (!t) return;
      const ids = this.tokenize(t, budget);
      for (const item of bare && lookup ? matchBareNames(ids, bare, lookup) : ids) items.push(item);
    };
    if (!lookup) {
      addText(text);
      return items;
    }
    let last = 0;
    for (const m of text.matchAll(EMBEDDING_WORD)) {
      const name = m[1];
      let used = name;
      let vectors = name ? lookup(name) : undefined;
      if (!vectors) {
        // ComfyUI's retry: "embedding:name," is usually the name followed by the prompt's comma.
        const stripped = name.replace(/,+$/, '');
        if (stripped && stripped !== name) {
          used = stripped;
          vectors = lookup(stripped);
        }
      }
      if (!vectors) {
        onWarning?.(`embedding:${used} was not found (or could not be loaded); the words are kept as text`);
        continue;
      }
      addText(text.slice(last, m.index));
      items.push(vectors);
      last = (m.index as number) + EMBEDDING_PREFIX.length + used.length;
    }
    addText(text.slice(last));
    return items;
  }

  /** A1111's ids_lookup: token sequences of the names by first token, longest first. */
  private bareNameIndex(names: readonly string[]): BareNameIndex {
    const index: BareNameIndex = new Map();
    for (const name of names) {
      const ids = this.tokenize(name);
      if (ids.length === 0) continue;
      let list = index.get(ids[0]);
      if (!list) index.set(ids[0], (list = []));
      list.push({ ids, name });
    }
    for (const list of index.values()) list.sort((a, b) => b.ids.length - a.ids.length);
    return index;
  }

  private chunk(groups: WeightedToken[][]): WeightedToken[][] {
    const max = this.maxLength;
    const start = (): WeightedToken => ({ token: this.bos, weight: 1 });
    const end = (): WeightedToken => ({ token: this.eos, weight: 1 });
    const batches: WeightedToken[][] = [];
    let batch: WeightedToken[] = [start()];
    batches.push(batch);
    for (let group of groups) {
      const isLarge = group.length >= MAX_WORD_LENGTH;
      while (group.length) {
        if (group.length + batch.length > max - 1) {
          const remaining = max - batch.length - 1;
          if (isLarge) {
            batch.push(...group.slice(0, remaining), end());
            group = group.slice(remaining);
          } else {
            batch.push(end());
            for (let i = 0; i < remaining; i++) batch.push(end());
          }
          batch = [start()];
          batches.push(batch);
        } else {
          batch.push(...group);
          group = [];
        }
      }
    }
    batch.push(end());
    while (batch.length < max) batch.push(end());
    return batches;
  }
}

/** `embedding:` at the start of a segment or after white space, and the word that follows it. */
const EMBEDDING_WORD = /(?<=^|\p{White_Space})embedding:(\P{White_Space}*)/gu;

type BareNameIndex = Map<number, { ids: number[]; name: string }[]>;

function namesOf(lookup: EmbeddingLookup): readonly string[] {
  if (!('names' in lookup) || typeof lookup.names !== 'function') return [];
  const names: unknown = (lookup.names as () => unknown).call(lookup);
  return Array.isArray(names) ? names.filter((n): n is string => typeof n === 'string') : [];
}

/**
 * A1111's find_embedding_at_position at every position: the longest name whose tokens start here and
 * whose embedding loads replaces those tokens.
 */
function matchBareNames(ids: readonly number[], index: BareNameIndex, lookup: EmbeddingLookup): A1111Item[] {
  const out: A1111Item[] = [];
  for (let pos = 0; pos < ids.length;) {
    let matched = false;
    for (const cand of index.get(ids[pos]) ?? []) {
      if (pos + cand.ids.length > ids.length || !cand.ids.every((id, k) => ids[pos + k] === id)) continue;
      const vectors = lookup(cand.name);
      if (!vectors) continue;
      out.push(vectors);
      pos += cand.ids.length;
      matched = true;
      break;
    }
    if (!matched) out.push(ids[pos++]);
  }
  return out;
}

function readBounded(file: string, what: string): string {
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch (e) {
    throw new Error(`${file}: cannot read the ${what}: ${(e as Error).message}`);
  }
  if (size > MAX_FILE) throw new Error(`${file}: ${size} bytes is too large for a ${what} (limit ${MAX_FILE})`);
  return fs.readFileSync(file, 'utf8');
}

function readVocab(file: string): Map<string, number> {
  let raw: unknown;
  try {
    raw = JSON.parse(readBounded(file, 'CLIP vocabulary (vocab.json)'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${file}: expected a JSON object of token → id`);
  const vocab = new Map<string, number>();
  const seen = new Map<number, string>();
  for (const [k, v] of Object.entries(raw)) {
    if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > 10_000_000)
      throw new Error(`${file}: id of ${JSON.stringify(k)} must be a non-negative integer, got ${JSON.stringify(v)}`);
    const prev = seen.get(v as number);
    if (prev !== undefined) throw new Error(`${file}: id ${v} is given to both ${JSON.stringify(prev)} and ${JSON.stringify(k)}`);
    seen.set(v as number, k);
    vocab.set(k, v as number);
  }
  return vocab;
}

/** merges.txt: an optional `#version` line, then `a b` per line (blank lines ignored). */
function readMerges(file: string): [string, string, number][] {
  const lines = readBounded(file, 'CLIP merges list (merges.txt)').split(/\r?\n/);
  const merges: [string, string, number][] = [];
  lines.forEach((line, i) => {
    if (i === 0 && line.startsWith('#')) return;
    if (!line.trim()) return;
    const parts = line.split(' ');
    if (parts.length !== 2 || !parts[0] || !parts[1])
      throw new Error(`${file}:${i + 1}: expected two symbols separated by one space, got ${JSON.stringify(line.slice(0, 80))}`);
    merges.push([parts[0], parts[1], i + 1]);
  });
  return merges;
}

const loaded = new Map<string, ClipTokenizer>();

/** Tokenizers are immutable, so one instance per file pair (and modification time) is shared. */
function loadCached(dir: string): ClipTokenizer {
  const v = path.join(dir, 'vocab.json');
  const m = path.join(dir, 'merges.txt');
  const key = [v, m]
    .map((f) => {
      const st = fs.statSync(f);
      return `${path.resolve(f)}:${st.size}:${st.mtimeMs}`;
    })
    .join('|');
  let tok = loaded.get(key);
  if (!tok) {
    tok = ClipTokenizer.fromFiles(v, m);
    loaded.set(key, tok);
  }
  return tok;
}

/** The vocabularies the project carries (MIT, see each folder's LICENSE), so real checkpoints run without tokenizer files. */
const BUNDLED_VOCAB_ROOT = path.join(import.meta.dirname, 'vocab');

/** The project's own copy of a vocabulary (`clip-vit-large-patch14`: CLIP ViT-L/14, SD1's), by folder name. */
export function bundledVocabularyDir(vocabulary: string): string {
  return path.join(BUNDLED_VOCAB_ROOT, vocabulary);
}

export interface ClipTokenizerLookup {
  /** A folder that must hold the files (an ONNX export's tokenizer folder): nothing else is tried. */
  explicitDir?: string;
  modelPath?: string;
  paths?: FolderPaths;
  /** The vocabulary's folder name under each `tokenizers` model folder; `clip-vit-large-patch14` when not given. */
  vocabulary?: string;
  /**
   * Fall back to the project's copy of `vocabulary` when no files are found elsewhere. A family whose
   * checkpoints all use one known vocabulary (SD1: CLIP ViT-L/14) sets it; files next to the model
   * (the demo model's own small vocabulary) or in models/tokenizers still come first.
   */
  bundled?: boolean;
}

/**
 * Find vocab.json + merges.txt and load them, looking in order: an explicit folder, next to the model
 * (`<model>.tokenizer/`, then the model's own folder), then `<vocabulary>/` in each `tokenizers` model
 * folder, then (with `bundled`) the project's copy. Missing → an error listing exactly where the two files may go.
 */
export function loadClipTokenizer(opts: ClipTokenizerLookup): ClipTokenizer {
  const vocabulary = opts.vocabulary ?? 'clip-vit-large-patch14';
  const candidates: string[] = [];
  if (opts.explicitDir) candidates.push(path.resolve(opts.explicitDir));
  if (opts.modelPath) {
    candidates.push(path.resolve(`${opts.modelPath.replace(/\.[^.\\/]+$/, '')}.tokenizer`));
    candidates.push(path.resolve(path.dirname(opts.modelPath)));
  }
  for (const root of opts.paths?.searchPaths('tokenizers') ?? []) candidates.push(path.join(root, vocabulary));
  if (opts.bundled) candidates.push(bundledVocabularyDir(vocabulary));
  const partial: string[] = [];
  for (const dir of candidates) {
    const hasV = fs.existsSync(path.join(dir, 'vocab.json'));
    const hasM = fs.existsSync(path.join(dir, 'merges.txt'));
    if (hasV && hasM) return loadCached(dir);
    if (opts.explicitDir && dir === candidates[0]) {
      throw new Error(
        `CLIP tokenizer not found in ${dir}: it needs both vocab.json and merges.txt there (missing: ${[hasV ? '' : 'vocab.json', hasM ? '' : 'merges.txt'].filter(Boolean).join(', ')})`,
      );
    }
    if (hasV !== hasM) partial.push(`${dir} has only ${hasV ? 'vocab.json' : 'merges.txt'}`);
  }
  const where = candidates.length ? candidates.join(', ') : `models/tokenizers/${vocabulary}/`;
  throw new Error(
    'CLIP tokenizer not found: put vocab.json and merges.txt (from any Hugging Face CLIP ViT-L/14 tokenizer, e.g. ' +
      `openai/clip-vit-large-patch14, or ComfyUI's comfy/sd1_tokenizer/) in one of: ${where}` +
      (partial.length ? ` (${partial.join('; ')})` : ''),
  );
}
