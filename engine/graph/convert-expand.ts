/**
 * Subgraph instances and legacy group nodes expanded into one flat UI workflow, as ComfyUI's frontend
 * does before it builds the API prompt (`ExecutableNodeDTO`, `SubgraphNode.getInnerNodes`,
 * `ExecutableGroupNodeDTO`): an inner node's id is the path of instance ids and its own id joined by
 * `:`; links through subgraph inputs and outputs are followed to the real node on the other side; an
 * unlinked subgraph input with a promoted widget gives that widget's value to the inner input.
 * Reroutes, bypassed and muted nodes stay in the flat graph; the flat conversion resolves them.
 */
import type { ObjectInfo } from '../registry/registry.ts';
import { groupNodeLayout, groupNodeName, type GroupNodeLayout } from './convert-group-nodes.ts';
import { WorkflowFormatError, readLinks, readRawNodes, type RawInput, type RawNode, type UiLink } from './convert-read.ts';
import { widgetDefs } from './widgets.ts';

/** The frontend's ids of a subgraph's input and output nodes, as links inside a definition name them. */
export const SUBGRAPH_INPUT_ID = '-10';
export const SUBGRAPH_OUTPUT_ID = '-20';

interface SubgraphSlot {
  name: string;
  type?: string;
  linkIds?: number[];
}
interface SubgraphDef {
  id: string;
  name?: string;
  nodes: RawNode[];
  links: Map<number, UiLink>;
  inputs: SubgraphSlot[];
  outputs: SubgraphSlot[];
}

export type { RawNode } from './convert-read.ts';

/** Where an input's value comes from once instances are expanded: a flat node's output, or a widget value. */
type Source = { kind: 'link'; node: string | number; slot: number; type: string } | { kind: 'value'; value: unknown };

interface Scope {
  /** Instance ids from the root to this graph ([] for the root graph). */
  path: string[];
  nodes: RawNode[];
  byId: Map<string, RawNode>;
  links: Map<number, UiLink>;
  def?: SubgraphDef;
  /** Source of the containing instance's input at a slot. */
  input?: (slot: number) => Source | undefined;
  /** Subgraph ids being expanded on the way here (recursion guard). */
  defs: string[];
  /** Widget values an instance's legacy `proxyWidgets` gives its inner nodes: node id → widget → value. */
  proxied?: Map<string, Map<string, unknown>>;
}

const asNodes = (v: unknown, where: string): RawNode[] => readRawNodes(v, where, true);

function readDefinitions(wf: Record<string, unknown>): Map<string, SubgraphDef> {
  const out = new Map<string, SubgraphDef>();
  const list = (wf.definitions as { subgraphs?: unknown } | undefined)?.subgraphs;
  if (list === undefined || list === null) return out;
  if (!Array.isArray(list)) throw new WorkflowFormatError('definitions.subgraphs must be a list');
  list.forEach((raw, i) => {
    if (typeof raw !== 'object' || raw === null) throw new WorkflowFormatError(`definitions.subgraphs[${i}] is not an object`);
    const d = raw as Record<string, unknown>;
    if (typeof d.id !== 'string') throw new WorkflowFormatError(`definitions.subgraphs[${i}] has no id`);
    const where = `subgraph ${d.id}${typeof d.name === 'string' ? ` (${d.name})` : ''}`;
    const slots = (v: unknown, what: string): SubgraphSlot[] => {
      if (v === undefined || v === null) return [];
      if (!Array.isArray(v)) throw new WorkflowFormatError(`${where}: ${what} must be a list`);
      return v.map((s) => {
        const o = (s ?? {}) as Record<string, unknown>;
        return {
          name: String(o.name ?? ''),
          type: typeof o.type === 'string' ? o.type : undefined,
          linkIds: Array.isArray(o.linkIds) ? o.linkIds.filter((x): x is number => typeof x === 'number') : undefined,
        };
      });
    };
    out.set(d.id, {
      id: d.id,
      name: typeof d.name === 'string' ? d.name : undefined,
      nodes: asNodes(d.nodes ?? [], where),
      links: readLinks(d.links),
      inputs: slots(d.inputs, 'inputs'),
      outputs: slots(d.outputs, 'outputs'),
    });
  });
  return out;
}

/** An instance's legacy `properties.proxyWidgets` ([source node id, widget name] per promoted widget), if it has one. */
function proxyEntries(n: RawNode): [string, string][] | undefined {
  const raw = (n.properties as { proxyWidgets?: unknown } | undefined)?.proxyWidgets;
  if (!Array.isArray(raw) || raw.length === 0) return undefined;
  return raw.map((e) => (Array.isArray(e) ? [String(e[0]), String(e[1])] : ['', '']));
}

