import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { silentLogger, type Logger } from '../engine/core/log.ts';
import type { ApiPrompt } from '../engine/graph/prompt.ts';
import { deeperThan, unserialisable } from '../engine/executor/json-bounds.ts';

/** ComfyUI's queue item: [number, prompt_id, prompt, extra_data, outputs_to_execute]. */
export type QueueItem = [number, string, ApiPrompt, Record<string, unknown>, string[]];

export interface HistoryEntry {
  prompt: QueueItem;
  outputs: Record<string, Record<string, unknown[]>>;
  status: { status_str: 'success' | 'error'; completed: boolean; messages: [string, unknown][] };
  meta: Record<string, { node_id: string; display_node: string; parent_node: null; real_node_id: string }>;
}

type Record_ =
  | { op: 'put'; item: QueueItem }
  | { op: 'remove'; id: string }
  | { op: 'start'; id: string }
  | { op: 'unstart'; id: string }
  | { op: 'history'; id: string; entry: HistoryEntry }
  | { op: 'history_delete'; id: string }
  | { op: 'history_clear' };

const MAX_HISTORY = 10_000;
/** A journal line longer than this is skipped at start-up (it was never written by this version). */
export const MAX_JOURNAL_LINE = 32 * 1024 * 1024;
/** A history entry whose JSON is larger keeps its status but loses its outputs. */
export const MAX_HISTORY_ENTRY = 8 * 1024 * 1024;
/** Deepest nesting accepted in anything journaled (extra_data, node UI outputs). */
export const MAX_JSON_DEPTH = 64;

export interface QueueOptions {
  log?: Logger;
  /** A prompt that was running when the process died this many times is failed, not replayed. */
  maxCrashes?: number;
  /** Dead journal lines tolerated before compaction (default 1000; also at least twice the live ones). */
  compactAfter?: number;
}

/**
 * Pending prompts and history, persisted as an append-only JSON-lines journal: every accepted prompt
 * is on disk (fsync'd) before the 200 answer, so a crash or restart loses nothing. On start the
 * journal is read line by line (never as one string), lines that are torn, corrupt, too long or of
 * the wrong shape are skipped with a warning, and the result compacted. A prompt that was running
 * when the process died is pending again after the restart, unless it was running at `maxCrashes`
 * deaths: then it goes to history as an error, so a prompt that kills the process cannot loop.
 */
export class PersistentQueue {
  private pending: QueueItem[] = [];
  private running: QueueItem | null = null;
  readonly history = new Map<string, HistoryEntry>();
  private counter = 0;
  private fd: number;
  private readonly file: string;
  private readonly log: Logger;
  private readonly maxCrashes: number;
  /** Journal lines that no longer describe live state; compaction when they dominate. */
  private stale = 0;
  private readonly compactAfter: number;
  /** Times each pending prompt was started by a process that then died (kept across compaction). */
  private starts = new Map<string, number>();

  constructor(stateDir: string, opts: QueueOptions = {}) {
    this.log = opts.log ?? silentLogger;
    this.maxCrashes = opts.maxCrashes ?? 2;
    this.compactAfter = opts.compactAfter ?? 1000;
    fs.mkdirSync(stateDir, { recursive: true });
    this.file = path.join(stateDir, 'queue.jsonl');
    this.replay();
    this.compact();
    this.fd = fs.openSync(this.file, 'a');
  }

