import type { LatentFormat, ModelSamplingConfig } from '../../handles.ts';
import { SD1_SAMPLING } from '../sd1/latent.ts';
import type { SdxlConfig } from './config.ts';

/** ComfyUI's `latent_formats.SDXL`: the SDXL VAE's scale and its latent → RGB preview map. */
export const SDXL_LATENT_FORMAT: LatentFormat = {
  channels: 4,
  scaleFactor: 0.13025,
  rgbFactors: [
    [0.3651, 0.4232, 0.4341],
    [-0.2533, -0.0042, 0.1068],
    [0.1076, 0.1111, -0.0362],
    [-0.3165, -0.2492, -0.2188],
  ],
  rgbBias: [0.1084, -0.0175, -0.0011],
};

/**
 * SDXL's model sampling: SD1's scaled-linear β schedule (ComfyUI's default sampling settings for
 * SDXL), ε or v prediction, and for `ztsnr` files the schedule rescaled to zero terminal SNR (put as
 * the override ModelSamplingDiscrete would set, so the sampling layer does the rescale).
 */
export function sdxlSampling(cfg: SdxlConfig): ModelSamplingConfig {
  if (cfg.prediction === 'edm') throw new Error('SDXL EDM (Playground v2.5) sampling is not supported yet');
  const base: ModelSamplingConfig = { ...SD1_SAMPLING, prediction: cfg.prediction };
  return cfg.zsnr ? { ...base, override: { kind: 'discrete', prediction: cfg.prediction, zsnr: true } } : base;
}
