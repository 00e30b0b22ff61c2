import type { Latent, Tensor } from '../core/tensor.ts';
import type { PreviewImage } from '../core/preview.ts';
import type { ModelHandle } from '../models/handles.ts';
import { processLatentInUnlessEmpty, processLatentOut } from '../models/latent-format.ts';
import type { Guider } from './guider.ts';
import { inpaintDenoiser, prepareMask } from './inpaint.ts';
import { samplerNoise } from './noise/latent-noise.ts';
import { latentPreview } from './preview.ts';
import type { SamplerObject } from './samplers/index.ts';

/**
 * One sampling run as ComfyUI's `guider.sample(noise, latent, sampler, sigmas, denoise_mask, callback,
 * seed)` does it (CFGGuider.inner_sample + KSAMPLER.sample): the latent into model space (process_in), the
 * inpaint wrapper where the latent has a noise mask, the start noise scaled for σ_0, the sampler's
 * step noise seeded from `seed`, previews and progress per step, and the result back to VAE space.
 */

export interface SampleArgs {
  guider: Guider;
  sampler: SamplerObject;
  /** The schedule to sample (sigmas.ts); empty gives the latent back unchanged. */
  sigmas: Float64Array;
  /** Starting noise shaped like the latent (LatentNoise.generate). */
  noise: Float32Array;
  /** Raw VAE-space latent; its noise mask, if any, limits where it is resampled. */
  latent: Latent;
  /** Seeds the sampler's step noise (ancestral and SDE samplers). */
  seed: bigint;
  signal?: AbortSignal;
  /** Called after every step with a preview every `previewEvery` steps (0 = never). */
  onStep?: (step: number, total: number, preview?: PreviewImage) => void;
  previewEvery?: number;
  /** Called after every step with its x0 prediction in model space (ComfyUI's `x0_output` callback). */
  onDenoised?: (denoised: Tensor) => void;
}

/** The latent must be [B, C, H, W] with the model's channel count. */
export function checkLatent(latent: Latent, model: ModelHandle): void {
  const shape = latent.samples.shape;
  if (shape.length !== 4) throw new Error(`latent must be [B, C, H, W], got [${shape.join(', ')}]`);
  if (shape[1] !== model.latentFormat.channels)
    throw new Error(`latent has ${shape[1]} channels but the model takes ${model.latentFormat.channels}`);
}

export async function sampleLatent(a: SampleArgs): Promise<Latent> {
  const { guider, sigmas } = a;
  const { model, modelSampling: ms } = guider;
  checkLatent(a.latent, model);
  const latentImage = a.latent.samples;
  const shape = latentImage.shape;
  if (sigmas.length === 0) return { ...a.latent, samples: latentImage };
  if (a.noise.length !== latentImage.data.length)
    throw new Error(`noise has ${a.noise.length} elements for a latent of ${latentImage.data.length}`);

  const latentIn = processLatentInUnlessEmpty(model.latentFormat, latentImage);
  let denoise = guider.denoiser(shape, { sigmas, signal: a.signal, seed: a.seed });
  if (a.latent.noiseMask)
    denoise = inpaintDenoiser(denoise, {
      modelSampling: ms,
      mask: prepareMask(a.latent.noiseMask, shape),
      noise: a.noise,
      latent: latentIn,
    });

  const x0 = ms.noiseScaling(sigmas[0], a.noise, latentIn, ms.isMaxDenoise(sigmas[0]));
  const every = a.previewEvery ?? 1;
  const out = await a.sampler.sample(
    {
      denoise,
      modelSampling: ms,
      noise: samplerNoise(a.sampler.noise, a.seed, shape, sigmas),
      signal: a.signal,
      callback: (info) => {
        const preview =
          every > 0 && ((info.i + 1) % every === 0 || info.i + 1 === info.totalSteps)
            ? latentPreview(info.denoised, model.latentFormat)
            : undefined;
        a.onStep?.(info.i + 1, info.totalSteps, preview);
        a.onDenoised?.(info.denoised);
      },
    },
    { shape, data: x0 },
    sigmas,
    a.sampler.options,
  );
  const samples = processLatentOut(model.latentFormat, { shape, data: ms.inverseNoiseScaling(sigmas[sigmas.length - 1], out.data) });
  return { ...a.latent, samples: { shape, data: samples } };
}
