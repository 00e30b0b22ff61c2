import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConnectionClosedError, DelayedError, Queue, Worker, type Job } from 'bullmq';
import type { ExecutionEvent, ExecutionResult } from '../../engine/executor/events.ts';
import { encodeJpeg } from '../../engine/image/io.ts';
import { silentLogger, type Logger } from '../../engine/core/log.ts';
import type { FolderPaths } from '../../engine/paths/folders.ts';
import { failedResult } from '../execution-host.ts';
import { historyEntryOf } from '../history-entry.ts';
import { redactor } from '../redact.ts';
import { WorkerHost } from '../worker-host.ts';
import type { WorkerSetup } from '../worker-protocol.ts';
import { reconcileFailed } from './failures.ts';
import { RedisHistory } from './history.ts';
import {
  BEAT_STALE_MS,
  CHANNELS,
  KEYS,
  PREFIX,
  QUEUE_NAME,
  type ControlMessage,
  type EventMessage,
  type PromptJob,
  type WorkerBeat,
} from './layout.ts';
import { RedisClient } from './redis-client.ts';
import { parseRedisUrl, redactUrl } from './redis-url.ts';

export interface QueueWorkerOptions {
  /** redis:// or rediss:// URL. */
  url: string;
  /** How each execution thread builds its executor (as `weft serve`). */
  setup: WorkerSetup;
  /** This worker's folders: outputs land here, error messages name them by role. */
  paths: FolderPaths;
  /** Prompts run at once, each in its own execution thread with its own models (default 1). */
  concurrency?: number;
  /** BullMQ lock duration and stall check interval: a dead worker's prompt is retried after 1–2× this (default 30 s). */
  lockMs?: number;
  /** Runs of a prompt whose worker died before it is failed instead (default 3). */
  maxAttempts?: number;
  /** Front to send outputs to (`/internal/upload`) when it shares no output folder with this worker. */
  uploadTo?: { url: string; token?: string };
  /** How long a prompt waits for the worker that has its checkpoint loaded before anyone takes it (default 2 s). */
  affinityWaitMs?: number;
  maxHistory?: number;
  promptTimeoutMs?: number;
  log?: Logger;
  id?: string;
}

export interface RunningQueueWorker {
  id: string;
  /** Stops taking prompts; waits for the running ones unless `force`. */
  close(force?: boolean): Promise<void>;
}

const LOADED_KEEP = 4;

/**
 * `weft worker`: takes prompts from the BullMQ queue and runs them with the same executor as
 * `weft serve` (in execution threads, with the same watchdog), publishes the executor's events for
 * the fronts, and stores each prompt's history entry in Redis once. Outputs go to the output folder
 * (shared with the front) or, with `uploadTo`, to the front over HTTP.
 */
