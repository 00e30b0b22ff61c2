import type { Tensor } from '../core/tensor.ts';
import type { LatentFormat } from '../models/handles.ts';
import type { PreviewImage } from '../core/preview.ts';

/**
 * ComfyUI's Latent2RGB previewer: a linear map from latent channels to RGB, one pixel per latent
 * pixel, of the first image of the batch. Input is the sampler's x0 in the model's (scaled) space.
 */
export function latentPreview(x0: Tensor, format: LatentFormat): PreviewImage {
  const [, C, H, W] = x0.shape;
  const S = H * W;
  const rgb = new Uint8Array(S * 3);
  const f = format.rgbFactors;
  const bias = format.rgbBias ?? [0, 0, 0];
  for (let s = 0; s < S; s++) {
    for (let k = 0; k < 3; k++) {
      let v = bias[k];
      for (let c = 0; c < C && c < f.length; c++) v += x0.data[c * S + s] * f[c][k];
      const u = (v + 1) / 2;
      rgb[s * 3 + k] = Math.round((u < 0 ? 0 : u > 1 ? 1 : u) * 255);
    }
  }
  return { width: W, height: H, rgb };
}
