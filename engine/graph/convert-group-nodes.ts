/**
 * Legacy group nodes (`extra.groupNodes`, node types `workflow>Name`, before frontend 1.2.63
 * `workflow/Name`): the node definition ComfyUI's frontend builds for a group (`GroupNodeConfig` in
 * its groupNode.ts) decides which inner inputs become the group's inputs, which inner outputs its
 * outputs and which inner widgets its widgets; the instance's `widgets_values` follow that widget
 * order. Inner nodes run as `groupId:index`, the index being the node's place in the group's list.
 */
import type { ObjectInfo, ObjectInfoEntry } from '../registry/registry.ts';
import { WorkflowFormatError, readRawNodes, type RawNode } from './convert-read.ts';
import { isWidgetSpec, widgetDefs } from './widgets.ts';

const PREFIXES = ['workflow>', 'workflow/'];

/** The group's name for a node type `workflow>Name` or `workflow/Name`, else undefined. */
export function groupNodeName(type: string): string | undefined {
  const p = PREFIXES.find((x) => type.startsWith(x));
  return p === undefined ? undefined : type.slice(p.length);
}

/** A link inside a group: [origin index, origin slot, target index, target slot, original origin id, type]. */
type GroupLink = [number | null, number, number, number, unknown, string?];

export interface GroupNodeLayout {
  nodes: RawNode[];
  /** Inner node types the object_info lacks. */
  missing: string[];
  /** The outputs of the group: inner node index and slot, in the group's output order. */
  outputs: { index: number; slot: number }[];
  /** The group input feeding an inner input (by the group input's name and position), if that input is external. */
  externalInput(index: number, slot: number): { name: string; index: number } | undefined;
  internalLink(index: number, slot: number): { index: number; slot: number; type: string } | undefined;
  /** An inner node's widget values with the group instance's values put in. */
  innerValues(index: number, groupValues: RawNode['widgets_values'], own: RawNode['widgets_values']): RawNode['widgets_values'];
}

type Spec = [unknown, Record<string, unknown>?];

interface InnerConfig {
  inputs?: Record<string, { name?: string; visible?: boolean }>;
  outputs?: Record<string, { name?: string; visible?: boolean }>;
}

