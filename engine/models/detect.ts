import type { ClipTextConfig, Sd1Config, UNetConfig, VaeConfig } from './config.ts';
import { SD1_PREFIX } from './config.ts';
import type { WeightSource } from './weights.ts';

export class UnsupportedModelError extends Error {
  constructor(readonly family: string, detail = '') {
    super(`not supported yet: detected ${family}${detail ? ` (${detail})` : ''}; Weft runs SD1.x checkpoints for now`);
    this.name = 'UnsupportedModelError';
  }
}

/** Names that identify other model families, checked before SD1 so the error names the right one. */
const FAMILIES: [string, (ws: WeightSource, names: string[]) => boolean][] = [
  ['SDXL', (_w, n) => n.some((k) => k.startsWith('conditioner.embedders.') || k.startsWith('model.diffusion_model.label_emb.'))],
  ['SD3', (_w, n) => n.some((k) => k.includes('diffusion_model.joint_blocks.'))],
  ['Flux', (_w, n) => n.some((k) => k.includes('double_blocks.') && k.includes('img_attn'))],
  ['SD2.x', (_w, n) => n.some((k) => k.startsWith('cond_stage_model.model.'))],
];

function shapeOf(ws: WeightSource, key: string, what: string): readonly number[] {
  if (!ws.has(key)) throw new Error(`not an SD1 checkpoint: missing ${key} (${what})`);
  return ws.shape(key);
}

export function detectUnet(ws: WeightSource, prefix: string = SD1_PREFIX.unet): UNetConfig {
  const conv0 = shapeOf(ws, `${prefix}input_blocks.0.0.weight`, 'UNet input convolution');
  const C = conv0[0];
  const channelMult: number[] = [];
  const attentionLevels: number[] = [];
  let numResBlocks = 0;
  let idx = 1;
  let level = 0;
  // Walk input blocks: res blocks of a level, then a downsample (absent after the last level).
  for (;;) {
    let inLevel = 0;
    while (ws.has(`${prefix}input_blocks.${idx}.0.in_layers.2.weight`)) {
      const out = ws.shape(`${prefix}input_blocks.${idx}.0.in_layers.2.weight`)[0];
      if (inLevel === 0) channelMult.push(out / C);
      if (ws.has(`${prefix}input_blocks.${idx}.1.proj_in.weight`) && !attentionLevels.includes(level)) attentionLevels.push(level);
      inLevel++;
      idx++;
    }
    if (inLevel === 0) break;
    if (level === 0) numResBlocks = inLevel;
    else if (inLevel !== numResBlocks) throw new Error(`unsupported UNet: level ${level} has ${inLevel} res blocks, level 0 has ${numResBlocks}`);
    level++;
    if (!ws.has(`${prefix}input_blocks.${idx}.0.op.weight`)) break;
    idx++;
  }
  if (!channelMult.length) throw new Error('not an SD1 checkpoint: no UNet input blocks found');
  const tb = `${prefix}middle_block.1.transformer_blocks.`;
  let depth = 0;
  while (ws.has(`${tb}${depth}.attn1.to_q.weight`)) depth++;
  const toK = shapeOf(ws, `${tb}0.attn2.to_k.weight`, 'cross-attention key projection');
  const projIn = shapeOf(ws, `${prefix}middle_block.1.proj_in.weight`, 'transformer input projection');
  const out = shapeOf(ws, `${prefix}out.2.weight`, 'UNet output convolution');
  return {
    inChannels: conv0[1],
    outChannels: out[0],
    modelChannels: C,
    channelMult,
    numResBlocks,
    attentionLevels,
    transformerDepth: depth,
    contextDim: toK[1],
    numHeads: 8,
    useLinearInProj: projIn.length === 2,
    normGroups: 32,
  };
}

export function detectVae(ws: WeightSource, prefix?: string): VaeConfig {
  const p = prefix ?? (ws.has(`${SD1_PREFIX.vae}encoder.conv_in.weight`) ? SD1_PREFIX.vae : '');
  if (!ws.has(`${p}encoder.conv_in.weight`)) {
    if (ws.has('encoder.conv_in.weight') || ws.names().some((n) => n.startsWith('encoder.down_blocks.'))) {
      throw new UnsupportedModelError('a diffusers-format VAE', 'convert it to the original LDM key names');
    }
    throw new Error('not an SD VAE: missing encoder.conv_in.weight');
  }
  const convIn = ws.shape(`${p}encoder.conv_in.weight`);
  const ch = convIn[0];
  const chMult: number[] = [];
  let numResBlocks = 0;
  for (let i = 0; ws.has(`${p}encoder.down.${i}.block.0.conv1.weight`); i++) {
    chMult.push(ws.shape(`${p}encoder.down.${i}.block.0.conv1.weight`)[0] / ch);
    let j = 0;
    while (ws.has(`${p}encoder.down.${i}.block.${j}.conv1.weight`)) j++;
    if (i === 0) numResBlocks = j;
  }
  const convOut = shapeOf(ws, `${p}encoder.conv_out.weight`, 'VAE encoder output');
  const quant = shapeOf(ws, `${p}quant_conv.weight`, 'VAE quant_conv');
  const outConv = shapeOf(ws, `${p}decoder.conv_out.weight`, 'VAE decoder output');
  return { inChannels: convIn[1], outChannels: outConv[0], ch, chMult, numResBlocks, zChannels: convOut[0] / 2, embedDim: quant[0] / 2, normGroups: 32 };
}

export function detectClip(ws: WeightSource, prefix: string = SD1_PREFIX.clip): ClipTextConfig {
  const tok = shapeOf(ws, `${prefix}embeddings.token_embedding.weight`, 'CLIP token embedding');
  const pos = shapeOf(ws, `${prefix}embeddings.position_embedding.weight`, 'CLIP position embedding');
  let layers = 0;
  while (ws.has(`${prefix}encoder.layers.${layers}.self_attn.q_proj.weight`)) layers++;
  const fc1 = shapeOf(ws, `${prefix}encoder.layers.0.mlp.fc1.weight`, 'CLIP MLP');
  const H = tok[1];
  return {
    vocabSize: tok[0],
    hiddenSize: H,
    numLayers: layers,
    intermediateSize: fc1[0],
    numHeads: Math.max(1, Math.round(H / 64)),
    maxPositions: pos[0],
    activation: 'quick_gelu',
    layerNormEps: 1e-5,
  };
}

/**
 * The architecture of a single-file checkpoint from its tensor names and shapes. Every width and
 * depth is read from the file; SD1 conventions fill in what shapes cannot tell (8 attention heads,
 * 64-wide CLIP heads, quick_gelu, scale factor 0.18215). Other families are named and refused.
 */
export function detectCheckpoint(ws: WeightSource): Sd1Config {
  const names = ws.names();
  for (const [family, test] of FAMILIES) if (test(ws, names)) throw new UnsupportedModelError(family);
  const unet = detectUnet(ws);
  if (unet.contextDim === 1024) throw new UnsupportedModelError('SD2.x', 'cross-attention width 1024');
  const clip = detectClip(ws);
  if (clip.hiddenSize !== unet.contextDim) {
    throw new Error(`inconsistent checkpoint: CLIP hidden size ${clip.hiddenSize} but UNet cross-attention expects ${unet.contextDim}`);
  }
  return { family: 'sd1', unet, clip, vae: detectVae(ws, SD1_PREFIX.vae), scaleFactor: 0.18215 };
}
