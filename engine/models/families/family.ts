import type { Logger } from '../../core/log.ts';
import type { WeightSource } from '../../core/weights.ts';
import type { FolderPaths } from '../../paths/folders.ts';
import type { ClipHandle, ExtraCondEntry, ExtraCondInfo, LatentFormat, ModelHandle, ModelSamplingConfig, PromptType, VaeHandle } from '../handles.ts';
import type { PartSpec } from '../runtime/part.ts';
import type { PartsRuntime } from '../runtime/parts-runtime.ts';
import type { Tensor } from '../../core/tensor.ts';

/**
 * A model family (SD1, later SD2, SDXL, ...) as ComfyUI's `supported_models` classes describe one:
 * how its checkpoints are recognised, which ONNX parts it is made of, its latent space, its noise
 * schedule and prediction, the extra UNet inputs it takes from conditioning, and its text encoders.
 * The model manager knows families only through this interface and a `FamilyRegistry`.
 *
 * `C` is the family's architecture config, read from a checkpoint by `detect` and handed back to
 * the other members; it never leaves the family it came from (see FamilyRegistry.detect).
 */
export interface ModelFamily<C = unknown> {
  /** Short id: `ModelHandle.family`, and the first word of MODEL ids (`sd1:<hash>`). */
  readonly id: string;
  /** For messages (`SD1.x`). */
  readonly name: string;
  /**
   * The checkpoint's architecture when the file is this family's, undefined when it is not (so the
   * registry asks the next family). Throws when the file is this family's but unusable.
   */
  detect(source: WeightSource): C | undefined;
  /** The ONNX parts of a checkpoint by role (`unet`, `clip`, `vae_decoder`, ...), over `weights` as `detect` saw them. */
  parts(config: C, ctx: PartsContext): Readonly<Record<string, PartSpec>>;
  latentFormat(config: C): LatentFormat;
  modelSampling(config: C): ModelSamplingConfig;
  /**
   * Named UNet inputs made from one conditioning entry (ComfyUI's `extra_conds` / `encode_adm`: SDXL's
   * `y` from the pooled output and the sizes); an empty record when the family takes none.
   */
  extraConds(config: C, entry: ExtraCondEntry, info: ExtraCondInfo, promptType?: PromptType): Readonly<Record<string, Tensor>>;
  /** The text encoders in the order their outputs are joined (SD1: CLIP-L; SDXL: CLIP-L, CLIP-G). */
  textEncoders(config: C): readonly TextEncoderSpec[];
  /** MODEL, CLIP and VAE handles over the parts, running on `ctx.runtime`. */
  assemble(config: C, ctx: AssembleContext): CheckpointParts;
}

/** What a family's parts are made from. */
export interface PartsContext {
  /** The checkpoint file. */
  readonly file: string;
  /** Its content hash (names the builds). */
  readonly hash: string;
  /** The checkpoint's tensors as `detect` received them. */
  readonly source: WeightSource;
}

export interface AssembleContext extends PartsContext {
  readonly runtime: PartsRuntime;
  readonly paths?: FolderPaths;
  readonly log?: Logger;
}

export interface CheckpointParts<C = unknown> {
  /** The family's id. */
  family: string;
  /** Its architecture config (the family's own type). */
  config: C;
  model: ModelHandle;
  clip: ClipHandle;
  vae: VaeHandle;
}

/**
 * A text encoder and how its tokens are made and its outputs read (ComfyUI's `SDClipModel` /
 * `SDTokenizer` parameters), so encoders that differ only in these share one handle.
 */
export interface TextEncoderSpec {
  /** Its part id (`clip`; SDXL's will be `clip_l`, `clip_g`). */
  readonly part: string;
  /** Checkpoint key prefix of its weights. */
  readonly prefix: string;
  readonly tokenizer: TokenizerParams;
  /** Inner layers' hidden states (clip skip) pass through the final layer norm (ComfyUI's layer_norm_hidden_state). */
  readonly layerNormHiddenState: boolean;
  /** Pooled output: the last layer at the first EOS, or that through the text projection (SDXL's CLIP-G). */
  readonly pooled: 'eos' | 'projected';
  /** The layer used unless CLIPSetLastLayer says otherwise: −1 the last, −2 the penultimate. */
  readonly defaultLayer: number;
}

export interface TokenizerParams {
  /** The BPE vocabulary's folder name under models/tokenizers. */
  readonly vocabulary: string;
  /** Tokens per chunk, BOS and EOS included. */
  readonly maxLength: number;
  /** What fills a chunk after EOS: EOS itself (SD1's pad_with_end) or a token id (SDXL's CLIP-G pads with 0). */
  readonly padToken: 'eos' | number;
}
