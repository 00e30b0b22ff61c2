import fs from 'node:fs';
import path from 'node:path';
import type { ApiPrompt } from '../engine/graph/prompt.ts';

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
  | { op: 'history'; id: string; entry: HistoryEntry }
  | { op: 'history_delete'; id: string }
  | { op: 'history_clear' };

const MAX_HISTORY = 10_000;

/**
 * Pending prompts and history, persisted as an append-only JSON-lines journal: every accepted prompt
 * is on disk (fsync'd) before the 200 answer, so a crash or restart loses nothing; on start the
 * journal is replayed (a torn last line is skipped) and compacted. A prompt that was running when
 * the process died is pending again after the restart.
 */
export class PersistentQueue {
  private pending: QueueItem[] = [];
  private running: QueueItem | null = null;
  readonly history = new Map<string, HistoryEntry>();
  private counter = 0;
  private fd: number;
  private readonly file: string;

  constructor(stateDir: string) {
    fs.mkdirSync(stateDir, { recursive: true });
    this.file = path.join(stateDir, 'queue.jsonl');
    this.replay();
    this.compact();
    this.fd = fs.openSync(this.file, 'a');
  }

  private replay(): void {
    if (!fs.existsSync(this.file)) return;
    const lines = fs.readFileSync(this.file, 'utf8').split('\n');
    const pend = new Map<string, QueueItem>();
    for (const line of lines) {
      if (!line.trim()) continue;
      let r: Record_;
      try {
        r = JSON.parse(line) as Record_;
      } catch {
        continue;
      }
      if (r.op === 'put') pend.set(r.item[1], r.item);
      else if (r.op === 'remove') pend.delete(r.id);
      else if (r.op === 'history') {
        pend.delete(r.id);
        this.history.set(r.id, r.entry);
      } else if (r.op === 'history_delete') this.history.delete(r.id);
      else if (r.op === 'history_clear') this.history.clear();
    }
    this.pending = [...pend.values()];
    for (const it of this.pending) this.counter = Math.max(this.counter, Math.abs(it[0]) + 1);
    while (this.history.size > MAX_HISTORY) this.history.delete(this.history.keys().next().value as string);
  }

  private compact(): void {
    const tmp = `${this.file}.tmp`;
    const out: string[] = [];
    for (const [id, entry] of this.history) out.push(JSON.stringify({ op: 'history', id, entry }));
    for (const item of this.pending) out.push(JSON.stringify({ op: 'put', item }));
    fs.writeFileSync(tmp, out.length ? out.join('\n') + '\n' : '');
    fs.renameSync(tmp, this.file);
  }

  private append(r: Record_): void {
    fs.writeSync(this.fd, JSON.stringify(r) + '\n');
    fs.fsyncSync(this.fd);
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  nextNumber(front: boolean): number {
    const n = this.counter++;
    return front ? -n : n;
  }

  put(item: QueueItem): void {
    this.append({ op: 'put', item });
    this.pending.push(item);
  }

  /** Lowest number first; equal numbers in insertion order. */
  take(): QueueItem | undefined {
    if (!this.pending.length) return undefined;
    let best = 0;
    for (let i = 1; i < this.pending.length; i++) if (this.pending[i][0] < this.pending[best][0]) best = i;
    const [item] = this.pending.splice(best, 1);
    this.running = item;
    return item;
  }

  finish(id: string, entry: HistoryEntry): void {
    this.append({ op: 'history', id, entry });
    this.running = null;
    this.history.set(id, entry);
    if (this.history.size > MAX_HISTORY) this.history.delete(this.history.keys().next().value as string);
  }

  delete(ids: readonly string[]): void {
    for (const id of ids) {
      const i = this.pending.findIndex((p) => p[1] === id);
      if (i >= 0) {
        this.pending.splice(i, 1);
        this.append({ op: 'remove', id });
      }
    }
  }

  clear(): void {
    this.delete(this.pending.map((p) => p[1]));
  }

  deleteHistory(ids: readonly string[]): void {
    for (const id of ids) if (this.history.delete(id)) this.append({ op: 'history_delete', id });
  }

  clearHistory(): void {
    this.history.clear();
    this.append({ op: 'history_clear' });
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
