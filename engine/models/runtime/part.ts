import type * as ort from 'onnxruntime-node';
import type { GraphBuilder } from '../../onnx/graph.ts';
import type { NetOptions } from '../../onnx/nn.ts';
import type { WeightSource } from '../../core/weights.ts';
import { effective, patchesUnder, type PatchMap } from '../patching/patch-set.ts';

/**
 * What the parts runtime needs to know of one ONNX part (a UNet, a text encoder, a VAE half, a
 * ControlNet, an upscaler, ...): how to build its graph from its weights, and what its build is
 * named by. The id is open: a new part is a new spec, not a new case in the model manager.
 */
export interface PartSpec {
  /** Part id, the first word of its cache folder (`unet`, `clip`, `vae_decoder`, `controlnet`, ...). */
  readonly id: string;
  /** Content hash of the weights' file: with the id, precision and provider it names the build. */
  readonly hash: string;
  /** The part's weights under the keys its graph builder reads. */
  readonly weights: WeightSource;
  /** What turns those keys into the names patch maps use (`model.diffusion_model.`); '' when they are the same. */
  readonly prefix: string;
  /**
   * The part's graph over `ws`. An initializer names the key it was read from (`Net`'s layers do;
   * `GraphBuilder.floats`' `source`), which is how a patch on that weight finds it.
   */
  build(ws: WeightSource, o: NetOptions): GraphBuilder;
  /** The file the weights came from, recorded beside the build (cache listing). */
  readonly source?: string;
  /** Bumped when this part's builder changes what it emits (added to the cache key when set). */
  readonly version?: number;
  /**
   * `freed`: the part's sessions give their activation memory back after each run (no CPU arena, no
   * memory patterns). For parts that are many sessions each run on large inputs once in a while (the
   * tiled VAE's layers): with the arena, every one of them would keep its largest run's buffers.
   */
  readonly activations?: 'kept' | 'freed';
}

/**
 * One run of a part's session: feeds by input name → outputs by name (sessions come from the pool).
 * `outputs` are tensors ORT writes into instead of allocating them (same names and shapes).
 */
export type RunSession = ((feeds: Record<string, ort.Tensor>, outputs?: Record<string, ort.Tensor>) => Promise<ort.InferenceSession.OnnxValueMapType>) & {
  /**
   * Releases the part's session now if no run is using it, with ORT's activation arena (which the
   * binding cannot shrink): for a part whose last run of a node was large and whose next use may be
   * far off (an upscaler's arena after its tiles holds ~2 GB). Its next run loads it again.
   */
  release?: () => Promise<void>;
};

/** The patches on one part's weights that change anything. */
export function ownPatches(patches: PatchMap, prefix: string): PatchMap {
  return new Map([...patchesUnder(patches, prefix)].filter(([, e]) => effective(e).length > 0));
}