function proxiedValues(n: RawNode): Map<string, Map<string, unknown>> | undefined {
  const entries = proxyEntries(n);
  if (!entries) return undefined;
  const wv = Array.isArray(n.widgets_values) ? n.widgets_values : [];
  const out = new Map<string, Map<string, unknown>>();
  entries.forEach(([node, name], i) => {
    if (node === '-1' || node === '' || wv[i] === undefined || wv[i] === null) return;
    const m = out.get(node) ?? new Map<string, unknown>();
    m.set(name, wv[i]);
    out.set(node, m);
  });
  return out;
}

export interface ExpandResult {
  /** The flat workflow (a copy; the input is not changed): `nodes` and 0.4 `links` lists. */
  workflow: Record<string, unknown>;
  warnings: string[];
}

/** Whether a workflow has anything to expand (subgraph instances or group nodes). */
export function hasNestedGraphs(workflow: Record<string, unknown>): boolean {
  const defs = (workflow.definitions as { subgraphs?: unknown[] } | undefined)?.subgraphs;
  const groups = (workflow.extra as { groupNodes?: Record<string, unknown> } | undefined)?.groupNodes;
  return (Array.isArray(defs) && defs.length > 0) || (!!groups && Object.keys(groups).length > 0);
}

/** The flat workflow the frontend executes: subgraph instances and group nodes replaced by their inner nodes. */
export function expandWorkflow(workflow: Record<string, unknown>, objectInfo: ObjectInfo): ExpandResult {
  return new Expander(workflow, objectInfo).run();
}

class Expander {
  private readonly defs: Map<string, SubgraphDef>;
  private readonly groups: Record<string, unknown>;
  private readonly layouts = new Map<string, GroupNodeLayout | null>();
  private readonly children = new Map<string, Scope>();
  private readonly outNodes: RawNode[] = [];
  private readonly outLinks: [number, string | number, number, string | number, number, string][] = [];
  private nextLink: number;
  private readonly warnings: string[] = [];
  private readonly root: Scope;

  constructor(
    private readonly wf: Record<string, unknown>,
    private readonly info: ObjectInfo,
  ) {
    this.defs = readDefinitions(wf);
    const groups = (wf.extra as { groupNodes?: unknown } | undefined)?.groupNodes;
    this.groups = typeof groups === 'object' && groups !== null && !Array.isArray(groups) ? (groups as Record<string, unknown>) : {};
    const nodes = asNodes(wf.nodes, 'workflow');
    const links = readLinks(wf.links);
    this.root = { path: [], nodes, byId: new Map(nodes.map((n) => [String(n.id), n])), links, defs: [] };
    const lastLink = typeof wf.last_link_id === 'number' ? wf.last_link_id : 0;
    this.nextLink = Math.max(lastLink, ...links.keys(), 0) + 1;
  }

  run(): ExpandResult {
    this.emitScope(this.root);
    const byId = new Map(this.outNodes.map((n) => [String(n.id), n]));
    for (const n of this.outNodes) for (const o of n.outputs ?? []) o.links = [];
    for (const [id, origin, slot] of this.outLinks) {
      const out = byId.get(String(origin))?.outputs?.[slot];
      if (out) (out.links ??= []).push(id);
    }
    const { definitions: _d, ...rest } = this.wf;
    const extra = { ...((this.wf.extra as Record<string, unknown> | undefined) ?? {}) };
    delete extra.groupNodes;
    return {
      workflow: { ...rest, nodes: this.outNodes, links: this.outLinks, last_link_id: this.nextLink - 1, extra },
      warnings: this.warnings,
    };
  }

  private flatId(scope: Scope, id: string | number): string | number {
    return scope.path.length ? [...scope.path, String(id)].join(':') : id;
  }

  private isInstance(n: RawNode): boolean {
    return this.defs.has(n.type);
  }

  private layout(n: RawNode): GroupNodeLayout | null {
    const name = groupNodeName(n.type);
    if (name === undefined || !(name in this.groups)) return null;
    if (!this.layouts.has(name)) {
      const l = groupNodeLayout(name, this.groups[name], this.info);
      for (const t of l?.missing ?? []) this.warnings.push(`group node ${name} uses ${t}, which is not installed`);
      this.layouts.set(name, l);
    }
    return this.layouts.get(name) ?? null;
  }

