import type { WeightSource } from '../../../core/weights.ts';
import type { Layout } from '../sd1/layout.ts';

/**
 * The open_clip text transformer (`open_clip.model.CLIP` minus its vision tower) as SD2 (ViT-H/14,
 * 1024 wide, 24 blocks) and SDXL's second encoder (ViT-bigG/14, 1280 wide, 32 blocks) store it:
 * `token_embedding.weight`, `positional_embedding`, `transformer.resblocks.N.{ln_1, attn.in_proj_weight,
 * attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}`, `ln_final`, `text_projection`.
 * Unlike OpenAI's CLIP-L it uses exact GELU, fuses q/k/v into one in_proj, and keeps the projection as a
 * matrix applied as x·P (not a Linear weight).
 */
export interface OpenClipConfig {
  vocabSize: number;
  width: number;
  layers: number;
  /** open_clip's text towers use 64-wide heads (H: 16, bigG: 20). */
  heads: number;
  mlpWidth: number;
  /** Rows of positional_embedding (77). */
  contextLength: number;
  /** Columns of text_projection; undefined when the file has none. */
  projectionDim?: number;
  layerNormEps: number;
}

/** Where checkpoints keep the encoder. */
export const OPENCLIP_PREFIX = {
  sd2: 'cond_stage_model.model.',
  sdxlG: 'conditioner.embedders.1.model.',
} as const;

const block = (i: number): string => `transformer.resblocks.${i}`;

/** Whether `<prefix>` holds an open_clip text transformer. */
export function isOpenClip(ws: WeightSource, prefix: string): boolean {
  return ws.has(`${prefix}token_embedding.weight`) && ws.has(`${prefix}${block(0)}.attn.in_proj_weight`);
}

/** Every tensor of the encoder under `prefix` with its shape (what a file of this architecture holds). */
export function openClipLayout(cfg: OpenClipConfig, prefix: string): Layout {
  const l: Layout = new Map();
  const W = cfg.width;
  const pair = (key: string, shape: number[], bias: number[] | undefined): void => {
    l.set(`${key}.weight`, shape);
    if (bias) l.set(`${key}.bias`, bias);
  };
  l.set(`${prefix}token_embedding.weight`, [cfg.vocabSize, W]);
  l.set(`${prefix}positional_embedding`, [cfg.contextLength, W]);
  for (let i = 0; i < cfg.layers; i++) {
    const p = `${prefix}${block(i)}`;
    pair(`${p}.ln_1`, [W], [W]);
    l.set(`${p}.attn.in_proj_weight`, [3 * W, W]);
    l.set(`${p}.attn.in_proj_bias`, [3 * W]);
    pair(`${p}.attn.out_proj`, [W, W], [W]);
    pair(`${p}.ln_2`, [W], [W]);
    pair(`${p}.mlp.c_fc`, [cfg.mlpWidth, W], [cfg.mlpWidth]);
    pair(`${p}.mlp.c_proj`, [W, cfg.mlpWidth], [W]);
  }
  pair(`${prefix}ln_final`, [W], [W]);
  if (cfg.projectionDim !== undefined) l.set(`${prefix}text_projection`, [W, cfg.projectionDim]);
  return l;
}

/**
 * The encoder's architecture from the shapes under `prefix`, every tensor it implies checked for
 * presence and shape (the first few problems named). Heads follow open_clip's 64-wide convention,
 * which shapes cannot tell.
 */
export function detectOpenClip(ws: WeightSource, prefix: string): OpenClipConfig {
  const shape = (key: string, what: string): readonly number[] => {
    if (!ws.has(`${prefix}${key}`)) throw new Error(`not an open_clip text encoder: missing ${prefix}${key} (${what})`);
    return ws.shape(`${prefix}${key}`);
  };
  const tok = shape('token_embedding.weight', 'token embedding');
  const pos = shape('positional_embedding', 'positional embedding');
  const fc = shape(`${block(0)}.mlp.c_fc.weight`, 'MLP');
  let layers = 0;
  while (ws.has(`${prefix}${block(layers)}.attn.in_proj_weight`)) layers++;
  const W = tok[1];
  if (W % 64 !== 0) throw new Error(`unsupported open_clip text encoder under ${prefix}: width ${W} is not a multiple of its 64-wide heads`);
  const proj = ws.has(`${prefix}text_projection`) ? ws.shape(`${prefix}text_projection`) : undefined;
  const cfg: OpenClipConfig = {
    vocabSize: tok[0],
    width: W,
    layers,
    heads: W / 64,
    mlpWidth: fc[0],
    contextLength: pos[0],
    projectionDim: proj?.[1],
    layerNormEps: 1e-5,
  };
  const problems: string[] = [];
  for (const [name, want] of openClipLayout(cfg, prefix)) {
    if (!ws.has(name)) problems.push(`missing ${name}`);
    else {
      const got = ws.shape(name);
      if (got.length !== want.length || got.some((d, i) => d !== want[i])) problems.push(`${name} has shape [${got.join(', ')}], expected [${want.join(', ')}]`);
    }
    if (problems.length >= 5) break;
  }
  if (problems.length) throw new Error(`not a consistent open_clip text encoder: ${problems.join('; ')}`);
  return cfg;
}
