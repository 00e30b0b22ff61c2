import { useStoreApi } from '@xyflow/react';
import { createContext, startTransition, useContext, useEffect, useRef, useState, type ReactNode } from 'react';
import { LOW_DETAIL_BELOW } from './detail-level.ts';
import type { WidgetDef } from './doc.ts';

/**
 * Below this many nodes, widgets are always drawn: a small graph draws fast, and scripts reading its
 * widgets find them in the page whatever the zoom.
 */
const BIG_GRAPH_NODES = 100;

// Widget rows have fixed heights (styles.css, --widget-row and --slider-row), so a blank stand-in for
// them has the drawn node's size: nothing moves when the widgets arrive, and React Flow measures once.
const ROW_KINDS = new Set(['INT', 'FLOAT', 'COMBO', 'BOOLEAN', 'CONTROL', 'STRING']);

/** Whether a number widget draws a slider beside its field (a short bounded range, as ComfyUI's sliders). */
export function hasSlider(w: WidgetDef): boolean {
  const { min, max, display } = w.options;
  return (
    (w.kind === 'INT' || w.kind === 'FLOAT') &&
    typeof min === 'number' &&
    typeof max === 'number' &&
    max - min <= 100 &&
    display !== 'number'
  );
}

/** The stand-in's CSS height for these widgets, or undefined when one of them is not a plain row (text areas, uploads). */
export function blankRowsHeight(widgets: WidgetDef[]): string | undefined {
  let rows = 0;
  let sliders = 0;
  for (const w of widgets) {
    if (!ROW_KINDS.has(w.kind) || (w.kind === 'STRING' && w.options.multiline)) return undefined;
    if (hasSlider(w)) sliders++;
    else rows++;
  }
  return `calc(${rows} * var(--widget-row) + ${sliders} * var(--slider-row))`;
}

const WidgetsDrawn = createContext(true);
let onOpen: ((nodeCount: number, zoom: number) => void) | null = null;

/**
 * A document is about to be drawn at this zoom. A big graph opened zoomed out below the level where
 * widgets show (detail-level.ts hides them) draws blank rows in their place: at 500 nodes the widgets
 * are most of the elements the open creates, and none of them would be seen.
 */
export function openingGraph(nodeCount: number, zoom: number): void {
  onOpen?.(nodeCount, zoom);
}

/** True when nodes draw their widgets; false while a big graph opened zoomed out has not been zoomed in yet. */
export function useWidgetsDrawn(): boolean {
  return useContext(WidgetsDrawn);
}

/**
 * Holds whether widgets are drawn. Once the zoom reaches the level where they show, they are drawn for
 * good (zooming out again renders nothing), in a transition so that the zoom itself stays smooth.
 */
export function WidgetRowsProvider({ children }: { children: ReactNode }) {
  const store = useStoreApi();
  const [drawn, setDrawn] = useState(true);
  useEffect(() => {
    onOpen = (count, zoom) => setDrawn(count < BIG_GRAPH_NODES || zoom >= LOW_DETAIL_BELOW);
    return () => {
      onOpen = null;
    };
  }, []);
  useEffect(() => {
    if (drawn) return;
    const zoomedIn = (zoom: number) => {
      if (zoom >= LOW_DETAIL_BELOW) startTransition(() => setDrawn(true));
    };
    zoomedIn(store.getState().transform[2]);
    return store.subscribe((s) => zoomedIn(s.transform[2]));
  }, [drawn, store]);
  const blankBefore = useRef(false);
  useEffect(() => {
    if (!drawn) blankBefore.current = true;
    else if (blankBefore.current) {
      blankBefore.current = false;
      // The widgets' own sockets are new handles in nodes of unchanged size: React Flow has to measure
      // them (in one batch: one store update for all nodes) to connect links dropped near them.
      requestAnimationFrame(() => {
        const { nodeLookup, domNode, updateNodeInternals } = store.getState();
        const updates = new Map<string, { id: string; nodeElement: HTMLDivElement; force: boolean }>();
        for (const id of nodeLookup.keys()) {
          const el = domNode?.querySelector<HTMLDivElement>(`.react-flow__node[data-id="${id}"]`);
          if (el) updates.set(id, { id, nodeElement: el, force: true });
        }
        updateNodeInternals(updates);
      });
    }
  }, [drawn, store]);
  return <WidgetsDrawn.Provider value={drawn}>{children}</WidgetsDrawn.Provider>;
}
