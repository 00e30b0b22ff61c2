import { PyDict, PyObject, PyTuple, TensorRef, type PyValue } from './values.ts';

/**
 * A state dict from a torch file's object tree: the tensors under `state_dict` when the root has one
 * (A1111/Lightning checkpoints), else every tensor in the tree, named by their dotted key paths
 * (`string_to_param.*` for A1111 embeddings, `768.0.linear.0.weight` for hypernetworks). Depth is
 * bounded and each container is visited once (a tensor may still have several names), so a cyclic,
 * deeply nested or shared-everywhere pickle cannot recurse or multiply away.
 */

export const MAX_NESTING = 64;

export function keyText(k: PyValue): string | undefined {
  if (typeof k === 'string') return k;
  if ((typeof k === 'number' && Number.isInteger(k)) || typeof k === 'bigint') return String(k);
  return undefined;
}

export function flattenTensors(root: PyValue): Map<string, TensorRef> {
  const out = new Map<string, TensorRef>();
  const sd = root instanceof PyDict ? root.map.get('state_dict') : undefined;
  const start = sd instanceof PyDict ? sd : root;
  const seen = new Set<object>();
  const walk = (v: PyValue, prefix: string, depth: number): void => {
    if (v instanceof TensorRef) {
      if (prefix && !out.has(prefix)) out.set(prefix, v);
      return;
    }
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return;
    if (depth > MAX_NESTING) throw new Error(`the weights are nested deeper than ${MAX_NESTING} containers`);
    if (seen.has(v)) return;
    seen.add(v);
    const at = (k: string): string => (prefix ? `${prefix}.${k}` : k);
    if (v instanceof PyDict) {
      for (const [k, x] of v.map) {
        const name = keyText(k);
        if (name !== undefined) walk(x, at(name), depth + 1);
      }
    } else if (Array.isArray(v) || v instanceof PyTuple) {
      const items = Array.isArray(v) ? v : v.items;
      items.forEach((x, i) => walk(x, at(String(i)), depth + 1));
    } else if (v instanceof PyObject && v.cls === 'torch.nn.modules.container.ParameterDict') {
      walk(v.state, prefix, depth + 1);
    }
  };
  walk(start, '', 0);
  return out;
}