export function groupNodeLayout(name: string, raw: unknown, info: ObjectInfo): GroupNodeLayout | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const data = raw as {
    nodes?: unknown;
    links?: unknown;
    external?: unknown;
    config?: Record<string, { input?: unknown; output?: unknown }>;
  };
  if (!Array.isArray(data.nodes)) return null;
  const where = `group node ${name}`;
  const nodes = readRawNodes(data.nodes, where, false);
  const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < nodes.length;
  const isSlot = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
  const links = (Array.isArray(data.links) ? data.links : []).map((l, i) => {
    if (!Array.isArray(l) || !(l[0] === null || isIndex(l[0])) || !isSlot(l[1]) || !isIndex(l[2]) || !isSlot(l[3]))
      throw new WorkflowFormatError(`${where}: links[${i}] is not [origin index, slot, target index, slot, …]`);
    return l as GroupLink;
  });
  const external = (Array.isArray(data.external) ? data.external : []).map((e, i) => {
    if (!Array.isArray(e) || !isIndex(e[0]) || !isSlot(e[1]))
      throw new WorkflowFormatError(`${where}: external[${i}] is not [index, slot, type]`);
    return e as [number, number, string];
  });
  const config = (i: number): InnerConfig => {
    const c = data.config?.[String(i)];
    return { inputs: c?.input as InnerConfig['inputs'], outputs: c?.output as InnerConfig['outputs'] };
  };

  const linksFrom = new Map<number, Map<number, GroupLink[]>>();
  const linksTo = new Map<number, Map<number, GroupLink>>();
  for (const l of links) {
    const [from, fromSlot, to, toSlot] = l;
    if (from === null || from === undefined) continue;
    const f = linksFrom.get(from) ?? new Map<number, GroupLink[]>();
    f.set(fromSlot, [...(f.get(fromSlot) ?? []), l]);
    linksFrom.set(from, f);
    const t = linksTo.get(to) ?? new Map<number, GroupLink>();
    t.set(toSlot, l);
    linksTo.set(to, t);
  }
  const externalFrom = new Set(external.map(([i, s]) => `${i}:${s}`));

  // The group's generated definition, built as GroupNodeConfig.registerType builds it.
  const required: [string, Spec][] = [];
  const inputMap = new Map<number, Map<number, number>>();
  const inputNames: string[] = [];
  const newToOld = new Map<string, { index: number; input: string }>();
  const primitiveTargets = new Map<number, { index: number; input: string }[]>();
  const outputs: { index: number; slot: number }[] = [];
  const seen: Record<string, number> = {};
  const converted: (() => void)[] = [];
  const missing: string[] = [];
  let inputCount = 0;

  const inputConfig = (n: RawNode, index: number, input: string, spec: Spec, extra?: Record<string, unknown>) => {
    const custom = config(index).inputs?.[input];
    const label = custom?.name ?? (n.inputs ?? []).find((i) => i.name === input)?.label;
    let nm = typeof label === 'string' ? label : input;
    let key = nm;
    let prefix = '';
    if ((n.type === 'PrimitiveNode' && typeof n.title === 'string') || nm in seen) {
      prefix = `${typeof n.title === 'string' ? n.title : n.type} `;
      key = nm = `${prefix}${input}`;
      if (nm in seen) nm = `${prefix}${seen[nm]} ${input}`;
    }
    seen[key] = (seen[key] ?? 1) + 1;
    const opts: Record<string, unknown> = { ...(spec[1] ?? {}), ...(extra ?? {}) };
    if (input === 'seed' || input === 'noise_seed') opts.control_after_generate = `${prefix}control_after_generate`;
    return { name: nm, spec: [spec[0], opts] as Spec, custom };
  };

  const defOf = (n: RawNode, index: number): ObjectInfoEntry | { required: Record<string, Spec>; output: string[] } | null => {
    const e = info[n.type];
    if (e) return e;
    if (n.type === 'PrimitiveNode') {
      const from = linksFrom.get(index)?.get(0)?.[0];
      if (!from) return null;
      let type: unknown = from[5];
      const target = nodes[from[2]];
      const widget = (n.outputs?.[0] as { widget?: { name?: string } } | undefined)?.widget?.name;
      const targetSpec =
        target && widget ? (info[target.type]?.input.required?.[widget] ?? info[target.type]?.input.optional?.[widget]) : undefined;
      if (type === 'COMBO' && targetSpec) type = (targetSpec as unknown[])[0];
      // A linked primitive always gets a value-control widget in a group (checkPrimitiveConnection).
      return {
        required: { value: [type, { ...((targetSpec as Spec | undefined)?.[1] ?? {}), control_after_generate: true }] },
        output: [String(type)],
      };
    }
    if (n.type === 'Reroute') return null;
    if (!['Note', 'MarkdownNote'].includes(n.type)) missing.push(n.type);
    return null;
  };

  nodes.forEach((n, index) => {
    const def = defOf(n, index);
    if (!def) return;
    const specs: Record<string, Spec> =
      'input' in def ? ({ ...(def.input.required ?? {}), ...(def.input.optional ?? {}) } as Record<string, Spec>) : def.required;
    const names = 'input_order' in def ? [...(def.input_order.required ?? []), ...(def.input_order.optional ?? [])] : Object.keys(specs);
    const slots: string[] = [];
    const conv = new Map<number, string>();
    for (const input of names) {
      const spec = specs[input];
      if (!spec) continue;
      if (isWidgetSpec(spec as unknown[])) {
        const at = (n.inputs ?? []).findIndex((i) => i.name === input && i.widget?.name === input);
        if (at > -1) conv.set(at, input);
        else {
          const c = inputConfig(n, index, input, spec);
          required.push([c.name, c.spec]);
          newToOld.set(c.name, { index, input });
        }
      } else slots.push(input);
    }
    const to = linksTo.get(index) ?? new Map<number, GroupLink>();
    const map = new Map<number, number>();
    inputMap.set(index, map);
    const primitiveLink = (l: GroupLink, input: string) => {
      if (nodes[l[0] ?? -1]?.type !== 'PrimitiveNode') return;
      primitiveTargets.set(l[0]!, [...(primitiveTargets.get(l[0]!) ?? []), { index, input }]);
    };
    slots.forEach((input, i) => {
      const l = to.get(i);
      if (l) return primitiveLink(l, input);
      const c = inputConfig(n, index, input, specs[input]);
      if (c.custom?.visible === false) return;
      required.push([c.name, c.spec]);
      inputNames[inputCount] = c.name;
      map.set(i, inputCount++);
    });
    converted.push(() => {
      [...conv.keys()]
        .sort()
        .map((k) => conv.get(k)!)
        .forEach((input, i) => {
          const l = to.get(slots.length + i);
          if (l) return primitiveLink(l, input);
          const c = inputConfig(n, index, input, specs[input], { defaultInput: true });
          required.push([c.name, c.spec]);
          newToOld.set(c.name, { index, input });
          inputNames[inputCount] = c.name;
          map.set(slots.length + i, inputCount++);
        });
    });
    const outs = 'input' in def ? def.output : def.output;
    outs.forEach((_, slot) => {
      const linked = linksFrom.get(index)?.get(slot) && !externalFrom.has(`${index}:${slot}`);
      const visible = config(index).outputs?.[String(slot)]?.visible ?? !linked;
      if (visible) outputs.push({ index, slot });
    });
  });
  for (const f of converted) f();

  const groupInfo: ObjectInfoEntry = {
    input: { required: Object.fromEntries(required) as ObjectInfoEntry['input']['required'] },
    input_order: { required: required.map(([k]) => k) },
    output: [],
    output_is_list: [],
    output_name: [],
    name: `workflow>${name}`,
    display_name: name,
    description: '',
    python_module: 'custom_nodes.' + name,
    category: 'group nodes>workflow',
    output_node: false,
  } as unknown as ObjectInfoEntry;
  const groupWidgets = widgetDefs(groupInfo);

  return {
    nodes,
    missing,
    outputs,
    externalInput(index, slot) {
      const at = inputMap.get(index)?.get(slot);
      return at === undefined ? undefined : { name: inputNames[at], index: at };
    },
    internalLink(index, slot) {
      const l = linksTo.get(index)?.get(slot);
      if (!l || l[0] === null) return undefined;
      return { index: l[0], slot: l[1], type: String(l[5] ?? '*') };
    },
    innerValues(index, groupValues, own) {
      const n = nodes[index];
      const e = info[n.type];
      if (!e || !Array.isArray(groupValues)) return own;
      const out = Array.isArray(own) ? [...own] : [];
      const innerDefs = widgetDefs(e);
      const set = (input: string, value: unknown) => {
        const w = innerDefs.find((d) => d.name === input && !d.extra);
        if (w && value !== undefined) out[w.index] = value;
      };
      for (const w of groupWidgets) {
        if (w.extra) continue;
        const old = newToOld.get(w.name);
        if (!old) continue;
        const value = groupValues[w.index];
        if (old.index === index) set(old.input, value);
        // A primitive inside the group gives its value to the widgets it is linked to.
        if (nodes[old.index]?.type === 'PrimitiveNode')
          for (const t of primitiveTargets.get(old.index) ?? []) if (t.index === index) set(t.input, value);
      }
      return out;
    },
  };
}
