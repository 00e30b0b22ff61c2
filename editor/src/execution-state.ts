import type { ExecutionEvent } from '../../engine/executor/events.ts';
import type { ImageRef, ServerMessage } from './api.ts';
import type { NodeRuntime } from './NodeView.tsx';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** An executor event as it arrives over the WebSocket: previews come apart, as binary frames. */
export type WireExecutionEvent = DistributiveOmit<ExecutionEvent, 'preview'>;

const EVENT_TYPES: ReadonlySet<string> = new Set<ExecutionEvent['type']>([
  'execution_start',
  'execution_cached',
  'executing',
  'progress',
  'executed',
  'execution_success',
  'execution_error',
  'execution_interrupted',
]);

/** The server message as an executor event, or undefined for the other messages (status, custom nodes' own). */
export function asExecutionEvent(msg: ServerMessage): WireExecutionEvent | undefined {
  return EVENT_TYPES.has(msg.type) ? (msg as unknown as WireExecutionEvent) : undefined;
}

export interface NodeError {
  input?: string;
  message: string;
}

export interface GalleryItem {
  src: string;
  promptId: string;
}

export interface ExecutionState {
  /** Per node id: running, progress, preview, output images, errors. */
  runtime: Record<string, NodeRuntime>;
  /** Output images of this session, newest first. */
  gallery: GalleryItem[];
}

export type ExecutionAction =
  | WireExecutionEvent
  | { type: 'preview'; node: string | null; url: string }
  /** A prompt is being queued: errors of the last one no longer hold. */
  | { type: 'queued' }
  /** The server refused a prompt: its validation errors by node id. */
  | { type: 'node_errors'; errors: Record<string, NodeError[]> }
  /** Another document was opened: node ids mean other nodes now. */
  | { type: 'reset' };

export const initialExecutionState: ExecutionState = { runtime: {}, gallery: [] };

const GALLERY_LIMIT = 200;

function mapRuntime(r: Record<string, NodeRuntime>, fn: (v: NodeRuntime) => NodeRuntime): Record<string, NodeRuntime> {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, fn(v)]));
}

/** The reducer over execution events; `viewUrl` turns an output image reference into a URL the page can show. */
export function makeExecutionReducer(viewUrl: (img: ImageRef) => string) {
  return function executionReducer(state: ExecutionState, action: ExecutionAction): ExecutionState {
    const r = state.runtime;
    switch (action.type) {
      case 'execution_start':
        return { ...state, runtime: mapRuntime(r, (v) => ({ ...v, running: false, progress: undefined, errors: undefined })) };
      case 'executing': {
        const next = mapRuntime(r, (v) => ({ ...v, running: false, progress: undefined }));
        const node = action.data.node;
        if (node) next[node] = { ...next[node], running: true };
        return { ...state, runtime: next };
      }
      case 'progress': {
        const { node, value, max } = action.data;
        if (!node) return state;
        return { ...state, runtime: { ...r, [node]: { ...r[node], progress: { value: Number(value), max: Number(max) } } } };
      }
      case 'executed': {
        const { node, output } = action.data;
        const images = output?.images as ImageRef[] | undefined;
        if (!node || !images) return state;
        const urls = images.map(viewUrl);
        return {
          runtime: { ...r, [node]: { ...r[node], images: urls, preview: undefined } },
          gallery: [...urls.map((src) => ({ src, promptId: String(action.data.prompt_id) })), ...state.gallery].slice(0, GALLERY_LIMIT),
        };
      }
      case 'execution_error': {
        const id = String(action.data.node_id);
        return {
          ...state,
          runtime: { ...r, [id]: { ...r[id], running: false, errors: [{ message: String(action.data.exception_message) }] } },
        };
      }
      case 'preview': {
        const id = action.node ?? Object.keys(r).find((k) => r[k].running);
        if (!id) {
          URL.revokeObjectURL(action.url);
          return state;
        }
        if (r[id]?.preview) URL.revokeObjectURL(r[id].preview!);
        return { ...state, runtime: { ...r, [id]: { ...r[id], preview: action.url } } };
      }
      case 'queued':
        return { ...state, runtime: mapRuntime(r, (v) => ({ ...v, errors: undefined })) };
      case 'node_errors':
        return {
          ...state,
          runtime: { ...r, ...Object.fromEntries(Object.entries(action.errors).map(([id, errors]) => [id, { errors }])) },
        };
      case 'reset':
        return { ...state, runtime: {} };
      default:
        return state;
    }
  };
}
