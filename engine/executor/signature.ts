import { createHash } from 'node:crypto';
import type { ApiPrompt } from '../graph/prompt.ts';
import { isLink, unwrapValue } from '../graph/prompt.ts';
import type { AnyNodeDefinition } from '../registry/types.ts';

/** Canonical JSON: sorted object keys, BigInt as a tagged string, NaN distinct from null. */
export function canonical(v: unknown): string {
  if (v === undefined) return 'u';
  if (typeof v === 'number') return Number.isNaN(v) ? '"NaN"' : JSON.stringify(v);
  if (typeof v === 'bigint') return `"${v}n"`;
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const keys = Object.keys(v as Record<string, unknown>).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

/**
 * ComfyUI's cache key: class, IS_CHANGED value, node id for non-idempotent classes, and every input
 * sorted by name as a constant or the linked ancestor's signature + slot. Memoised per prompt so a
 * 1,000-node graph hashes each node once.
 */
export class SignatureBuilder {
  private readonly memo = new Map<string, string>();
  private readonly visiting = new Set<string>();

  constructor(
    private readonly prompt: ApiPrompt,
    private readonly defOf: (classType: string) => AnyNodeDefinition | undefined,
    private readonly fingerprints: ReadonlyMap<string, string>,
  ) {}

  signature(nodeId: string): string {
    const hit = this.memo.get(nodeId);
    if (hit) return hit;
    if (this.visiting.has(nodeId)) throw new Error(`dependency cycle through node ${nodeId}`);
    this.visiting.add(nodeId);
    const node = this.prompt[nodeId];
    const def = node ? this.defOf(node.class_type) : undefined;
    const parts: string[] = [node?.class_type ?? '?', this.fingerprints.get(nodeId) ?? ''];
    const hidden = def?.inputs?.hidden ?? {};
    if (def?.notIdempotent || Object.values(hidden).includes('UNIQUE_ID')) parts.push(`id:${nodeId}`);
    const inputs = node?.inputs ?? {};
    for (const name of Object.keys(inputs).sort()) {
      const v = inputs[name];
      if (isLink(v)) {
        parts.push(`${name}<${this.signature(String(v[0]))}#${v[1]}`);
      } else {
        parts.push(`${name}=${canonical(unwrapValue(v))}`);
      }
    }
    this.visiting.delete(nodeId);
    const sig = createHash('sha1').update(parts.join('\u0000')).digest('hex');
    this.memo.set(nodeId, sig);
    return sig;
  }
}
