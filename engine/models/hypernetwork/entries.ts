import type { WeightSource } from '../../core/weights.ts';
import type { PatchEntry } from '../patching/patch-set.ts';
import { hypernetPatch } from './graph.ts';
import type { Hypernetwork } from './read.ts';

/** to_k and to_v of every attention in the UNet's transformer blocks (ComfyUI's attn1 and attn2 patches reach these). */
const KV = /\.transformer_blocks\.\d+\.attn[12]\.to_([kv])\.weight$/;

/**
 * The patch entries that apply `hn` at `strength` to a model: one input patch on each to_k (module 0)
 * and to_v (module 1) whose input width the file has a module for, as ComfyUI picks the module by
 * `k.shape[-1]`. Layers of other widths are left alone. `hash` is the file's content hash.
 */
export function hypernetworkEntries(hn: Hypernetwork, hash: string, weights: Pick<WeightSource, 'names' | 'shape'>, prefix: string, strength: number): Map<string, PatchEntry> {
  const id = `hn_${hash.slice(0, 16)}`;
  const patches = new Map<string, ReturnType<typeof hypernetPatch>>();
  const out = new Map<string, PatchEntry>();
  for (const name of weights.names()) {
    if (!name.startsWith(prefix)) continue;
    const m = KV.exec(name);
    if (!m) continue;
    const dim = weights.shape(name)[1];
    const module = hn.modules.get(dim);
    if (!module) continue;
    const index = m[1] === 'k' ? 0 : 1;
    const key = `${dim}.${index}`;
    let patch = patches.get(key);
    if (!patch) patches.set(key, (patch = hypernetPatch({ id, source: hash, dim, index, layers: module[index] })));
    out.set(name, { sig: `${patch.sig}:hypernet`, strength, strengthModel: 1, source: { kind: 'input', patch } });
  }
  return out;
}