  /** Whether links out of this instance lead into its definition (else the instance stays as a bypassed or muted node). */
  private expandsOutputs(scope: Scope, n: RawNode): boolean {
    const mode = n.mode ?? 0;
    // A muted instance inside a subgraph still runs: the frontend applies an instance's mode only at the top level.
    return mode !== 4 && !(scope.path.length === 0 && mode === 2);
  }

  private child(scope: Scope, n: RawNode): Scope {
    const key = String(this.flatId(scope, n.id));
    const known = this.children.get(key);
    if (known) return known;
    const def = this.defs.get(n.type)!;
    if (scope.defs.includes(def.id)) {
      throw new WorkflowFormatError(`subgraph ${def.id} contains itself (node ${key}: ${[...scope.defs, def.id].join(' > ')})`);
    }
    const memo = new Map<number, Source | undefined>();
    const child: Scope = {
      path: [...scope.path, String(n.id)],
      nodes: def.nodes,
      byId: new Map(def.nodes.map((x) => [String(x.id), x])),
      links: def.links,
      def,
      defs: [...scope.defs, def.id],
      proxied: proxiedValues(n),
      input: (slot) => {
        if (!memo.has(slot)) {
          memo.set(slot, undefined);
          memo.set(slot, this.instanceInput(scope, n, def, slot));
        }
        return memo.get(slot);
      },
    };
    this.children.set(key, child);
    return child;
  }

  /** The instance's input slot: what is linked to it outside, else its promoted widget's value. */
  private instanceInput(scope: Scope, n: RawNode, def: SubgraphDef, slot: number): Source | undefined {
    const slotDef = def.inputs[slot];
    if (!slotDef) throw new WorkflowFormatError(`subgraph ${def.id} has no input ${slot} (node ${String(this.flatId(scope, n.id))})`);
    const inputs = n.inputs ?? [];
    const input = inputs[slot]?.name === slotDef.name ? inputs[slot] : (inputs.find((i) => i.name === slotDef.name) ?? inputs[slot]);
    if (input && input.link !== null && input.link !== undefined) return this.sourceOf(scope, input.link);
    return this.promotedValue(n, def, slot);
  }

  /** A subgraph input that feeds a widget input inside is shown as a widget on the instance (one value each, in input order). */
  private promotedValue(n: RawNode, def: SubgraphDef, slot: number): Source | undefined {
    const proxies = proxyEntries(n);
    if (proxies) {
      // Saved with legacy proxy widgets: values follow the proxy list, a subgraph input's entry is ["-1", name].
      const at = proxies.findIndex(([node, name]) => node === '-1' && name === def.inputs[slot]?.name);
      const value = at < 0 ? this.interiorWidget(def, slot)?.value : (n.widgets_values as unknown[] | undefined)?.[at];
      return value === undefined ? undefined : { kind: 'value', value };
    }
    const promoted = def.inputs
      .map((_, i) => this.interiorWidget(def, i))
      .map((w, i) => ({ i, w }))
      .filter((x) => x.w);
    const at = promoted.findIndex((x) => x.i === slot);
    if (at < 0) return undefined;
    const wv = Array.isArray(n.widgets_values) ? n.widgets_values : [];
    // Older saves kept a control_after_generate value after each seed-like widget; skip those when present.
    const withControls = wv.length > promoted.length;
    let index = 0;
    for (let k = 0; k < at; k++) index += withControls && promoted[k].w!.control ? 2 : 1;
    const value = wv[index] !== undefined ? wv[index] : promoted[at].w!.value;
    return value === undefined ? undefined : { kind: 'value', value };
  }

  /** The widget an inner node shows for a subgraph input (its current value and whether it has a control widget). */
  private interiorWidget(def: SubgraphDef, slot: number): { value: unknown; control: boolean } | undefined {
    const byId = new Map(def.nodes.map((x) => [String(x.id), x]));
    const ids =
      def.inputs[slot]?.linkIds ??
      [...def.links.values()].filter((l) => l.origin_id === SUBGRAPH_INPUT_ID && l.origin_slot === slot).map((l) => l.id);
    for (const id of ids) {
      const link = def.links.get(id);
      if (!link || link.origin_id !== SUBGRAPH_INPUT_ID) continue;
      const target = byId.get(link.target_id);
      const input = target?.inputs?.[link.target_slot];
      if (!target || !input?.widget) continue;
      const info = this.info[target.type];
      if (!info) return { value: undefined, control: false };
      const defs = widgetDefs(info);
      const w = defs.find((d) => d.name === input.widget!.name && !d.extra);
      if (!w) return { value: undefined, control: false };
      const wv = target.widgets_values;
      const value = Array.isArray(wv) ? wv[w.index] : (wv as Record<string, unknown> | undefined)?.[w.name];
      return { value, control: defs[w.index + 1]?.kind === 'CONTROL' };
    }
    return undefined;
  }

