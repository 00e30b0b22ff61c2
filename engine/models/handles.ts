import type { ImageTensor, Tensor } from '../core/tensor.ts';
import type { ClipTokenizer, EmbeddingLookup, WeightedToken } from '../text/clip-tokenizer.ts';
import type { PatchMap } from './patching/patch-set.ts';
import type { WeightSource } from '../core/weights.ts';

/**
 * The values that travel through MODEL, CLIP and VAE sockets. Nodes and samplers see only these
 * interfaces; how a handle runs (ORT session, provider, cached build) is the model layer's business.
 *
 * Latent convention (as ComfyUI): a LATENT holds raw VAE-space values; the sampler multiplies by
 * `latentFormat.scaleFactor` on the way into the UNet and divides on the way out.
 */

/** Optional ControlNet/T2I residuals, added to the UNet's skip connections and middle block. */
export interface ControlResiduals {
  /** One tensor per input-block skip connection, in order (12 for SD1), each shaped like that skip. */
  readonly input: readonly (Tensor | undefined)[];
  readonly middle?: Tensor;
  /**
   * ComfyUI's `control['input']` (T2I-Adapters): residual k is added to h right after input block k,
   * so it reaches skip k and every later block. Indexed by input block.
   */
  readonly afterInput?: readonly (Tensor | undefined)[];
}

export interface UNetRunArgs {
  /** Scaled model input [B, C, h, w] (already divided by sqrt(sigma^2 + 1) for eps models). */
  x: Tensor;
  /** Discrete timestep per batch item (fractional values allowed), length B. */
  timesteps: Float32Array;
  /** Cross-attention context [B, T, contextDim]. */
  context: Tensor;
  control?: ControlResiduals;
  /**
   * Further named UNet inputs batched per conditioning entry (ComfyUI's `extra_conds`: SDXL's `y`,
   * an inpaint model's `c_concat`), each with batch size B. A name the UNet graph lacks is an error.
   */
  extra?: Readonly<Record<string, Tensor>>;
  signal?: AbortSignal;
}

export interface UNetRunner {
  readonly inChannels: number;
  readonly contextDim: number;
  /** Raw UNet output (eps or v, see `ModelSamplingConfig.prediction`) with x's shape. */
  run(args: UNetRunArgs): Promise<Tensor>;
}

export interface ModelSamplingConfig {
  prediction: 'eps' | 'v_prediction';
  /** Beta schedule (SD1: scaled_linear 0.00085 … 0.012 over 1000 steps). */
  betaSchedule: 'scaled_linear' | 'linear';
  linearStart: number;
  linearEnd: number;
  timesteps: number;
  /**
   * A model sampling put on the model by ModelSamplingDiscrete / ModelSamplingContinuousEDM / ...
   * (ComfyUI's add_object_patch("model_sampling")); absent = the family's own discrete schedule.
   */
  override?: ModelSamplingOverride;
}

/** How a discrete-schedule model's output becomes x0 (ComfyUI's EPS, V_PREDICTION, LCM, X0, IMG_TO_IMG mixins). */
export type DiscretePrediction = 'eps' | 'v_prediction' | 'lcm' | 'x0' | 'img_to_img';
/** ComfyUI's mixins for continuous-σ schedules (EDM's σ_data = 0.5 comes with 'edm'). */
export type ContinuousPrediction = 'eps' | 'v_prediction' | 'edm' | 'cosmos_rflow';

export type ModelSamplingOverride =
  /** The family's β schedule (LCM: its 50-step distilled subset), optionally rescaled to zero terminal SNR. */
  | { readonly kind: 'discrete'; readonly prediction: DiscretePrediction; readonly zsnr: boolean }
  /** σ log-uniform over [sigmaMin, sigmaMax]; timestep 0.25·ln σ (EDM) or 2/π·atan σ (continuous V). */
  | {
      readonly kind: 'continuous_edm' | 'continuous_v';
      readonly prediction: ContinuousPrediction;
      readonly sigmaMin: number;
      readonly sigmaMax: number;
      readonly sigmaData: number;
    };

