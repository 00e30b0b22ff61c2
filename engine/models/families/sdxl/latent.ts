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
 * ComfyUI's `latent_formats.SDXL_Playground_2_5`: the same SDXL VAE, but Playground v2.5 was trained on
 * latents normalised per channel by their mean and std (×0.5), so its previews need their own factors
 * (and no bias).
 */
export const PLAYGROUND_V25_LATENT_FORMAT: LatentFormat = {
  channels: 4,
  scaleFactor: 0.5,
  latentsMean: [-1.6574, 1.886, -1.383, 2.5155],
  latentsStd: [8.4927, 5.9022, 6.5498, 5.2299],
  rgbFactors: [
    [0.392, 0.4054, 0.4549],
    [-0.2634, -0.0196, 0.0653],
    [0.0568, 0.1687, -0.0755],
    [-0.3112, -0.2359, -0.2076],
  ],
};

/** Playground v2.5's EDM σ range and σ_data (ComfyUI's sampling_settings for the `edm_mean` files). */
export const PLAYGROUND_V25_SIGMAS = { sigmaMin: 0.002, sigmaMax: 80.0, sigmaData: 0.5 } as const;

/** ComfyUI's ModelSamplingContinuousEDM defaults, which CosXL files override from their `edm_vpred.*` keys. */
export const EDM_DEFAULT_SIGMAS = { sigmaMin: 0.002, sigmaMax: 120.0 } as const;

export function sdxlLatentFormat(cfg: SdxlConfig): LatentFormat {
  return cfg.prediction === 'edm' ? PLAYGROUND_V25_LATENT_FORMAT : SDXL_LATENT_FORMAT;
}

/**
 * SDXL's model sampling as ComfyUI's `model_base.model_sampling` picks it from the model type: SD1's
 * scaled-linear β schedule with ε or v prediction (for `ztsnr` files rescaled to zero terminal SNR,
 * put as the override ModelSamplingDiscrete would set, so the sampling layer does the rescale), or
 * ModelSamplingContinuousEDM with EDM (Playground v2.5) or v prediction (CosXL) over the file's σ
 * range. The continuous ones are put as the override ModelSamplingContinuousEDM sets.
 */
export function sdxlSampling(cfg: SdxlConfig): ModelSamplingConfig {
  if (cfg.prediction === 'edm') {
    return { ...SD1_SAMPLING, override: { kind: 'continuous_edm', prediction: 'edm', ...PLAYGROUND_V25_SIGMAS } };
  }
  if (cfg.prediction === 'v_prediction_edm') {
    const sigmas = cfg.edmSigmas ?? EDM_DEFAULT_SIGMAS;
    return { ...SD1_SAMPLING, override: { kind: 'continuous_edm', prediction: 'v_prediction', sigmaMin: sigmas.sigmaMin, sigmaMax: sigmas.sigmaMax, sigmaData: 1.0 } };
  }
  const base: ModelSamplingConfig = { ...SD1_SAMPLING, prediction: cfg.prediction };
  return cfg.zsnr ? { ...base, override: { kind: 'discrete', prediction: cfg.prediction, zsnr: true } } : base;
}
