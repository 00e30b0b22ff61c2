/** The patches an adapter file is read into, one per patched weight (see parse.ts). */
import type { StoredTensor } from '../../core/weights.ts';

export type PatchKind = 'lora' | 'loha' | 'lokr' | 'ia3' | 'diff' | 'glora' | 'set' | 'slices';

/** One tensor of the adapter file, read when the patch is applied (a fresh array per read). */
export interface AdapterTensor {
  key: string;
  shape: readonly number[];
  read(): Float32Array;
  /** Where its bytes lie in the adapter file (safetensors), so a LoRA branch can point at them. */
  stored?: StoredTensor;
}

interface PatchBase {
  /** The checkpoint's LDM weight name this patch changes. */
  target: string;
  /** The adapter key stem it came from (for messages). */
  stem: string;
  /** The file's `.alpha`; the scale is alpha / rank, or 1 without one (ComfyUI). */
  alpha?: number;
  /** DoRA magnitude: when present the patch goes through ComfyUI's weight_decompose. */
  doraScale?: AdapterTensor;
}

/** W += s·(α/r)·up·down; LoCon convs flatten, `mid` is the Tucker core of a LoCon 3×3. */
export interface LoraPatch extends PatchBase {
  kind: 'lora';
  up: AdapterTensor;
  down: AdapterTensor;
  mid?: AdapterTensor;
}
/** W += s·(α/r)·(w1a·w1b) ⊙ (w2a·w2b), or the Tucker rebuilds with t1/t2. */
export interface LohaPatch extends PatchBase {
  kind: 'loha';
  w1a: AdapterTensor;
  w1b: AdapterTensor;
  w2a: AdapterTensor;
  w2b: AdapterTensor;
  t1?: AdapterTensor;
  t2?: AdapterTensor;
}
/** W += s·(α/r)·kron(w1, w2), each factor whole or as a low-rank pair (w2 optionally Tucker). */
export interface LokrPatch extends PatchBase {
  kind: 'lokr';
  w1?: AdapterTensor;
  w1a?: AdapterTensor;
  w1b?: AdapterTensor;
  w2?: AdapterTensor;
  w2a?: AdapterTensor;
  w2b?: AdapterTensor;
  t2?: AdapterTensor;
}
/** LyCORIS IA3: W += s·W ⊙ w, w scaling output rows, or input columns when `onInput`. */
export interface Ia3Patch extends PatchBase {
  kind: 'ia3';
  weight: AdapterTensor;
  onInput: boolean;
}
/** W += s·diff (full-rank fine-tune difference, also for biases and norms). */
export interface DiffPatch extends PatchBase {
  kind: 'diff';
  diff: AdapterTensor;
}
/** LyCORIS GLoRA: W += s·(α/r)·(W·a1·a2 + b1·b2) (and its older layout). */
export interface GloraPatch extends PatchBase {
  kind: 'glora';
  a1: AdapterTensor;
  a2: AdapterTensor;
  b1: AdapterTensor;
  b2: AdapterTensor;
}
/** W := value (ComfyUI's `set_weight`; strength only switches it on or off). */
export interface SetPatch extends PatchBase {
  kind: 'set';
  value: AdapterTensor;
}

/** A patch per row block of a fused tensor: open_clip's in_proj_weight, whose q/k/v thirds adapters patch as separate weights. */
export interface SlicesPatch extends PatchBase {
  kind: 'slices';
  /** Each part patches rows [start, start + rows) as if they were a weight of their own; its `target` is this patch's. */
  parts: readonly { start: number; rows: number; patch: BlockPatch }[];
}

/** The patches of one weight or one row block of it. */
export type BlockPatch = LoraPatch | LohaPatch | LokrPatch | Ia3Patch | DiffPatch | GloraPatch | SetPatch;
export type WeightPatch = BlockPatch | SlicesPatch;
