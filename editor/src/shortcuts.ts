import { useEffect, useRef } from 'react';

export interface ShortcutActions {
  queue: () => void;
  queueFront: () => void;
  interrupt: () => void;
  open: () => void;
  selectAll: () => void;
  pasteWithLinks: () => void;
  collapse: () => void;
  refreshModels: () => void;
  undo: () => void;
  redo: () => void;
  save: () => void;
  copy: () => void;
  paste: () => void;
  mute: () => void;
  bypass: () => void;
  group: () => void;
  fitView: () => void;
  escape: () => void;
}

/** ComfyUI's keyboard shortcuts, on the window in the capture phase so React Flow's handlers see them after. */
export function useShortcuts(actions: ShortcutActions): void {
  // One listener for the page's life; it calls whatever the latest render passed.
  const latest = useRef(actions);
  latest.current = actions;
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const a = latest.current;
      const tag = (e.target as HTMLElement).tagName;
      const inField = tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT';
      const mod = e.ctrlKey || e.metaKey;
      const key = e.key.toLowerCase();
      if (mod && e.key === 'Enter') {
        e.preventDefault();
        // A focused node would also take the Enter as "toggle my selection" (Ctrl = multi-select).
        e.stopPropagation();
        if (e.altKey) a.interrupt();
        else if (e.shiftKey) a.queueFront();
        else a.queue();
      } else if (mod && key === 'o') {
        // Before the field check, as in ComfyUI: the browser's own Ctrl+O (open a page file) never helps here.
        e.preventDefault();
        a.open();
      } else if (inField) {
        return;
      } else if (mod && key === 'z' && !e.shiftKey) {
        e.preventDefault();
        a.undo();
      } else if ((mod && key === 'y') || (mod && e.shiftKey && key === 'z')) {
        e.preventDefault();
        a.redo();
      } else if (mod && key === 's') {
        e.preventDefault();
        a.save();
      } else if (mod && key === 'c') {
        a.copy();
      } else if (mod && key === 'v' && e.shiftKey) {
        e.preventDefault();
        a.pasteWithLinks();
      } else if (mod && key === 'v') {
        a.paste();
      } else if (mod && key === 'a') {
        // Nodes, not the page's text.
        e.preventDefault();
        a.selectAll();
      } else if (e.altKey && key === 'c') {
        e.preventDefault();
        a.collapse();
      } else if (!mod && !e.altKey && key === 'r') {
        a.refreshModels();
      } else if (mod && key === 'm') {
        e.preventDefault();
        a.mute();
      } else if (mod && key === 'b') {
        e.preventDefault();
        a.bypass();
      } else if (mod && key === 'g') {
        e.preventDefault();
        a.group();
      } else if (e.key === '.') {
        a.fitView();
      } else if (e.key === 'Escape') {
        a.escape();
      }
    };
    window.addEventListener('keydown', onKey, true);
    return () => window.removeEventListener('keydown', onKey, true);
  }, []);
}
