/**
 * The editor's document is a ComfyUI UI workflow (schema 0.4), so saving, exporting and reopening
 * are lossless and files round-trip with ComfyUI. Everything here is pure: React state holds a
 * `WorkflowDoc` and replaces it on every edit, which makes undo a stack of snapshots.
 */
import type { ObjectInfo, ObjectInfoEntry } from '../../engine/registry/registry.ts';
import { defaultWidgetValue, isWidgetSpec, widgetDefs, type WidgetDef } from '../../engine/graph/widgets.ts';

export { widgetDefs, type WidgetDef };

export interface DocInput {
  name: string;
  type: string;
  link: number | null;
  widget?: { name: string };
  label?: string;
}
export interface DocOutput {
  name: string;
  type: string;
  links: number[] | null;
  slot_index?: number;
}
export interface DocNode {
  id: number;
  type: string;
  pos: [number, number];
  size: [number, number];
  flags: Record<string, unknown>;
  order: number;
  mode: number;
  title?: string;
  inputs: DocInput[];
  outputs: DocOutput[];
  properties: Record<string, unknown>;
  widgets_values: unknown[];
  color?: string;
  bgcolor?: string;
}
export type DocLink = [number, number, number, number, number, string];
export interface DocGroup {
  id?: number;
  title: string;
  bounding: [number, number, number, number];
  color?: string;
  font_size?: number;
}
export interface WorkflowDoc {
  id?: string;
  revision?: number;
  last_node_id: number;
  last_link_id: number;
  nodes: DocNode[];
  links: DocLink[];
  groups: DocGroup[];
  config: Record<string, unknown>;
  extra: Record<string, unknown>;
  version: number;
  [k: string]: unknown;
}

export function emptyDoc(): WorkflowDoc {
  return { id: crypto.randomUUID(), revision: 0, last_node_id: 0, last_link_id: 0, nodes: [], links: [], groups: [], config: {}, extra: {}, version: 0.4 };
}

/** Socket inputs of a class (non-widget inputs), in order. */
export function socketInputs(info: ObjectInfoEntry): DocInput[] {
  const all = { ...(info.input.required ?? {}), ...(info.input.optional ?? {}) };
  const order = [...(info.input_order?.required ?? []), ...(info.input_order?.optional ?? [])];
  const out: DocInput[] = [];
  for (const name of order) {
    const [t] = all[name] as [unknown];
    if (!isWidgetSpec(all[name] as unknown[])) out.push({ name, type: Array.isArray(t) ? 'COMBO' : String(t), link: null });
  }
  return out;
}

export function createNode(doc: WorkflowDoc, classType: string, info: ObjectInfoEntry, pos: [number, number]): WorkflowDoc {
  const id = doc.last_node_id + 1;
  const widgets = widgetDefs(info);
  const node: DocNode = {
    id,
    type: classType,
    pos,
    size: [300, 80 + widgets.length * 28],
    flags: {},
    order: doc.nodes.length,
    mode: 0,
    inputs: socketInputs(info),
    outputs: info.output.map((t, i) => ({ name: info.output_name[i] ?? t, type: t, links: [], slot_index: i })),
    properties: { 'Node name for S&R': classType },
    widgets_values: widgets.map(defaultWidgetValue),
  };
  return { ...doc, last_node_id: id, nodes: [...doc.nodes, node] };
}

/** ComfyUI socket compatibility (the same rule the engine's validation applies). */
export function typesCompatible(from: string, to: string): boolean {
  if (from === to || from === '*' || to === '*') return true;
  if (to === 'COMBO' && (from === 'STRING' || from === 'COMBO')) return true;
  const a = from.split(',').map((s) => s.trim());
  const b = to.split(',').map((s) => s.trim());
  return a.some((x) => b.includes(x));
}

export function removeLink(doc: WorkflowDoc, linkId: number): WorkflowDoc {
  const link = doc.links.find((l) => l[0] === linkId);
  if (!link) return doc;
  const [, o, oSlot, t, tSlot] = link;
  return {
    ...doc,
    links: doc.links.filter((l) => l[0] !== linkId),
    nodes: doc.nodes.map((n) => {
      if (n.id === o) {
        return { ...n, outputs: n.outputs.map((out, i) => (i === oSlot ? { ...out, links: (out.links ?? []).filter((x) => x !== linkId) } : out)) };
      }
      if (n.id === t) return { ...n, inputs: n.inputs.map((inp, i) => (i === tSlot ? { ...inp, link: null } : inp)) };
      return n;
    }),
  };
}

