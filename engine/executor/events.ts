import type { PreviewImage } from '../core/preview.ts';
import type { UiOutput } from '../registry/types.ts';

/**
 * The events ComfyUI's executor sends, with ComfyUI's names and data, so the server forwards them
 * unchanged. `progress` may carry an unencoded preview the server turns into a binary frame.
 */
export type ExecutionEvent =
  | { type: 'execution_start'; data: { prompt_id: string; timestamp: number } }
  | { type: 'execution_cached'; data: { nodes: string[]; prompt_id: string; timestamp: number } }
  | { type: 'executing'; data: { node: string | null; display_node?: string; prompt_id: string } }
  | {
      type: 'progress';
      data: { value: number; max: number; prompt_id: string; node: string };
      preview?: PreviewImage;
    }
  | { type: 'executed'; data: { node: string; display_node: string; output: UiOutput | null; prompt_id: string } }
  | { type: 'execution_success'; data: { prompt_id: string; timestamp: number } }
  | { type: 'execution_error'; data: ExecutionErrorData }
  | {
      type: 'execution_interrupted';
      data: { prompt_id: string; node_id: string; node_type: string; executed: string[]; timestamp: number };
    };

export interface ExecutionErrorData {
  prompt_id: string;
  node_id: string;
  node_type: string;
  executed: string[];
  exception_message: string;
  exception_type: string;
  traceback: string[];
  current_inputs: Record<string, unknown>;
  current_outputs: string[];
  timestamp: number;
}

export type ExecutionListener = (event: ExecutionEvent) => void;

export interface ExecuteOptions {
  promptId: string;
  /** ComfyUI's `extra_data`; `extra_pnginfo` is handed to nodes (SaveImage embeds it). */
  extraData?: { extra_pnginfo?: Record<string, unknown>; client_id?: string; [k: string]: unknown };
  /** Interrupts the prompt: the running node stops at its next `checkInterrupted`/progress call. */
  signal?: AbortSignal;
  /** Only these output nodes (and their ancestors) run (ComfyUI `partial_execution_targets`). */
  outputs?: string[];
  onEvent?: ExecutionListener;
}

export interface ExecutionResult {
  promptId: string;
  status: 'success' | 'error' | 'interrupted';
  /** UI outputs of output nodes, keyed by node id (what history stores). */
  outputs: Record<string, UiOutput>;
  /** Node ids that ran, in order. */
  executed: string[];
  /** Node ids served from cache. */
  cached: string[];
  timingsMs: Record<string, number>;
  error?: ExecutionErrorData;
  /** `[type, data]` of start/cached/success/error/interrupted, as ComfyUI's history `status.messages`. */
  messages: [string, unknown][];
}
