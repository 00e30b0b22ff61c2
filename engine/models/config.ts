/**
 * Architecture parameters of an SD1-family checkpoint, inferred from tensor shapes by detection
 * and consumed by the graph builders and reference implementations. Everything a shape can tell is
 * read from the file; the rest follows SD1 conventions (noted per field).
 */

export const SD1_PREFIX = {
  unet: 'model.diffusion_model.',
  vae: 'first_stage_model.',
  clip: 'cond_stage_model.transformer.text_model.',
} as const;

export interface UNetConfig {
  inChannels: number;
  outChannels: number;
  modelChannels: number;
  /** Width multiplier per resolution level, e.g. [1, 2, 4, 4]. */
  channelMult: number[];
  numResBlocks: number;
  /** Levels (indices into channelMult) whose blocks carry a spatial transformer, e.g. [0, 1, 2]. */
  attentionLevels: number[];
  transformerDepth: number;
  contextDim: number;
  /** SD1: 8 heads at every level (head width = channels / 8). */
  numHeads: number;
  /** SD1: 1×1 conv proj_in/proj_out (SD2 uses linear). */
  useLinearInProj: boolean;
  /** Group norm groups (32). */
  normGroups: number;
}

export interface ClipTextConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  intermediateSize: number;
  /** SD1 convention: 64-wide heads. */
  numHeads: number;
  maxPositions: number;
  /** SD1's CLIP-L uses quick_gelu. */
  activation: 'quick_gelu' | 'gelu';
  layerNormEps: number;
}

export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  ch: number;
  chMult: number[];
  numResBlocks: number;
  zChannels: number;
  /** Latent channels after quant_conv (embed_dim, 4 for SD). */
  embedDim: number;
  normGroups: number;
}

export interface Sd1Config {
  family: 'sd1';
  unet: UNetConfig;
  clip: ClipTextConfig;
  vae: VaeConfig;
  /** Latent scale factor (0.18215). */
  scaleFactor: number;
}
