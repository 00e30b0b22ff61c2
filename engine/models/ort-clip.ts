import * as ort from 'onnxruntime-node';
import { InterruptedError } from '../core/errors.ts';
import type { ClipTokenizer, EmbeddingLookup, WeightedToken } from '../text/clip-tokenizer.ts';
import type { ClipEncodeResult, ClipHandle, WeightPatching } from './handles.ts';
import { CLIP_CONTEXT, CLIP_IO } from './families/sd1/graphs/clip-graph.ts';
import { OPENCLIP_IO } from './families/openclip/graph.ts';
import type { RunSession } from './runtime/part.ts';

export interface OrtClipOptions {
  id: string;
  tokenizer: ClipTokenizer;
  numLayers: number;
  hiddenSize: number;
  run: RunSession;
  layer?: number;
  /** Resolves `embedding:name` in prompts (textual inversion); without it such words are plain text. */
  embeddings?: EmbeddingLookup;
  /** Told about prompt problems that do not stop encoding (a missing embedding). */
  warn?: (message: string) => void;
  /** Set by the model manager for checkpoints it owns (LoRA and merges patch through it). */
  patching?: (clip: OrtClip) => WeightPatching<ClipHandle>;
  /**
   * What fills a chunk after its end token, when not the end token itself (SD2's OpenCLIP-H and SDXL's
   * bigG pad with 0: ComfyUI's pad_with_end=False). The empty prompt is then BOS, EOS, pad….
   */
  padToken?: number;
  /** Pooled output from the graph's `projected` output at the first EOS (open_clip's text_projection), not the last layer. */
  projectedPooled?: boolean;
}

/**
 * CLIP socket value over the CLIP graph, encoding text as ComfyUI's SD1 CLIP does: 77-token chunks
 * (BOS … EOS, padded with EOS), the chosen layer's output after the final layer norm, per-token
 * weights applied as `(z − z_empty)·w + z_empty` against the encoding of an empty prompt, chunks
 * concatenated along the token axis, pooled output from the first chunk's first EOS.
 */
export class OrtClip implements ClipHandle {
  readonly id: string;
  readonly layer: number;
  readonly hiddenSize: number;
  readonly patching?: WeightPatching<ClipHandle>;

  constructor(readonly opts: OrtClipOptions) {
    this.id = `${opts.id}@${opts.layer ?? -1}`;
    this.layer = opts.layer ?? -1;
    this.hiddenSize = opts.hiddenSize;
    this.patching = opts.patching?.(this);
  }

  get tokenizer(): ClipTokenizer {
    return this.opts.tokenizer;
  }

  get embeddings(): EmbeddingLookup | undefined {
    return this.opts.embeddings;
  }

  withLayer(layer: number): ClipHandle {
    if (!Number.isInteger(layer) || layer >= 0) throw new Error(`CLIP layer must be a negative integer (−1 = last), got ${layer}`);
    return new OrtClip({ ...this.opts, layer });
  }

  /** ComfyUI's clip_layer: an index past the first layer means "last". */
  private layerIndex(): number {
    const L = this.opts.numLayers;
    return Math.abs(this.layer) > L ? L - 1 : L + this.layer;
  }

  async encodeText(text: string, signal?: AbortSignal): Promise<ClipEncodeResult> {
    const chunks = this.opts.tokenizer.tokenizeWithWeights(text, { embeddings: this.opts.embeddings, onWarning: this.opts.warn });
    return this.encodeChunks(chunks, signal);
  }

