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
  return {
    id: crypto.randomUUID(),
    revision: 0,
    last_node_id: 0,
    last_link_id: 0,
    nodes: [],
    links: [],
    groups: [],
    config: {},
    extra: {},
    version: 0.4,
  };
}

function pair(v: unknown, fallback: [number, number]): [number, number] {
  // LiteGraph once serialised Float32Arrays as {"0": x, "1": y}.
  const a = Array.isArray(v) ? v : v && typeof v === 'object' ? Object.values(v as Record<string, unknown>) : [];
  return a.length >= 2 && a.slice(0, 2).every((x) => typeof x === 'number') ? [a[0] as number, a[1] as number] : fallback;
}

/**
 * A workflow as the editor holds it: ComfyUI leaves out empty inputs, outputs and widget values
 * (and older files store positions as objects), so those are filled in once, on opening.
 */
export function normalizeDoc(raw: WorkflowDoc): WorkflowDoc {
  const nodes = (raw.nodes ?? []).map((n) => ({
    ...n,
    pos: pair(n.pos, [0, 0]),
    size: pair(n.size, [300, 100]),
    flags: n.flags ?? {},
    mode: n.mode ?? 0,
    inputs: Array.isArray(n.inputs) ? n.inputs : [],
    outputs: Array.isArray(n.outputs) ? n.outputs : [],
    properties: n.properties ?? {},
    widgets_values: n.widgets_values ?? [],
  }));
  return {
    ...raw,
    last_node_id: raw.last_node_id ?? Math.max(0, ...nodes.map((n) => n.id)),
    last_link_id: raw.last_link_id ?? Math.max(0, ...(raw.links ?? []).filter(Boolean).map((l) => l[0])),
    nodes,
    links: (raw.links ?? []).filter(Boolean),
    groups: raw.groups ?? [],
    config: raw.config ?? {},
    extra: raw.extra ?? {},
  };
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

/**
 * Weft's SaveImage and PreviewImage also return their images (for API prompts), but ComfyUI's have
 * no outputs and its files save them without any: new nodes get none either, so they look and save alike.
 */
const OUTPUTLESS_IN_COMFYUI = new Set(['SaveImage', 'PreviewImage']);

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
    outputs: OUTPUTLESS_IN_COMFYUI.has(classType)
      ? []
      : info.output.map((t, i) => ({ name: info.output_name[i] ?? t, type: t, links: [], slot_index: i })),
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
  const d = unlink(doc, linkId, o, oSlot, t, tSlot);
  return d.nodes.some((n) => (n.id === o || n.id === t) && n.type === REROUTE) ? syncRerouteTypes(d) : d;
}

function unlink(doc: WorkflowDoc, linkId: number, o: number, oSlot: number, t: number, tSlot: number): WorkflowDoc {
  return {
    ...doc,
    links: doc.links.filter((l) => l[0] !== linkId),
    nodes: doc.nodes.map((n) => {
      if (n.id === o) {
        return {
          ...n,
          outputs: n.outputs.map((out, i) => (i === oSlot ? { ...out, links: (out.links ?? []).filter((x) => x !== linkId) } : out)),
        };
      }
      if (n.id === t) return { ...n, inputs: n.inputs.map((inp, i) => (i === tSlot ? { ...inp, link: null } : inp)) };
      return n;
    }),
  };
}

/** Why a link from `origin:originSlot` to `target:targetSlot` is not allowed, or undefined when it is. */
export function connectError(doc: WorkflowDoc, origin: number, originSlot: number, target: number, targetSlot: number): string | undefined {
  const o = doc.nodes.find((n) => n.id === origin);
  const t = doc.nodes.find((n) => n.id === target);
  if (!o || !t) return 'node not found';
  const out = o.outputs[originSlot];
  const inp = t.inputs[targetSlot];
  if (!out || !inp) return 'socket not found';
  if (origin === target) return 'a node cannot connect to itself';
  const from = o.type === REROUTE ? rerouteType(doc, origin) : out.type;
  // A reroute's input takes whatever its downstream side wants (or anything while it has none).
  const to = t.type === REROUTE ? rerouteDownstreamType(doc, target) : inp.type;
  if (!typesCompatible(from, to)) return `${from} cannot connect to ${to}${inp.name ? ` (${inp.name})` : ''}`;
  if (o.type === REROUTE && t.type === REROUTE && rerouteChainReaches(doc, origin, target)) return 'reroutes cannot form a loop';
  return undefined;
}

