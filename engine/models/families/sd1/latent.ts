import type { LatentFormat, ModelSamplingConfig } from '../../handles.ts';

/** ComfyUI's `latent_formats.SD15`: the linear latent → RGB map of its previews. */
export const SD1_LATENT_RGB: readonly (readonly number[])[] = [
  [0.3512, 0.2297, 0.3227],
  [0.3250, 0.4974, 0.2350],
  [-0.2829, 0.1762, 0.2721],
  [-0.2120, -0.2616, -0.7177],
];

/** SD1's VAE latent scale (the 1/σ of its training latents). */
export const SD1_SCALE_FACTOR = 0.18215;

export function sd1LatentFormat(scaleFactor = SD1_SCALE_FACTOR): LatentFormat {
  return { channels: 4, scaleFactor, rgbFactors: SD1_LATENT_RGB };
}

/** ComfyUI's `model_sampling` for SD1: ε prediction over the scaled-linear β schedule of 1000 steps. */
export const SD1_SAMPLING: Readonly<ModelSamplingConfig> = { prediction: 'eps', betaSchedule: 'scaled_linear', linearStart: 0.00085, linearEnd: 0.012, timesteps: 1000 };