/**
 * What ComfyUI's `sampler_cfg_function` receives (cfg_function's args; all tensors in the sampler's
 * space, shaped like the latent): `cond`/`uncond` are x − the cond/uncond x0 predictions.
 */
export interface SamplerCfgArgs {
  readonly cond: Tensor;
  readonly uncond: Tensor;
  readonly condScale: number;
  readonly sigma: number;
  readonly input: Tensor;
  readonly condDenoised: Tensor;
  readonly uncondDenoised: Tensor;
}

/** Replaces the CFG combination (RescaleCFG): returns x − the combined x0 prediction, as ComfyUI's does. */
export type SamplerCfgFunction = (args: SamplerCfgArgs) => Tensor;

/** What ComfyUI's `sampler_pre_cfg_function` receives: the x0 predictions before CFG combines them. */
export interface SamplerPreCfgArgs {
  /** [cond, uncond]; uncond is zeros where cfg = 1 skipped the negative, as calc_cond_batch leaves it. */
  readonly condsOut: readonly [Tensor, Tensor];
  readonly condScale: number;
  readonly sigma: number;
  readonly input: Tensor;
}

/** Rewrites the cond/uncond predictions before CFG (LatentApplyOperationCFG); returns the new pair. */
export type SamplerPreCfgFunction = (args: SamplerPreCfgArgs) => readonly [Tensor, Tensor];

export interface LatentFormat {
  readonly channels: number;
  readonly scaleFactor: number;
  /** Linear latent → RGB factors for cheap previews ([channels][3]) and bias ([3]). */
  readonly rgbFactors: readonly (readonly number[])[];
  readonly rgbBias?: readonly number[];
  /**
   * Per-channel normalisation (Playground v2.5's SDXL_Playground_2_5): model space is
   * (latent − mean)·scaleFactor / std instead of latent·scaleFactor. See latent-format.ts.
   */
  readonly latentsMean?: readonly number[];
  readonly latentsStd?: readonly number[];
}

/**
 * What weight patching (LoRA, merges) needs of a MODEL or CLIP: the checkpoint's weights under their
 * LDM names, the patches applied so far, and a way to get the same handle with other patches.
 * Absent on handles whose weights Weft does not own (exported ONNX folders).
 */
export interface WeightPatching<H> {
  /** LDM name prefix of this part (`model.diffusion_model.`, `cond_stage_model.transformer.text_model.`). */
  readonly prefix: string;
  /** The whole checkpoint under LDM names (unpatched). */
  readonly weights: WeightSource;
  readonly patches: PatchMap;
  /** This handle with `patches` (the complete list, replacing the current one). */
  withPatches(patches: PatchMap): H;
  /** A weight's current (patched) value; used by merges and CheckpointSave. */
  read(name: string): Promise<Float32Array>;
}

/**
 * SDXL's size and aesthetic conditioning (ComfyUI's `width`, `height`, `crop_w`, `crop_h`,
 * `target_width`, `target_height`, `aesthetic_score` cond keys, set by CLIPTextEncodeSDXL and
 * CLIPTextEncodeSDXLRefiner), in image pixels. Absent values take the family's defaults.
 */
export interface SizeConditioning {
  readonly width?: number;
  readonly height?: number;
  readonly cropW?: number;
  readonly cropH?: number;
  readonly targetWidth?: number;
  readonly targetHeight?: number;
  readonly aestheticScore?: number;
}

/** What a family's extra UNet inputs are made from: one conditioning entry (ComfyUI's cond dict). */
export interface ExtraCondEntry {
  /** [1, tokens, dim] */
  readonly cond: Tensor;
  /** [1, dim] pooled text-encoder output. */
  readonly pooled?: Tensor;
  readonly size?: SizeConditioning;
}

/** The run an entry's extra inputs are made for. */
export interface ExtraCondInfo {
  /** Batch items the inputs are for. */
  readonly batch: number;
  /** Latent height and width (latent pixels). */
  readonly height: number;
  readonly width: number;
}

