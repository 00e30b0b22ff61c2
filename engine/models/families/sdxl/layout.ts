import { openClipLayout } from '../openclip/config.ts';
import { clipLayout, SD15_CONFIG, unetLayout, vaeLayout, type Layout } from '../sd1/layout.ts';
import { SDXL_PREFIX, SDXL_SIZE_EMBED, type SdxlConfig } from './config.ts';

/** Every tensor of an SDXL single-file checkpoint with its shape (what the generator writes and detection expects). */
export function sdxlLayout(cfg: SdxlConfig): Layout {
  return new Map([
    ...unetLayout(cfg.unet, SDXL_PREFIX.unet),
    ...(cfg.clipL ? clipLayout(cfg.clipL, SDXL_PREFIX.clipL) : []),
    ...openClipLayout(cfg.clipG, cfg.clipGPrefix),
    ...vaeLayout(cfg.vae, SDXL_PREFIX.vae),
  ]);
}

/** SDXL 1.0 base as published (ComfyUI's supported_models.SDXL; CLIP-L as SD1.5's, bigG 1280 × 32, SD's VAE). */
export const SDXL_BASE_CONFIG: SdxlConfig = {
  family: 'sdxl',
  kind: 'base',
  unet: {
    inChannels: 4,
    outChannels: 4,
    modelChannels: 320,
    channelMult: [1, 2, 4],
    numResBlocks: 2,
    attentionLevels: [1, 2],
    transformerDepth: 10,
    contextDim: 2048,
    numHeads: 8,
    useLinearInProj: true,
    normGroups: 32,
    transformerDepths: { input: [0, 0, 2, 2, 10, 10], middle: 10, output: [0, 0, 0, 2, 2, 2, 10, 10, 10] },
    numHeadChannels: 64,
    admInChannels: 1280 + 6 * SDXL_SIZE_EMBED,
  },
  clipL: SD15_CONFIG.clip,
  clipG: { vocabSize: 49408, width: 1280, layers: 32, heads: 20, mlpWidth: 5120, contextLength: 77, projectionDim: 1280, layerNormEps: 1e-5 },
  pooledDim: 1280,
  clipGPrefix: SDXL_PREFIX.clipG,
  vae: SD15_CONFIG.vae,
  prediction: 'eps',
  zsnr: false,
};

/**
 * Tiny SDXL-shaped models for tests and the demo: every SDXL block kind kept (3 levels with no
 * transformer at level 0 and deeper ones below, linear projections, 64-wide heads, label_emb, CLIP-L
 * + bigG with a projection, G alone for the refiner) at small widths. Widths are multiples of 64 so
 * ComfyUI's num_head_channels=64 splits them as Weft does.
 */
export function tinySdxlConfig(vocabSize: number, kind: 'base' | 'refiner' = 'base'): SdxlConfig {
  const clipG = { vocabSize, width: 128, layers: 3, heads: 2, mlpWidth: 512, contextLength: 77, projectionDim: 128, layerNormEps: 1e-5 };
  const clipL = kind === 'base' ? { ...SD15_CONFIG.clip, vocabSize, hiddenSize: 64, numLayers: 2, intermediateSize: 256, numHeads: 1 } : undefined;
  const unetBase = { ...SDXL_BASE_CONFIG.unet, modelChannels: 64, contextDim: (clipL?.hiddenSize ?? 0) + clipG.width };
  const unet =
    kind === 'base'
      ? { ...unetBase, channelMult: [1, 2, 2], transformerDepth: 2, transformerDepths: { input: [0, 0, 1, 1, 2, 2], middle: 2, output: [0, 0, 0, 1, 1, 1, 2, 2, 2] }, admInChannels: clipG.projectionDim + 6 * SDXL_SIZE_EMBED }
      : {
          ...unetBase,
          channelMult: [1, 2, 2, 2],
          transformerDepth: 1,
          transformerDepths: { input: [0, 0, 1, 1, 1, 1, 0, 0], middle: 1, output: [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0] },
          admInChannels: clipG.projectionDim + 5 * SDXL_SIZE_EMBED,
        };
  return {
    ...SDXL_BASE_CONFIG,
    kind,
    unet,
    clipL,
    clipG,
    pooledDim: clipG.projectionDim,
    clipGPrefix: kind === 'base' ? SDXL_PREFIX.clipG : SDXL_PREFIX.clipGRefiner,
    vae: { ...SD15_CONFIG.vae, ch: 32, numResBlocks: 1 },
  };
}
