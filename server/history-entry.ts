import type { ExecutionResult } from '../engine/executor/events.ts';
import type { HistoryEntry, QueueItem } from './queue.ts';
import type { Redactor } from './redact.ts';

/** ComfyUI's history entry for a finished prompt (the embedded queue and the scale-out workers store the same). */
export function historyEntryOf(item: QueueItem, r: ExecutionResult, redact: Redactor): HistoryEntry {
  return {
    prompt: item,
    outputs: r.outputs,
    status: {
      status_str: r.status === 'success' ? 'success' : 'error',
      completed: r.status === 'success',
      messages: redact.value(r.messages),
    },
    meta: Object.fromEntries(Object.keys(r.outputs).map((n) => [n, { node_id: n, display_node: n, parent_node: null, real_node_id: n }])),
  };
}
