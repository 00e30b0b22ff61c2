import { useStoreApi } from '@xyflow/react';
import { useEffect, type RefObject } from 'react';

// Zoomed out, widgets (and further out, titles and sockets) are unreadable; not painting them keeps a big graph light.
export const LOW_DETAIL_BELOW = 0.4;
const MINIMAL_DETAIL_BELOW = 0.2;

/**
 * The canvas's level of detail as classes on its element (`low-detail`, `minimal-detail`; styles.css
 * hides what is unreadable at that zoom), set from a subscription to the viewport rather than by
 * re-rendering the editor, so that zooming across a level renders nothing in React. The element's
 * React className must stay constant, or a render would drop these classes.
 */
export function useDetailLevel(canvasRef: RefObject<HTMLDivElement | null>): void {
  const store = useStoreApi();
  useEffect(() => {
    let level = '';
    const apply = (zoom: number) => {
      const next = zoom < MINIMAL_DETAIL_BELOW ? 'minimal-detail' : zoom < LOW_DETAIL_BELOW ? 'low-detail' : '';
      const el = canvasRef.current;
      if (next === level || !el) return;
      level = next;
      el.classList.toggle('low-detail', next !== '');
      el.classList.toggle('minimal-detail', next === 'minimal-detail');
    };
    apply(store.getState().transform[2]);
    return store.subscribe((s) => apply(s.transform[2]));
  }, [store, canvasRef]);
}
