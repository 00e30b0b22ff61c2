/** The UI workflow's nodes and links as the converter reads them (schema 0.4 lists or v1 objects). */

export interface UiInput {
  name: string;
  type: string;
  link: number | null;
  widget?: { name: string };
}
export interface UiOutput {
  name?: string;
  type: string;
  links?: number[] | null;
}
export interface UiNode {
  id: string;
  type: string;
  mode: number;
  title?: string;
  inputs: UiInput[];
  outputs: UiOutput[];
  widgets_values?: unknown[] | Record<string, unknown>;
}
export interface UiLink {
  id: number;
  origin_id: string;
  origin_slot: number;
  target_id: string;
  target_slot: number;
  type: string;
}

/** Nodes that only exist in the editor. */
export const VIRTUAL = new Set(['Reroute', 'PrimitiveNode', 'Note', 'MarkdownNote']);

export class WorkflowFormatError extends Error {
  constructor(message: string) {
    super(`invalid workflow: ${message}`);
    this.name = 'WorkflowFormatError';
  }
}

export function num(v: unknown, what: string): number {
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new WorkflowFormatError(`${what} is not a number (${JSON.stringify(v)})`);
  return n;
}

export function readLinks(raw: unknown): Map<number, UiLink> {
  const out = new Map<number, UiLink>();
  if (raw === undefined || raw === null) return out;
  // Subgraph definitions have been saved with links as an object keyed by id.
  const list = Array.isArray(raw) ? raw : typeof raw === 'object' ? Object.values(raw as Record<string, unknown>) : undefined;
  if (!list) throw new WorkflowFormatError('links must be a list');
  list.forEach((l, i) => {
    if (l === null) return;
    let link: UiLink;
    if (Array.isArray(l)) {
      link = {
        id: num(l[0], `links[${i}][0]`),
        origin_id: String(l[1]),
        origin_slot: num(l[2], `links[${i}][2]`),
        target_id: String(l[3]),
        target_slot: num(l[4], `links[${i}][4]`),
        type: String(l[5] ?? '*'),
      };
    } else if (typeof l === 'object') {
      const o = l as Record<string, unknown>;
      link = {
        id: num(o.id, `links[${i}].id`),
        origin_id: String(o.origin_id),
        origin_slot: num(o.origin_slot, `links[${i}].origin_slot`),
        target_id: String(o.target_id),
        target_slot: num(o.target_slot, `links[${i}].target_slot`),
        type: String(o.type ?? '*'),
      };
    } else {
      throw new WorkflowFormatError(`links[${i}] is neither a list nor an object`);
    }
    out.set(link.id, link);
  });
  return out;
}

export function readNodes(raw: unknown): UiNode[] {
  if (!Array.isArray(raw)) throw new WorkflowFormatError('nodes must be a list');
  return raw.map((n, i) => {
    if (typeof n !== 'object' || n === null) throw new WorkflowFormatError(`nodes[${i}] is not an object`);
    const o = n as Record<string, unknown>;
    if (o.id === undefined || o.id === null) throw new WorkflowFormatError(`nodes[${i}] has no id`);
    if (typeof o.type !== 'string') throw new WorkflowFormatError(`node ${String(o.id)} has no type`);
    const inputs = Array.isArray(o.inputs) ? (o.inputs as Record<string, unknown>[]) : [];
    const outputs = Array.isArray(o.outputs) ? (o.outputs as Record<string, unknown>[]) : [];
    return {
      id: String(o.id),
      type: o.type,
      mode: typeof o.mode === 'number' ? o.mode : 0,
      title: typeof o.title === 'string' ? o.title : undefined,
      inputs: inputs.map((x) => ({
        name: String(x.name),
        type: String(x.type ?? '*'),
        link: x.link === null || x.link === undefined ? null : num(x.link, `node ${String(o.id)} input ${String(x.name)} link`),
        widget: typeof x.widget === 'object' && x.widget !== null ? { name: String((x.widget as { name?: unknown }).name) } : undefined,
      })),
      outputs: outputs.map((x) => ({ name: x.name as string | undefined, type: String(x.type ?? '*'), links: x.links as number[] | null })),
      widgets_values: o.widgets_values as UiNode['widgets_values'],
    };
  });
}

/** A node as saved, kept whole so an expanded workflow still opens in the editor. */
export type RawNode = Record<string, unknown> & {
  id: string | number;
  type: string;
  mode?: number;
  inputs?: RawInput[];
  outputs?: RawOutput[];
  widgets_values?: unknown[] | Record<string, unknown>;
};
export interface RawInput {
  name: string;
  type?: string;
  link: number | null;
  widget?: { name: string };
  [k: string]: unknown;
}
export interface RawOutput {
  name?: string;
  type?: string;
  links?: number[] | null;
  [k: string]: unknown;
}

/** Saved nodes, checked enough that expanding them cannot fail on their shape (ids optional inside group nodes). */
export function readRawNodes(v: unknown, where: string, needId: boolean): RawNode[] {
  if (!Array.isArray(v)) throw new WorkflowFormatError(`${where}: nodes must be a list`);
  return v.map((n, i) => {
    if (typeof n !== 'object' || n === null) throw new WorkflowFormatError(`${where}: nodes[${i}] is not an object`);
    const o = n as RawNode;
    if (needId && (o.id === undefined || o.id === null)) throw new WorkflowFormatError(`${where}: nodes[${i}] has no id`);
    const name = `${where}: node ${String(o.id ?? i)}`;
    if (typeof o.type !== 'string') throw new WorkflowFormatError(`${name} has no type`);
    for (const key of ['inputs', 'outputs'] as const) {
      const slots = o[key] as unknown;
      if (slots === undefined || slots === null) continue;
      if (!Array.isArray(slots)) throw new WorkflowFormatError(`${name}: ${key} must be a list`);
      slots.forEach((x, k) => {
        if (typeof x !== 'object' || x === null || Array.isArray(x))
          throw new WorkflowFormatError(`${name}: ${key}[${k}] is not an object`);
      });
    }
    return o;
  });
}
