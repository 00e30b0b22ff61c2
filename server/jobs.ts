/**
 * ComfyUI's jobs API (`GET /api/jobs`, `GET /api/jobs/{id}`, comfy_execution/jobs.py and the routes
 * in server.py): one list over the running prompt, the pending ones and the history, each as a job
 * with a status of pending, in_progress, completed or failed; and the log routes of
 * api_server/routes/internal (`/internal/logs`, `/internal/logs/raw`, `PATCH /internal/logs/subscribe`).
 */
import type { Express } from 'express';
import type { Logger } from '../engine/core/log.ts';
import type { HistoryEntry, QueueItem } from './queue.ts';

export const JOB_STATUSES = ['pending', 'in_progress', 'completed', 'failed'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** What the jobs routes read: the same state /queue and /history answer from. */
export interface JobSource {
  readonly runningItem: QueueItem | null;
  readonly pendingItems: readonly QueueItem[];
  readonly history: ReadonlyMap<string, HistoryEntry>;
}

type Job = Record<string, unknown> & { id: string; status: JobStatus };

const PREVIEWABLE = new Set(['images', 'video', 'audio']);
const THREE_D = ['.obj', '.fbx', '.gltf', '.glb'];

/** ComfyUI's prune_dict: keys whose value is None are left out. */
const prune = (o: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null));

function metadata(extra: Record<string, unknown>): { create_time: unknown; workflow_id: unknown } {
  const pnginfo = (extra.extra_pnginfo ?? {}) as { workflow?: { id?: unknown } };
  return { create_time: extra.create_time, workflow_id: pnginfo.workflow?.id };
}

function queueJob(item: QueueItem, status: JobStatus): Job {
  const [priority, id, , extra] = item;
  return prune({ id, status, priority, ...metadata(extra), outputs_count: 0 }) as Job;
}

function previewable(mediaType: string, item: Record<string, unknown>): boolean {
  if (PREVIEWABLE.has(mediaType)) return true;
  const format = typeof item.format === 'string' ? item.format : '';
  if (format.startsWith('video/') || format.startsWith('audio/')) return true;
  const name = typeof item.filename === 'string' ? item.filename.toLowerCase() : '';
  return THREE_D.some((x) => name.endsWith(x));
}

/** The number of output items and the one the frontend previews (a saved output first, else any previewable one). */
export function outputsSummary(outputs: HistoryEntry['outputs']): [number, Record<string, unknown> | undefined] {
  let count = 0;
  let preview: Record<string, unknown> | undefined;
  let fallback: Record<string, unknown> | undefined;
  for (const [nodeId, byType] of Object.entries(outputs)) {
    if (typeof byType !== 'object' || byType === null) continue;
    for (const [mediaType, items] of Object.entries(byType)) {
      if (mediaType === 'animated' || !Array.isArray(items)) continue;
      for (const item of items) {
        if (typeof item !== 'object' || item === null) continue;
        count++;
        const it = item as Record<string, unknown>;
        if (preview === undefined && previewable(mediaType, it)) {
          const enriched = { ...it, nodeId, mediaType };
          if (it.type === 'output') preview = enriched;
          else fallback ??= enriched;
        }
      }
    }
  }
  return [count, preview ?? fallback];
}

function historyJob(id: string, h: HistoryEntry, full: boolean): Job {
  const [priority, , prompt, extra] = h.prompt;
  const status: JobStatus = h.status?.status_str === 'error' ? 'failed' : 'completed';
  const [outputs_count, preview_output] = outputsSummary(h.outputs ?? {});
  let start: unknown;
  let end: unknown;
  let error: unknown;
  for (const m of h.status?.messages ?? []) {
    if (!Array.isArray(m) || m.length < 2 || typeof m[1] !== 'object' || m[1] === null) continue;
    const data = m[1] as { timestamp?: unknown };
    if (m[0] === 'execution_start') start = data.timestamp;
    else if (m[0] === 'execution_success' || m[0] === 'execution_error' || m[0] === 'execution_interrupted') {
      end = data.timestamp;
      if (m[0] === 'execution_error') error = data;
    }
  }
  const job = prune({
    id,
    status,
    priority,
    ...metadata(extra),
    execution_start_time: start,
    execution_end_time: end,
    execution_error: error,
    outputs_count,
    preview_output,
  }) as Job;
  if (full) {
    job.outputs = h.outputs;
    job.execution_status = h.status;
    job.workflow = { prompt, extra_data: extra };
  }
  return job;
}

