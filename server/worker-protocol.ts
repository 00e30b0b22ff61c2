import type { ExecutionEvent, ExecutionResult } from '../engine/executor/events.ts';
import type { ApiPrompt } from '../engine/graph/prompt.ts';

/** What the execution worker imports to build its executor: `module`'s `exportName`(options). */
export interface WorkerSetup {
  /** file: URL of the setup module. */
  module: string;
  exportName: string;
  /** Structured-clonable options for it. */
  options: unknown;
}

export type ToWorker =
  | { type: 'execute'; promptId: string; prompt: ApiPrompt; extraData: Record<string, unknown>; outputs?: string[] }
  | { type: 'interrupt'; fault?: string }
  | { type: 'clearCache' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'event'; event: ExecutionEvent }
  /** A node started; `timeoutMs` is its limit, which the watchdog enforces even on code that never yields. */
  | { type: 'node'; node: string; classType: string; timeoutMs: number | null }
  | { type: 'result'; promptId: string; result?: ExecutionResult; error?: string }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string };