export async function startQueueWorker(opts: QueueWorkerOptions): Promise<RunningQueueWorker> {
  const log = opts.log ?? silentLogger;
  const id = opts.id ?? `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const concurrency = Math.max(1, opts.concurrency ?? 1);
  const lockMs = opts.lockMs ?? 30_000;
  const affinityWaitMs = opts.affinityWaitMs ?? 2000;
  const target = parseRedisUrl(opts.url);
  const redis = new RedisClient({ ...target, connectionName: `weft-worker:${id}` });
  redis.on('error', (e: Error) => log.warn(`redis ${redactUrl(opts.url)}: ${e.message}`));
  const sub = redis.duplicate({ connectionName: `weft-worker-sub:${id}` });
  sub.on('error', () => undefined);
  const history = new RedisHistory(redis, opts.maxHistory ?? 10_000);
  const redact = redactor(opts.paths);
  const idle: WorkerHost[] = [];
  for (let i = 0; i < concurrency; i++) idle.push(new WorkerHost({ setup: opts.setup, log, promptTimeoutMs: opts.promptTimeoutMs }));
  const running = new Map<string, WorkerHost>();
  /** Checkpoints of the last prompts that ran here: what this worker advertises as loaded. */
  const loaded: string[] = [];
  const recent: string[] = [];

  const publish = (m: EventMessage): void => {
    redis.publish(CHANNELS.events, JSON.stringify(m)).catch((e: Error) => log.warn(`event not published: ${e.message}`));
  };
  const beat = async (): Promise<void> => {
    const b: WorkerBeat = {
      id,
      host: os.hostname(),
      pid: process.pid,
      models: loaded,
      busy: running.size,
      running: [...running.keys()],
      recent,
      concurrency,
      at: Date.now(),
    };
    await redis.hset(KEYS.workers, { [id]: JSON.stringify(b) });
    // Heartbeats of workers gone for a minute are dropped (by whichever worker notices).
    const all = await redis.hgetall(KEYS.workers);
    const gone = Object.entries(all).filter(([, v]) => b.at - (JSON.parse(v) as WorkerBeat).at > 60_000);
    if (gone.length) await redis.hdel(KEYS.workers, ...gone.map(([k]) => k));
  };
  const beatSoon = (): void => void beat().catch(() => undefined);
  const beats = setInterval(beatSoon, 2000);

  sub.subscribe(CHANNELS.control);
  sub.on('message', (_channel: string, text: string) => {
    let m: ControlMessage;
    try {
      m = JSON.parse(text) as ControlMessage;
    } catch {
      return;
    }
    if (m.kind === 'free') for (const h of [...idle, ...running.values()]) h.clearCache();
    if (m.kind === 'interrupt')
      for (const [pid, host] of running) {
        if (m.promptId === undefined || m.promptId === pid) {
          log.info(`prompt ${pid}: interrupted`);
          host.interrupt();
        }
      }
  });

  /** Delay scheduling: a prompt routed to another live worker that has its checkpoint waits for it, for a while. */
  const shouldDefer = async (job: Job<PromptJob>): Promise<boolean> => {
    const prefer = job.data.prefer;
    if (!prefer || prefer === id || Date.now() - job.timestamp > affinityWaitMs) return false;
    const raw = await redis.hget(KEYS.workers, prefer);
    return raw !== null && Date.now() - (JSON.parse(raw) as WorkerBeat).at < BEAT_STALE_MS;
  };

  const process_ = async (job: Job<PromptJob>, token?: string): Promise<void> => {
    const item = job.data.item;
    const [, promptId, prompt, extra, outputs] = item;
    // A retried job whose earlier attempt got as far as storing its result: done, exactly once.
    if (await throughOutages(() => history.has(promptId))) return;
    if (await shouldDefer(job)) {
      await job.moveToDelayed(Date.now() + 100, token);
      throw new DelayedError();
    }
    const host = idle.pop();
    if (!host) throw new Error('no free execution thread (concurrency exceeded)');
    running.set(promptId, host);
    beatSoon();
    publish({ kind: 'queue' });
    const clientId = typeof extra.client_id === 'string' ? extra.client_id : undefined;
    if (job.attemptsStarted > 1)
      log.warn(`prompt ${promptId}: attempt ${job.attemptsStarted} (an earlier worker stopped while running it)`);
    const onEvent = (e: ExecutionEvent): void => {
      if (e.type === 'executing' && e.data.node === null) return; // sent after the history entry is stored
      if (e.type === 'progress' && e.preview && clientId) {
        const node = e.data.node;
        encodeJpeg(e.preview, 95).then(
          (jpeg) => publish({ kind: 'preview', clientId, promptId, node, jpeg: jpeg.toString('base64') }),
          (err: Error) => log.warn(`preview not sent: ${err.message}`),
        );
      }
      publish({
        kind: 'event',
        clientId,
        promptId,
        msg: { type: e.type, data: e.type === 'execution_error' ? redact.value(e.data) : e.data },
      });
    };
    try {
      let r: ExecutionResult;
      try {
        r = await host.execute(prompt, { promptId, extraData: extra, outputs, onEvent });
      } catch (e) {
        r = failedResult(promptId, e);
      }
      if (opts.uploadTo && r.status === 'success') r = { ...r, outputs: await uploadOutputs(r.outputs, opts.paths, opts.uploadTo) };
      const entry = historyEntryOf(item, r, redact);
      if (!(await throughOutages(() => history.store(promptId, entry))))
        log.warn(`prompt ${promptId}: another attempt stored its result first; this one's is dropped`);
      for (const m of job.data.models) {
        const at = loaded.indexOf(m);
        if (at >= 0) loaded.splice(at, 1);
        loaded.unshift(m);
      }
      loaded.splice(LOADED_KEEP);
      publish({ kind: 'event', clientId, promptId, msg: { type: 'executing', data: { node: null, prompt_id: promptId } } });
    } finally {
      recent.unshift(promptId);
      recent.splice(16);
      running.delete(promptId);
      idle.push(host);
      beatSoon();
      publish({ kind: 'queue' });
    }
  };

  const worker = new Worker<PromptJob>(QUEUE_NAME, process_, {
    connection: redis,
    prefix: PREFIX,
    concurrency,
    lockDuration: lockMs,
    stalledInterval: lockMs,
    maxStalledCount: Math.max(0, (opts.maxAttempts ?? 3) - 1),
    autorun: false,
  });
  worker.on('error', (e: Error) => log.warn(`worker: ${e.message}`));
  // Execution threads first (registry, custom nodes): a worker takes no prompt before it can run one.
  await Promise.all(idle.map((h) => h.start()));
  await worker.waitUntilReady();
  await beat();
  const queue = new Queue<PromptJob>(QUEUE_NAME, { connection: redis, prefix: PREFIX });
  await reconcileFailed(queue, history, log).catch((e: Error) => log.warn(`failed prompts not reconciled: ${e.message}`));
  void worker.run().catch((e: Error) => log.error(`worker stopped: ${e.message}`));
  log.info(`weft worker ${id}: taking prompts from ${redactUrl(opts.url)} (concurrency ${concurrency})`);

  return {
    id,
    close: async (force = false) => {
      clearInterval(beats);
      if (force) for (const h of running.values()) h.interrupt();
      await worker.close(force).catch(() => undefined);
      await Promise.all([...idle, ...running.values()].map((h) => h.close(3000)));
      await queue.close().catch(() => undefined);
      await redis.send(['HDEL', KEYS.workers, id]).catch(() => undefined);
      await sub.quit();
      await redis.quit();
    },
  };
}

