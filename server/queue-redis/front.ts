import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Queue, QueueEvents, type Job } from 'bullmq';
import type { Express, Request, Response } from 'express';
import { z } from 'zod';
import { silentLogger, type Logger } from '../../engine/core/log.ts';
import { safeJoin } from '../../engine/core/safe-path.ts';
import type { FolderPaths } from '../../engine/paths/folders.ts';
import type { CheckedPrompt } from '../prompt-request.ts';
import type { QueueItem } from '../queue.ts';
import { reconcileFailed, recordFailedJob } from './failures.ts';
import { RedisHistory } from './history.ts';
import {
  CHANNELS,
  KEYS,
  PREFIX,
  QUEUE_NAME,
  BEAT_STALE_MS,
  priorityOf,
  promptModels,
  type ControlMessage,
  type EventMessage,
  type PromptJob,
  type WorkerBeat,
} from './layout.ts';
import { RedisClient } from './redis-client.ts';
import { parseRedisUrl, redactUrl } from './redis-url.ts';

/** What the server gives the front: its WebSocket clients and its POST /prompt checks. */
export interface FrontHooks {
  toClient(clientId: string | undefined, msg: { type: string; data: unknown }): void;
  broadcast(msg: { type: string; data: unknown }): void;
  broadcastStatus(): void;
  sendPreview(clientId: string | undefined, jpeg: Buffer, node: string, promptId: string): void;
  checkPrompt(body: unknown, has: (id: string) => Promise<boolean>): Promise<CheckedPrompt>;
  paths: FolderPaths;
  /** Whether the server requires its auth token (then /internal/upload is open to workers holding it). */
  authRequired: boolean;
}

/** The scale-out front as `startServer` sees it (server.ts imports only this type). */
export interface ScaleOutFront {
  /** Pending + running prompts in the farm, as last counted (the WebSocket `status` reads it synchronously). */
  readonly remaining: number;
  attach(app: Express, hooks: FrontHooks): void;
  close(): Promise<void>;
}

export interface RedisFrontOptions {
  /** redis:// or rediss:// URL. */
  url: string;
  /** History entries kept (oldest dropped first; default 10,000 as ComfyUI). */
  maxHistory?: number;
  log?: Logger;
}

const idsBody = z.object({ clear: z.boolean().optional(), delete: z.array(z.string()).optional() });
const uploadBody = z.object({
  type: z.enum(['output', 'temp']),
  subfolder: z.string().max(1024),
  filename: z.string().min(1).max(255),
  data: z.string(),
});

/**
 * `weft serve --queue redis://…`: the front validates prompts and enqueues them as BullMQ jobs
 * (job id = prompt_id), answers the queue and history routes from Redis, and relays the executor's
 * events that workers publish (pub/sub) to its WebSocket clients. It keeps no state of its own, so
 * a restarted front finds every pending and running prompt where it was.
 */
export class RedisFront implements ScaleOutFront {
  remaining = 0;
  private hooks: FrontHooks | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(
    private readonly redis: RedisClient,
    private readonly sub: RedisClient,
    private readonly queue: Queue<PromptJob>,
    private readonly events: QueueEvents,
    private readonly history: RedisHistory,
    private readonly log: Logger,
  ) {}

