import { connect, type WorkflowDoc } from './doc.ts';

/**
 * Every link leaving `from` (node, output slot) leaves `to` instead, each still reaching its input: what
 * Shift+drag from one output to another does in ComfyUI. Refused whole when one link cannot move.
 */
export function moveOutputLinks(
  doc: WorkflowDoc,
  from: { node: number; slot: number },
  to: { node: number; slot: number },
): { doc: WorkflowDoc; error?: string } {
  if (from.node === to.node && from.slot === to.slot) return { doc };
  const moving = doc.links.filter((l) => l[1] === from.node && l[2] === from.slot);
  let d = doc;
  // Connecting an input that already has a link replaces it, so each link goes in one step.
  for (const [, , , target, targetSlot] of moving) {
    const r = connect(d, to.node, to.slot, target, targetSlot);
    if (r.error) return { doc, error: r.error };
    d = r.doc;
  }
  return { doc: d };
}
