import { Worker } from 'node:worker_threads';
import type { ExecuteOptions, ExecutionResult } from '../engine/executor/events.ts';
import { PromptFault } from '../engine/executor/guard.ts';
import { silentLogger, type Logger } from '../engine/core/log.ts';
import type { ApiPrompt } from '../engine/graph/prompt.ts';
import { failedResult, type ExecutionHost } from './execution-host.ts';
import type { FromWorker, ToWorker, WorkerSetup } from './worker-protocol.ts';

export interface WorkerHostOptions {
  setup: WorkerSetup;
  log?: Logger;
  /** How long an interrupted prompt may take to stop before the worker is terminated (default 3 s). */
  graceMs?: number;
  /** Limit for a whole prompt (default none). */
  promptTimeoutMs?: number;
  /** Resource limits of the worker's V8 heap (MB), so one prompt cannot take the server's memory. */
  maxHeapMb?: number;
}

// The worker runs TypeScript: register tsx in it before importing the entry (a Worker's own entry
// is not seen by loader hooks given through execArgv on Node 20).
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
import('tsx/esm/api')
  .then((api) => { api.register(); return import(workerData.__entry); })
  .catch((e) => { setImmediate(() => { throw e; }); });
`;
const ENTRY = new URL('./execution-worker.ts', import.meta.url).href;

interface Running {
  promptId: string;
  resolve: (r: ExecutionResult) => void;
  onEvent?: ExecuteOptions['onEvent'];
  node: string;
  classType: string;
  timers: NodeJS.Timeout[];
  worker: Worker | null;
  /** Set once the watchdog gave up on the worker: the result is already decided. */
  forced?: ExecutionResult;
}

/**
 * Runs the executor in a worker thread with a watchdog. The server's event loop only relays
 * messages, so HTTP and WebSocket answer while a node computes. An interrupt is passed to the
 * worker's abort signal; if the prompt has not stopped after `graceMs` (a node that neither yields
 * nor checks its signal) the worker is terminated and a new one started, losing its caches and
 * loaded models (logged). The same happens when a node outlives its time limit. A worker that dies
 * fails only the prompt it was running.
 */
export class WorkerHost implements ExecutionHost {
  private worker: Worker | null = null;
  private ready: Promise<void> | null = null;
  private running: Running | null = null;
  private readonly log: Logger;
  private readonly graceMs: number;
  private closed = false;
  /** Workers started (the first one included). */
  starts = 0;

  constructor(private readonly opts: WorkerHostOptions) {
    this.log = opts.log ?? silentLogger;
    this.graceMs = opts.graceMs ?? 3000;
  }

  /** Starts the worker now (otherwise on the first prompt); resolves when it has built its executor. */
  start(): Promise<void> {
    if (this.ready) return this.ready;
    this.starts++;
    const w = new Worker(BOOTSTRAP, {
      eval: true,
      workerData: { ...this.opts.setup, __entry: ENTRY },
      ...(this.opts.maxHeapMb ? { resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb } } : {}),
    });
    this.worker = w;
    this.ready = new Promise<void>((resolve, reject) => {
      let up = false;
      w.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          up = true;
          resolve();
        } else this.onMessage(m);
      });
      w.on('error', (e: Error) => {
        this.log.error(`execution worker failed: ${e.message}`);
        if (!up) reject(e);
      });
      w.on('exit', (code) => {
        if (this.worker === w) {
          this.worker = null;
          this.ready = null;
        }
        if (!up) reject(new Error(`execution worker exited during start-up (code ${code})`));
        const r = this.running;
        if (!r || r.worker !== w) return;
        if (!r.forced) {
          this.log.error(
            `prompt ${r.promptId}: the execution worker stopped (exit code ${code}) in node ${r.node || '?'} (${r.classType || '?'}); the prompt is failed and a new worker starts with the next prompt (cached outputs and loaded models are lost)`,
          );
          r.forced = failedResult(
            r.promptId,
            new PromptFault(`the execution worker stopped (exit code ${code}) while this prompt ran`),
            r.node,
            r.classType,
          );
          r.onEvent?.({ type: 'execution_error', data: r.forced.error! });
        }
        this.settle(r.forced);
      });
    });
    this.ready.catch(() => undefined);
    return this.ready;
  }

  async execute(prompt: ApiPrompt, opts: Omit<ExecuteOptions, 'signal'>): Promise<ExecutionResult> {
    if (this.closed) return failedResult(opts.promptId, new PromptFault('the server is shutting down'));
    try {
      await this.start();
    } catch (e) {
      return failedResult(opts.promptId, new PromptFault(`the execution worker could not start: ${(e as Error).message}`));
    }
    return new Promise<ExecutionResult>((resolve) => {
      const r: Running = {
        promptId: opts.promptId,
        resolve,
        onEvent: opts.onEvent,
        node: '',
        classType: '',
        timers: [],
        worker: this.worker,
      };
      this.running = r;
      const t = this.opts.promptTimeoutMs;
      if (t && t > 0)
        r.timers.push(
          setTimeout(() => this.stop(new PromptFault(`the prompt did not finish within ${Math.round(t / 1000)} s (prompt timeout)`)), t),
        );
      this.post({
        type: 'execute',
        promptId: opts.promptId,
        prompt,
        extraData: (opts.extraData ?? {}) as Record<string, unknown>,
        outputs: opts.outputs,
      });
    });
  }

  interrupt(fault?: PromptFault): void {
    if (this.running) this.stop(fault);
  }

  clearCache(): void {
    if (this.worker) this.post({ type: 'clearCache' });
  }

  async close(graceMs: number): Promise<void> {
    this.closed = true;
    const r = this.running;
    if (r) {
      this.post({ type: 'interrupt' });
      const stopped = new Promise<void>((res) => {
        const prev = r.resolve;
        r.resolve = (x) => {
          prev(x);
          res();
        };
      });
      await Promise.race([stopped, new Promise((res) => setTimeout(res, graceMs).unref())]);
      if (this.running === r && !r.forced) {
        this.log.warn(`prompt ${r.promptId}: still running ${graceMs} ms after the shutdown request; abandoned`);
        r.forced = failedResult(
          r.promptId,
          new PromptFault('abandoned: the server shut down while this prompt ran and it did not stop in time'),
          r.node,
          r.classType,
        );
      }
    }
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  /** Asks the worker to stop the prompt; terminates it when it has not after the grace period. */
  private stop(fault?: PromptFault): void {
    const r = this.running;
    if (!r || r.forced) return;
    this.post({ type: 'interrupt', ...(fault ? { fault: fault.message } : {}) });
    r.timers.push(
      setTimeout(() => {
        if (this.running !== r) return;
        this.log.warn(
          `prompt ${r.promptId}: node ${r.node || '?'} (${r.classType || '?'}) did not stop within ${this.graceMs} ms; restarting the execution worker (its cached outputs and loaded models are lost)`,
        );
        r.forced = fault ? failedResult(r.promptId, fault, r.node, r.classType) : interruptedResult(r.promptId, r.node, r.classType);
        if (!fault)
          r.onEvent?.({
            type: 'execution_interrupted',
            data: { prompt_id: r.promptId, node_id: r.node, node_type: r.classType, executed: [], timestamp: Date.now() },
          });
        else r.onEvent?.({ type: 'execution_error', data: r.forced.error! });
        this.restart();
      }, this.graceMs),
    );
  }

  private restart(): void {
    const w = this.worker;
    this.worker = null;
    this.ready = null;
    // exit → settle() delivers the forced result; the next prompt starts a new worker.
    if (w) void w.terminate();
  }

  private onMessage(m: FromWorker): void {
    const r = this.running;
    switch (m.type) {
      case 'event':
        if (r && !r.forced && m.event.data.prompt_id === r.promptId) r.onEvent?.(m.event);
        break;
      case 'node':
        if (!r) break;
        r.node = m.node;
        r.classType = m.classType;
        if (m.timeoutMs !== null) {
          // The executor enforces the limit itself when the node yields; this catches one that never does.
          const node = m.node;
          const t = m.timeoutMs;
          r.timers.push(
            setTimeout(() => {
              if (this.running === r && r.node === node)
                this.stop(new PromptFault(`node ${node} (${m.classType}) did not finish within ${Math.round(t / 1000)} s (timeout)`));
            }, t + 50),
          );
        }
        break;
      case 'result':
        if (r && m.promptId === r.promptId) this.settle(m.result ?? failedResult(r.promptId, new Error(m.error ?? 'execution failed')));
        break;
      case 'log':
        this.log[m.level](m.message);
        break;
      case 'ready':
        break;
    }
  }

  private settle(result: ExecutionResult): void {
    const r = this.running;
    if (!r) return;
    this.running = null;
    for (const t of r.timers) clearTimeout(t);
    r.resolve(r.forced ?? result);
  }

  private post(m: ToWorker): void {
    this.worker?.postMessage(m);
  }
}

function interruptedResult(promptId: string, nodeId: string, nodeType: string): ExecutionResult {
  const data = { prompt_id: promptId, node_id: nodeId, node_type: nodeType, executed: [], timestamp: Date.now() };
  return {
    promptId,
    status: 'interrupted',
    outputs: {},
    executed: [],
    cached: [],
    timingsMs: {},
    messages: [['execution_interrupted', data]],
  };
}