/** Which list an entry came from (ComfyUI's `prompt_type`: the SDXL refiner's aesthetic score defaults by it). */
export type PromptType = 'positive' | 'negative' | 'middle';

/** Named UNet inputs for one conditioning entry, each with batch size `info.batch` (see UNetRunArgs.extra). */
export type ExtraConds = (entry: ExtraCondEntry, info: ExtraCondInfo, promptType?: PromptType) => Readonly<Record<string, Tensor>>;

/**
 * One model evaluation as a wrapper sees it (ComfyUI's `apply_model` arguments): the batched input in
 * the sampler's space (before `calculate_input`), σ, and the per-row conditioning, in the order of
 * `condOrUncond` (one chunk of the latent's batch per conditioning entry).
 */
export interface ModelCallArgs {
  /** [chunks·B, C, h, w] */
  readonly input: Tensor;
  /** σ of this evaluation, the same for every row. */
  readonly sigma: number;
  readonly c: {
    /** [chunks·B, T, contextDim] */
    readonly context: Tensor;
    readonly control?: ControlResiduals;
    /** Named UNet inputs, batched like `input`. */
    readonly extra?: Readonly<Record<string, Tensor>>;
  };
  /** Per chunk: 0 = cond (positive), 1 = uncond (negative). */
  readonly condOrUncond: readonly number[];
  readonly signal?: AbortSignal;
  /** The sampling run this call is part of, where the guider knows it (SpotDiffusion seeds its shifts from it). */
  readonly run?: { readonly sigmas: ArrayLike<number>; readonly seed?: bigint };
  /**
   * The control chain's residuals for tiles of `input` (tiled diffusion asks per tile batch); absent
   * when the call has no control. A wrapper with `controlPerTile` gets no `c.control` for the whole input.
   */
  readonly controlFor?: (req: ControlTilesRequest) => Promise<ControlResiduals | undefined>;
  /** The model's `wrapperOptions`, whichever node set them. */
  readonly options?: WrapperOptions;
}

/**
 * ComfyUI's model_options entries that wrappers read at call time (SpotDiffusionParams'
 * `tiled_diffusion_seed`), so the node that sets them may stand before or after the wrapper's node.
 */
export type WrapperOptions = Readonly<Record<string, string | number | bigint | boolean>>;

/** A batch of tiles of a model call's input, for which a control chain gives residuals. */
export interface ControlTilesRequest {
  /** [tiles·rows, C, h, w], tile-major: the rows of tile k are k·rows … (k+1)·rows − 1. */
  readonly input: Tensor;
  readonly context: Tensor;
  readonly extra?: Readonly<Record<string, Tensor>>;
  readonly tiles: ControlTiles;
}

/** Where tiles lie in the input (latent pixels, after rolling the input by `roll`): hints are cropped to match. */
export interface ControlTiles {
  /** The input's size, to which the hint is resized before cropping. */
  readonly full: { readonly h: number; readonly w: number };
  readonly boxes: readonly { readonly y: number; readonly x: number; readonly h: number; readonly w: number }[];
  /** torch.roll shifts of the input (rows, columns) before the boxes were cut. */
  readonly roll?: { readonly dy: number; readonly dx: number };
}

/** The model call: input at σ → denoised prediction with input's shape. */
export type ModelApply = (args: ModelCallArgs) => Promise<Tensor>;

/**
 * Wraps the model call (ComfyUI's `model_function_wrapper`): receives the inner call and its
 * arguments and may call it any number of times (tiled diffusion runs it per tile) or change them.
 */
export interface ModelWrapper {
  (apply: ModelApply, args: ModelCallArgs): Promise<Tensor>;
  /** The wrapper asks `controlFor` per tile, so the guider skips the whole input's control residuals. */
  readonly controlPerTile?: boolean;
}

