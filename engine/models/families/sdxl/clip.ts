import type { Tensor } from '../../../core/tensor.ts';
import type { ClipTokenizer, EmbeddingLookup, NamedEmbeddingLookup, WeightedToken } from '../../../text/clip-tokenizer.ts';
import type { ClipEncodeResult, ClipHandle, WeightPatching } from '../../handles.ts';
import { OrtClip } from '../../ort-clip.ts';

export interface SdxlClipOptions {
  id: string;
  /** CLIP-L (absent on the refiner). */
  l?: OrtClip;
  g: OrtClip;
  patching?: (clip: SdxlClip) => WeightPatching<ClipHandle>;
}

/** Token chunks per encoder (ComfyUI's `{"l": ..., "g": ...}` token dict). */
export interface SdxlTokens {
  l?: (readonly WeightedToken[])[];
  g: (readonly WeightedToken[])[];
}

/**
 * SDXL's CLIP (ComfyUI's SDXLClipModel / SDXLRefinerClipModel): each encoder tokenizes with its own
 * embeddings (SDXL embedding files hold `clip_l` and `clip_g` vectors) and encodes as ComfyUI's
 * SDClipModel with its weights against its own empty prompt; the hidden states are joined on the
 * channel axis, L then G, cut to the shorter token count, and the pooled output is G's projected one.
 */
export class SdxlClip implements ClipHandle {
  readonly id: string;
  readonly layer: number;
  readonly hiddenSize: number;
  readonly patching?: WeightPatching<ClipHandle>;

  constructor(readonly opts: SdxlClipOptions) {
    this.layer = opts.g.layer;
    this.id = `${opts.id}@${this.layer}`;
    this.hiddenSize = (opts.l?.hiddenSize ?? 0) + opts.g.hiddenSize;
    this.patching = opts.patching?.(this);
  }

  get tokenizer(): ClipTokenizer {
    return this.opts.g.tokenizer;
  }

  /** CLIP-L's embeddings where there is a CLIP-L (what a pre-tokenized prompt's vectors must match). */
  get embeddings(): EmbeddingLookup | undefined {
    return (this.opts.l ?? this.opts.g).embeddings;
  }

  /** ComfyUI's clip_layer sets both encoders' layer. */
  withLayer(layer: number): ClipHandle {
    if (!Number.isInteger(layer) || layer >= 0) throw new Error(`CLIP layer must be a negative integer (−1 = last), got ${layer}`);
    const { l, g } = this.opts;
    return new SdxlClip({ ...this.opts, l: l && new OrtClip({ ...l.opts, layer }), g: new OrtClip({ ...g.opts, layer }) });
  }

  /** `text` tokenized by one encoder, with its embeddings (ComfyUI's tokenize_with_weights per encoder). */
  tokenize(encoder: 'l' | 'g', text: string): (readonly WeightedToken[])[] {
    const c = encoder === 'l' ? this.opts.l : this.opts.g;
    if (!c) throw new Error('this SDXL CLIP has no CLIP-L (a refiner encodes with CLIP-G only)');
    return c.tokenizer.tokenizeWithWeights(text, { embeddings: c.embeddings, onWarning: c.opts.warn });
  }

  /** Same text to both encoders, as ComfyUI's CLIPTextEncode does on SDXL. */
  async encodeText(text: string, signal?: AbortSignal): Promise<ClipEncodeResult> {
    return this.encodeTokens({ l: this.opts.l ? this.tokenize('l', text) : undefined, g: this.tokenize('g', text) }, signal);
  }

  /**
   * CLIPTextEncodeSDXL's tokens: `textG` for G and `textL` for L, the shorter list extended with the
   * empty prompt's chunk until both have as many chunks.
   */
  async encodeSdxl(textG: string, textL: string, signal?: AbortSignal): Promise<ClipEncodeResult> {
    const g = this.tokenize('g', textG);
    if (!this.opts.l) return this.encodeTokens({ g }, signal);
    const l = this.tokenize('l', textL);
    if (l.length !== g.length) {
      while (l.length < g.length) l.push(...this.tokenize('l', ''));
      while (l.length > g.length) g.push(...this.tokenize('g', ''));
    }
    return this.encodeTokens({ l, g }, signal);
  }

