import type { ListingContext } from '../registry/context.ts';
import { comboChoices, type NodeRegistry } from '../registry/registry.ts';
import { socketTypesMatch } from '../registry/sockets.ts';
import type { AnyNodeDefinition, InputSpec } from '../registry/types.ts';
import { comfyError, type ComfyError, type NodeErrors, type ValidationResult } from './errors.ts';
import { unwrapValue, type ApiPrompt } from './prompt.ts';

/** ComfyUI's input_config: `[type or choices, options]` as object_info shows it. */
function inputConfig(spec: InputSpec, env: ListingContext): unknown[] {
  if (spec.type === 'COMBO') return [[...comboChoices(spec, env)], {}];
  const { type, ...rest } = spec as unknown as Record<string, unknown>;
  return [type, rest];
}

function outputTypeOf(def: AnyNodeDefinition, slot: number): string | undefined {
  return def.outputs[slot]?.type;
}

interface Coerced {
  ok: boolean;
  value?: unknown;
}

/** ComfyUI's int()/float()/str()/bool() coercion of constants; seeds beyond 2^53 keep their digits. */
function coerce(type: string, v: unknown): Coerced {
  switch (type) {
    case 'INT': {
      if (typeof v === 'number' && Number.isFinite(v))
        return { ok: true, value: Number.isSafeInteger(v) || Math.abs(v) > Number.MAX_SAFE_INTEGER ? Math.trunc(v) : Math.trunc(v) };
      if (typeof v === 'bigint') return { ok: true, value: v };
      if (typeof v === 'boolean') return { ok: true, value: v ? 1 : 0 };
      if (typeof v === 'string' && /^\s*[-+]?\d+\s*$/.test(v)) {
        const n = Number(v);
        return { ok: true, value: Number.isSafeInteger(n) ? n : v.trim() };
      }
      return { ok: false };
    }
    case 'FLOAT': {
      if (typeof v === 'number') return { ok: true, value: v };
      if (typeof v === 'boolean') return { ok: true, value: v ? 1 : 0 };
      if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) return { ok: true, value: Number(v) };
      return { ok: false };
    }
    case 'STRING':
      if (typeof v === 'string') return { ok: true, value: v };
      if (typeof v === 'number' || typeof v === 'boolean') return { ok: true, value: String(v) };
      return { ok: false };
    case 'BOOLEAN':
      // Python's bool(): every non-empty string is true, as ComfyUI does.
      if (typeof v === 'boolean') return { ok: true, value: v };
      if (typeof v === 'number') return { ok: true, value: v !== 0 };
      if (typeof v === 'string') return { ok: true, value: v.length > 0 };
      return { ok: false };
    default:
      return { ok: true, value: v };
  }
}

function numericValue(v: unknown): number {
  return typeof v === 'string' ? Number(v) : typeof v === 'bigint' ? Number(v) : (v as number);
}

function formatList(list: readonly string[]): string {
  return list.length <= 20 ? `[${list.map((c) => `'${c}'`).join(', ')}]` : `(list of length ${list.length})`;
}

/**
 * ComfyUI's validate_prompt: every problem of every output's subgraph at once, in node_errors shape.
 * Returns the prompt with constants coerced (as ComfyUI writes them back) and the outputs that can run.
 */