  /**
   * Encodes tokenized chunks. `emphasis: 'a1111'` applies weights as AUTOMATIC1111's "Original"
   * emphasis does (z·w, then rescaled so each chunk keeps its mean) instead of ComfyUI's
   * interpolation against the empty prompt.
   */
  async encodeChunks(chunks: readonly (readonly WeightedToken[])[], signal?: AbortSignal, opts: { emphasis?: 'comfy' | 'a1111' } = {}): Promise<ClipEncodeResult> {
    const T = CLIP_CONTEXT;
    const a1111 = opts.emphasis === 'a1111';
    const hasWeights = chunks.some((c) => c.some((t) => t.weight !== 1));
    // Embedding positions carry token −1; the graph gathers row 0 there and swaps in the vector.
    const rows = chunks.map((c) => this.padded(c.map((t) => Math.max(0, t.token))));
    if ((hasWeights && !a1111) || rows.length === 0) {
      const tok = this.opts.tokenizer;
      rows.push(this.padded([tok.bos, ...new Array<number>(T - 1).fill(tok.eos)]));
    }
    for (const r of rows) if (r.length !== T) throw new Error(`CLIP chunk has ${r.length} tokens, expected ${T}`);
    if (signal?.aborted) throw new InterruptedError();
    const ids = BigInt64Array.from(rows.flat().map((v) => BigInt(v)));
    const feeds: Record<string, ort.Tensor> = { [CLIP_IO.tokens]: new ort.Tensor('int64', ids, [rows.length, T]), ...this.embedFeeds(chunks, rows.length) };
    const out = await this.opts.run(feeds);
    const hiddenValue = out[CLIP_IO.hidden];
    const hidden = hiddenValue?.data;
    if (!(hidden instanceof Float32Array)) throw new Error('CLIP session returned no float32 hidden states');
    // The width comes from the output, so exported encoders whose config was not read still work.
    const H = hiddenValue.dims[hiddenValue.dims.length - 1];
    const B = rows.length;
    const per = T * H;
    const layer = (l: number, b: number): Float32Array => hidden.subarray((l * B + b) * per, (l * B + b + 1) * per);
    const li = this.layerIndex();
    const sections = chunks.length;
    const cond = new Float32Array(Math.max(1, sections) * per);
    if (sections === 0) cond.set(layer(li, B - 1));
    const empty = hasWeights ? layer(li, B - 1) : undefined;
    for (let k = 0; k < sections; k++) {
      const z = layer(li, k);
      const dst = cond.subarray(k * per, (k + 1) * per);
      dst.set(z);
      if (a1111 && hasWeights) {
        const before = mean(dst);
        chunks[k].forEach((t, j) => {
          if (t.weight !== 1) for (let c = 0; c < H; c++) dst[j * H + c] *= t.weight;
        });
        const after = mean(dst);
        if (after !== 0) for (let i = 0; i < dst.length; i++) dst[i] *= before / after;
      } else if (empty) {
        chunks[k].forEach((t, j) => {
          if (t.weight === 1) return;
          for (let c = 0; c < H; c++) dst[j * H + c] = (z[j * H + c] - empty[j * H + c]) * t.weight + empty[j * H + c];
        });
      }
    }
    // Pooled: the last layer (final-normed) at the first EOS of the first chunk; SD1 has no text projection.
    const eosAt = Math.max(0, rows[0].indexOf(this.opts.tokenizer.eos));
    let pooled: Float32Array;
    if (this.opts.projectedPooled) {
      const projected = out[OPENCLIP_IO.projected];
      if (!projected || !(projected.data instanceof Float32Array)) throw new Error(`CLIP session has no '${OPENCLIP_IO.projected}' output for the projected pooled output`);
      const P = projected.dims[projected.dims.length - 1];
      pooled = projected.data.slice(eosAt * P, (eosAt + 1) * P);
    } else {
      const last = layer(this.opts.numLayers - 1, 0);
      pooled = last.slice(eosAt * H, (eosAt + 1) * H);
    }
    return { cond: { shape: [1, Math.max(1, sections) * T, H], data: cond }, pooled: { shape: [1, pooled.length], data: pooled } };
  }

  /**
   * A chunk with `padToken` after its end token. The tokenizer pads with EOS, so the pad run is what
   * follows the EOS after the last other token (a prompt that itself ends in `<|endoftext|>` is read
   * as ending one token earlier).
   */
  private padded(row: number[]): number[] {
    const pad = this.opts.padToken;
    const eos = this.opts.tokenizer.eos;
    if (pad === undefined || pad === eos) return row;
    let last = row.length - 1;
    while (last >= 0 && row[last] === eos) last--;
    for (let i = last + 2; i < row.length; i++) row[i] = pad;
    return row;
  }

  /** `embeds`/`embeds_mask` feeds: broadcast zeros unless some chunk holds textual-inversion vectors. */
  private embedFeeds(chunks: readonly (readonly WeightedToken[])[], rowCount: number): Record<string, ort.Tensor> {
    const T = CLIP_CONTEXT;
    const H = this.hiddenSize;
    if (!chunks.some((c) => c.some((t) => t.embedding))) {
      const zero = new ort.Tensor('float32', new Float32Array(1), [1, 1, 1]);
      return { [CLIP_IO.embeds]: zero, [CLIP_IO.embedsMask]: zero };
    }
    const embeds = new Float32Array(rowCount * T * H);
    const mask = new Float32Array(rowCount * T);
    chunks.forEach((c, k) =>
      c.forEach((t, j) => {
        if (!t.embedding) return;
        if (t.embedding.length !== H) throw new Error(`an embedding vector has ${t.embedding.length} values, this CLIP needs ${H}`);
        embeds.set(t.embedding, (k * T + j) * H);
        mask[k * T + j] = 1;
      }),
    );
    return { [CLIP_IO.embeds]: new ort.Tensor('float32', embeds, [rowCount, T, H]), [CLIP_IO.embedsMask]: new ort.Tensor('float32', mask, [rowCount, T, 1]) };
  }
}

function mean(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s / a.length;
}
