import { createHash } from 'node:crypto';
import type { LowRankBranch } from '../../onnx/nn.ts';
import type { WeightSource } from '../../core/weights.ts';
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
  /** Branches by bare weight key, for NetOptions.lowRank. */
  branches: Map<string, LowRankBranch[]>;
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
export function splitPatches(own: PatchMap, prefix: string, weights: Pick<WeightSource, 'shape'>, mode: 'branch' | 'merge' = 'branch'): SplitPatches {
  const merged = new Map<string, readonly PatchEntry[]>();
  const branches = new Map<string, LowRankBranch[]>();
  const strengths = new Map<string, number>();
  const structure: string[] = [];
  const adapters = new Map<string, string>();
  if (mode === 'merge') return { merged: own, branches, strengths, structureKey: '', adapters };
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
  const structureKey = structure.length ? createHash('sha256').update(structure.sort().join('\n')).digest('hex') : '';
  return { merged, branches, strengths, structureKey, adapters };
}