  /** Where a link of a scope really starts once instances and group nodes are expanded. */
  private sourceOf(scope: Scope, linkId: number, depth = 0): Source | undefined {
    if (depth > 512) throw new WorkflowFormatError(`link ${linkId} loops through subgraph inputs and outputs`);
    const link = scope.links.get(linkId);
    if (!link) return undefined;
    if (link.origin_id === SUBGRAPH_INPUT_ID && scope.input) return scope.input(link.origin_slot);
    const origin = scope.byId.get(link.origin_id);
    if (!origin) return undefined;
    if (this.isInstance(origin) && this.expandsOutputs(scope, origin)) {
      const child = this.child(scope, origin);
      const def = child.def!;
      const out = def.outputs[link.origin_slot];
      const inner =
        out?.linkIds?.find((id) => def.links.has(id)) ??
        [...def.links.values()].find((l) => l.target_id === SUBGRAPH_OUTPUT_ID && l.target_slot === link.origin_slot)?.id;
      return inner === undefined ? undefined : this.sourceOf(child, inner, depth + 1);
    }
    if (scope.path.length === 0 && this.isActiveGroup(origin)) {
      const out = this.layout(origin)!.outputs[link.origin_slot];
      if (!out) return undefined;
      return { kind: 'link', node: `${String(origin.id)}:${out.index}`, slot: out.slot, type: link.type };
    }
    return { kind: 'link', node: this.flatId(scope, origin.id), slot: link.origin_slot, type: link.type };
  }

  private isActiveGroup(n: RawNode): boolean {
    const mode = n.mode ?? 0;
    return mode !== 2 && mode !== 4 && this.layout(n) !== null;
  }

  private emitScope(scope: Scope): void {
    for (const n of scope.nodes) {
      if (this.isInstance(n)) {
        const mode = n.mode ?? 0;
        const top = scope.path.length === 0;
        if (!this.expandsOutputs(scope, n)) this.emitNode(scope, n, this.flatId(scope, n.id), (i) => this.linkSource(scope, i));
        if (!(top && (mode === 2 || mode === 4))) this.emitScope(this.child(scope, n));
      } else if (this.layout(n) !== null) {
        if (scope.path.length > 0)
          throw new WorkflowFormatError(`group node ${String(this.flatId(scope, n.id))} inside a subgraph is not supported`);
        if (this.isActiveGroup(n)) this.emitGroup(n);
        else this.emitNode(scope, n, n.id, (i) => this.linkSource(scope, i));
      } else {
        const copy = this.emitNode(scope, n, this.flatId(scope, n.id), (i) => this.linkSource(scope, i));
        const proxied = scope.proxied?.get(String(n.id));
        if (proxied) copy.widgets_values = this.withValues(copy, proxied);
      }
    }
  }

  private linkSource(scope: Scope, input: RawInput): Source | undefined {
    return input.link === null || input.link === undefined ? undefined : this.sourceOf(scope, input.link);
  }

  /** One flat node: a copy of `n` under `id`, its inputs linked to their sources (or given their values). */
  private emitNode(scope: Scope, n: RawNode, id: string | number, source: (input: RawInput, slot: number) => Source | undefined): RawNode {
    const copy: RawNode = { ...n, id };
    const values = new Map<string, unknown>();
    copy.inputs = (n.inputs ?? []).map((input, slot) => {
      const src = source(input, slot);
      if (!src) return { ...input, link: null };
      if (src.kind === 'value') {
        values.set(input.widget?.name ?? input.name, src.value);
        return { ...input, link: null };
      }
      const original = scope.path.length === 0 && input.link !== null ? scope.links.get(input.link) : undefined;
      const reuse =
        original && String(original.origin_id) === String(src.node) && original.origin_slot === src.slot && typeof id === 'number';
      const linkId = reuse ? original.id : this.nextLink++;
      this.outLinks.push([linkId, src.node, src.slot, id, slot, src.type]);
      return { ...input, link: linkId };
    });
    copy.outputs = (n.outputs ?? []).map((o) => ({ ...o }));
    if (values.size) copy.widgets_values = this.withValues(copy, values);
    this.outNodes.push(copy);
    return copy;
  }

