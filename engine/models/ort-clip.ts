import * as ort from 'onnxruntime-node';
import { InterruptedError } from '../registry/context.ts';
import type { ClipTokenizer, WeightedToken } from '../text/clip-tokenizer.ts';
import type { ClipEncodeResult, ClipHandle } from './handles.ts';
import { CLIP_CONTEXT, CLIP_IO } from './graphs/clip-graph.ts';

/** What the CLIP handle needs of a session (one run per call, sessions come from the pool). */
export type RunSession = (feeds: Record<string, ort.Tensor>) => Promise<ort.InferenceSession.OnnxValueMapType>;

export interface OrtClipOptions {
  id: string;
  tokenizer: ClipTokenizer;
  numLayers: number;
  hiddenSize: number;
  run: RunSession;
  layer?: number;
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

  constructor(private readonly opts: OrtClipOptions) {
    this.id = `${opts.id}@${opts.layer ?? -1}`;
    this.layer = opts.layer ?? -1;
    this.hiddenSize = opts.hiddenSize;
  }

  get tokenizer(): ClipTokenizer {
    return this.opts.tokenizer;
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
    const chunks = this.opts.tokenizer.tokenizeWithWeights(text);
    return this.encodeChunks(chunks, signal);
  }

  async encodeChunks(chunks: readonly (readonly WeightedToken[])[], signal?: AbortSignal): Promise<ClipEncodeResult> {
    const T = CLIP_CONTEXT;
    if (chunks.some((c) => c.some((t) => t.token < 0))) {
      throw new Error('textual-inversion embeddings in prompts are not supported by this CLIP yet');
    }
    const hasWeights = chunks.some((c) => c.some((t) => t.weight !== 1));
    const rows = chunks.map((c) => c.map((t) => t.token));
    if (hasWeights || rows.length === 0) {
      const tok = this.opts.tokenizer;
      rows.push([tok.bos, ...new Array<number>(T - 1).fill(tok.eos)]);
    }
    for (const r of rows) if (r.length !== T) throw new Error(`CLIP chunk has ${r.length} tokens, expected ${T}`);
    if (signal?.aborted) throw new InterruptedError();
    const ids = BigInt64Array.from(rows.flat().map((v) => BigInt(v)));
    const out = await this.opts.run({ [CLIP_IO.tokens]: new ort.Tensor('int64', ids, [rows.length, T]) });
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
      if (empty) {
        chunks[k].forEach((t, j) => {
          if (t.weight === 1) return;
          for (let c = 0; c < H; c++) dst[j * H + c] = (z[j * H + c] - empty[j * H + c]) * t.weight + empty[j * H + c];
        });
      }
    }
    // Pooled: the last layer (final-normed) at the first EOS of the first chunk; SD1 has no text projection.
    const eosAt = Math.max(0, rows[0].indexOf(this.opts.tokenizer.eos));
    const last = layer(this.opts.numLayers - 1, 0);
    const pooled = last.slice(eosAt * H, (eosAt + 1) * H);
    return { cond: { shape: [1, Math.max(1, sections) * T, H], data: cond }, pooled: { shape: [1, H], data: pooled } };
  }
}
