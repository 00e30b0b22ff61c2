import { createHash } from 'node:crypto';
import type { ElemType } from '../../onnx/graph.ts';
import type { LayerHook, Net } from '../../onnx/nn.ts';
import type { StoredTensor, WeightSource } from '../../core/weights.ts';
import { inputPatchHook, type InputBranch } from './input-patch.ts';
import { isPlainLora } from './native-lora.ts';
import { effective, type PatchEntry, type PatchMap } from './patch-set.ts';

/**
 * Which patches run as low-rank branches in the graph and which are merged into the weights.
 * A weight whose patches are all plain LoRAs gets branches (its LoRAs' strengths become graph
 * inputs, so a strength change needs no new weights and no new session); any other patch on a
 * weight (LoHa, LoKr, DoRA, a merge, ...) merges that weight's whole list, as ComfyUI computes it.
 */

export interface SplitPatches {
  /** Patches merged into weights (full LDM names). */
  merged: PatchMap;
  /** Branches by bare weight key, for lowRankHook. */
  branches: Map<string, LowRankBranch[]>;
  /** Input patches (hypernetworks) by bare layer key (the weight's key without `.weight`), in order, for inputPatchHook. */
  inputs: Map<string, InputBranch[]>;
  /** Strength feeds: graph input name → value. */
  strengths: Map<string, number>;
  /** Identity of the branch structure (which adapters on which weights), without strengths. */
  structureKey: string;
  /** Branch id → the content hash of the adapter it comes from. */
  adapters: Map<string, string>;
}

/** Token and position embeddings are gathered, not multiplied: a LoRA there must be merged. */
const NOT_A_LAYER = /(token_embedding|position_embedding)\.weight$/;

function adapterOf(e: PatchEntry): string {
  return e.sig.split(':')[0];
}

/** `mode: 'merge'` merges every weight (ComfyUI's way, no branches). */
export function splitPatches(withInputs: PatchMap, prefix: string, weights: Pick<WeightSource, 'shape'>, mode: 'branch' | 'merge' = 'branch'): SplitPatches {
  const merged = new Map<string, readonly PatchEntry[]>();
  const branches = new Map<string, LowRankBranch[]>();
  const strengths = new Map<string, number>();
  const structure: string[] = [];
  const adapters = new Map<string, string>();
  const { own, inputs } = splitInputs(withInputs, prefix, strengths, structure, adapters);
  const key = (): string => (structure.length ? createHash('sha256').update(structure.sort().join('\n')).digest('hex') : '');
  if (mode === 'merge') return { merged: own, branches, inputs, strengths, structureKey: key(), adapters };
  for (const [target, entries] of own) {
    const list = effective(entries);
    const bare = target.slice(prefix.length);
    const shape = weights.shape(bare);
    const inner = shape.slice(1).reduce((a, b) => a * b, 1);
    const fits = (e: PatchEntry): boolean => {
      if (e.strengthModel !== 1 || e.source.kind !== 'adapter' || !isPlainLora(e.source.patch)) return false;
      const p = e.source.patch;
      const r = p.down.shape[0];
      const upInner = p.up.shape.slice(1).reduce((a, b) => a * b, 1);
      const downInner = p.down.shape.slice(1).reduce((a, b) => a * b, 1);
      return p.up.shape[0] === shape[0] && upInner === r && downInner === inner;
    };
    if (!target.startsWith(prefix) || NOT_A_LAYER.test(target) || (shape.length !== 2 && shape.length !== 4) || !list.every(fits)) {
      merged.set(target, entries);
      continue;
    }
    // One branch per adapter on this weight; the same adapter loaded twice adds its strengths.
    const byAdapter = new Map<string, { entry: PatchEntry; strength: number }>();
    for (const e of list) {
      const prev = byAdapter.get(e.sig);
      byAdapter.set(e.sig, { entry: e, strength: (prev?.strength ?? 0) + e.strength });
    }
    const out: LowRankBranch[] = [];
    for (const [k, { entry, strength }] of byAdapter) {
      const p = entry.source.kind === 'adapter' && isPlainLora(entry.source.patch) ? entry.source.patch : undefined;
      if (!p) continue;
      // Strength inputs are per adapter; a weight whose summed strength differs gets its own input.
      let input = `lora_strength_${adapterOf(entry).slice(0, 16)}`;
      for (let i = 1; strengths.has(input) && strengths.get(input) !== strength; i++) input = `lora_strength_${adapterOf(entry).slice(0, 16)}_${i}`;
      strengths.set(input, strength);
      const id = `lora_${createHash('sha256').update(`${k}\n${target}`).digest('hex').slice(0, 16)}`;
      adapters.set(id, adapterOf(entry));
      out.push({ id, up: p.up, down: p.down, scale: p.alpha !== undefined ? p.alpha / p.down.shape[0] : 1, strengthInput: input });
      structure.push(`${bare}|${id}|${input}`);
    }
    branches.set(bare, out);
  }
  return { merged, branches, inputs, strengths, structureKey: key(), adapters };
}

/**
 * Input patches taken out of the weights' lists (they run in the graph whatever the LoRA mode), each
 * with a strength input per source and strength, as LoRA branches have; the rest is returned as `own`.
 */
