import type { Tensor } from '../core/tensor.ts';

/**
 * One entry of a CONDITIONING list, as ComfyUI's `[cond, {pooled_output, area, strength, mask, ...}]`.
 * A CONDITIONING value is a list of these; the sampler combines their predictions by area and strength.
 */
export interface ConditioningEntry {
  /** [1, tokens, dim] */
  readonly cond: Tensor;
  /** [1, dim] pooled CLIP output. */
  readonly pooled?: Tensor;
  /** Area in latent pixels (ComfyUI stores (h, w, y, x) /8); or as fractions of the latent when `percentage`. */
  readonly area?: { readonly height: number; readonly width: number; readonly y: number; readonly x: number; readonly percentage?: boolean };
  readonly strength?: number;
  readonly mask?: Tensor;
  readonly maskStrength?: number;
  readonly setAreaToBounds?: boolean;
  /** Fractions of the schedule (0 = start) in which this entry applies (ConditioningSetTimestepRange). */
  readonly startPercent?: number;
  readonly endPercent?: number;
  /**
   * Fractions of the sampler's own steps in which this entry applies, start inclusive, end exclusive
   * (A1111 prompt editing and alternation, which count sampler steps rather than model timesteps).
   */
  readonly stepRange?: { readonly start: number; readonly end: number };
  /** ControlNet chain attached by ControlNetApply (owned by the controlnet layer). */
  readonly control?: unknown;
}

export type Conditioning = readonly ConditioningEntry[];

declare module '../registry/sockets.ts' {
  interface SocketValueTypes {
    CONDITIONING: Conditioning;
  }
}