/**
 * Retries a Redis call cut off by a lost connection (a Redis restart) for up to a minute: the
 * prompt has run, and its result must not be lost to a command that was in flight at the wrong time.
 */
async function throughOutages<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof ConnectionClosedError) || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

interface SavedFile {
  filename: string;
  subfolder: string;
  type: string;
}

/** Sends every output/temp file the prompt's UI outputs name to the front, and names them as the front stored them. */
async function uploadOutputs(
  outputs: ExecutionResult['outputs'],
  paths: FolderPaths,
  to: { url: string; token?: string },
): Promise<ExecutionResult['outputs']> {
  const out: ExecutionResult['outputs'] = {};
  for (const [node, ui] of Object.entries(outputs)) {
    out[node] = {};
    for (const [key, list] of Object.entries(ui)) {
      out[node][key] = await Promise.all(
        list.map(async (v) => {
          const f = v as Partial<SavedFile> | null;
          if (!f || typeof f.filename !== 'string' || (f.type !== 'output' && f.type !== 'temp')) return v;
          const file = path.join(paths.typeDir(f.type), f.subfolder ?? '', f.filename);
          const res = await fetch(new URL('/internal/upload', to.url), {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...(to.token ? { authorization: `Bearer ${to.token}` } : {}) },
            body: JSON.stringify({
              type: f.type,
              subfolder: f.subfolder ?? '',
              filename: f.filename,
              data: fs.readFileSync(file).toString('base64'),
            }),
          });
          if (!res.ok) throw new Error(`upload of ${f.filename} to ${to.url} failed: ${res.status} ${await res.text()}`);
          const stored = (await res.json()) as SavedFile;
          fs.rmSync(file, { force: true });
          return { ...f, filename: stored.filename };
        }),
      );
    }
  }
  return out;
}