export function connect(
  doc: WorkflowDoc,
  origin: number,
  originSlot: number,
  target: number,
  targetSlot: number,
): { doc: WorkflowDoc; error?: string } {
  const error = connectError(doc, origin, originSlot, target, targetSlot);
  if (error) return { doc, error };
  const o = doc.nodes.find((n) => n.id === origin)!;
  const inp = doc.nodes.find((n) => n.id === target)!.inputs[targetSlot];
  const type = o.type === REROUTE ? rerouteType(doc, origin) : o.outputs[originSlot].type;
  let d = inp.link !== null ? removeLink(doc, inp.link) : doc;
  const id = d.last_link_id + 1;
  d = {
    ...d,
    last_link_id: id,
    links: [...d.links, [id, origin, originSlot, target, targetSlot, type]],
    nodes: d.nodes.map((n) => {
      if (n.id === origin)
        return { ...n, outputs: n.outputs.map((x, i) => (i === originSlot ? { ...x, links: [...(x.links ?? []), id] } : x)) };
      if (n.id === target) return { ...n, inputs: n.inputs.map((x, i) => (i === targetSlot ? { ...x, link: id } : x)) };
      return n;
    }),
  };
  return { doc: o.type === REROUTE || doc.nodes.some((n) => n.id === target && n.type === REROUTE) ? syncRerouteTypes(d) : d };
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
    const ci = n.type === PRIMITIVE ? primitiveEntry(doc, n, info) : info[n.type];
    // Nodes without widgets may carry null widgets_values (ComfyUI writes that for some).
    if (!ci || !Array.isArray(n.widgets_values)) return n;
    const defs = widgetDefs(ci);
    const linked = new Set(n.inputs.filter((i) => i.widget && i.link !== null).map((i) => i.widget!.name));
    const values = [...n.widgets_values];
    let changed = false;
    defs.forEach((w, i) => {
      // A linked seed takes its value from the link (a primitive node applies its own control).
      if (w.kind !== 'CONTROL' || linked.has(defs[i - 1]?.name)) return;
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

/** Ids of the nodes whose top-left corner lies inside a group. */
export function groupMembers(doc: WorkflowDoc, index: number): Set<number> {
  const g = doc.groups[index];
  if (!g) return new Set();
  const [x, y, w, h] = g.bounding;
  return new Set(doc.nodes.filter((n) => n.pos[0] >= x && n.pos[0] <= x + w && n.pos[1] >= y && n.pos[1] <= y + h).map((n) => n.id));
}

/**
 * Move groups to new positions, carrying their nodes. `members` fixes who belongs to each group
 * for a whole drag (so a group dragged over a node does not pick it up); without it, membership
 * is taken from the current bounds.
 */
export function moveGroups(
  doc: WorkflowDoc,
  moves: ReadonlyMap<number, [number, number]>,
  members?: ReadonlyMap<number, ReadonlySet<number>>,
): WorkflowDoc {
  let nodes = doc.nodes;
  const groups = doc.groups.map((g, i) => {
    const to = moves.get(i);
    if (!to) return g;
    const [x, y, w, h] = g.bounding;
    const dx = to[0] - x;
    const dy = to[1] - y;
    const inside = members?.get(i) ?? groupMembers(doc, i);
    if (dx || dy) nodes = nodes.map((n) => (inside.has(n.id) ? { ...n, pos: [n.pos[0] + dx, n.pos[1] + dy] as [number, number] } : n));
    return dx || dy ? { ...g, bounding: [to[0], to[1], w, h] as [number, number, number, number] } : g;
  });
  return nodes === doc.nodes && groups.every((g, i) => g === doc.groups[i]) ? doc : { ...doc, groups, nodes };
}

// ---------------------------------------------------------------------------------------------
// Reroutes: ComfyUI's frontend-only `Reroute` node (one untyped input, one output that takes the
// type of what flows through it). The converter resolves links through them to the real source.

export const REROUTE = 'Reroute';

export function createReroute(doc: WorkflowDoc, pos: [number, number]): WorkflowDoc {
  const id = doc.last_node_id + 1;
  const node: DocNode = {
    id,
    type: REROUTE,
    pos,
    size: [75, 26],
    flags: {},
    order: doc.nodes.length,
    mode: 0,
    inputs: [{ name: '', type: '*', link: null }],
    outputs: [{ name: '', type: '*', links: [], slot_index: 0 }],
    properties: { showOutputText: false, horizontal: false },
    widgets_values: [],
  };
  return { ...doc, last_node_id: id, nodes: [...doc.nodes, node] };
}

function linkMap(doc: WorkflowDoc): Map<number, DocLink> {
  return new Map(doc.links.map((l) => [l[0], l]));
}

/**
 * The type a reroute carries: its real upstream source's output type; without one, what its
 * downstream inputs want; otherwise '*'.
 */
export function rerouteType(doc: WorkflowDoc, id: number): string {
  const links = linkMap(doc);
  const byId = new Map(doc.nodes.map((n) => [n.id, n]));
  let cur = byId.get(id);
  for (let depth = 0; cur && cur.type === REROUTE && depth < 256; depth++) {
    const l = cur.inputs[0]?.link;
    const link = l === null || l === undefined ? undefined : links.get(l);
    if (!link) return rerouteDownstreamType(doc, id);
    const src = byId.get(link[1]);
    if (src && src.type !== REROUTE) return src.outputs[link[2]]?.type ?? '*';
    cur = src;
  }
  return '*';
}

/** What the inputs fed by a reroute (through further reroutes) accept; '*' when nothing constrains it. */
export function rerouteDownstreamType(doc: WorkflowDoc, id: number): string {
  const links = linkMap(doc);
  const byId = new Map(doc.nodes.map((n) => [n.id, n]));
  const seen = new Set<number>();
  const walk = (nid: number): string => {
    if (seen.has(nid)) return '*';
    seen.add(nid);
    for (const l of byId.get(nid)?.outputs[0]?.links ?? []) {
      const link = links.get(l);
      const tgt = link && byId.get(link[3]);
      if (!link || !tgt) continue;
      const t = tgt.type === REROUTE ? walk(tgt.id) : (tgt.inputs[link[4]]?.type ?? '*');
      if (t !== '*') return t;
    }
    return '*';
  };
  return walk(id);
}

/** Whether following `from`'s input upstream through reroutes arrives at `to` (a link to→from would loop). */
function rerouteChainReaches(doc: WorkflowDoc, from: number, to: number): boolean {
  const links = linkMap(doc);
  const byId = new Map(doc.nodes.map((n) => [n.id, n]));
  let cur = byId.get(from);
  for (let depth = 0; cur && cur.type === REROUTE && depth < 256; depth++) {
    if (cur.id === to) return true;
    const l = cur.inputs[0]?.link;
    const link = l === null || l === undefined ? undefined : links.get(l);
    cur = link ? byId.get(link[1]) : undefined;
  }
  return false;
}

/** Re-derives every reroute's output type and the type recorded on the links leaving it. */
export function syncRerouteTypes(doc: WorkflowDoc): WorkflowDoc {
  const types = new Map<number, string>();
  for (const n of doc.nodes) if (n.type === REROUTE) types.set(n.id, rerouteType(doc, n.id));
  if (!types.size) return doc;
  let changed = false;
  const nodes = doc.nodes.map((n) => {
    const t = types.get(n.id);
    if (t === undefined || n.outputs[0]?.type === t) return n;
    changed = true;
    return { ...n, outputs: n.outputs.map((o, i) => (i === 0 ? { ...o, type: t } : o)) };
  });
  const links = doc.links.map((l) => {
    const t = types.get(l[1]);
    if (t === undefined || l[5] === t) return l;
    changed = true;
    return [l[0], l[1], l[2], l[3], l[4], t] as DocLink;
  });
  return changed ? { ...doc, nodes, links } : doc;
}

/** Splits a link with a new reroute at `pos`. */
export function insertReroute(doc: WorkflowDoc, linkId: number, pos: [number, number]): WorkflowDoc {
  const link = doc.links.find((l) => l[0] === linkId);
  if (!link) return doc;
  const [, o, os, t, ts] = link;
  let d = createReroute(removeLink(doc, linkId), pos);
  const r = d.last_node_id;
  d = connect(d, o, os, r, 0).doc;
  const second = connect(d, r, 0, t, ts);
  return second.error ? doc : second.doc;
}

// ---------------------------------------------------------------------------------------------
// PrimitiveNode: ComfyUI's frontend-only node whose one widget drives the widgets it is linked to.
// The converter drops its links, so its value must already sit in the targets' widget values.

export const PRIMITIVE = 'PrimitiveNode';

/** The widget (class and definition) a primitive node drives: that of its first linked target. */
export function primitiveTarget(
  doc: WorkflowDoc,
  node: DocNode,
  info: ObjectInfo,
): { spec: unknown[]; name: string; type: string } | undefined {
  const links = linkMap(doc);
  for (const l of node.outputs[0]?.links ?? []) {
    const link = links.get(l);
    const tgt = link && doc.nodes.find((n) => n.id === link[3]);
    const inp = tgt && link ? tgt.inputs[link[4]] : undefined;
    const ci = tgt && info[tgt.type];
    if (!inp?.widget || !ci) continue;
    const spec = ({ ...(ci.input.required ?? {}), ...(ci.input.optional ?? {}) } as Record<string, unknown[]>)[inp.widget.name];
    if (spec) return { spec, name: inp.widget.name, type: inp.type };
  }
  return undefined;
}

/** Copies each primitive node's value into the widgets it drives, as ComfyUI's frontend does before queueing. */
export function applyPrimitives(doc: WorkflowDoc, info: ObjectInfo): WorkflowDoc {
  const prims = doc.nodes.filter((n) => n.type === PRIMITIVE && n.widgets_values?.length && n.mode !== 2 && n.mode !== 4);
  if (!prims.length) return doc;
  const links = linkMap(doc);
  let d = doc;
  for (const p of prims) {
    for (const l of p.outputs[0]?.links ?? []) {
      const link = links.get(l);
      if (!link) continue;
      d = updateNode(d, link[3], (n) => {
        const name = n.inputs[link[4]]?.widget?.name;
        const ci = info[n.type];
        const w = name && ci ? widgetDefs(ci).find((x) => x.name === name) : undefined;
        if (!w || n.widgets_values?.[w.index] === p.widgets_values[0]) return n;
        const values = [...(n.widgets_values ?? [])];
        values[w.index] = p.widgets_values[0];
        return { ...n, widgets_values: values };
      });
    }
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// Groups: titled, coloured frames. A group owns the nodes whose top-left corner lies inside it.

/** LiteGraph's group colour palette (ComfyUI's "groupcolor" values). */
export const GROUP_COLORS = ['#3f789e', '#a88', '#b06634', '#8a8', '#88a', '#8aa', '#a1309b', '#b58b2a', '#444'];
const GROUP_PAD = 10;
const GROUP_TITLE = 34;

/** A bounding box around the given rectangles with room for the group's title bar. */
export function groupBounds(rects: { x: number; y: number; w: number; h: number }[]): [number, number, number, number] {
  const x0 = Math.min(...rects.map((r) => r.x)) - GROUP_PAD;
  const y0 = Math.min(...rects.map((r) => r.y)) - GROUP_PAD - GROUP_TITLE;
  const x1 = Math.max(...rects.map((r) => r.x + r.w)) + GROUP_PAD;
  const y1 = Math.max(...rects.map((r) => r.y + r.h)) + GROUP_PAD;
  return [Math.round(x0), Math.round(y0), Math.round(x1 - x0), Math.round(y1 - y0)];
}

export function addGroup(doc: WorkflowDoc, bounding: [number, number, number, number], title = 'Group'): WorkflowDoc {
  const id = Math.max(0, ...doc.groups.map((g) => g.id ?? 0)) + 1;
  return { ...doc, groups: [...doc.groups, { id, title, bounding, color: GROUP_COLORS[0], font_size: 24 }] };
}

export function updateGroup(doc: WorkflowDoc, index: number, patch: Partial<DocGroup>): WorkflowDoc {
  const g = doc.groups[index];
  if (!g || Object.entries(patch).every(([k, v]) => (g as unknown as Record<string, unknown>)[k] === v)) return doc;
  return { ...doc, groups: doc.groups.map((x, i) => (i === index ? { ...x, ...patch } : x)) };
}

/** Removes groups only; their nodes stay, as in ComfyUI. */
export function removeGroups(doc: WorkflowDoc, indices: ReadonlySet<number>): WorkflowDoc {
  return indices.size ? { ...doc, groups: doc.groups.filter((_, i) => !indices.has(i)) } : doc;
}

// Synthesised entries must keep their identity between renders, so they are cached by the spec they copy.
const primitiveEntries = new WeakMap<unknown[], ObjectInfoEntry>();
const UNLINKED_PRIMITIVE = primitiveEntryFor(undefined);

function primitiveEntryFor(target: { spec: unknown[]; name: string; type: string } | undefined): ObjectInfoEntry {
  return {
    input: { required: target ? { [target.name]: target.spec as ObjectInfoEntry['input']['required'][string] } : {} },
    input_order: { required: target ? [target.name] : [] },
    is_input_list: false,
    output: [target?.type ?? '*'],
    output_is_list: [false],
    output_name: ['connect to widget input'],
    name: PRIMITIVE,
    display_name: 'Primitive',
    description: '',
    python_module: 'frontend',
    category: 'utils',
    output_node: false,
    has_intermediate_output: false,
    search_aliases: [],
  };
}

/** An object_info-like entry for a primitive node, whose one widget mirrors the widget it drives. */
export function primitiveEntry(doc: WorkflowDoc, node: DocNode, info: ObjectInfo): ObjectInfoEntry {
  const target = primitiveTarget(doc, node, info);
  if (!target) return UNLINKED_PRIMITIVE;
  let e = primitiveEntries.get(target.spec);
  if (!e) primitiveEntries.set(target.spec, (e = primitiveEntryFor(target)));
  return e;
}

/** What Ctrl+C keeps: the selected nodes and the links running between them. */
export interface Clip {
  nodes: DocNode[];
  links: DocLink[];
}

export function copyNodes(doc: WorkflowDoc, ids: ReadonlySet<number>): Clip {
  return {
    nodes: structuredClone(doc.nodes.filter((n) => ids.has(n.id))),
    links: doc.links.filter((l) => ids.has(l[1]) && ids.has(l[3])),
  };
}

/** Pastes a clip offset by `offset` under new ids, relinking the copies among themselves; returns the new ids too. */
export function pasteNodes(doc: WorkflowDoc, clip: Clip, offset: [number, number]): { doc: WorkflowDoc; ids: number[] } {
  const idMap = new Map<number, number>();
  let next = doc;
  for (const n of clip.nodes) {
    const id = next.last_node_id + 1;
    idMap.set(n.id, id);
    const copy: DocNode = {
      ...structuredClone(n),
      id,
      pos: [n.pos[0] + offset[0], n.pos[1] + offset[1]],
      order: next.nodes.length,
      inputs: n.inputs.map((i) => ({ ...i, link: null })),
      outputs: n.outputs.map((o) => ({ ...o, links: [] })),
    };
    next = { ...next, last_node_id: id, nodes: [...next.nodes, copy] };
  }
  for (const [, o, os, t, ts] of clip.links) next = connect(next, idMap.get(o)!, os, idMap.get(t)!, ts).doc;
  return { doc: next, ids: [...idMap.values()] };
}
