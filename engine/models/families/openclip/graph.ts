import type { WeightSource } from '../../../core/weights.ts';
import { GraphBuilder } from '../../../onnx/graph.ts';
import { Net, transpose2d, type NetOptions } from '../../../onnx/nn.ts';
import { CLIP_CONTEXT, CLIP_IO, textTransformerEntry } from '../sd1/graphs/clip-graph.ts';
import type { OpenClipConfig } from './config.ts';

/** The graph's inputs and outputs: CLIP-L's (so `OrtClip` drives both) plus the projected last layer. */
export const OPENCLIP_IO = { ...CLIP_IO, projected: 'projected' } as const;

export interface OpenClipGraphOptions {
  /**
   * Whether every layer's output in `hidden` passes through `ln_final` (ComfyUI's
   * layer_norm_hidden_state: true for SD2's ViT-H, false for SDXL's bigG).
   */
  layerNormHidden: boolean;
}

/**
 * The open_clip text transformer as an ONNX graph over its own (bare) key names, so initializers and
 * weight patches name the checkpoint's tensors. Inputs as the CLIP-L graph (`tokens` int64 [B, 77],
 * `embeds`/`embeds_mask`); outputs `hidden` [layers, B, 77, width] (each block's output, final-normed
 * or raw per `layerNormHidden`) and, when the file has `text_projection`, `projected` [B, 77, proj]:
 * ln_final(last block)·P at every position, of which the caller takes the EOS row (ComfyUI's pooled
 * output; a row per position costs one small MatMul and keeps the EOS search out of the graph).
 * The fused in_proj is three initializers sliced from `attn.in_proj_weight`/`in_proj_bias`, each
 * sourced from the fused tensor, so a patch of that tensor rebuilds all three.
 */
export function buildOpenClipGraph(cfg: OpenClipConfig, ws: WeightSource, opts: NetOptions, graphOpts: OpenClipGraphOptions): GraphBuilder {
  const g = new GraphBuilder('weft_openclip_text');
  const n = new Net(g, ws, opts);
  const T = CLIP_CONTEXT;
  const W = cfg.width;
  if (cfg.contextLength < T) throw new Error(`open_clip text encoder has ${cfg.contextLength} positions, fewer than the ${T} tokens of a chunk`);
  const entry = textTransformerEntry(g, n, opts, W, { tokenEmbedding: 'token_embedding.weight', positionEmbedding: 'positional_embedding' });
  let x = entry.x;
  const mask = entry.mask;
  // Rows s·W … (s+1)·W of the fused [3W, W] weight, transposed for MatMul; bias rows likewise.
  const inProj = (p: string, h: string, s: number): string => {
    const rows = (d: Float32Array): Float32Array => d.subarray(s * W * W, (s + 1) * W * W);
    const w = n.weight(`${p}.attn.in_proj_weight`, [W, W], (d) => transpose2d(rows(d), [W, W]), `${p}.attn.in_proj_weight.${'qkv'[s]}.T`);
    const b = n.weight(`${p}.attn.in_proj_bias`, [W], (d) => d.slice(s * W, (s + 1) * W), `${p}.attn.in_proj_bias.${'qkv'[s]}`);
    return g.op1('Add', [g.op1('MatMul', [h, w]), b]);
  };
  const eps = cfg.layerNormEps;
  const layers: string[] = [];
  for (let i = 0; i < cfg.layers; i++) {
    const p = `transformer.resblocks.${i}`;
    const h = n.layerNorm(`${p}.ln_1`, x, eps);
    const a = n.attention(inProj(p, h, 0), inProj(p, h, 1), inProj(p, h, 2), cfg.heads, W, mask);
    x = g.op1('Add', [x, n.linear(`${p}.attn.out_proj`, a)]);
    x = g.op1('Add', [x, n.linear(`${p}.mlp.c_proj`, n.gelu(n.linear(`${p}.mlp.c_fc`, n.layerNorm(`${p}.ln_2`, x, eps))))]);
    let out = graphOpts.layerNormHidden ? n.layerNorm('ln_final', x, eps) : x;
    if (opts.dtype === 'float16') out = n.cast(out, 'float32');
    layers.push(g.op1('Unsqueeze', [out, g.ints([0])]));
  }
  g.output(g.op1('Concat', layers, { axis: 0 }), OPENCLIP_IO.hidden, 'float32', [cfg.layers, 'batch', T, W]);
  if (cfg.projectionDim !== undefined) {
    let projected = g.op1('MatMul', [n.layerNorm('ln_final', x, eps), n.weight('text_projection')]);
    if (opts.dtype === 'float16') projected = n.cast(projected, 'float32');
    g.output(projected, OPENCLIP_IO.projected, 'float32', ['batch', T, cfg.projectionDim]);
  }
  return g;
}
