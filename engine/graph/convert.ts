/**
 * UI workflow (ComfyUI editor format, schema 0.4 or 1) → API prompt, following ComfyUI's frontend
 * `graphToPrompt` (comfyui-compat.md §3.4–3.6). Pure: the browser editor imports this same file.
 */
import type { ObjectInfo, ObjectInfoEntry } from '../registry/registry.ts';
import type { ApiPrompt } from './prompt.ts';
import { expandWorkflow, hasNestedGraphs } from './convert-expand.ts';
import { VIRTUAL, WorkflowFormatError, readLinks, readNodes, type UiInput } from './convert-read.ts';
import { alignLegacyWidgetValues, defaultWidgetValue, isWidgetSpec, widgetDefs } from './widgets.ts';

export { WorkflowFormatError } from './convert-read.ts';

export interface ConvertResult {
  prompt: ApiPrompt;
  /** Node classes the object_info lacks, with the ids of the nodes that use them. */
  missing: { class_type: string; node_ids: string[] }[];
  warnings: string[];
}

export class MissingNodeTypesError extends Error {
  constructor(readonly missing: ConvertResult['missing']) {
    super(
      `the workflow uses node types that are not installed: ${missing
        .map((m) => `${m.class_type} (node ${m.node_ids.join(', ')})`)
        .join('; ')}`,
    );
    this.name = 'MissingNodeTypesError';
  }
}

function compatible(a: string, b: string): boolean {
  if (!a || !b || a === '*' || b === '*' || a === b) return true;
  const x = a.split(',');
  const y = b.split(',');
  return x.some((t) => y.includes(t));
}

export function convertWorkflowToPrompt(workflow: unknown, objectInfo: ObjectInfo): ConvertResult {
  if (typeof workflow !== 'object' || workflow === null) throw new WorkflowFormatError('expected an object');
  const raw = workflow as Record<string, unknown>;
  const warnings: string[] = [];
  let wf = raw;
  if (hasNestedGraphs(raw)) {
    const expanded = expandWorkflow(raw, objectInfo);
    wf = expanded.workflow;
    warnings.push(...expanded.warnings);
  }
  const nodes = readNodes(wf.nodes);
  const links = readLinks(wf.links);
  const byId = new Map(nodes.map((n) => [n.id, n]));

  /** Where a link really comes from, through reroutes and bypassed nodes; undefined = omitted. */
  const resolve = (linkId: number, wanted: string, depth = 0): [string, number] | undefined => {
    if (depth > 256) throw new WorkflowFormatError(`link ${linkId} loops through reroutes or bypassed nodes`);
    const link = links.get(linkId);
    if (!link) return undefined;
    const origin = byId.get(link.origin_id);
    if (!origin) return undefined;
    if (origin.mode === 2) return undefined;
    if (origin.type === 'Reroute') {
      const l = origin.inputs[0]?.link;
      return l === null || l === undefined ? undefined : resolve(l, wanted, depth + 1);
    }
    if (VIRTUAL.has(origin.type)) return undefined;
    if (origin.mode === 4) {
      const outType = origin.outputs[link.origin_slot]?.type ?? link.type;
      const ins = origin.inputs;
      let pick: UiInput | undefined;
      const same = ins[link.origin_slot];
      if (!wanted || wanted === '*') pick = same ?? ins[0];
      else if (same && compatible(same.type, outType) && compatible(same.type, wanted)) pick = same;
      else pick = ins.find((i) => i.type === wanted) ?? ins.find((i) => compatible(i.type, outType) && compatible(i.type, wanted));
      if (!pick || pick.link === null) return undefined;
      return resolve(pick.link, wanted, depth + 1);
    }
    return [origin.id, link.origin_slot];
  };

  const prompt: ApiPrompt = {};
  const missing = new Map<string, string[]>();
  for (const node of nodes) {
    if (node.mode === 2 || node.mode === 4 || VIRTUAL.has(node.type)) continue;
    const info: ObjectInfoEntry | undefined = objectInfo[node.type];
    if (!info) {
      missing.set(node.type, [...(missing.get(node.type) ?? []), node.id]);
      continue;
    }
    const inputs: Record<string, unknown> = {};
    const widgets = widgetDefs(info);
    const wv = Array.isArray(node.widgets_values) ? alignLegacyWidgetValues(widgets, node.widgets_values) : node.widgets_values;
    for (const w of widgets) {
      if (w.extra) continue;
      let value: unknown;
      if (Array.isArray(wv)) value = wv[w.index];
      else if (wv && typeof wv === 'object') value = (wv as Record<string, unknown>)[w.name];
      if (value === undefined || value === null) value = defaultWidgetValue(w);
      inputs[w.name] = Array.isArray(value) ? { __value__: value } : value;
    }
    const specs = { ...(info.input.required ?? {}), ...(info.input.optional ?? {}) };
    for (const inp of node.inputs) {
      if (inp.link === null) continue;
      const spec = specs[inp.name] as unknown[] | undefined;
      const wanted = spec ? (Array.isArray(spec[0]) ? 'COMBO' : String(spec[0])) : inp.type;
      const src = resolve(inp.link, wanted);
      if (src) inputs[inp.name] = src;
      else if (spec && !isWidgetSpec(spec)) delete inputs[inp.name];
    }
    prompt[node.id] = { inputs, class_type: node.type, _meta: { title: node.title ?? info.display_name } };
  }
  // A link to a node that did not make it into the prompt (missing class) is dropped, as the frontend does.
  for (const n of Object.values(prompt)) {
    for (const [k, v] of Object.entries(n.inputs)) {
      if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && !prompt[v[0]]) delete n.inputs[k];
    }
  }
  return { prompt, missing: [...missing].map(([class_type, node_ids]) => ({ class_type, node_ids })), warnings };
}

