import type { Job, Queue } from 'bullmq';
import type { Logger } from '../../engine/core/log.ts';
import type { HistoryEntry, QueueItem } from '../queue.ts';
import type { RedisHistory } from './history.ts';
import type { PromptJob } from './layout.ts';

/** A history entry for a prompt that ended outside any node (its worker died too often, or it could not run). */
export function failureEntry(item: QueueItem, message: string, type = 'ExecutionHostCrash'): HistoryEntry {
  const error = {
    prompt_id: item[1],
    node_id: '',
    node_type: '',
    exception_message: message,
    exception_type: type,
    traceback: [],
    executed: [],
    current_inputs: {},
    current_outputs: [],
    timestamp: Date.now(),
  };
  return { prompt: item, outputs: {}, status: { status_str: 'error', completed: false, messages: [['execution_error', error]] }, meta: {} };
}

/**
 * A job BullMQ failed without a worker storing its result (it stalled more often than allowed: the
 * worker running it died each time, e.g. a node that crashes the process) goes to history as an
 * error. Idempotent: fronts and workers may all call it for the same job.
 */
export async function recordFailedJob(history: RedisHistory, job: Job<PromptJob>, log: Logger): Promise<boolean> {
  const item = job.data?.item;
  if (!item) return false;
  const reason = /stalled more than/.test(job.failedReason ?? '')
    ? `the worker running this prompt stopped (killed, crashed or cut off from Redis) ${job.stalledCounter || job.attemptsStarted || '?'} times; it was failed instead of run again`
    : `the prompt failed in the queue: ${job.failedReason ?? 'unknown reason'}`;
  const stored = await history.store(item[1], failureEntry(item, reason));
  if (stored) log.warn(`prompt ${item[1]}: ${reason}`);
  return stored;
}

/** Failed jobs whose prompt has no history entry yet (failed while no front or worker was listening). */
export async function reconcileFailed(queue: Queue<PromptJob>, history: RedisHistory, log: Logger): Promise<void> {
  for (const job of await queue.getFailed(0, 999))
    if (job && !(await history.has(String(job.id)))) await recordFailedJob(history, job, log);
}
