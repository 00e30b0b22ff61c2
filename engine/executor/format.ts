import { isTensor, isLatent, describeShape } from '../core/tensor.ts';
import type { InputLists } from './lists.ts';

const MAX_ITEMS = 16;
const MAX_STRING = 200;

/**
 * execution_error's `current_inputs`: each input's list of items as short previews (ComfyUI's
 * `{name: [format_value(x) for x in list]}`), never whole tensors or prompts.
 */
export function formatInputs(lists: InputLists): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, l] of Object.entries(lists)) {
    if (l === undefined) continue;
    const items = l.slice(0, MAX_ITEMS).map(formatValue);
    if (l.length > MAX_ITEMS) items.push(`… ${l.length - MAX_ITEMS} more`);
    out[k] = items;
  }
  return out;
}

export function formatValue(v: unknown): string {
  if (isTensor(v)) return `Tensor${describeShape(v.shape)}`;
  if (isLatent(v)) return `Latent${describeShape(v.samples.shape)}`;
  if (typeof v === 'string') return v.length > MAX_STRING ? `${v.slice(0, MAX_STRING)}…` : v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' || v == null) return String(v);
  if (typeof v === 'function') return 'function';
  if (Array.isArray(v)) return `list[${v.length}]`;
  const name = (v as object).constructor?.name;
  return name && name !== 'Object' ? name : 'object';
}