export async function validatePrompt(
  input: unknown,
  registry: NodeRegistry,
  env: ListingContext,
  opts: { partialTargets?: string[] } = {},
): Promise<ValidationResult & { prompt: ApiPrompt }> {
  const empty = (error: ComfyError): ValidationResult & { prompt: ApiPrompt } => ({
    ok: false,
    error,
    node_errors: {},
    outputs: [],
    prompt: {},
  });
  if (input === undefined || input === null) return empty(comfyError('no_prompt', 'No prompt provided', 'No prompt provided'));
  if (typeof input !== 'object' || Array.isArray(input)) {
    return empty(comfyError('invalid_prompt', 'Invalid prompt', 'the prompt must be an object of node id → {class_type, inputs}'));
  }
  const prompt: ApiPrompt = {};
  const missing = new Map<string, string[]>();
  for (const [id, raw] of Object.entries(input as Record<string, unknown>)) {
    const node = raw as { class_type?: unknown; inputs?: unknown; _meta?: { title?: string } };
    if (typeof node !== 'object' || node === null || typeof node.class_type !== 'string') {
      return empty(
        comfyError('missing_node_type', `Node ${id} has no class_type`, `Node ID '#${id}'`, {
          node_id: id,
          class_type: null,
          node_title: null,
        }),
      );
    }
    if (node.inputs !== undefined && (typeof node.inputs !== 'object' || node.inputs === null || Array.isArray(node.inputs))) {
      return empty(
        comfyError('invalid_prompt', `Node ${id} has invalid inputs`, `Node ID '#${id}': inputs must be an object`, { node_id: id }),
      );
    }
    prompt[id] = { ...(node as object), class_type: node.class_type, inputs: { ...((node.inputs as Record<string, unknown>) ?? {}) } };
    if (!registry.has(node.class_type)) missing.set(node.class_type, [...(missing.get(node.class_type) ?? []), id]);
  }
  if (missing.size) {
    const [[firstClass, firstIds]] = missing;
    const list = [...missing].map(([c, ids]) => `${c} (node ${ids.join(', ')})`).join(', ');
    return empty(
      comfyError(
        'missing_node_type',
        `Node '${firstClass}' not found. The custom node may not be installed.`,
        `Missing node types: ${list}`,
        {
          node_id: firstIds[0],
          class_type: firstClass,
          node_title: prompt[firstIds[0]]._meta?.title ?? firstClass,
          missing: [...missing].map(([class_type, node_ids]) => ({ class_type, node_ids })),
        },
      ),
    );
  }
  let outputs = Object.keys(prompt).filter((id) => registry.get(prompt[id].class_type)?.outputNode);
  if (opts.partialTargets) outputs = outputs.filter((id) => opts.partialTargets!.includes(id));
  if (!outputs.length) {
    return { ...empty(comfyError('prompt_no_outputs', 'Prompt has no outputs', '')), prompt };
  }

  const nodeErrors: NodeErrors = {};
  const valid = new Map<string, boolean>();
  const visiting: string[] = [];

  const addError = (id: string, err: ComfyError): void => {
    const e = (nodeErrors[id] ??= { errors: [], dependent_outputs: [], class_type: prompt[id].class_type });
    e.errors.push(err);
  };

  const validateNode = async (id: string): Promise<boolean> => {
    const known = valid.get(id);
    if (known !== undefined) return known;
    const cycleAt = visiting.indexOf(id);
    if (cycleAt >= 0) {
      const cycle = visiting.slice(cycleAt);
      for (const n of cycle) {
        if (!nodeErrors[n]?.errors.some((e) => e.type === 'dependency_cycle')) {
          addError(n, comfyError('dependency_cycle', 'Dependency cycle detected', `cycle: ${[...cycle, id].join(' → ')}`, { cycle }));
        }
      }
      return false;
    }
    visiting.push(id);
    const node = prompt[id];
    const def = registry.get(node.class_type)!;
    let ok = true;
    const specs: [string, InputSpec, boolean][] = [
      ...Object.entries(def.inputs?.required ?? {}).map(([k, s]) => [k, s, true] as [string, InputSpec, boolean]),
      ...Object.entries(def.inputs?.optional ?? {}).map(([k, s]) => [k, s, false] as [string, InputSpec, boolean]),
    ];
    const constants: Record<string, unknown> = {};
    const linkedTypes: Record<string, string> = {};
    for (const [name, spec, required] of specs) {
      const cfg = (): unknown[] => inputConfig(spec, env);
      let v = node.inputs[name];
      if (v === undefined) {
        if (required) {
          addError(id, comfyError('required_input_missing', 'Required input is missing', name, { input_name: name }));
          ok = false;
        }
        continue;
      }
      if (Array.isArray(v)) {
        const [src, slot] = v as unknown[];
        if (v.length !== 2 || (typeof src !== 'string' && typeof src !== 'number') || typeof slot !== 'number' || !Number.isInteger(slot)) {
          addError(
            id,
            comfyError('bad_linked_input', 'Bad linked input, must be a length-2 list of [node_id, slot_index]', name, {
              input_name: name,
              input_config: cfg(),
              received_value: v,
            }),
          );
          ok = false;
          continue;
        }
        const srcId = String(src);
        const srcNode = prompt[srcId];
        if (!srcNode) {
          addError(
            id,
            comfyError('linked_node_missing', 'Linked node does not exist', `${name}: node ${srcId} is not in the prompt`, {
              input_name: name,
              linked_node: [srcId, slot],
            }),
          );
          ok = false;
          continue;
        }
        const srcDef = registry.get(srcNode.class_type)!;
        const received = outputTypeOf(srcDef, slot);
        if (received === undefined) {
          addError(
            id,
            comfyError(
              'bad_linked_input',
              'Linked output slot does not exist',
              `${name}: node ${srcId} (${srcNode.class_type}) has ${srcDef.outputs.length} outputs, link asks for slot ${slot}`,
              {
                input_name: name,
                linked_node: [srcId, slot],
              },
            ),
          );
          ok = false;
          continue;
        }
        linkedTypes[name] = received;
        if (!socketTypesMatch(received, spec.type)) {
          addError(
            id,
            comfyError(
              'return_type_mismatch',
              'Return type mismatch between linked nodes',
              `${name}, received_type(${received}) mismatch input_type(${spec.type})`,
              {
                input_name: name,
                input_config: cfg(),
                received_type: received,
                linked_node: [srcId, slot],
              },
            ),
          );
          ok = false;
          continue;
        }
        if (!(await validateNode(srcId))) ok = false;
        continue;
      }
      v = unwrapValue(v);
      if (spec.type === 'COMBO') {
        const choices = comboChoices(spec, env);
        if (!def.validateInputs && !choices.includes(String(v))) {
          addError(
            id,
            comfyError('value_not_in_list', 'Value not in list', `${name}: '${String(v)}' not in ${formatList(choices)}`, {
              input_name: name,
              input_config: choices.length <= 20 ? cfg() : null,
              received_value: v,
            }),
          );
          ok = false;
          continue;
        }
        constants[name] = v;
        node.inputs[name] = v;
        continue;
      }
      const c = coerce(spec.type, v);
      if (!c.ok) {
        addError(
          id,
          comfyError('invalid_input_type', `Failed to convert an input value to a ${spec.type} value`, `${name}, ${JSON.stringify(v)}`, {
            input_name: name,
            input_config: cfg(),
            received_value: v,
          }),
        );
        ok = false;
        continue;
      }
      v = c.value;
      const s = spec as { min?: number; max?: number };
      if (!def.validateInputs && (spec.type === 'INT' || spec.type === 'FLOAT')) {
        const num = numericValue(v);
        if (s.min !== undefined && num < s.min) {
          addError(
            id,
            comfyError('value_smaller_than_min', `Value ${String(v)} smaller than min of ${s.min}`, `${name}`, {
              input_name: name,
              input_config: cfg(),
              received_value: v,
            }),
          );
          ok = false;
          continue;
        }
        // Seeds up to 2^64−1 compare as doubles: 2^64−1 itself rounds to 2^64, so allow that rounding.
        if (s.max !== undefined && num > s.max && !(s.max >= 2 ** 63 && num <= 2 ** 64)) {
          addError(
            id,
            comfyError('value_bigger_than_max', `Value ${String(v)} bigger than max of ${s.max}`, `${name}`, {
              input_name: name,
              input_config: cfg(),
              received_value: v,
            }),
          );
          ok = false;
          continue;
        }
      }
      constants[name] = v;
      node.inputs[name] = v;
    }
    if (ok && def.validateInputs) {
      try {
        const r = await def.validateInputs(constants, linkedTypes, env);
        if (r !== true) {
          const input = Object.keys(constants)[0] ?? '';
          addError(
            id,
            comfyError('custom_validation_failed', 'Custom validation failed for node', `${input} - ${r}`, { input_name: input }),
          );
          ok = false;
        }
      } catch (e) {
        addError(id, comfyError('exception_during_validation', 'Exception when validating node', String((e as Error).message), {}));
        ok = false;
      }
    }
    visiting.pop();
    valid.set(id, ok);
    return ok;
  };

  // validateNode recurses along links; a long chain (thousands of nodes) would overflow the stack.
  // Then the nodes are validated from the far end first, so each finds its sources already done.
  for (const id of deepPostOrder(prompt, outputs, 200)) await validateNode(id);

  const goodOutputs: string[] = [];
  for (const out of outputs) {
    const before = new Set(Object.keys(nodeErrors));
    if (await validateNode(out)) goodOutputs.push(out);
    else {
      // Every erroring node in this output's subgraph depends-out to it (ComfyUI's dependent_outputs).
      const sub = subgraph(prompt, out);
      for (const [id, e] of Object.entries(nodeErrors)) {
        if ((sub.has(id) || !before.has(id)) && !e.dependent_outputs.includes(out)) e.dependent_outputs.push(out);
      }
    }
  }
  if (!goodOutputs.length) {
    const lines = Object.entries(nodeErrors).flatMap(([, e]) => e.errors.map((x) => `${x.message}: ${x.details}`));
    return {
      ok: false,
      error: comfyError('prompt_outputs_failed_validation', 'Prompt outputs failed validation', lines.join('\n')),
      node_errors: nodeErrors,
      outputs: [],
      prompt,
    };
  }
  return { ok: true, node_errors: nodeErrors, outputs: goodOutputs, prompt };
}

