import { useCallback, useRef, useState } from 'react';

export interface HistorySnapshot<T> {
  past: T[];
  present: T;
  future: T[];
}

/**
 * Undo/redo as a stack of document snapshots. Documents are immutable values, so a snapshot costs
 * one reference. Repeated edits of the same kind (dragging a node) coalesce into one step.
 */
export function useHistory<T>(initial: T) {
  const [doc, setState] = useState<T>(initial);
  const past = useRef<T[]>([]);
  const future = useRef<T[]>([]);
  const lastKind = useRef<string | null>(null);
  const current = useRef<T>(initial);

  const setDoc = useCallback((fn: (d: T) => T, opts: { coalesce?: string } = {}) => {
    const prev = current.current;
    const next = fn(prev);
    if (next === prev) return;
    if (!(opts.coalesce && opts.coalesce === lastKind.current)) {
      past.current.push(prev);
      if (past.current.length > 200) past.current.shift();
    }
    lastKind.current = opts.coalesce ?? null;
    future.current = [];
    current.current = next;
    setState(next);
  }, []);

  const replaceDoc = useCallback((d: T) => {
    past.current = [];
    future.current = [];
    lastKind.current = null;
    current.current = d;
    setState(d);
  }, []);

  const undo = useCallback(() => {
    const prev = past.current.pop();
    if (prev === undefined) return;
    future.current.push(current.current);
    lastKind.current = null;
    current.current = prev;
    setState(prev);
  }, []);

  const redo = useCallback(() => {
    const next = future.current.pop();
    if (next === undefined) return;
    past.current.push(current.current);
    lastKind.current = null;
    current.current = next;
    setState(next);
  }, []);

  /** Ends a run of coalesced edits: the next edit of the same kind (a second drag) is its own step. */
  const seal = useCallback(() => {
    lastKind.current = null;
  }, []);

  /** The whole history (for a document tab put aside), and putting one back. */
  const snapshot = useCallback((): HistorySnapshot<T> => ({ past: past.current, present: current.current, future: future.current }), []);
  const restore = useCallback((s: HistorySnapshot<T>) => {
    past.current = s.past;
    future.current = s.future;
    lastKind.current = null;
    current.current = s.present;
    setState(s.present);
  }, []);

  return { doc, setDoc, replaceDoc, undo, redo, seal, snapshot, restore };
}
