/**
 * Widgets turned into input sockets, as ComfyUI files hold them. Frontends before 1.16 listed a node's
 * converted widgets among its inputs (`{ name, type, link, widget: { name } }`) and only those; since
 * 1.16 every widget is listed there, unlinked until a link arrives, and there is no conversion. So a
 * node that lists every widget has none converted, and on any other node each listed widget is one.
 */
import type { ObjectInfoEntry } from '../../engine/registry/registry.ts';
import {
  ensureWidgetInput,
  removeLink,
  updateNode,
  widgetDefs,
  type DocInput,
  type DocNode,
  type WidgetDef,
  type WorkflowDoc,
} from './doc.ts';

/** The widgets that can take a link (not the values the frontend adds, such as control_after_generate). */
export function linkableWidgets(defs: readonly WidgetDef[]): WidgetDef[] {
  return defs.filter((w) => !w.extra);
}

/** The socket type of a widget's input, as the frontend writes it. */
export function widgetInputType(w: WidgetDef): string {
  return w.kind === 'COMBO' ? 'COMBO' : w.kind;
}

function listsEveryWidget(node: DocNode, defs: readonly WidgetDef[]): boolean {
  const listed = new Set(node.inputs.flatMap((i) => (i.widget ? [i.widget.name] : [])));
  return linkableWidgets(defs).every((w) => listed.has(w.name));
}

/** Names of the node's widgets converted to inputs (shown as sockets even while unlinked). */
export function convertedWidgets(node: DocNode, defs: readonly WidgetDef[]): Set<string> {
  if (listsEveryWidget(node, defs)) return new Set();
  return new Set(node.inputs.flatMap((i) => (i.widget ? [i.widget.name] : [])));
}

/** Keeps the node's inputs that `keep` accepts and renumbers the slots its incoming links name. */
function keepInputs(doc: WorkflowDoc, nodeId: number, keep: (i: DocInput) => boolean): WorkflowDoc {
  const node = doc.nodes.find((n) => n.id === nodeId);
  if (!node || node.inputs.every(keep)) return doc;
  const slotOf = new Map<number, number>();
  node.inputs.forEach((inp, i) => keep(inp) && slotOf.set(i, slotOf.size));
  return {
    ...updateNode(doc, nodeId, (n) => ({ ...n, inputs: n.inputs.filter(keep) })),
    links: doc.links.map((l) => (l[3] === nodeId && slotOf.get(l[4]) !== l[4] ? [l[0], l[1], l[2], l[3], slotOf.get(l[4])!, l[5]] : l)),
  };
}

/**
 * The widget as an input socket. On a node listing every widget the other unlinked entries go first:
 * they carry nothing (ComfyUI rebuilds them), and kept they would all read as converted.
 */
export function convertWidgetToInput(doc: WorkflowDoc, nodeId: number, name: string, info: ObjectInfoEntry): WorkflowDoc {
  const node = doc.nodes.find((n) => n.id === nodeId);
  const defs = widgetDefs(info);
  const w = linkableWidgets(defs).find((x) => x.name === name);
  if (!node || !w) return doc;
  const d = listsEveryWidget(node, defs) ? keepInputs(doc, nodeId, (i) => !i.widget || i.link !== null || i.widget.name === name) : doc;
  return ensureWidgetInput(d, nodeId, name, widgetInputType(w)).doc;
}

/** The converted input back to its widget (its link, if any, removed). */
export function convertInputToWidget(doc: WorkflowDoc, nodeId: number, name: string): WorkflowDoc {
  const inp = doc.nodes.find((n) => n.id === nodeId)?.inputs.find((i) => i.widget?.name === name);
  if (!inp) return doc;
  const d = inp.link !== null ? removeLink(doc, inp.link) : doc;
  return keepInputs(d, nodeId, (i) => i.widget?.name !== name);
}

/**
 * Before a link is dropped on a widget of a node without converted widgets: every widget is listed, as
 * ComfyUI since 1.16 saves them, so removing the link later brings the widget back instead of leaving
 * a converted socket.
 */
export function listWidgetsBeforeLink(doc: WorkflowDoc, nodeId: number, info: ObjectInfoEntry): WorkflowDoc {
  const node = doc.nodes.find((n) => n.id === nodeId);
  const defs = widgetDefs(info);
  if (!node || convertedWidgets(node, defs).size) return doc;
  const listed = new Set(node.inputs.flatMap((i) => (i.widget ? [i.widget.name] : [])));
  const added: DocInput[] = linkableWidgets(defs)
    .filter((w) => !listed.has(w.name))
    .map((w) => ({ name: w.name, type: widgetInputType(w), link: null, widget: { name: w.name } }));
  return added.length ? updateNode(doc, nodeId, (n) => ({ ...n, inputs: [...n.inputs, ...added] })) : doc;
}