/**
 * Nodes reachable from `roots` in post-order (sources first), found without recursion; empty when
 * no path is longer than `minDepth`, so ordinary prompts are validated exactly as before.
 */
function deepPostOrder(prompt: ApiPrompt, roots: readonly string[], minDepth: number): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  let deep = false;
  for (const root of roots) {
    if (seen.has(root)) continue;
    seen.add(root);
    const stack: { id: string; srcs: string[]; next: number }[] = [{ id: root, srcs: sources(prompt, root), next: 0 }];
    while (stack.length) {
      if (stack.length > minDepth) deep = true;
      const top = stack[stack.length - 1];
      if (top.next < top.srcs.length) {
        const src = top.srcs[top.next++];
        if (!seen.has(src) && prompt[src]) {
          seen.add(src);
          stack.push({ id: src, srcs: sources(prompt, src), next: 0 });
        }
        continue;
      }
      stack.pop();
      order.push(top.id);
    }
  }
  return deep ? order : [];
}

function sources(prompt: ApiPrompt, id: string): string[] {
  const out: string[] = [];
  for (const v of Object.values(prompt[id]?.inputs ?? {})) if (Array.isArray(v) && v.length === 2) out.push(String(v[0]));
  return out;
}

function subgraph(prompt: ApiPrompt, root: string): Set<string> {
  const seen = new Set<string>();
  const stack = [root];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id) || !prompt[id]) continue;
    seen.add(id);
    for (const v of Object.values(prompt[id].inputs)) if (Array.isArray(v) && v.length === 2) stack.push(String(v[0]));
  }
  return seen;
}

/** Human-readable lines for the CLI: `node 3 (KSampler) input 'steps': Value 0 smaller than min of 1`. */
export function formatNodeErrors(r: ValidationResult): string {
  const lines: string[] = [];
  if (r.error && Object.keys(r.node_errors).length === 0) lines.push(`${r.error.message}${r.error.details ? `: ${r.error.details}` : ''}`);
  for (const [id, e] of Object.entries(r.node_errors)) {
    for (const err of e.errors) {
      const input = err.extra_info.input_name ? ` input '${String(err.extra_info.input_name)}'` : '';
      lines.push(
        `node ${id} (${e.class_type})${input}: ${err.message}${err.details && err.details !== err.extra_info.input_name ? ` (${err.details})` : ''}`,
      );
    }
  }
  return lines.join('\n');
}