export function connect(doc: WorkflowDoc, origin: number, originSlot: number, target: number, targetSlot: number): { doc: WorkflowDoc; error?: string } {
  const o = doc.nodes.find((n) => n.id === origin);
  const t = doc.nodes.find((n) => n.id === target);
  if (!o || !t) return { doc, error: 'node not found' };
  const out = o.outputs[originSlot];
  const inp = t.inputs[targetSlot];
  if (!out || !inp) return { doc, error: 'socket not found' };
  if (!typesCompatible(out.type, inp.type)) return { doc, error: `${out.type} cannot connect to ${inp.type} (${inp.name})` };
  let d = inp.link !== null ? removeLink(doc, inp.link) : doc;
  const id = d.last_link_id + 1;
  d = {
    ...d,
    last_link_id: id,
    links: [...d.links, [id, origin, originSlot, target, targetSlot, out.type]],
    nodes: d.nodes.map((n) => {
      if (n.id === origin) return { ...n, outputs: n.outputs.map((x, i) => (i === originSlot ? { ...x, links: [...(x.links ?? []), id] } : x)) };
      if (n.id === target) return { ...n, inputs: n.inputs.map((x, i) => (i === targetSlot ? { ...x, link: id } : x)) };
      return n;
    }),
  };
  return { doc: d };
}

export function removeNodes(doc: WorkflowDoc, ids: ReadonlySet<number>): WorkflowDoc {
  let d = doc;
  for (const l of doc.links) if (ids.has(l[1]) || ids.has(l[3])) d = removeLink(d, l[0]);
  return { ...d, nodes: d.nodes.filter((n) => !ids.has(n.id)) };
}

export function updateNode(doc: WorkflowDoc, id: number, fn: (n: DocNode) => DocNode): WorkflowDoc {
  return { ...doc, nodes: doc.nodes.map((n) => (n.id === id ? fn(n) : n)) };
}

/** Classes a workflow uses that the server does not have (node ids per class). */
export function missingClasses(doc: WorkflowDoc, info: ObjectInfo): { class_type: string; node_ids: number[] }[] {
  const virtual = new Set(['Reroute', 'PrimitiveNode', 'Note', 'MarkdownNote']);
  const m = new Map<string, number[]>();
  for (const n of doc.nodes) {
    if (virtual.has(n.type) || info[n.type]) continue;
    m.set(n.type, [...(m.get(n.type) ?? []), n.id]);
  }
  return [...m].map(([class_type, node_ids]) => ({ class_type, node_ids }));
}

/** Applies each seed widget's control_after_generate after a queue, as ComfyUI's frontend does. */
export function applyControlAfterGenerate(doc: WorkflowDoc, info: ObjectInfo): WorkflowDoc {
  const nodes = doc.nodes.map((n) => {
      const ci = info[n.type];
      if (!ci) return n;
      const defs = widgetDefs(ci);
      const values = [...n.widgets_values];
      let changed = false;
      defs.forEach((w, i) => {
        if (w.kind !== 'CONTROL') return;
        const target = defs[i - 1];
        const v = Number(values[i - 1]);
        const max = typeof target.options.max === 'number' ? target.options.max : Number.MAX_SAFE_INTEGER;
        const min = typeof target.options.min === 'number' ? target.options.min : 0;
        const mode = values[i];
        let next = v;
        if (mode === 'increment') next = Math.min(max, v + 1);
        else if (mode === 'decrement') next = Math.max(min, v - 1);
        else if (mode === 'randomize') next = Math.floor(Math.random() * Math.min(max - min, 2 ** 50)) + min;
        if (next !== v) {
          values[i - 1] = next;
          changed = true;
        }
      });
      return changed ? { ...n, widgets_values: values } : n;
  });
  return nodes.some((n, i) => n !== doc.nodes[i]) ? { ...doc, nodes } : doc;
}

/**
 * Every widget can take a link (current ComfyUI): linking to a widget adds an input socket carrying
 * `widget: {name}`; while linked the link wins, and the widget's value is kept for when it is unlinked.
 */
export function ensureWidgetInput(doc: WorkflowDoc, nodeId: number, name: string, type: string): { doc: WorkflowDoc; slot: number } {
  const node = doc.nodes.find((n) => n.id === nodeId);
  if (!node) return { doc, slot: -1 };
  const existing = node.inputs.findIndex((i) => i.name === name);
  if (existing >= 0) return { doc, slot: existing };
  const input: DocInput = { name, type, link: null, widget: { name } };
  return { doc: updateNode(doc, nodeId, (n) => ({ ...n, inputs: [...n.inputs, input] })), slot: node.inputs.length };
}

/** Move groups to new positions, carrying the nodes whose top-left corner lies inside each group. */
export function moveGroups(doc: WorkflowDoc, moves: ReadonlyMap<number, [number, number]>): WorkflowDoc {
  let nodes = doc.nodes;
  const groups = doc.groups.map((g, i) => {
    const to = moves.get(i);
    if (!to) return g;
    const [x, y, w, h] = g.bounding;
    const dx = to[0] - x;
    const dy = to[1] - y;
    nodes = nodes.map((n) =>
      n.pos[0] >= x && n.pos[0] <= x + w && n.pos[1] >= y && n.pos[1] <= y + h ? { ...n, pos: [n.pos[0] + dx, n.pos[1] + dy] as [number, number] } : n,
    );
    return { ...g, bounding: [to[0], to[1], w, h] as [number, number, number, number] };
  });
  return { ...doc, groups, nodes };
}