function splitInputs(
  all: PatchMap,
  prefix: string,
  strengths: Map<string, number>,
  structure: string[],
  adapters: Map<string, string>,
): { own: Map<string, readonly PatchEntry[]>; inputs: Map<string, InputBranch[]> } {
  const own = new Map<string, readonly PatchEntry[]>();
  const inputs = new Map<string, InputBranch[]>();
  for (const [target, entries] of all) {
    const rest = entries.filter((e) => e.source.kind !== 'input');
    if (rest.length) own.set(target, rest);
    const list: InputBranch[] = [];
    const layer = target.slice(prefix.length).replace(/\.weight$/, '');
    for (const e of effective(entries)) {
      if (e.source.kind !== 'input') continue;
      const p = e.source.patch;
      let input = `input_strength_${p.source.slice(0, 16)}`;
      for (let i = 1; strengths.has(input) && strengths.get(input) !== e.strength; i++) input = `input_strength_${p.source.slice(0, 16)}_${i}`;
      strengths.set(input, e.strength);
      adapters.set(p.id, p.source);
      structure.push(`${layer}|in${list.length}|${p.sig}|${input}`);
      list.push({ patch: p, strengthInput: input });
    }
    if (list.length) inputs.set(layer, list);
  }
  return { own, inputs };
}

/** Every hook a split patch set needs in the graph: LoRA branches, then input patches. */
export function patchHooks(split: Pick<SplitPatches, 'branches' | 'inputs'>): LayerHook[] {
  return split.inputs.size ? [lowRankHook(split.branches), inputPatchHook(split.inputs)] : [lowRankHook(split.branches)];
}

/**
 * A plain LoRA as a branch beside the layer it patches: y += strength · up(down(x)), with alpha/rank
 * applied to `up` and the strength a graph input, so changing a LoRA's strength changes a feed, not
 * the weights. For a linear or conv layer this equals running W + strength·(α/r)·up·down.
 *
 * Factors enter the graph as the adapter file stores them (dtype, orientation), pointing at its bytes
 * where it has them; the cast, transpose and α/r scaling are constant nodes ORT folds at load, so
 * applying a LoRA copies and converts nothing in JavaScript.
 */
export interface LowRankBranch {
  /** Unique initializer prefix (no '.'). */
  readonly id: string;
  readonly up: LowRankFactor;
  readonly down: LowRankFactor;
  readonly scale: number;
  /** Name of the float32 [1] graph input that carries the strength. */
  readonly strengthInput: string;
}

export interface LowRankFactor {
  readonly shape: readonly number[];
  read(): Float32Array;
  readonly stored?: StoredTensor;
}

const STORED_TYPE: Partial<Record<StoredTensor['dtype'], ElemType>> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** The layer hook that adds `branches` (by bare weight key) beside the layers they patch. */
export function lowRankHook(branches: ReadonlyMap<string, readonly LowRankBranch[]>): LayerHook {
  // A strength input is declared once per graph and cast once; the hook may serve several builds.
  const strengthsByNet = new WeakMap<Net, Map<string, string>>();
  const strength = (n: Net, input: string): string => {
    let perNet = strengthsByNet.get(n);
    if (!perNet) strengthsByNet.set(n, (perNet = new Map()));
    let v = perNet.get(input);
    if (!v) {
      n.g.input(input, 'float32', [1]);
      v = n.dtype === 'float16' ? n.cast(input, 'float16') : input;
      perNet.set(input, v);
    }
    return v;
  };
  return {
    touches: (key) => branches.has(`${key}.weight`),
    layer(n, { key, input: x, output, conv }) {
      const list = branches.get(`${key}.weight`);
      if (!list?.length) return undefined;
      const g = n.g;
      const wShape = n.shape(`${key}.weight`);
      const out = wShape[0];
      const inner = wShape.slice(1).reduce((a, b) => a * b, 1);
      let y = output;
      for (const b of list) {
        const r = b.down.shape[0];
        const scaled = (up: string): string => (b.scale === 1 ? up : g.op1('Mul', [up, n.scalar(b.scale)]));
        let h: string;
        if (conv) {
          const down = factor(n, `${b.id}.down`, b.down, [r, ...wShape.slice(1)]);
          h = g.op1('Conv', [x, down], { kernel_shape: [...conv.kernel], strides: [...conv.strides], pads: [...conv.pads] });
          h = g.op1('Conv', [g.op1('Mul', [h, strength(n, b.strengthInput)]), scaled(factor(n, `${b.id}.up`, b.up, [out, r, 1, 1]))], { kernel_shape: [1, 1] });
        } else {
          const downT = g.op1('Transpose', [factor(n, `${b.id}.down`, b.down, [r, inner])], { perm: [1, 0] });
          const upT = g.op1('Transpose', [scaled(factor(n, `${b.id}.up`, b.up, [out, r]))], { perm: [1, 0] });
          h = g.op1('MatMul', [g.op1('Mul', [g.op1('MatMul', [x, downT]), strength(n, b.strengthInput)]), upT]);
        }
        // The strength scales the rank-wide middle, not the layer-wide output: r values per position instead of C.
        y = g.op1('Add', [y, h]);
      }
      return y;
    },
  };
}

/** A LoRA factor in the graph's precision, from the adapter file's bytes where it has them. */
function factor(n: Net, name: string, f: LowRankFactor, dims: readonly number[]): string {
  const type = f.stored && STORED_TYPE[f.stored.dtype];
  if (!f.stored || !type) return n.constant(name, dims, () => f.read());
  const v = n.g.storedTensor(name, type, dims, f.stored);
  return type === n.dtype ? v : n.cast(v, n.dtype);
}
