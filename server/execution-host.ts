import type { Executor } from '../engine/executor/executor.ts';
import type { ExecuteOptions, ExecutionResult } from '../engine/executor/events.ts';
import { PromptFault } from '../engine/executor/guard.ts';
import type { ApiPrompt } from '../engine/graph/prompt.ts';

/** What the server needs from whatever runs prompts: the executor in this thread, or in a worker. */
export interface ExecutionHost {
  /** Never rejects: node errors, interrupts and a dead host end in `status`. */
  execute(prompt: ApiPrompt, opts: Omit<ExecuteOptions, 'signal'>): Promise<ExecutionResult>;
  /** Stops the running prompt: as an interruption, or as an error when `fault` is given. */
  interrupt(fault?: PromptFault): void;
  clearCache(): void;
  /** Waits at most `graceMs` for the running prompt to stop, then stops the host. */
  close(graceMs: number): Promise<void>;
}

/**
 * The executor on the server's own event loop (tests, and embedding). A node that never settles is
 * left behind when interrupted, but JavaScript that never yields still holds the server: `weft
 * serve` uses the worker host.
 */
export class InProcessHost implements ExecutionHost {
  private controller: AbortController | null = null;
  private running: Promise<unknown> = Promise.resolve();

  constructor(private readonly executor: Executor) {}

  execute(prompt: ApiPrompt, opts: Omit<ExecuteOptions, 'signal'>): Promise<ExecutionResult> {
    const controller = new AbortController();
    this.controller = controller;
    const r = this.executor.execute(prompt, { ...opts, signal: controller.signal }).catch((e: unknown) => failedResult(opts.promptId, e));
    this.running = r.finally(() => {
      if (this.controller === controller) this.controller = null;
    });
    return r;
  }

  interrupt(fault?: PromptFault): void {
    this.controller?.abort(fault);
  }

  clearCache(): void {
    this.executor.clearCache();
  }

  async close(graceMs: number): Promise<void> {
    this.interrupt();
    await Promise.race([this.running, new Promise((r) => setTimeout(r, graceMs).unref())]);
  }
}

/** A result for a prompt that ended outside any node (the host died, the executor threw). */
export function failedResult(promptId: string, e: unknown, nodeId = '', nodeType = ''): ExecutionResult {
  const message = e instanceof Error ? e.message : String(e);
  const error = {
    prompt_id: promptId,
    node_id: nodeId,
    node_type: nodeType,
    executed: [],
    exception_message: message,
    exception_type: e instanceof Error ? e.name : 'Error',
    traceback: [],
    current_inputs: {},
    current_outputs: [],
    timestamp: Date.now(),
  };
  return { promptId, status: 'error', outputs: {}, executed: [], cached: [], timingsMs: {}, error, messages: [['execution_error', error]] };
}
