import type { ListingContext } from './context.ts';
import type { AnyNodeDefinition, InputSpec } from './types.ts';
import { isWidgetType } from './sockets.ts';

export type ObjectInfoInputSpec = [unknown] | [unknown, Record<string, unknown>];

/** One class in `/object_info`, in ComfyUI's exact JSON shape. */
export interface ObjectInfoEntry {
  input: {
    required: Record<string, ObjectInfoInputSpec>;
    optional?: Record<string, ObjectInfoInputSpec>;
    hidden?: Record<string, string>;
  };
  input_order: { required: string[]; optional?: string[]; hidden?: string[] };
  is_input_list: boolean;
  output: string[];
  output_is_list: boolean[];
  output_name: string[];
  name: string;
  display_name: string;
  description: string;
  python_module: string;
  category: string;
  output_node: boolean;
  has_intermediate_output: boolean;
  search_aliases: string[];
  output_tooltips?: string[];
  deprecated?: boolean;
  experimental?: boolean;
}

export type ObjectInfo = Record<string, ObjectInfoEntry>;

export class DuplicateNodeError extends Error {
  constructor(
    readonly nodeName: string,
    readonly existingModule: string,
  ) {
    super(`node class '${nodeName}' is already registered by ${existingModule}`);
    this.name = 'DuplicateNodeError';
  }
}

export class NodeRegistry {
  private readonly nodes = new Map<string, AnyNodeDefinition>();
  /** Nodes that ship with Weft, whatever `python_module` they show (a port of a ComfyUI package shows the package's). */
  private readonly builtin = new Set<string>();

  register(def: AnyNodeDefinition, module = def.module ?? 'nodes', builtin = false): void {
    if (!def || typeof def.name !== 'string' || def.name === '') {
      throw new Error(`a node definition from ${module} has no class name`);
    }
    if (typeof def.run !== 'function') throw new Error(`node '${def.name}' from ${module} has no run function`);
    if (!Array.isArray(def.outputs)) throw new Error(`node '${def.name}' from ${module} has no outputs array`);
    const existing = this.nodes.get(def.name);
    if (existing) throw new DuplicateNodeError(def.name, existing.module ?? 'nodes');
    this.nodes.set(def.name, { ...def, module });
    if (builtin) this.builtin.add(def.name);
  }

  registerAll(defs: Iterable<AnyNodeDefinition>, module?: string, builtin = false): void {
    for (const d of defs) this.register(d, module, builtin);
  }

  /** Whether `name` ships with Weft (registered as built-in), as opposed to a user's custom node package. */
  isBuiltin(name: string): boolean {
    return this.builtin.has(name);
  }

  get(name: string): AnyNodeDefinition | undefined {
    return this.nodes.get(name);
  }

  has(name: string): boolean {
    return this.nodes.has(name);
  }

  names(): string[] {
    return [...this.nodes.keys()];
  }

  objectInfo(env: ListingContext): ObjectInfo {
    const out: ObjectInfo = {};
    for (const def of this.nodes.values()) out[def.name] = objectInfoEntry(def, env);
    return out;
  }
}

/** Combo choices as they are now (computed combos list their folder at this moment). */
export function comboChoices(spec: InputSpec, env: ListingContext): readonly string[] {
  if (spec.type !== 'COMBO' || !('options' in spec)) return [];
  const o = spec.options;
  if (typeof o === 'function') {
    try {
      return o(env);
    } catch {
      return [];
    }
  }
  return o;
}

export function objectInfoInputSpec(spec: InputSpec, env: ListingContext): ObjectInfoInputSpec {
  const opts: Record<string, unknown> = {};
  const s = spec as unknown as Record<string, unknown>;
  const copy = (from: string, to = from): void => {
    if (s[from] !== undefined) opts[to] = s[from];
  };
  for (const k of ['default', 'min', 'max', 'step', 'round', 'tooltip', 'multiline', 'dynamicPrompts']) copy(k);
  for (const k of ['forceInput', 'lazy', 'rawLink', 'display', 'placeholder', 'advanced']) copy(k);
  copy('labelOn', 'label_on');
  copy('labelOff', 'label_off');
  copy('controlAfterGenerate', 'control_after_generate');
  copy('imageUpload', 'image_upload');
  if (spec.type === 'COMBO') {
    const choices = [...comboChoices(spec, env)];
    return Object.keys(opts).length ? [choices, opts] : [choices];
  }
  if (spec.type === 'INT' && opts.max !== undefined && (opts.max as number) > Number.MAX_SAFE_INTEGER) {
    opts.max = 0xffffffffffffffff;
  }
  return Object.keys(opts).length || isWidgetType(spec.type) ? [spec.type, opts] : [spec.type];
}

function objectInfoEntry(def: AnyNodeDefinition, env: ListingContext): ObjectInfoEntry {
  const required: Record<string, ObjectInfoInputSpec> = {};
  const optional: Record<string, ObjectInfoInputSpec> = {};
  for (const [k, v] of Object.entries(def.inputs?.required ?? {})) required[k] = objectInfoInputSpec(v, env);
  for (const [k, v] of Object.entries(def.inputs?.optional ?? {})) optional[k] = objectInfoInputSpec(v, env);
  const hidden = { ...(def.inputs?.hidden ?? {}) };
  const entry: ObjectInfoEntry = {
    input: { required },
    input_order: { required: Object.keys(required) },
    is_input_list: def.inputIsList ?? false,
    output: def.outputs.map((o) => o.type),
    output_is_list: def.outputs.map((o) => o.isList ?? false),
    output_name: def.outputs.map((o) => o.name ?? o.type),
    name: def.name,
    display_name: def.displayName ?? def.name,
    description: def.description ?? '',
    python_module: def.module ?? 'nodes',
    category: def.category ?? 'sd',
    output_node: def.outputNode ?? false,
    has_intermediate_output: false,
    search_aliases: [...(def.searchAliases ?? [])],
  };
  if (Object.keys(optional).length) {
    entry.input.optional = optional;
    entry.input_order.optional = Object.keys(optional);
  }
  if (Object.keys(hidden).length) {
    entry.input.hidden = hidden;
    entry.input_order.hidden = Object.keys(hidden);
  }
  if (def.outputs.some((o) => o.tooltip)) entry.output_tooltips = def.outputs.map((o) => o.tooltip ?? '');
  if (def.deprecated) entry.deprecated = true;
  if (def.experimental) entry.experimental = true;
  return entry;
}
