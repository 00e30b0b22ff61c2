import type { Connection } from '@xyflow/react';
import { useEffect, useRef, useState, type RefObject } from 'react';
import { removeLink, type WorkflowDoc } from './doc.ts';
import { moveOutputLinks } from './link-moves.ts';

/** The line drawn while links are being moved, in screen coordinates. */
export interface LinkMoveLine {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  count: number;
}

interface HandleRef {
  node: number;
  handle: string;
}

function handleAt(el: Element | null): HandleRef | undefined {
  const h = el?.closest('.react-flow__handle');
  const node = h?.getAttribute('data-nodeid');
  const handle = h?.getAttribute('data-handleid');
  return node && handle ? { node: Number(node), handle } : undefined;
}

export interface LinkShiftMoveDeps {
  canvasRef: RefObject<HTMLDivElement | null>;
  docRef: RefObject<WorkflowDoc>;
  setDoc: (fn: (d: WorkflowDoc) => WorkflowDoc) => void;
  notify: (message: string) => void;
  /** The document with a connection made (a widget target becomes an input first). */
  withConnection: (d: WorkflowDoc, c: Connection) => { doc: WorkflowDoc; error?: string };
}

/**
 * Shift+drag from a socket moves its links, as in ComfyUI: from an output, every link it feeds moves
 * to the output it is dropped on; from a linked input, its link moves to the input it is dropped on.
 * One edit, so one undo step. Dropped anywhere else, nothing changes.
 */
export function useLinkShiftMove({ canvasRef, docRef, setDoc, notify, withConnection }: LinkShiftMoveDeps): LinkMoveLine | null {
  const [line, setLine] = useState<LinkMoveLine | null>(null);
  const latest = useRef({ docRef, setDoc, notify, withConnection });
  latest.current = { docRef, setDoc, notify, withConnection };

  useEffect(() => {
    const onDown = (e: PointerEvent) => {
      if (!e.shiftKey || e.button !== 0 || !canvasRef.current?.contains(e.target as Node)) return;
      const from = handleAt(e.target as Element);
      if (!from) return;
      const d = latest.current.docRef.current;
      const slot = Number(from.handle.split('-')[1]);
      const isOutput = from.handle.startsWith('out-');
      const node = d.nodes.find((n) => n.id === from.node);
      const held = node?.inputs[slot]?.link;
      const count = isOutput
        ? d.links.filter((l) => l[1] === from.node && l[2] === slot).length
        : held !== null && held !== undefined
          ? 1
          : 0;
      if (!from.handle.match(/^(out|in)-\d+$/) || !count) return;
      // Before React Flow (a new link) and the pane (Shift draws a selection box) see the press.
      e.preventDefault();
      e.stopPropagation();
      const box = (e.target as Element).closest('.react-flow__handle')!.getBoundingClientRect();
      const start = { x1: box.left + box.width / 2, y1: box.top + box.height / 2, count };
      setLine({ ...start, x2: e.clientX, y2: e.clientY });
      const onMove = (m: PointerEvent) => setLine({ ...start, x2: m.clientX, y2: m.clientY });
      const onUp = (u: PointerEvent) => {
        window.removeEventListener('pointermove', onMove, true);
        window.removeEventListener('pointerup', onUp, true);
        setLine(null);
        const to = handleAt(document.elementFromPoint(u.clientX, u.clientY));
        if (!to || (to.node === from.node && to.handle === from.handle)) return;
        const { docRef: ref, setDoc: set, notify: say, withConnection: connect } = latest.current;
        const doc = ref.current;
        let r: { doc: WorkflowDoc; error?: string };
        if (isOutput) {
          if (!to.handle.startsWith('out-')) return;
          r = moveOutputLinks(doc, { node: from.node, slot }, { node: to.node, slot: Number(to.handle.slice(4)) });
        } else {
          if (to.handle.startsWith('out-')) return;
          const linkId = doc.nodes.find((n) => n.id === from.node)?.inputs[slot]?.link;
          const link = doc.links.find((l) => l[0] === linkId);
          if (!link) return;
          r = connect(removeLink(doc, link[0]), {
            source: String(link[1]),
            sourceHandle: `out-${link[2]}`,
            target: String(to.node),
            targetHandle: to.handle,
          });
        }
        if (r.error) say(r.error);
        else set(() => r.doc);
      };
      window.addEventListener('pointermove', onMove, true);
      window.addEventListener('pointerup', onUp, true);
    };
    window.addEventListener('pointerdown', onDown, true);
    return () => window.removeEventListener('pointerdown', onDown, true);
  }, [canvasRef]);

  return line;
}