  static async open(opts: RedisFrontOptions): Promise<RedisFront> {
    const log = opts.log ?? silentLogger;
    const target = parseRedisUrl(opts.url);
    const redis = new RedisClient({ ...target, connectionName: 'weft-front' });
    redis.on('error', (e: Error) => log.warn(`redis ${redactUrl(opts.url)}: ${e.message}`));
    const sub = redis.duplicate({ connectionName: 'weft-front-sub' });
    sub.on('error', () => undefined);
    const queue = new Queue<PromptJob>(QUEUE_NAME, {
      connection: redis,
      prefix: PREFIX,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000 },
    });
    queue.on('error', (e: Error) => log.warn(`queue: ${e.message}`));
    const events = new QueueEvents(QUEUE_NAME, { connection: redis, prefix: PREFIX });
    events.on('error', (e: Error) => log.warn(`queue events: ${e.message}`));
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
    const front = new RedisFront(redis, sub, queue, events, new RedisHistory(redis, opts.maxHistory ?? 10_000), log);
    await front.start();
    log.info(`weft: prompts go to the queue at ${redactUrl(opts.url)}`);
    return front;
  }

  private async start(): Promise<void> {
    this.sub.subscribe(CHANNELS.events);
    this.sub.on('message', (_channel: string, text: string) => this.onMessage(text));
    for (const e of ['waiting', 'active', 'completed', 'removed', 'stalled', 'delayed'] as const)
      this.events.on(e, () => this.scheduleRefresh());
    this.events.on('failed', ({ jobId }) => {
      this.scheduleRefresh();
      void this.recordFailure(jobId);
    });
    await reconcileFailed(this.queue, this.history, this.log);
    await this.refresh();
  }

  private async recordFailure(jobId: string): Promise<void> {
    try {
      const job = await this.queue.getJob(jobId);
      if (job && (await recordFailedJob(this.history, job, this.log))) {
        const clientId = job.data.item[3].client_id;
        this.hooks?.toClient(typeof clientId === 'string' ? clientId : undefined, {
          type: 'executing',
          data: { node: null, prompt_id: jobId },
        });
      }
    } catch (e) {
      this.log.warn(`prompt ${jobId}: failure not recorded: ${(e as Error).message}`);
    }
  }

  private onMessage(text: string): void {
    let m: EventMessage;
    try {
      m = JSON.parse(text) as EventMessage;
    } catch {
      return;
    }
    const hooks = this.hooks;
    if (!hooks) return;
    if (m.kind === 'queue') this.scheduleRefresh();
    else if (m.kind === 'preview') hooks.sendPreview(m.clientId, Buffer.from(m.jpeg, 'base64'), m.node, m.promptId);
    else if (m.kind === 'event') {
      // As the embedded queue: an interruption of a prompt nobody is listening for goes to everyone.
      if (m.msg.type === 'execution_interrupted' && !m.clientId) hooks.broadcast(m.msg);
      else hooks.toClient(m.clientId, m.msg);
    }
  }

  /** Counts lag the queue by a few ms: bursts of events cost one count. */
  private scheduleRefresh(): void {
    if (this.refreshTimer || this.closed) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      this.refresh().catch((e: Error) => this.log.warn(`queue count: ${e.message}`));
    }, 20);
  }

  private async refresh(): Promise<void> {
    const c = await this.queue.getJobCounts('active', 'waiting', 'prioritized', 'delayed');
    const n = (c.active ?? 0) + (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0);
    if (n !== this.remaining) {
      this.remaining = n;
      this.hooks?.broadcastStatus();
    }
  }

  private async has(id: string): Promise<boolean> {
    return (await this.history.has(id)) || (await this.queue.getJob(id)) !== undefined;
  }

  /** Live workers by their heartbeats. */
  private async workers(): Promise<WorkerBeat[]> {
    const all = await this.redis.hgetall(KEYS.workers);
    const now = Date.now();
    return Object.values(all)
      .map((v) => JSON.parse(v) as WorkerBeat)
      .filter((w) => now - w.at < BEAT_STALE_MS);
  }

  /** The routing step: a worker that has every checkpoint of the prompt loaded, idle ones first. */
  private async preferredWorker(models: string[]): Promise<string | undefined> {
    if (!models.length) return undefined;
    const holders = (await this.workers()).filter((w) => models.every((m) => w.models.includes(m)));
    holders.sort((a, b) => a.busy / a.concurrency - b.busy / b.concurrency);
    return holders[0]?.id;
  }

  private async pending(): Promise<QueueItem[]> {
    // BullMQ serves the wait list before the prioritized set; delayed jobs are prompts routed to a busy worker.
    const jobs = [
      ...(await this.queue.getJobs(['wait'], 0, -1, true)),
      ...(await this.queue.getJobs(['prioritized'], 0, -1, true)),
      ...(await this.queue.getJobs(['delayed'], 0, -1, true)),
    ];
    return jobs.filter((j): j is Job<PromptJob> => !!j?.data?.item).map((j) => j.data.item);
  }

  attach(app: Express, hooks: FrontHooks): void {
    this.hooks = hooks;
    const wrap =
      (fn: (req: Request, res: Response) => Promise<void>) =>
      (req: Request, res: Response, next: (e?: unknown) => void): void =>
        void fn(req, res).catch(next);

    app.get(
      '/prompt',
      wrap(async (_req, res) => {
        await this.refresh();
        res.json({ exec_info: { queue_remaining: this.remaining } });
      }),
    );
    app.post(
      '/prompt',
      wrap(async (req, res) => {
        const checked = await hooks.checkPrompt(req.body, (id) => this.has(id));
        if (!checked.ok) return void res.status(checked.status).json(checked.body);
        const b = checked.body;
        const id = b.prompt_id ?? randomUUID();
        const n = b.number ?? ((await this.redis.send(['INCR', KEYS.number])) as number);
        const number = b.number ?? (b.front === true ? -n : n);
        const extra = { ...(b.extra_data ?? {}), ...(b.client_id ? { client_id: b.client_id } : {}), create_time: Date.now() };
        const item: QueueItem = [number, id, checked.prompt, extra, checked.outputs];
        const models = promptModels(item);
        const prefer = await this.preferredWorker(models);
        // Resolves once Redis has the job (with appendonly + appendfsync always, on disk): only then the 200.
        await this.queue.add(
          'prompt',
          { item, models, ...(prefer ? { prefer } : {}) },
          {
            jobId: id,
            priority: priorityOf(number),
            // Only infrastructure errors throw (a prompt's own errors end in its history entry): retry those.
            attempts: 3,
            backoff: { type: 'fixed', delay: 1000 },
          },
        );
        this.scheduleRefresh();
        res.json({ prompt_id: id, number, node_errors: checked.nodeErrors });
      }),
    );
    app.get(
      '/queue',
      wrap(async (_req, res) => {
        const running = (await this.queue.getJobs(['active'], 0, -1, true)).filter((j) => j?.data?.item).map((j) => j.data.item);
        res.json({ queue_running: running, queue_pending: await this.pending() });
      }),
    );
    app.post(
      '/queue',
      wrap(async (req, res) => {
        const b = idsBody.safeParse(req.body ?? {});
        if (!b.success) return void res.status(400).json({ error: b.error.issues.map((i) => i.message).join('; ') });
        const ids = [...(b.data.delete ?? []), ...(b.data.clear ? (await this.pending()).map((it) => it[1]) : [])];
        // Only pending prompts: a running job is locked by its worker and stays (as in ComfyUI).
        for (const id of ids) {
          const job = await this.queue.getJob(id);
          const state = job ? await job.getState() : 'unknown';
          if (job && (state === 'waiting' || state === 'prioritized' || state === 'delayed')) await job.remove().catch(() => undefined);
        }
        await this.refresh();
        hooks.broadcastStatus();
        res.status(200).end();
      }),
    );
    app.post(
      '/interrupt',
      wrap(async (req, res) => {
        const id = (req.body as { prompt_id?: unknown } | undefined)?.prompt_id;
        await this.control({ kind: 'interrupt', ...(typeof id === 'string' ? { promptId: id } : {}) });
        res.status(200).end();
      }),
    );
    app.post(
      '/free',
      wrap(async (_req, res) => {
        await this.control({ kind: 'free' });
        res.status(200).end();
      }),
    );
    app.get(
      '/history',
      wrap(async (req, res) => {
        const max = req.query.max_items !== undefined ? Number(req.query.max_items) : undefined;
        const offset = Number(req.query.offset ?? 0) || 0;
        res.json(Object.fromEntries(await this.history.list(max !== undefined && Number.isFinite(max) ? max : undefined, offset)));
      }),
    );
    app.get(
      '/history/:id',
      wrap(async (req, res) => {
        const id = String(req.params.id);
        const e = await this.history.get(id);
        res.json(e ? { [id]: e } : {});
      }),
    );
    app.post(
      '/history',
      wrap(async (req, res) => {
        const b = idsBody.safeParse(req.body ?? {});
        if (!b.success) return void res.status(400).json({ error: b.error.issues.map((i) => i.message).join('; ') });
        if (b.data.clear) await this.history.clear();
        if (b.data.delete) await this.history.delete(b.data.delete);
        res.status(200).end();
      }),
    );
    // Workers without a shared output folder send their files here (weft worker --upload-to).
    app.post(
      '/internal/upload',
      wrap(async (req, res) => {
        if (!hooks.authRequired) return void res.status(403).json({ error: '/internal/upload needs the server to run with an auth token' });
        const b = uploadBody.safeParse(req.body ?? {});
        if (!b.success)
          return void res.status(400).json({ error: b.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
        const dir = safeJoin(hooks.paths.typeDir(b.data.type), b.data.subfolder);
        const name = storeExclusive(dir, path.basename(b.data.filename), Buffer.from(b.data.data, 'base64'));
        res.json({ filename: name, subfolder: b.data.subfolder, type: b.data.type });
      }),
    );
  }

  private async control(m: ControlMessage): Promise<void> {
    await this.redis.publish(CHANNELS.control, JSON.stringify(m));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    await this.events.close().catch(() => undefined);
    await this.queue.close().catch(() => undefined);
    await this.sub.quit();
    await this.redis.quit();
  }
}

/**
 * Writes a file under a name nobody has: the worker's own name, else `<stem>-2.<ext>`, `-3`, …
 * (two workers with their own output folders both count from 00001), never over another file.
 */
export function storeExclusive(dir: string, name: string, data: Buffer): string {
  fs.mkdirSync(dir, { recursive: true });
  const ext = path.extname(name);
  const stem = name.slice(0, name.length - ext.length);
  for (let i = 1; ; i++) {
    const candidate = i === 1 ? name : `${stem}-${i}${ext}`;
    try {
      fs.writeFileSync(path.join(dir, candidate), data, { flag: 'wx' });
      return candidate;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}
