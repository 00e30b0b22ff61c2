import { useCallback, useEffect, useRef, useState } from 'react';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import type { HistoryItem } from './api.ts';
import { api } from './client.ts';
import { asExecutionEvent, type ExecutionAction, type WireExecutionEvent } from './execution-state.ts';

export interface QueueState {
  running: string[];
  pending: string[];
}

export interface ConnectionHandlers {
  /** Every execution event and preview, for the execution-state reducer. */
  dispatch: (action: ExecutionAction) => void;
  /** Called after `dispatch` for each execution event (notices for errors and interrupts). */
  onEvent?: (event: WireExecutionEvent) => void;
  notify: (message: string) => void;
}

/**
 * The server connection as React state: the WebSocket's state, the node classes (`/object_info`),
 * the queue (refreshed on every `status` message) and the history.
 */
export function useConnection(handlers: ConnectionHandlers) {
  // The socket's listeners are set once; they reach the latest handlers through this.
  const latest = useRef(handlers);
  latest.current = handlers;
  const [connected, setConnected] = useState(false);
  const [info, setInfo] = useState<ObjectInfo>({});
  const [queue, setQueue] = useState<QueueState>({ running: [], pending: [] });
  const [history, setHistory] = useState<[string, HistoryItem][]>([]);

  const refreshHistory = useCallback(() => {
    api.history(50).then(
      (h) => setHistory(Object.entries(h).reverse()),
      () => {},
    );
  }, []);

  const refreshInfo = useCallback(() => api.objectInfo().then(setInfo, (e: Error) => latest.current.notify(e.message)), []);

  useEffect(() => {
    void refreshInfo();
    const offs = [
      api.on('connection', setConnected),
      api.on('message', (msg) => {
        if (msg.type === 'status') {
          api.queue().then(
            (q) => setQueue({ running: q.queue_running.map((i) => String(i[1])), pending: q.queue_pending.map((i) => String(i[1])) }),
            () => {},
          );
          refreshHistory();
          return;
        }
        const event = asExecutionEvent(msg);
        if (!event) return;
        latest.current.dispatch(event);
        latest.current.onEvent?.(event);
      }),
      api.on('preview', (blob, nodeId) => latest.current.dispatch({ type: 'preview', node: nodeId, url: URL.createObjectURL(blob) })),
    ];
    api.connect();
    return () => {
      offs.forEach((f) => f());
      api.close();
    };
  }, [refreshInfo, refreshHistory]);

  return { connected, info, queue, history, refreshHistory, refreshInfo };
}