/** MODEL socket value. */
export interface ModelHandle {
  /** Identity for caching: checkpoint hash + applied patches. Equal ids ⇒ identical weights. */
  readonly id: string;
  /** The model family's id (`sd1`; see engine/models/families). */
  readonly family: string;
  readonly unet: UNetRunner;
  readonly sampling: ModelSamplingConfig;
  readonly latentFormat: LatentFormat;
  /** The family's extra UNet inputs from conditioning (ComfyUI's `extra_conds`); absent or empty for SD1. */
  readonly extraConds?: ExtraConds;
  /** Wrappers around the model call, outermost first. */
  readonly wrappers?: readonly ModelWrapper[];
  /** Options the wrappers read (see WrapperOptions). */
  readonly wrapperOptions?: WrapperOptions;
  /** ComfyUI's model_options["sampler_cfg_function"] (RescaleCFG); absent = uncond + (cond − uncond)·cfg. */
  readonly samplerCfgFunction?: SamplerCfgFunction;
  /** ComfyUI's model_options["sampler_pre_cfg_function"], applied in order before the CFG combination. */
  readonly samplerPreCfgFunctions?: readonly SamplerPreCfgFunction[];
  readonly patching?: WeightPatching<ModelHandle>;
}

export interface ClipEncodeResult {
  /** [1, 77·chunks, hidden] conditioning tokens. */
  cond: Tensor;
  /** [1, projection/hidden] pooled output of the first chunk. */
  pooled: Tensor;
}

/** CLIP socket value: a tokenizer plus a text encoder, with the clip-skip layer chosen. */
export interface ClipHandle {
  readonly id: string;
  /** −1 = last layer (ComfyUI's CLIPSetLastLayer stop_at_clip_layer). */
  readonly layer: number;
  readonly hiddenSize: number;
  withLayer(layer: number): ClipHandle;
  /** Plain or weighted prompt text → conditioning, as ComfyUI's SD1 CLIP does. */
  encodeText(text: string, signal?: AbortSignal): Promise<ClipEncodeResult>;
  readonly tokenizer: ClipTokenizer;
  /** Textual-inversion embeddings this CLIP resolves (from the embeddings folders), if any. */
  readonly embeddings?: EmbeddingLookup;
  /** Already tokenized 77-token chunks (A1111 syntax goes this way), with ComfyUI's or A1111's emphasis. */
  encodeChunks(chunks: readonly (readonly WeightedToken[])[], signal?: AbortSignal, opts?: { emphasis?: 'comfy' | 'a1111' }): Promise<ClipEncodeResult>;
  /**
   * For a CLIP whose text encoders each need their own embedding vectors (SDXL: a file's clip_l and
   * clip_g): prompts tokenized outside the handle (A1111 syntax) are tokenized once per encoder by
   * `tokenize` with the embeddings that encoder uses. Absent: tokenize with `embeddings` and encodeChunks.
   */
  encodePerEncoder?(
    tokenize: (embeddings: EmbeddingLookup | undefined) => WeightedToken[][],
    signal?: AbortSignal,
    opts?: { emphasis?: 'comfy' | 'a1111' },
  ): Promise<ClipEncodeResult>;
  readonly patching?: WeightPatching<ClipHandle>;
}

/** VAE socket value. Images are IMAGE tensors (NHWC 0..1); latents are raw VAE space (NCHW). */
export interface VaeHandle {
  readonly id: string;
  readonly latentChannels: number;
  /** Pixels per latent pixel (8 for SD). */
  readonly downscale: number;
  encode(image: ImageTensor, signal?: AbortSignal): Promise<Tensor>;
  decode(latent: Tensor, signal?: AbortSignal): Promise<ImageTensor>;
  /** Its weights under bare LDM keys, where Weft owns them (CheckpointSave writes them). */
  readonly weights?: WeightSource;
}

declare module '../registry/sockets.ts' {
  interface SocketValueTypes {
    MODEL: ModelHandle;
    CLIP: ClipHandle;
    VAE: VaeHandle;
  }
}
