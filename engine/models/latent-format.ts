import type { Tensor } from '../core/tensor.ts';
import type { LatentFormat } from './handles.ts';

/**
 * ComfyUI's LatentFormat.process_in / process_out (comfy/latent_formats.py): between the VAE's raw
 * latents (what LATENT sockets carry) and the space the UNet is trained in. Most formats only scale;
 * Playground v2.5 also normalises each channel by the SDXL VAE's latent mean and std. Float32 torch
 * ops are mirrored with Math.fround so the numbers are ComfyUI's.
 */

const f32 = Math.fround;

/** Channel of element `i` in an NCHW tensor, and the per-channel values as float32 (torch.tensor's default dtype). */
function perChannel(format: LatentFormat, shape: readonly number[]): { mean: Float32Array; std: Float32Array; plane: number; channels: number } {
  const mean = Float32Array.from(format.latentsMean ?? []);
  const std = Float32Array.from(format.latentsStd ?? []);
  const channels = shape[1];
  if (shape.length < 3 || channels !== mean.length || channels !== std.length) {
    throw new Error(`latent of shape [${shape.join(', ')}] does not match the latent format's ${mean.length} per-channel means and ${std.length} stds`);
  }
  let plane = 1;
  for (const d of shape.slice(2)) plane *= d;
  return { mean, std, plane, channels };
}

/** process_in: raw VAE latent → model space (latent·scale, or (latent − mean)·scale / std per channel). */
export function processLatentIn(format: LatentFormat, latent: Tensor): Float32Array {
  const k = format.scaleFactor;
  if (!format.latentsMean && !format.latentsStd) return latent.data.map((v) => v * k);
  const { mean, std, plane, channels } = perChannel(format, latent.shape);
  const scale = f32(k);
  return latent.data.map((v, i) => {
    const c = Math.floor(i / plane) % channels;
    return f32(f32(f32(v - mean[c]) * scale) / std[c]);
  });
}

/** process_out: model space → raw VAE latent (latent / scale, or latent·std / scale + mean per channel). */
export function processLatentOut(format: LatentFormat, latent: Tensor): Float32Array {
  const k = format.scaleFactor;
  if (!format.latentsMean && !format.latentsStd) return latent.data.map((v) => v / k);
  const { mean, std, plane, channels } = perChannel(format, latent.shape);
  const scale = f32(k);
  return latent.data.map((v, i) => {
    const c = Math.floor(i / plane) % channels;
    return f32(f32(f32(v * std[c]) / scale) + mean[c]);
  });
}

/**
 * process_in as ComfyUI's sampler applies it (CFGGuider.inner_sample): an all-zero latent (an empty
 * one) is left as it is, so with a per-channel mean it still starts from pure noise around 0.
 */
export function processLatentInUnlessEmpty(format: LatentFormat, latent: Tensor): Float32Array {
  return latent.data.some((v) => v !== 0) ? processLatentIn(format, latent) : latent.data.map((v) => v * format.scaleFactor);
}
