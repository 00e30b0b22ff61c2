import { useCallback, useRef, useState } from 'react';
import type { WorkflowDoc } from './doc.ts';
import type { HistorySnapshot } from './history.ts';

/** One open document. The active tab's document and undo history live in the history hook; the others' here. */
export interface DocTab {
  key: number;
  /** The saved workflow's file name, or null for an untitled document. */
  name: string | null;
  /** The file's modification time when it was opened or saved (saving over a changed file is refused). */
  modified?: number;
  /** The document as last opened or saved; null when it never was (new, restored from a draft). */
  saved: WorkflowDoc | null;
  stash: HistorySnapshot<WorkflowDoc> | null;
}

interface HistoryApi {
  doc: WorkflowDoc;
  replaceDoc: (d: WorkflowDoc) => void;
  snapshot: () => HistorySnapshot<WorkflowDoc>;
  restore: (s: HistorySnapshot<WorkflowDoc>) => void;
}

/** Whether a tab holds changes that were never saved. Documents are immutable, so an undo back to the saved one is clean. */
export function isDirty(tab: DocTab, doc: WorkflowDoc): boolean {
  if (tab.saved) return doc !== tab.saved;
  return doc.nodes.length > 0 || doc.groups.length > 0;
}

/**
 * Several open documents, as ComfyUI's workflow tabs. Opening a document replaces the active tab
 * only when it has nothing unsaved (or is the same file); otherwise it opens in a new tab, so no
 * edit is ever replaced. Closing an edited tab asks first.
 */
export function useTabs(history: HistoryApi, confirmDiscard: (name: string) => boolean) {
  const [tabs, setTabs] = useState<DocTab[]>([{ key: 0, name: null, saved: null, stash: null }]);
  const [active, setActive] = useState(0);
  const nextKey = useRef(1);
  const tabsRef = useRef(tabs);
  tabsRef.current = tabs;
  const activeRef = useRef(active);
  activeRef.current = active;
  const docRef = useRef(history.doc);
  docRef.current = history.doc;
  const { replaceDoc, snapshot, restore } = history;

  const current = tabs.find((t) => t.key === active) ?? tabs[0];
  const docOf = useCallback((t: DocTab) => (t.key === activeRef.current ? docRef.current : (t.stash?.present ?? docRef.current)), []);

  const patchTab = useCallback((key: number, patch: Partial<DocTab>) => {
    setTabs((ts) => ts.map((t) => (t.key === key ? { ...t, ...patch } : t)));
  }, []);

  /** Records that the active document is saved as `name`. */
  const markSaved = useCallback(
    (name: string, modified: number | undefined, saved: WorkflowDoc) => patchTab(activeRef.current, { name, modified, saved }),
    [patchTab],
  );

  const switchTo = useCallback(
    (key: number) => {
      const from = activeRef.current;
      const target = tabsRef.current.find((t) => t.key === key);
      if (key === from || !target?.stash) return false;
      const snap = snapshot();
      setTabs((ts) => ts.map((t) => (t.key === from ? { ...t, stash: snap } : t.key === key ? { ...t, stash: null } : t)));
      restore(target.stash);
      setActive(key);
      return true;
    },
    [snapshot, restore],
  );

  /** Opens a document: in the active tab when that holds nothing unsaved, else in a new one. An open file is switched to. */
  const open = useCallback(
    (doc: WorkflowDoc, name: string | null, modified: number | undefined, saved: WorkflowDoc | null) => {
      const ts = tabsRef.current;
      const cur = ts.find((t) => t.key === activeRef.current) ?? ts[0];
      const same = name !== null ? ts.find((t) => t.name === name) : undefined;
      if (same && same.key !== cur.key && !isDirty(same, docOf(same))) {
        // Already open and unchanged: reload it there.
        switchTo(same.key);
        replaceDoc(doc);
        patchTab(same.key, { modified, saved });
        return;
      }
      if (!isDirty(cur, docRef.current) || (name !== null && cur.name === name && !isDirty(cur, docRef.current))) {
        replaceDoc(doc);
        patchTab(cur.key, { name, modified, saved });
        return;
      }
      const key = nextKey.current++;
      const snap = snapshot();
      setTabs((t2) => [...t2.map((t) => (t.key === cur.key ? { ...t, stash: snap } : t)), { key, name, modified, saved, stash: null }]);
      replaceDoc(doc);
      setActive(key);
    },
    [docOf, patchTab, replaceDoc, snapshot, switchTo],
  );

  const newTab = useCallback(
    (empty: WorkflowDoc) => {
      const key = nextKey.current++;
      const snap = snapshot();
      setTabs((ts) => [
        ...ts.map((t) => (t.key === activeRef.current ? { ...t, stash: snap } : t)),
        { key, name: null, saved: null, stash: null },
      ]);
      replaceDoc(empty);
      setActive(key);
    },
    [replaceDoc, snapshot],
  );

  /** Closes a tab, asking first when it holds unsaved changes; the last tab closed leaves an empty one. Returns whether it closed. */
  const close = useCallback(
    (key: number, empty: WorkflowDoc): boolean => {
      const ts = tabsRef.current;
      const tab = ts.find((t) => t.key === key);
      if (!tab) return false;
      if (isDirty(tab, docOf(tab)) && !confirmDiscard(tab.name ?? 'untitled')) return false;
      const rest = ts.filter((t) => t.key !== key);
      if (!rest.length) {
        replaceDoc(empty);
        setTabs([{ key: tab.key, name: null, saved: null, stash: null }]);
        return true;
      }
      if (key === activeRef.current) {
        const i = ts.indexOf(tab);
        const next = rest[Math.min(i, rest.length - 1)];
        restore(next.stash!);
        setTabs(rest.map((t) => (t.key === next.key ? { ...t, stash: null } : t)));
        setActive(next.key);
      } else setTabs(rest);
      return true;
    },
    [confirmDiscard, docOf, replaceDoc, restore],
  );

  /** A saved workflow was renamed or deleted: tabs showing it follow. */
  const renamed = useCallback((from: string, to: string | null) => {
    setTabs((ts) => ts.map((t) => (t.name === from ? { ...t, name: to, ...(to === null ? { saved: null } : {}) } : t)));
  }, []);

  return { tabs, active, current, docOf, open, newTab, close, switchTo, markSaved, renamed };
}
