import type { ObjectInfo, ObjectInfoEntry } from '../../engine/registry/registry.ts';
import { PRIMITIVE, primitiveTarget, updateNode, widgetDefs, type WorkflowDoc } from './doc.ts';
import { NOTE_ENTRIES } from './NoteNode.tsx';

/** The primitive node as the search box offers it: one untyped output that takes the type of the widget it is linked to. */
const PRIMITIVE_ENTRY: ObjectInfoEntry = {
  input: { required: {} },
  input_order: { required: [] },
  is_input_list: false,
  output: ['*'],
  output_is_list: [false],
  output_name: ['connect to widget input'],
  name: PRIMITIVE,
  display_name: 'Primitive',
  description: 'One value that drives the widgets it is linked to',
  python_module: 'frontend',
  category: 'utils',
  output_node: false,
  has_intermediate_output: false,
  search_aliases: ['primitive', 'constant', 'value'],
};

/** ComfyUI's frontend-only node classes the server does not list: notes and the primitive node. */
export const FRONTEND_ENTRIES: ObjectInfo = { ...NOTE_ENTRIES, [PRIMITIVE]: PRIMITIVE_ENTRY };

/**
 * A primitive node linked for the first time takes the value (and control mode) of the widget it now
 * drives, as in ComfyUI; until then it has no widget values.
 */
export function seedPrimitives(doc: WorkflowDoc, info: ObjectInfo): WorkflowDoc {
  let d = doc;
  for (const p of doc.nodes) {
    if (p.type !== PRIMITIVE || p.widgets_values?.length) continue;
    const target = primitiveTarget(doc, p, info);
    if (!target) continue;
    const link = doc.links.find((l) => l[1] === p.id);
    const tgt = link && doc.nodes.find((n) => n.id === link[3]);
    const ci = tgt && info[tgt.type];
    const defs = ci ? widgetDefs(ci) : [];
    const w = defs.find((x) => x.name === target.name);
    if (!tgt || !w) continue;
    const values: unknown[] = [tgt.widgets_values?.[w.index]];
    if (defs[w.index + 1]?.kind === 'CONTROL') values.push(tgt.widgets_values?.[w.index + 1] ?? 'fixed');
    d = updateNode(d, p.id, (n) => ({ ...n, widgets_values: values }));
  }
  return d;
}