/** One job by prompt id: history first, then the running and pending prompts. */
export function getJob(id: string, src: JobSource): Job | undefined {
  const h = src.history.get(id);
  if (h) return historyJob(id, h, true);
  if (src.runningItem?.[1] === id) return queueJob(src.runningItem, 'in_progress');
  const p = src.pendingItems.find((i) => i[1] === id);
  return p ? queueJob(p, 'pending') : undefined;
}

export interface JobQuery {
  status?: JobStatus[];
  workflowId?: string;
  sortBy: 'created_at' | 'execution_duration';
  sortOrder: 'asc' | 'desc';
  limit?: number;
  offset: number;
}

export function listJobs(src: JobSource, q: JobQuery): { jobs: Job[]; total: number } {
  const want = new Set<JobStatus>(q.status ?? JOB_STATUSES);
  let jobs: Job[] = [];
  if (want.has('in_progress') && src.runningItem) jobs.push(queueJob(src.runningItem, 'in_progress'));
  if (want.has('pending')) for (const i of src.pendingItems) jobs.push(queueJob(i, 'pending'));
  if (want.has('completed') || want.has('failed')) {
    for (const [id, h] of src.history) {
      const failed = h.status?.status_str === 'error';
      if (failed ? want.has('failed') : want.has('completed')) jobs.push(historyJob(id, h, false));
    }
  }
  if (q.workflowId) jobs = jobs.filter((j) => j.workflow_id === q.workflowId);
  const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
  const key =
    q.sortBy === 'execution_duration'
      ? (j: Job) => {
          const s = num(j.execution_start_time);
          const e = num(j.execution_end_time);
          return s && e ? e - s : 0;
        }
      : (j: Job) => num(j.create_time);
  // Python's sorted(reverse=True) keeps equal keys in their original order, as does a stable descending sort.
  jobs.sort((a, b) => (q.sortOrder === 'desc' ? key(b) - key(a) : key(a) - key(b)));
  const total = jobs.length;
  const from = q.offset > 0 ? jobs.slice(q.offset) : jobs;
  return { jobs: q.limit === undefined ? from : from.slice(0, q.limit), total };
}

/** The query string as ComfyUI's route reads it, or the error it answers with (400). */
export function parseJobQuery(query: Record<string, unknown>): JobQuery | { error: string } {
  const str = (k: string): string | undefined => (typeof query[k] === 'string' ? (query[k] as string) : undefined);
  let status: JobStatus[] | undefined;
  const statusParam = str('status');
  if (statusParam) {
    const list = statusParam
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean);
    const bad = list.filter((s) => !(JOB_STATUSES as readonly string[]).includes(s));
    if (bad.length) return { error: `Invalid status value(s): ${bad.join(', ')}. Valid values: ${JOB_STATUSES.join(', ')}` };
    status = list as JobStatus[];
  }
  const sortBy = (str('sort_by') ?? 'created_at').toLowerCase();
  const sortOrder = (str('sort_order') ?? 'desc').toLowerCase();
  if (sortBy !== 'created_at' && sortBy !== 'execution_duration') return { error: "sort_by must be 'created_at' or 'execution_duration'" };
  if (sortOrder !== 'asc' && sortOrder !== 'desc') return { error: "sort_order must be 'asc' or 'desc'" };
  let limit: number | undefined;
  if ('limit' in query) {
    const n = pyInt(str('limit'));
    if (n === undefined) return { error: 'limit must be an integer' };
    if (n <= 0) return { error: 'limit must be a positive integer' };
    limit = n;
  }
  let offset = 0;
  if ('offset' in query) {
    const n = pyInt(str('offset'));
    if (n === undefined) return { error: 'offset must be an integer' };
    offset = Math.max(0, n);
  }
  return { status, workflowId: str('workflow_id') || undefined, sortBy, sortOrder, limit, offset };
}

/** Python's int() of a query value: optional sign, digits, surrounding blanks. */
function pyInt(v: string | undefined): number | undefined {
  if (v === undefined || !/^\s*[+-]?\d+\s*$/.test(v)) return undefined;
  return Number(v.trim());
}

/** The last log lines, as ComfyUI's app.logger keeps them (300 entries of `{t, m}`). */
export class LogBuffer {
  private readonly entries: { t: string; m: string }[] = [];
  private readonly listeners = new Set<(entry: { t: string; m: string }) => void>();

