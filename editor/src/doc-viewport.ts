import type { Rect } from '@xyflow/react';
import type { WorkflowDoc } from './doc.ts';

// LiteGraph's `size` is the body below the title bar; the title adds about this much.
const TITLE_HEIGHT = 30;

/**
 * The area a document's nodes and groups cover, from their saved positions and sizes, before any is
 * drawn. The drawn heights differ a little (they follow the content), so this is an estimate.
 */
export function docBounds(doc: WorkflowDoc): Rect | null {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  const add = (x: number, y: number, w: number, h: number) => {
    x0 = Math.min(x0, x);
    y0 = Math.min(y0, y);
    x1 = Math.max(x1, x + w);
    y1 = Math.max(y1, y + h);
  };
  for (const n of doc.nodes) add(n.pos[0], n.pos[1], n.size[0], n.size[1] + TITLE_HEIGHT);
  for (const g of doc.groups) add(...g.bounding);
  return Number.isFinite(x0) ? { x: x0, y: y0, width: x1 - x0, height: y1 - y0 } : null;
}
