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
  /** SD1: 8 heads at every level (head width = channels / 8); ignored when numHeadChannels is set. */
  numHeads: number;
  /** SD1: 1×1 conv proj_in/proj_out; SD2/SDXL: linear (ComfyUI's use_linear_in_transformer). */
  useLinearInProj: boolean;
  /** Group norm groups (32). */
  normGroups: number;
  /**
   * Transformer depth per block where it is not SD1's uniform `transformerDepth` at `attentionLevels`
   * (SDXL: input [0, 0, 2, 2, 10, 10], middle 10, output [0, 0, 0, 2, 2, 2, 10, 10, 10]). Ordered as
   * ComfyUI's `transformer_depth` (one per input res block), `transformer_depth_middle` (−1: the middle
   * block is one ResBlock) and `transformer_depth_output` (one per output block, listed from level 0
   * up, so output block 0 takes the last entry), so configs carry over from its model_detection.
   */
  transformerDepths?: { input: readonly number[]; middle: number; output: readonly number[] };
  /** Head width instead of a head count (SD2/SDXL: 64, so heads = channels / 64); SD1 leaves it out and uses numHeads. */
  numHeadChannels?: number;
  /** Width of the `y` vector the `label_emb` MLP adds to the timestep embedding (ComfyUI's adm_in_channels; SDXL: 2816). */
  admInChannels?: number;
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
