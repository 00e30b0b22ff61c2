import type { ClipTextConfig, UNetConfig, VaeConfig } from '../sd1/config.ts';
import type { OpenClipConfig } from '../openclip/config.ts';

/** Where an SDXL single-file checkpoint keeps each part (ComfyUI's supported_models.SDXL / SDXLRefiner). */
export const SDXL_PREFIX = {
  unet: 'model.diffusion_model.',
  vae: 'first_stage_model.',
  /** CLIP-L under transformers names (base only). */
  clipL: 'conditioner.embedders.0.transformer.text_model.',
  /** OpenCLIP bigG under open_clip names: embedder 1 of the base, embedder 0 of the refiner. */
  clipG: 'conditioner.embedders.1.model.',
  clipGRefiner: 'conditioner.embedders.0.model.',
} as const;

/** Width of each size value's sinusoidal embedding in the adm vector (ComfyUI's `Timestep(256)`). */
export const SDXL_SIZE_EMBED = 256;

/**
 * How the UNet's output is read (ComfyUI's SDXL.model_type): ε, v (NoobAI-style files carry a `v_pred`
 * key, zero-terminal-SNR ones `ztsnr` too), EDM (Playground v2.5: `edm_mean`/`edm_std`), or v over a
 * continuous EDM σ range (CosXL: `edm_vpred.sigma_max`, optionally `edm_vpred.sigma_min`).
 */
export type SdxlPrediction = 'eps' | 'v_prediction' | 'edm' | 'v_prediction_edm';

export interface SdxlConfig {
  family: 'sdxl';
  /** base: CLIP-L + CLIP-G and a 6-size adm vector; refiner: CLIP-G only and 4 sizes + aesthetic score. */
  kind: 'base' | 'refiner';
  unet: UNetConfig;
  /** CLIP-L (base only). */
  clipL?: ClipTextConfig;
  clipG: OpenClipConfig;
  /** Width of CLIP-G's text projection, i.e. of the pooled output (1280). */
  pooledDim: number;
  /** Key prefix of CLIP-G's open_clip weights. */
  clipGPrefix: string;
  vae: VaeConfig;
  prediction: SdxlPrediction;
  /** Rescale the schedule to zero terminal SNR (the `ztsnr` key). */
  zsnr: boolean;
  /** CosXL's σ range as its `edm_vpred.sigma_max`/`sigma_min` tensors give it (absent ones: 120 and 0.002). */
  edmSigmas?: { readonly sigmaMin: number; readonly sigmaMax: number };
}