export function convertOrThrow(workflow: unknown, objectInfo: ObjectInfo): ApiPrompt {
  const r = convertWorkflowToPrompt(workflow, objectInfo);
  if (r.missing.length) throw new MissingNodeTypesError(r.missing);
  return r.prompt;
}

/**
 * API prompt → a UI workflow (0.4) with nodes laid out in columns by depth, so an API-format file
 * opens in the editor. Unknown classes keep their linked inputs as untyped sockets.
 */
export function promptToWorkflow(prompt: Record<string, unknown>, objectInfo: ObjectInfo): Record<string, unknown> {
  const entries = Object.entries(prompt as ApiPrompt);
  const idMap = new Map<string, number>();
  entries.forEach(([id], i) => idMap.set(id, /^\d+$/.test(id) ? Number(id) : 100000 + i));
  const depth = new Map<string, number>();
  const depthOf = (id: string, seen: Set<string> = new Set()): number => {
    if (depth.has(id)) return depth.get(id)!;
    if (seen.has(id) || !(prompt as ApiPrompt)[id]) return 0;
    seen.add(id);
    let d = 0;
    for (const v of Object.values((prompt as ApiPrompt)[id].inputs)) {
      if (Array.isArray(v) && v.length === 2) d = Math.max(d, depthOf(String(v[0]), seen) + 1);
    }
    depth.set(id, d);
    return d;
  };
  const rows = new Map<number, number>();
  const links: unknown[][] = [];
  const outLinks = new Map<string, number[][]>();
  const nodes = entries.map(([id, node]) => {
    const info = objectInfo[node.class_type];
    const d = depthOf(id);
    const row = rows.get(d) ?? 0;
    rows.set(d, row + 1);
    const widgets = info ? widgetDefs(info) : [];
    const inputs: Record<string, unknown>[] = [];
    const specs = info ? { ...(info.input.required ?? {}), ...(info.input.optional ?? {}) } : {};
    const order = info ? [...(info.input_order.required ?? []), ...(info.input_order.optional ?? [])] : Object.keys(node.inputs);
    for (const name of order) {
      const v = node.inputs[name];
      const spec = specs[name] as unknown[] | undefined;
      const isLinkVal = Array.isArray(v) && v.length === 2;
      const widget = spec ? isWidgetSpec(spec) : false;
      if (!widget || isLinkVal) {
        const type = spec ? (Array.isArray(spec[0]) ? 'COMBO' : String(spec[0])) : '*';
        const inp: Record<string, unknown> = { name, type, link: null };
        if (widget) inp.widget = { name };
        if (isLinkVal) {
          const linkId = links.length + 1;
          const [src, slot] = v as [string, number];
          const srcType = objectInfo[(prompt as ApiPrompt)[String(src)]?.class_type]?.output[slot] ?? type;
          links.push([linkId, idMap.get(String(src)) ?? -1, slot, idMap.get(id)!, inputs.length, srcType]);
          inp.link = linkId;
          const list = outLinks.get(String(src)) ?? [];
          list.push([slot, linkId]);
          outLinks.set(String(src), list);
        }
        inputs.push(inp);
      }
    }
    const widgets_values = widgets.map((w) => {
      if (w.extra) return w.name === 'control_after_generate' ? 'fixed' : defaultWidgetValue(w);
      const v = node.inputs[w.name];
      if (v === undefined || (Array.isArray(v) && v.length === 2)) return defaultWidgetValue(w);
      return typeof v === 'object' && v !== null && '__value__' in v ? (v as { __value__: unknown }).__value__ : v;
    });
    return {
      id: idMap.get(id)!,
      type: node.class_type,
      pos: [40 + d * 380, 40 + row * 260],
      size: [320, 100 + widgets.length * 26],
      flags: {},
      order: d,
      mode: 0,
      title: node._meta?.title,
      inputs,
      outputs: (info?.output ?? []).map((t, i) => ({ name: info!.output_name[i] ?? t, type: t, links: [] as number[], slot_index: i })),
      properties: { 'Node name for S&R': node.class_type },
      widgets_values,
    };
  });
  for (const n of nodes) {
    const srcId = [...idMap].find(([, v]) => v === n.id)?.[0];
    for (const [slot, linkId] of outLinks.get(srcId ?? '') ?? []) n.outputs[slot]?.links.push(linkId);
  }
  return {
    last_node_id: Math.max(0, ...nodes.map((n) => n.id)),
    last_link_id: links.length,
    nodes,
    links,
    groups: [],
    config: {},
    extra: { ds: { scale: 1, offset: [0, 0] } },
    version: 0.4,
  };
}
