import type { Tensor } from '../core/tensor.ts';
import type { ControlResiduals, ControlTiles, ModelHandle, SizeConditioning } from '../models/handles.ts';
import type { ModelSamplingObject } from './model-sampling.ts';

/**
 * One entry of a CONDITIONING list, as ComfyUI's `[cond, {pooled_output, area, strength, mask, ...}]`.
 * A CONDITIONING value is a list of these; the sampler combines their predictions by area and strength.
 */
export interface ConditioningEntry {
  /** [1, tokens, dim] */
  readonly cond: Tensor;
  /** [1, dim] pooled CLIP output. */
  readonly pooled?: Tensor;
  /** SDXL's size/crop/aesthetic values (CLIPTextEncodeSDXL, CLIPTextEncodeSDXLRefiner); read by the family's extraConds. */
  readonly size?: SizeConditioning;
  /** Area in latent pixels (ComfyUI stores (h, w, y, x) /8); or as fractions of the latent when `percentage`. */
  readonly area?: {
    readonly height: number;
    readonly width: number;
    readonly y: number;
    readonly x: number;
    readonly percentage?: boolean;
  };
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
  /**
   * Named UNet inputs of this entry (ComfyUI's `model_conds`: `y`, `c_concat`, …), each with batch 1 or
   * the latent's batch. Merged over what the model family computes (`ModelHandle.extraConds`).
   */
  readonly modelConds?: Readonly<Record<string, Tensor>>;
  /** ControlNet/T2I chain attached by ControlNetApply; entries with different controls never share a UNet call. */
  readonly control?: Control;
  /**
   * Set by the legacy ControlNetApply (ComfyUI's `control_apply_to_uncond`): when no negative entry
   * without an area has a control, this positive entry's control is also given to those negative entries.
   */
  readonly controlApplyToUncond?: boolean;
}

/** What a control is asked at one model evaluation (ComfyUI's `get_control(x_noisy, t, cond, batched_number)`). */
export interface ControlRequest {
  /** The batched model input in the sampler's space (before `calculate_input`), [chunks·B, C, h, w]. */
  readonly x: Tensor;
  readonly sigma: number;
  /** The model's timestep for σ, one per row. */
  readonly timesteps: Float32Array;
  /** [chunks·B, T, contextDim] */
  readonly context: Tensor;
  /** Named UNet inputs of the batch, batched like x. */
  readonly extra?: Readonly<Record<string, Tensor>>;
  /** Conditioning chunks of B rows in the batch (ComfyUI's batched_number). */
  readonly chunks: number;
  /** The part of the latent x covers (the entries' area; the whole latent without one), latent pixels. */
  readonly area: { readonly y: number; readonly x: number; readonly h: number; readonly w: number };
  /** The run's model sampling (ComfyUI's pre_run gives a control the model: percent_to_sigma, calculate_input). */
  readonly modelSampling?: ModelSamplingObject;
  /** The model being sampled (ComfyUI's pre_run): a Control-LoRA builds its ControlNet from its UNet weights. */
  readonly model?: ModelHandle;
  /** Per chunk: 0 = cond (positive), 1 = uncond (negative), as the model call gets it (A1111's cond_mark). */
  readonly condOrUncond?: readonly number[];
  /** The sampler step of this evaluation as a fraction of the run's steps (A1111's sampling_step / steps), when the guider knows the schedule. */
  readonly stepFraction?: number;
  readonly signal?: AbortSignal;
  /** x is a batch of tiles of the model input (tiled diffusion): the hint is resized to the input and cropped per tile. */
  readonly tiles?: ControlTiles;
}

/** A ControlNet/T2I adapter as the guider sees it (ComfyUI's ControlBase). */
export interface Control {
  /** The control applied before this one (ComfyUI's `previous_controlnet`); the chain's residuals add up. */
  readonly previous?: Control;
  /** Residuals for the batch, one row per row of x; undefined where this control does not apply (e.g. outside its step range). */
  getControl(req: ControlRequest): Promise<ControlResiduals | undefined>;
}

export type Conditioning = readonly ConditioningEntry[];

declare module '../registry/sockets.ts' {
  interface SocketValueTypes {
    CONDITIONING: Conditioning;
  }
}