  constructor(private readonly max = 300) {}

  add(message: string): void {
    if (!message) return;
    const entry = { t: new Date().toISOString(), m: message.endsWith('\n') ? message : `${message}\n` };
    this.entries.push(entry);
    if (this.entries.length > this.max) this.entries.splice(0, this.entries.length - this.max);
    for (const l of this.listeners) l(entry);
  }

  list(): readonly { t: string; m: string }[] {
    return this.entries;
  }

  onEntry(l: (entry: { t: string; m: string }) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** A logger that also keeps what it is given here (once: its own console output is not kept again). */
  capture(log: Logger): Logger {
    const keep =
      (f: (m: string) => void) =>
      (m: string): void => {
        this.add(m);
        quiet++;
        try {
          f(m);
        } finally {
          quiet--;
        }
      };
    return { info: keep((m) => log.info(m)), warn: keep((m) => log.warn(m)), error: keep((m) => log.error(m)) };
  }

  /**
   * Keep what the process writes to stdout and stderr too (custom nodes print, and the execution
   * worker's output arrives there), as ComfyUI's LogInterceptor does. Returns the undo.
   */
  captureStdio(): () => void {
    stdioBuffers.add(this);
    if (!restoreStdio) restoreStdio = interceptStdio();
    return () => {
      stdioBuffers.delete(this);
      if (stdioBuffers.size === 0 && restoreStdio) {
        restoreStdio();
        restoreStdio = undefined;
      }
    };
  }
}

/** Writes made while a captured logger prints are already kept. */
let quiet = 0;
const stdioBuffers = new Set<LogBuffer>();
let restoreStdio: (() => void) | undefined;

function interceptStdio(): () => void {
  const streams = [process.stdout, process.stderr];
  const originals = streams.map((s) => s.write);
  streams.forEach((s, i) => {
    const write = originals[i];
    s.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
      if (quiet === 0) {
        const text = typeof chunk === 'string' ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk).toString('utf8') : '';
        for (const b of stdioBuffers) b.add(text);
      }
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof s.write;
  });
  return () => streams.forEach((s, i) => (s.write = originals[i]));
}

/** ComfyUI answers `/internal/logs/raw` with the terminal's size; a server has none, so its default. */
const TERMINAL = { cols: 80, rows: 24 };

export function jobRoutes(
  app: Express,
  deps: { jobs: JobSource; logs: LogBuffer; toClient: (clientId: string, msg: { type: string; data: unknown }) => void },
): () => void {
  app.get('/jobs', (req, res) => {
    const q = parseJobQuery(req.query as Record<string, unknown>);
    if ('error' in q) return void res.status(400).json({ error: q.error });
    const { jobs, total } = listJobs(deps.jobs, q);
    res.json({ jobs, pagination: { offset: q.offset, limit: q.limit ?? null, total, has_more: q.offset + jobs.length < total } });
  });
  app.get('/jobs/:id', (req, res) => {
    const job = getJob(req.params.id, deps.jobs);
    if (!job) return void res.status(404).json({ error: 'Job not found' });
    res.json(job);
  });

  app.get(
    '/internal/logs',
    (_req, res) =>
      void res.json(
        deps.logs
          .list()
          .map((e) => `${e.t} - ${e.m}`)
          .join(''),
      ),
  );
  app.get('/internal/logs/raw', (_req, res) => void res.json({ entries: deps.logs.list(), size: TERMINAL }));
  const subscribers = new Set<string>();
  app.patch('/internal/logs/subscribe', (req, res) => {
    const b = (req.body ?? {}) as { clientId?: unknown; enabled?: unknown };
    if (typeof b.clientId !== 'string' || typeof b.enabled !== 'boolean')
      return void res.status(400).json({ error: 'expected {"clientId": string, "enabled": boolean}' });
    if (b.enabled) subscribers.add(b.clientId);
    else subscribers.delete(b.clientId);
    res.sendStatus(200);
  });
  let sending = false;
  const undoStdio = deps.logs.captureStdio();
  const unsubscribe = deps.logs.onEntry((entry) => {
    // Sending may itself log (a slow client); that line is kept but not sent again.
    if (sending) return;
    sending = true;
    try {
      for (const c of subscribers) deps.toClient(c, { type: 'logs', data: { entries: [entry], size: TERMINAL } });
    } finally {
      sending = false;
    }
  });
  return () => {
    undoStdio();
    unsubscribe();
  };
}
