import { parentPort, workerData } from 'node:worker_threads';
import type { Executor } from '../engine/executor/executor.ts';
import type { ExecutionEvent } from '../engine/executor/events.ts';
import { PromptFault } from '../engine/executor/guard.ts';
import { installFaultHandlers } from './faults.ts';
import type { FromWorker, ToWorker, WorkerSetup } from './worker-protocol.ts';

/**
 * The execution worker: builds its own executor (registry, custom nodes, model manager, caches)
 * from the setup module the server names, then runs one prompt at a time on the server's behalf.
 * Its event loop is its own, so JavaScript that never yields stalls only this thread.
 */
const port = parentPort!;
const setup = workerData as WorkerSetup;
const post = (m: FromWorker): void => port.postMessage(m);

let controller: AbortController | null = null;
installFaultHandlers((error, kind) => {
  const message = `${kind} in the execution worker: ${error.message}`;
  if (controller) controller.abort(new PromptFault(`${message} (while this prompt ran; it is failed)`));
  post({ type: 'log', level: 'error', message: controller ? `${message}; failing the running prompt` : message });
});

const mod = (await import(setup.module)) as Record<string, unknown>;
const create = mod[setup.exportName] as ((options: unknown) => Executor | Promise<Executor>) | undefined;
if (typeof create !== 'function') throw new Error(`execution worker setup ${setup.module} has no export ${setup.exportName}`);
const executor = await create(setup.options);

port.on('message', (m: ToWorker) => {
  if (m.type === 'interrupt') controller?.abort(m.fault === undefined ? undefined : new PromptFault(m.fault));
  else if (m.type === 'clearCache') executor.clearCache();
  else if (m.type === 'execute') void run(m);
});

async function run(m: Extract<ToWorker, { type: 'execute' }>): Promise<void> {
  const c = new AbortController();
  controller = c;
  const onEvent = (e: ExecutionEvent): void => {
    if (e.type === 'executing' && e.data.node !== null) {
      const cls = m.prompt[e.data.node]?.class_type ?? '';
      post({ type: 'node', node: e.data.node, classType: cls, timeoutMs: executor.timeoutFor(cls) ?? null });
    }
    post({ type: 'event', event: e });
  };
  try {
    const result = await executor.execute(m.prompt, {
      promptId: m.promptId,
      extraData: m.extraData,
      outputs: m.outputs,
      signal: c.signal,
      onEvent,
    });
    post({ type: 'result', promptId: m.promptId, result });
  } catch (e) {
    post({ type: 'result', promptId: m.promptId, error: e instanceof Error ? e.message : String(e) });
  } finally {
    if (controller === c) controller = null;
  }
}

post({ type: 'ready' });
