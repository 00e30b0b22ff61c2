import type { Guider } from './guider.ts';
import type { LatentNoise } from './noise/latent-noise.ts';
import type { SamplerObject } from './samplers/index.ts';

/**
 * The custom-sampling socket types (ComfyUI's SAMPLER, SIGMAS, GUIDER, NOISE): what travels through
 * them, declared here so the registry stays free of the sampling layer.
 */
declare module '../registry/sockets.ts' {
  interface SocketValueTypes {
    SAMPLER: SamplerObject;
    /** Descending noise levels, float32 values held in float64 (ComfyUI's 1-D float tensor). */
    SIGMAS: Float64Array;
    GUIDER: Guider;
    NOISE: LatentNoise;
  }
}

export {};