  /** Pre-tokenized chunks (the A1111 path) go to both encoders. */
  async encodeChunks(chunks: readonly (readonly WeightedToken[])[], signal?: AbortSignal, opts: { emphasis?: 'comfy' | 'a1111' } = {}): Promise<ClipEncodeResult> {
    const g = await this.opts.g.encodeChunks(chunks, signal, opts);
    const l = this.opts.l ? await this.opts.l.encodeChunks(chunks, signal, opts) : undefined;
    return join(l, g);
  }

  /**
   * A1111's SDXL prompts: each encoder tokenizes the prompt itself with its own vectors of an embedding
   * (A1111's textual_inversion_key), and, as A1111 skips embeddings whose width is not both encoders',
   * only embeddings that both encoders have are used (an SD1 file is text to both).
   */
  async encodePerEncoder(
    tokenize: (embeddings: EmbeddingLookup | undefined) => WeightedToken[][],
    signal?: AbortSignal,
    opts: { emphasis?: 'comfy' | 'a1111' } = {},
  ): Promise<ClipEncodeResult> {
    const { l, g } = this.opts;
    if (!l) return g.encodeChunks(tokenize(g.embeddings), signal, opts);
    const shared = sharedEmbeddings(l.embeddings, g.embeddings);
    const chunksG = tokenize(shared?.g);
    const chunksL = tokenize(shared?.l);
    return join(await l.encodeChunks(chunksL, signal, opts), await g.encodeChunks(chunksG, signal, opts));
  }

  async encodeTokens(tokens: SdxlTokens, signal?: AbortSignal): Promise<ClipEncodeResult> {
    const g = await this.opts.g.encodeChunks(tokens.g, signal);
    if (!this.opts.l) return g;
    if (!tokens.l) throw new Error('SDXL CLIP: no tokens for CLIP-L');
    return join(await this.opts.l.encodeChunks(tokens.l, signal), g);
  }
}

/**
 * CLIP-L's and CLIP-G's lookups limited to the embeddings both resolve, with the names for bare-name
 * matching. Both place one vector per token in the same chunks, so their vector counts must agree.
 */
function sharedEmbeddings(l: EmbeddingLookup | undefined, g: EmbeddingLookup | undefined): { l: EmbeddingLookup; g: EmbeddingLookup } | undefined {
  if (!l || !g) return undefined;
  const both = (name: string): readonly [readonly Float32Array[], readonly Float32Array[]] | undefined => {
    const a = l(name);
    const b = g(name);
    if (!a || !b) return undefined;
    if (a.length !== b.length) {
      throw new Error(`embedding ${name}: its clip_l has ${a.length} vectors but its clip_g ${b.length}; an SDXL prompt puts one vector per token in both encoders`);
    }
    return [a, b];
  };
  const names = (): readonly string[] => ('names' in l && typeof l.names === 'function' ? (l as NamedEmbeddingLookup).names() : []);
  return {
    l: Object.assign((name: string) => both(name)?.[0], { names }),
    g: Object.assign((name: string) => both(name)?.[1], { names }),
  };
}

/** [L | G] per token over the shorter of the two (ComfyUI's cut_to), pooled from G. */
function join(l: ClipEncodeResult | undefined, g: ClipEncodeResult): ClipEncodeResult {
  if (!l) return g;
  const [, tl, hl] = l.cond.shape;
  const [, tg, hg] = g.cond.shape;
  const T = Math.min(tl, tg);
  const H = hl + hg;
  const data = new Float32Array(T * H);
  for (let t = 0; t < T; t++) {
    data.set(l.cond.data.subarray(t * hl, (t + 1) * hl), t * H);
    data.set(g.cond.data.subarray(t * hg, (t + 1) * hg), t * H + hl);
  }
  const cond: Tensor = { shape: [1, T, H], data };
  return { cond, pooled: g.pooled };
}
