import { GraphBuilder } from '../../../../onnx/graph.ts';
import { Net, type NetOptions } from '../../../../onnx/nn.ts';
import type { ClipTextConfig } from '../config.ts';
import type { WeightSource } from '../../../../core/weights.ts';

/**
 * The CLIP text transformer (SD1's CLIP-L) as an ONNX graph. Input `tokens` int64 [B, 77] (plus
 * `embeds`/`embeds_mask` for textual-inversion vectors); output
 * `hidden` [layers, B, 77, width]: every layer's output with the final layer norm applied, which is
 * what ComfyUI returns for any clip-skip setting (it normalises intermediate layers too). The caller
 * picks a layer and the pooled token; the extra layers cost a few megabytes, not a second session.
 * `ws` holds bare keys (`embeddings.token_embedding.weight`, ...).
 */

export const CLIP_IO = { tokens: 'tokens', embeds: 'embeds', embedsMask: 'embeds_mask', hidden: 'hidden' } as const;
export const CLIP_CONTEXT = 77;

export interface ClipGraphOptions {
  /**
   * Whether each layer's output in `hidden` passes through the final layer norm (ComfyUI's
   * layer_norm_hidden_state). Default true (SD1); SDXL's CLIP-L reads its penultimate layer raw.
   */
  layerNormHidden?: boolean;
}

export function buildClipGraph(cfg: ClipTextConfig, ws: WeightSource, opts: NetOptions, graphOpts: ClipGraphOptions = {}): GraphBuilder {
  const g = new GraphBuilder('weft_clip_text');
  const n = new Net(g, ws, opts);
  const T = CLIP_CONTEXT;
  const H = cfg.hiddenSize;
  if (cfg.maxPositions < T) throw new Error(`CLIP has ${cfg.maxPositions} positions, fewer than the ${T} tokens of a chunk`);
  const entry = textTransformerEntry(g, n, opts, H, {
    tokenEmbedding: 'embeddings.token_embedding.weight',
    positionEmbedding: 'embeddings.position_embedding.weight',
  });
  let x = entry.x;
  const mask = entry.mask;
  const act = (v: string): string => (cfg.activation === 'quick_gelu' ? n.quickGelu(v) : n.gelu(v));
  const layers: string[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `encoder.layers.${i}`;
    const h = n.layerNorm(`${p}.layer_norm1`, x, cfg.layerNormEps);
    const a = n.attention(n.linear(`${p}.self_attn.q_proj`, h), n.linear(`${p}.self_attn.k_proj`, h), n.linear(`${p}.self_attn.v_proj`, h), cfg.numHeads, H, mask);
    x = g.op1('Add', [x, n.linear(`${p}.self_attn.out_proj`, a)]);
    const m = n.linear(`${p}.mlp.fc2`, act(n.linear(`${p}.mlp.fc1`, n.layerNorm(`${p}.layer_norm2`, x, cfg.layerNormEps))));
    x = g.op1('Add', [x, m]);
    let normed = graphOpts.layerNormHidden === false ? x : n.layerNorm('final_layer_norm', x, cfg.layerNormEps);
    if (opts.dtype === 'float16') normed = n.cast(normed, 'float32');
    layers.push(g.op1('Unsqueeze', [normed, g.ints([0])]));
  }
  g.output(g.op1('Concat', layers, { axis: 0 }), CLIP_IO.hidden, 'float32', [cfg.numLayers, 'batch', T, H]);
  return g;
}

/** Checkpoint names of the weights the entry reads. */
export interface TextEntryNames {
  tokenEmbedding: string;
  positionEmbedding: string;
}

/**
 * The entry every CLIP text transformer here shares (SD1's CLIP-L, open_clip's ViT-H and bigG), built
 * node for node alike so the graphs stay byte-identical: token embeddings, with textual-inversion
 * vectors in place where `embeds_mask` is 1 (both inputs broadcast, so a prompt without embeddings
 * feeds one [1,1,1] zero for each), plus the first 77 positions; and the causal mask (token i attends
 * to tokens ≤ i; padding is not masked, as ComfyUI runs both).
 */
export function textTransformerEntry(
  g: GraphBuilder,
  n: Net,
  opts: NetOptions,
  width: number,
  names: TextEntryNames,
): { x: string; mask: string } {
  const T = CLIP_CONTEXT;
  const tokens = g.input(CLIP_IO.tokens, 'int64', ['batch', T]);
  const tokEmb = n.weight(names.tokenEmbedding);
  const posEmb = n.weight(names.positionEmbedding, [T, width], (d) => d.slice(0, T * width), `${names.positionEmbedding}.${T}`);
  const embeds = g.input(CLIP_IO.embeds, 'float32', ['eb', 'et', 'eh']);
  const embedsMask = g.input(CLIP_IO.embedsMask, 'float32', ['mb', 'mt', 1]);
  const gathered = g.op1('Gather', [tokEmb, tokens], { axis: 0 });
  const cast = (v: string): string => (opts.dtype === 'float16' ? n.cast(v, 'float16') : v);
  const replaced = g.op1('Add', [gathered, g.op1('Mul', [g.op1('Sub', [cast(embeds), gathered]), cast(embedsMask)])]);
  const x = g.op1('Add', [replaced, posEmb]);
  const mask = g.floats('causal_mask', [1, 1, T, T], () => {
    const m = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -Infinity;
    return m;
  });
  return { x, mask };
}
