import { hash } from 'node:crypto';
import { isLink, unwrapValue } from '../graph/prompt.ts';
import type { AnyNodeDefinition } from '../registry/types.ts';
import type { GraphPlan } from './plan.ts';

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

export interface Signatures {
  readonly keys: Map<string, string>;
  /** Nodes whose key holds a NaN fingerprint (theirs or an ancestor's): no later prompt can hit them. */
  readonly volatile: Set<string>;
}

/** Fingerprint token for NaN: never equal to any other, as NaN is not to itself in ComfyUI. */
export const VOLATILE_PREFIX = 'nan:';

/**
 * ComfyUI's cache key for every node that can run: class, IS_CHANGED value, node id for
 * non-idempotent classes (and those taking UNIQUE_ID), and every input sorted by name as a constant
 * or the linked ancestor's signature + slot. Walking the plan's dependency order means each
 * ancestor is hashed once, however many nodes share it.
 */
export function computeSignatures(plan: GraphPlan, fingerprints: ReadonlyMap<string, string>): Signatures {
  const sigs = new Map<string, string>();
  const volatile = new Set<string>();
  for (const id of plan.order) {
    const p = plan.nodes.get(id)!;
    if (p.problem) continue;
    const fp = fingerprints.get(id) ?? '';
    const parts: string[] = [p.node.class_type, fp];
    if (fp.startsWith(VOLATILE_PREFIX) || p.links.some((l) => volatile.has(l.src))) volatile.add(id);
    if (keyedById(p.def!)) parts.push(`id:${id}`);
    const inputs = p.node.inputs;
    for (const name of Object.keys(inputs).sort()) {
      const v = inputs[name];
      parts.push(isLink(v) ? `${name}<${sigs.get(String(v[0]))}#${v[1]}` : `${name}=${canonical(unwrapValue(v))}`);
    }
    sigs.set(id, hash('sha1', parts.join('\u0000'), 'base64'));
  }
  return { keys: sigs, volatile };
}

const byIdMemo = new WeakMap<AnyNodeDefinition, boolean>();

/** ComfyUI keys NOT_IDEMPOTENT classes and those taking UNIQUE_ID by node id: their result is the node's own. */
function keyedById(def: AnyNodeDefinition): boolean {
  let v = byIdMemo.get(def);
  if (v === undefined) {
    v = def.notIdempotent === true || Object.values(def.inputs?.hidden ?? {}).includes('UNIQUE_ID');
    byIdMemo.set(def, v);
  }
  return v;
}