  private replay(): void {
    if (!fs.existsSync(this.file)) return;
    const pend = new Map<string, QueueItem>();
    const starts = new Map<string, number>();
    let skipped = 0;
    for (const line of journalLines(this.file, MAX_JOURNAL_LINE)) {
      if (line === null) {
        skipped++;
        continue;
      }
      const r = parseRecord(line);
      if (!r) {
        skipped++;
        continue;
      }
      if (r.op === 'put') {
        if (!pend.has(r.item[1]) && !this.history.has(r.item[1])) pend.set(r.item[1], r.item);
      } else if (r.op === 'remove') pend.delete(r.id);
      else if (r.op === 'start') starts.set(r.id, (starts.get(r.id) ?? 0) + 1);
      else if (r.op === 'unstart') starts.set(r.id, Math.max(0, (starts.get(r.id) ?? 0) - 1));
      else if (r.op === 'history') {
        pend.delete(r.id);
        this.history.delete(r.id);
        this.history.set(r.id, r.entry);
      } else if (r.op === 'history_delete') this.history.delete(r.id);
      else if (r.op === 'history_clear') this.history.clear();
    }
    if (skipped) this.log.warn(`journal ${this.file}: skipped ${skipped} corrupt, oversized or unreadable line(s)`);
    for (const [id, item] of pend) {
      const n = starts.get(id) ?? 0;
      if (n < this.maxCrashes) continue;
      pend.delete(id);
      const reason = `the server stopped while running this prompt ${n} times; it was failed instead of run again`;
      this.log.warn(`prompt ${id}: ${reason}`);
      this.history.set(id, {
        prompt: item,
        outputs: {},
        status: {
          status_str: 'error',
          completed: false,
          messages: [
            [
              'execution_error',
              {
                prompt_id: id,
                node_id: '',
                node_type: '',
                exception_message: reason,
                exception_type: 'ExecutionHostCrash',
                traceback: [],
                executed: [],
                current_inputs: {},
                current_outputs: [],
                timestamp: Date.now(),
              },
            ],
          ],
        },
        meta: {},
      });
    }
    this.pending = [...pend.values()];
    for (const it of this.pending) if (starts.get(it[1])) this.starts.set(it[1], starts.get(it[1])!);
    for (const it of this.pending) this.counter = Math.max(this.counter, Math.abs(it[0]) + 1);
    while (this.history.size > MAX_HISTORY) this.history.delete(this.history.keys().next().value as string);
  }

