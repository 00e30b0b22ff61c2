import type { ReactFlowInstance } from '@xyflow/react';
import { useEffect, useRef } from 'react';
import type { CanvasNode } from './NodeView.tsx';

function isField(t: EventTarget | null): boolean {
  const el = t as HTMLElement | null;
  return !!el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
}

/**
 * Holding Space and moving the mouse pans the canvas by the mouse's movement, as in ComfyUI (no button
 * needed). With a button down React Flow already pans on Space (its panActivationKeyCode), so those
 * moves are left to it.
 */
export function useSpacePan(flow: ReactFlowInstance<CanvasNode>): void {
  const flowRef = useRef(flow);
  flowRef.current = flow;
  useEffect(() => {
    let held = false;
    let last: { x: number; y: number } | null = null;
    const onKeyDown = (e: KeyboardEvent) => {
      if (e.code !== 'Space' || isField(e.target)) return;
      // Not the page's scroll, nor a click on a focused button.
      e.preventDefault();
      if (!held) document.body.dataset.spacePan = '1';
      held = true;
    };
    const release = () => {
      held = false;
      delete document.body.dataset.spacePan;
    };
    const onKeyUp = (e: KeyboardEvent) => e.code === 'Space' && release();
    const onMove = (e: MouseEvent) => {
      if (held && last && e.buttons === 0) {
        const v = flowRef.current.getViewport();
        void flowRef.current.setViewport({ x: v.x + e.clientX - last.x, y: v.y + e.clientY - last.y, zoom: v.zoom });
      }
      last = { x: e.clientX, y: e.clientY };
    };
    window.addEventListener('keydown', onKeyDown, true);
    window.addEventListener('keyup', onKeyUp, true);
    window.addEventListener('blur', release);
    window.addEventListener('mousemove', onMove, true);
    return () => {
      window.removeEventListener('keydown', onKeyDown, true);
      window.removeEventListener('keyup', onKeyUp, true);
      window.removeEventListener('blur', release);
      window.removeEventListener('mousemove', onMove, true);
    };
  }, []);
}
