import { createHash } from 'node:crypto';
import { patchedWeight, type MatMul, type WeightPatch } from '../lora/index.ts';
import type { LoraPatch } from '../lora/types.ts';
import type { LayerInputPatch } from './input-patch.ts';
import { isPlainLora, loraAddNative } from './native-lora.ts';

/**
 * Weight patches as ComfyUI's ModelPatcher keeps them: per checkpoint weight (LDM name), an ordered
 * list of changes. Adapters (LoRA, LyCORIS) and merges with another model are both entries, so
 * stacking, strength changes and merges share one path from patch list to patched tensor.
 */

export type PatchSource =
  /** An adapter's patch (LoRA, LoHa, LoKr, IA3, diff, ...): W += strength · Δ. */
  | { readonly kind: 'adapter'; readonly patch: WeightPatch }
  /** Another model's weight (ModelMergeSimple): W += strength · W_other, after W *= strengthModel. */
  | { readonly kind: 'weight'; readonly read: (target: string) => Promise<Float32Array> }
  /** A change to what the weight's layer reads (a hypernetwork on to_k/to_v); the weight itself stays as it is. */
  | { readonly kind: 'input'; readonly patch: LayerInputPatch };

export interface PatchEntry {
  /** Identity of what this entry adds (adapter content hash and key, or the other model's id); strengths are separate. */
  readonly sig: string;
  readonly strength: number;
  /** Multiplies the weight before this entry is added (ComfyUI's strength_model); 1 for adapters. */
  readonly strengthModel: number;
  readonly source: PatchSource;
}

/** Checkpoint weight name (LDM) → its patches in order. */
export type PatchMap = ReadonlyMap<string, readonly PatchEntry[]>;

export const NO_PATCHES: PatchMap = new Map();

/** A new map with `adds` appended after the existing entries of each weight. */
export function addPatches(base: PatchMap, adds: ReadonlyMap<string, PatchEntry>): PatchMap {
  const out = new Map(base);
  for (const [target, e] of adds) out.set(target, [...(out.get(target) ?? []), e]);
  return out;
}

/** The patches of one model part (names under `prefix`). */
export function patchesUnder(patches: PatchMap, prefix: string): PatchMap {
  return new Map([...patches].filter(([k]) => k.startsWith(prefix)));
}

/** What a weight's patched value depends on: equal signatures ⇒ equal tensors for the same base. */
export function entriesSignature(entries: readonly PatchEntry[]): string {
  return entries.map((e) => `${e.sig}*${e.strength}*${e.strengthModel}`).join('|');
}

/** A short content key for a whole patch map (sorted, so insertion order of unrelated weights does not matter). */
export function patchMapHash(patches: PatchMap): string {
  const h = createHash('sha256');
  for (const k of [...patches.keys()].sort()) h.update(`${k}=${entriesSignature(patches.get(k)!)}\n`);
  return h.digest('hex');
}

/** Entries that change nothing (strength 0 and strengthModel 1) dropped, so strength 0 is exactly no patch. */
export function effective(entries: readonly PatchEntry[]): PatchEntry[] {
  return entries.filter((e) => e.strength !== 0 || e.strengthModel !== 1);
}

/** A plain LoRA entry: computed in native code (`loraAddNative`). */
function isNativeEntry(e: PatchEntry): e is PatchEntry & { source: { kind: 'adapter'; patch: LoraPatch } } {
  return e.strengthModel === 1 && e.source.kind === 'adapter' && isPlainLora(e.source.patch);
}

/**
 * The weight `read()` returns with the entries applied in order, as ComfyUI's calculate_weight walks
 * a weight's patch list. `stored` gives the file's own bytes, which a leading plain LoRA converts
 * natively instead of reading the weight as float32 first; it is only called then. The base array is
 * never changed: it is returned itself when nothing applies, otherwise a new array.
 */
export async function applyEntries(
  target: string,
  read: () => Float32Array,
  shape: readonly number[],
  entries: readonly PatchEntry[],
  mm?: MatMul,
  stored?: () => { dtype: 'F32' | 'F16'; bytes: Uint8Array } | undefined,
): Promise<Float32Array> {
  // Input patches act in the graph, not on the weight (see input-patch.ts).
  let list = effective(entries).filter((e) => e.source.kind !== 'input');
  const head = list[0];
  const raw = head && isNativeEntry(head) ? stored?.() : undefined;
  let w: Float32Array;
  if (raw && head && isNativeEntry(head)) {
    w = await loraAddNative(raw, shape, head.source.patch, head.strength);
    list = list.slice(1);
  } else {
    w = read();
  }
  // Whether `w` is an array of ours (safe to change in place) rather than the caller's base.
  let owned = raw !== undefined;
  for (const e of list) {
    if (isNativeEntry(e)) {
      w = await loraAddNative(w, shape, e.source.patch, e.strength);
      owned = true;
      continue;
    }
    if (e.strengthModel !== 1) {
      const scaled = owned ? w : new Float32Array(w.length);
      for (let i = 0; i < w.length; i++) scaled[i] = w[i] * e.strengthModel;
      w = scaled;
      owned = true;
    }
    if (e.strength === 0) continue;
    if (e.source.kind === 'adapter') {
      w = await patchedWeight(target, w, shape, [{ patch: e.source.patch, strength: e.strength }], mm);
    } else if (e.source.kind === 'weight') {
      const other = await e.source.read(target);
      if (other.length !== w.length) throw new Error(`${target}: the merged model's weight has ${other.length} values, this one ${w.length}`);
      const out = owned ? w : new Float32Array(w.length);
      for (let i = 0; i < w.length; i++) out[i] = w[i] + e.strength * other[i];
      w = out;
    }
    owned = true;
  }
  return w;
}
