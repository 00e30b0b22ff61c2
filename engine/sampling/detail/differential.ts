import type { Tensor } from '../../core/tensor.ts';
import type { LatentFormat } from '../../models/handles.ts';
import { processLatentInUnlessEmpty } from '../../models/latent-format.ts';
import type { Guider } from '../guider.ts';
import { inpaintDenoiser, prepareMask } from '../inpaint.ts';
import type { ModelSampling } from '../model-sampling.ts';

/**
 * ComfyUI's DifferentialDiffusion `denoise_mask_function`, which the Impact Pack switches on whenever
 * noise_mask_feather > 0: at each call the (soft) noise mask becomes the binary mask ≥ threshold, the
 * threshold falling from 1 to 0 with the timestep between the run's first σ and its last (or the
 * model's σ_min), so a grey mask value v is resampled only over the last v of the run.
 */
export function differentialMask(mask: Float32Array, sigma: number, runSigmas: ArrayLike<number>, ms: ModelSampling): Float32Array {
  const last = runSigmas[runSigmas.length - 1];
  const sigmaTo = last > ms.sigmaMin ? last : ms.sigmaMin;
  const tsFrom = ms.timestep(runSigmas[0]);
  const tsTo = ms.timestep(sigmaTo);
  // float32 tensor arithmetic, as torch computes it
  const f = Math.fround;
  const threshold = f(f(ms.timestep(sigma) - tsTo) / f(tsFrom - tsTo));
  return mask.map((v) => (v >= threshold ? 1 : 0));
}

/**
 * A guider whose denoiser is ComfyUI's KSamplerX0Inpaint with the differential-diffusion mask
 * function, for a latent sampled without its own noise mask (the blend happens here instead of in
 * sampleLatent). `latent` is in VAE space (taken into model space as the sampler does); `noise` is the run's starting noise.
 */
export function differentialInpaintGuider(g: Guider, noiseMask: Tensor, latent: Tensor, noise: Float32Array, format: LatentFormat): Guider {
  const ms = g.modelSampling;
  const scaled = processLatentInUnlessEmpty(format, latent);
  const prepared = prepareMask(noiseMask, latent.shape);
  return {
    model: g.model,
    modelSampling: ms,
    denoiser: (shape, run) => {
      const inner = g.denoiser(shape, run);
      const sigmas = run?.sigmas ?? [];
      return (x, sigma, request) =>
        inpaintDenoiser(inner, { modelSampling: ms, mask: differentialMask(prepared, sigma, sigmas, ms), noise, latent: scaled })(
          x,
          sigma,
          request,
        );
    },
  };
}