  private withValues(n: RawNode, values: Map<string, unknown>): RawNode['widgets_values'] {
    const wv = n.widgets_values;
    if (wv && !Array.isArray(wv)) return { ...wv, ...Object.fromEntries(values) };
    const info = this.info[n.type];
    if (!info) return wv;
    const out = [...(wv ?? [])];
    for (const w of widgetDefs(info)) if (!w.extra && values.has(w.name)) out[w.index] = values.get(w.name);
    return out;
  }

  /** A legacy group node's inner nodes, ids `group:index`, with the instance's widget values. */
  private emitGroup(g: RawNode): void {
    const layout = this.layout(g)!;
    const gid = String(g.id);
    layout.nodes.forEach((inner, index) => {
      const id = `${gid}:${index}`;
      const n: RawNode = { ...inner, id, widgets_values: layout.innerValues(index, g.widgets_values, inner.widgets_values) };
      this.emitNode(this.root, n, id, (_input, slot) => {
        const external = layout.externalInput(index, slot);
        if (external !== undefined) {
          const inputs = g.inputs ?? [];
          const input = inputs.find((i) => i.name === external.name) ?? inputs[external.index];
          return input ? this.linkSource(this.root, input) : undefined;
        }
        const internal = layout.internalLink(index, slot);
        if (!internal) return undefined;
        return { kind: 'link', node: `${gid}:${internal.index}`, slot: internal.slot, type: internal.type };
      });
    });
  }
}

/** The editor's id for a node it shows from inside a subgraph or group node (the execution id stays in its properties). */
export const EXECUTION_ID_PROPERTY = 'Weft execution id';

/**
 * A workflow with subgraphs or group nodes as one flat graph the editor can show: inner nodes get new
 * numeric ids after `last_node_id` (their execution id is kept in `properties`) and are placed at
 * their instance's position. Converting the result gives the same prompt up to those ids.
 */
export function flattenForEditor<T extends Record<string, unknown>>(workflow: T, objectInfo: ObjectInfo): T {
  if (!hasNestedGraphs(workflow)) return workflow;
  const flat = expandWorkflow(workflow, objectInfo).workflow;
  const nodes = flat.nodes as RawNode[];
  const rootPos = new Map<string, [number, number]>();
  for (const n of asNodes(workflow.nodes, 'workflow')) {
    const p = n.pos as unknown;
    if (Array.isArray(p) && typeof p[0] === 'number' && typeof p[1] === 'number') rootPos.set(String(n.id), [p[0], p[1]]);
  }
  let next =
    Math.max(
      typeof workflow.last_node_id === 'number' ? workflow.last_node_id : 0,
      ...nodes.map((n) => (typeof n.id === 'number' ? n.id : 0)),
    ) + 1;
  const ids = new Map<string, number>();
  for (const n of nodes) if (typeof n.id !== 'number') ids.set(String(n.id), next++);
  const idOf = (id: unknown): number | unknown => ids.get(String(id)) ?? id;
  // Each instance's inner nodes keep their layout, moved to where the instance was.
  const byTop = new Map<string, RawNode[]>();
  for (const n of nodes)
    if (typeof n.id !== 'number') byTop.set(String(n.id).split(':')[0], [...(byTop.get(String(n.id).split(':')[0]) ?? []), n]);
  const moved = new Map<RawNode, [number, number]>();
  for (const [top, inner] of byTop) {
    const at = rootPos.get(top) ?? [0, 0];
    const ps = inner.map((n) => (Array.isArray(n.pos) ? (n.pos as number[]) : [0, 0]));
    const minX = Math.min(...ps.map((p) => p[0]));
    const minY = Math.min(...ps.map((p) => p[1]));
    inner.forEach((n, i) => moved.set(n, [at[0] + ps[i][0] - minX, at[1] + ps[i][1] - minY]));
  }
  const out = nodes.map((n) => {
    if (typeof n.id === 'number') return n;
    return {
      ...n,
      id: idOf(n.id),
      pos: moved.get(n) ?? n.pos,
      properties: { ...((n.properties as Record<string, unknown> | undefined) ?? {}), [EXECUTION_ID_PROPERTY]: String(n.id) },
    };
  });
  const links = (flat.links as unknown[][]).map((l) => [l[0], idOf(l[1]), l[2], idOf(l[3]), l[4], l[5]]);
  return { ...flat, nodes: out, links, last_node_id: next - 1 } as unknown as T;
}
