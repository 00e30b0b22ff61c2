import { isTensor, isLatent, describeShape } from '../image/tensor.ts';

/** Short previews of input values for execution_error's `current_inputs` (never whole tensors). */
export function formatInputs(inputs: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(inputs)) out[k] = [formatValue(v)];
  return out;
}

export function formatValue(v: unknown): string {
  if (isTensor(v)) return `Tensor${describeShape(v.shape)}`;
  if (isLatent(v)) return `Latent${describeShape(v.samples.shape)}`;
  if (typeof v === 'string') return v.length > 200 ? `${v.slice(0, 200)}…` : v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' || v == null) return String(v);
  if (Array.isArray(v)) return `list[${v.length}]`;
  const name = (v as object).constructor?.name;
  return name && name !== 'Object' ? name : 'object';
}