  private compact(): void {
    const tmp = `${this.file}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    try {
      // One line at a time: the whole journal as one string is what made a large one unreadable.
      for (const [id, entry] of this.history) fs.writeSync(fd, JSON.stringify({ op: 'history', id, entry }) + '\n');
      for (const item of this.pending) {
        fs.writeSync(fd, JSON.stringify({ op: 'put', item }) + '\n');
        for (let i = this.starts.get(item[1]) ?? 0; i > 0; i--) fs.writeSync(fd, JSON.stringify({ op: 'start', id: item[1] }) + '\n');
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    this.stale = 0;
  }

  /**
   * `durable: false` for start/unstart: they only need to survive the process dying (the page cache
   * keeps a written line), not the machine, and an fsync per prompt start costs throughput.
   */
  private append(r: Record_, durable = true): void {
    fs.writeSync(this.fd, JSON.stringify(r) + '\n');
    if (durable) fs.fsyncSync(this.fd);
  }

  /** Rewrites the journal when most of its lines are dead (history trimmed, deleted, prompts done). */
  private maybeCompact(): void {
    if (this.stale < this.compactAfter || this.stale < 2 * (this.history.size + this.pending.length)) return;
    fs.closeSync(this.fd);
    this.compact();
    this.fd = fs.openSync(this.file, 'a');
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  nextNumber(front: boolean): number {
    const n = this.counter++;
    return front ? -n : n;
  }

  /** Whether a prompt id is pending, running or in history (a client-chosen id must be new). */
  has(id: string): boolean {
    return this.history.has(id) || this.running?.[1] === id || this.pending.some((p) => p[1] === id);
  }

  put(item: QueueItem): void {
    this.append({ op: 'put', item });
    this.pending.push(item);
  }

  /** Lowest number first; equal numbers in insertion order. The start is journaled (crash counting). */
  take(): QueueItem | undefined {
    if (!this.pending.length) return undefined;
    let best = 0;
    for (let i = 1; i < this.pending.length; i++) if (this.pending[i][0] < this.pending[best][0]) best = i;
    const [item] = this.pending.splice(best, 1);
    this.append({ op: 'start', id: item[1] }, false);
    this.starts.set(item[1], (this.starts.get(item[1]) ?? 0) + 1);
    this.stale++;
    this.running = item;
    return item;
  }

  /** The running prompt goes back to pending without counting as a crash (an orderly shutdown). */
  requeueRunning(): void {
    if (!this.running) return;
    this.append({ op: 'unstart', id: this.running[1] }, false);
    const id = this.running[1];
    const n = (this.starts.get(id) ?? 1) - 1;
    if (n > 0) this.starts.set(id, n);
    else this.starts.delete(id);
    this.stale++;
    // Pending again, first in line as before (its number has not changed).
    this.pending.push(this.running);
    this.running = null;
  }

  finish(id: string, entry: HistoryEntry): void {
    const bounded = boundEntry(entry);
    this.append({ op: 'history', id, entry: bounded });
    this.starts.delete(id);
    this.stale++; // the put line
    this.running = null;
    this.history.set(id, bounded);
    if (this.history.size > MAX_HISTORY) {
      this.history.delete(this.history.keys().next().value as string);
      this.stale++;
    }
    this.maybeCompact();
  }

  delete(ids: readonly string[]): void {
    for (const id of ids) {
      const i = this.pending.findIndex((p) => p[1] === id);
      if (i >= 0) {
        this.pending.splice(i, 1);
        this.starts.delete(id);
        this.append({ op: 'remove', id });
        this.stale += 2;
      }
    }
    this.maybeCompact();
  }

  clear(): void {
    this.delete(this.pending.map((p) => p[1]));
  }

  deleteHistory(ids: readonly string[]): void {
    for (const id of ids) {
      if (this.history.delete(id)) {
        this.append({ op: 'history_delete', id });
        this.stale += 2;
      }
    }
    this.maybeCompact();
  }

  clearHistory(): void {
    this.stale += this.history.size + 1;
    this.history.clear();
    this.append({ op: 'history_clear' });
    this.maybeCompact();
  }

  get pendingItems(): readonly QueueItem[] {
    return this.pending;
  }

  get runningItem(): QueueItem | null {
    return this.running;
  }

  get remaining(): number {
    return this.pending.length + (this.running ? 1 : 0);
  }
}

/** An entry whose JSON fits MAX_HISTORY_ENTRY and MAX_JSON_DEPTH; otherwise its outputs are dropped with a message. */
export function boundEntry(entry: HistoryEntry): HistoryEntry {
  const problem = unserialisable(entry, MAX_JSON_DEPTH);
  const size = problem ? 0 : JSON.stringify(entry).length;
  if (!problem && size <= MAX_HISTORY_ENTRY) return entry;
  const why = problem ?? `is ${size} bytes of JSON (limit ${MAX_HISTORY_ENTRY})`;
  const lean: HistoryEntry = {
    prompt: entry.prompt,
    outputs: {},
    status: { ...entry.status, messages: [['history_truncated', { reason: `history entry ${why}; outputs not kept` }]] },
    meta: {},
  };
  return unserialisable(lean, MAX_JSON_DEPTH) ? { ...lean, prompt: [entry.prompt[0], entry.prompt[1], {}, {}, []] } : lean;
}

/**
 * The journal's lines, read in 1 MiB blocks; a line longer than `maxLine` (or not UTF-8 JSON text)
 * is yielded as null without being held in memory.
 */
function* journalLines(file: string, maxLine: number): Generator<string | null> {
  const fd = fs.openSync(file, 'r');
  try {
    const block = Buffer.alloc(1024 * 1024);
    let parts: Buffer[] = [];
    let len = 0;
    let oversized = false;
    for (;;) {
      const n = fs.readSync(fd, block, 0, block.length, null);
      if (n <= 0) break;
      let from = 0;
      for (;;) {
        const nl = block.indexOf(10, from);
        const end = nl < 0 || nl >= n ? n : nl;
        if (!oversized) {
          if (len + (end - from) > maxLine) {
            oversized = true;
            parts = [];
            len = 0;
          } else {
            parts.push(Buffer.from(block.subarray(from, end)));
            len += end - from;
          }
        }
        if (nl < 0 || nl >= n) break;
        if (oversized) yield null;
        else if (len) yield Buffer.concat(parts, len).toString('utf8');
        parts = [];
        len = 0;
        oversized = false;
        from = nl + 1;
      }
    }
    // A last line without its newline was torn by a crash mid-write: JSON.parse decides.
    if (oversized) yield null;
    else if (len) yield Buffer.concat(parts, len).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

const id = z.string().min(1).max(256);
const queueItem = z.tuple([z.number(), id, z.record(z.string(), z.unknown()), z.record(z.string(), z.unknown()), z.array(z.string())]);
const historyEntry = z.object({
  prompt: queueItem,
  outputs: z.record(z.string(), z.unknown()),
  status: z.object({ status_str: z.enum(['success', 'error']), completed: z.boolean(), messages: z.array(z.unknown()) }),
  meta: z.record(z.string(), z.unknown()),
});
const recordSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('put'), item: queueItem }),
  z.object({ op: z.literal('remove'), id }),
  z.object({ op: z.literal('start'), id }),
  z.object({ op: z.literal('unstart'), id }),
  z.object({ op: z.literal('history'), id, entry: historyEntry }),
  z.object({ op: z.literal('history_delete'), id }),
  z.object({ op: z.literal('history_clear') }),
]);

function parseRecord(line: string): Record_ | undefined {
  if (!line.trim()) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  // Depth first: zod and the history route recurse, and a record from an older version may be deep.
  if (deeperThan(v, MAX_JSON_DEPTH + 8)) return undefined;
  const r = recordSchema.safeParse(v);
  return r.success ? (v as Record_) : undefined;
}
