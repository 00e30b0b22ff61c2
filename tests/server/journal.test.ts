import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_JOURNAL_LINE, PersistentQueue, type HistoryEntry, type QueueItem } from '../../server/queue.ts';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-journal-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const item = (id: string, n = 0): QueueItem => [n, id, { '1': { class_type: 'X', inputs: {} } }, { client_id: 'c' }, ['1']];
const entry = (it: QueueItem): HistoryEntry => ({
  prompt: it,
  outputs: {},
  status: { status_str: 'success', completed: true, messages: [] },
  meta: {},
});

function capture(): { warnings: string[]; log: { info(): void; warn(m: string): void; error(m: string): void } } {
  const warnings: string[] = [];
  return { warnings, log: { info: () => {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) } };
}

describe('the queue journal', () => {
  it('starts from a journal with corrupt, oversized, deep and wrongly shaped lines, skipping them with a warning', () => {
    const state = path.join(dir, 'bad');
    fs.mkdirSync(state);
    const fd = fs.openSync(path.join(state, 'queue.jsonl'), 'w');
    fs.writeSync(fd, JSON.stringify({ op: 'put', item: item('a') }) + '\n');
    fs.writeSync(fd, '{"op":"put","item":[1,\n');
    // One line longer than the limit, written in pieces (never one string in the test either).
    fs.writeSync(fd, '{"op":"put","item":[2,"big",{},{"x":"');
    const block = Buffer.alloc(1024 * 1024, 0x61);
    for (let n = 0; n <= MAX_JOURNAL_LINE; n += block.length) fs.writeSync(fd, block);
    fs.writeSync(fd, '"},[]]}\n');
    let deep = '1';
    for (let i = 0; i < 5000; i++) deep = `{"d":${deep}}`;
    fs.writeSync(
      fd,
      `{"op":"history","id":"deep","entry":{"prompt":[0,"deep",{},{"x":${deep}},[]],"outputs":{},"status":{"status_str":"success","completed":true,"messages":[]},"meta":{}}}\n`,
    );
    fs.writeSync(fd, '{"op":"put","item":"not an item"}\n');
    fs.writeSync(fd, 'null\n');
    fs.writeSync(fd, JSON.stringify({ op: 'put', item: item('b', 1) }) + '\n');
    fs.writeSync(fd, JSON.stringify({ op: 'put', item: item('a') }) + '\n'); // a duplicate put of the same id
    fs.writeSync(fd, '{"op":"remove","id":"b"'); // torn last line
    fs.closeSync(fd);
    const { warnings, log } = capture();
    const q = new PersistentQueue(state, { log });
    expect(q.pendingItems.map((p) => p[1])).toEqual(['a', 'b']);
    expect(q.history.size).toBe(0);
    expect(warnings.join('\n')).toMatch(/skipped 6 corrupt, oversized or unreadable line/);
    q.close();
    // Compacted: a second start reads two lines and warns about nothing.
    expect(fs.statSync(path.join(state, 'queue.jsonl')).size).toBeLessThan(1000);
    const again = capture();
    new PersistentQueue(state, { log: again.log }).close();
    expect(again.warnings).toEqual([]);
  });

  it('fails a prompt that was running at two deaths of the process instead of replaying it', () => {
    const state = path.join(dir, 'crash');
    const q1 = new PersistentQueue(state);
    q1.put(item('x'));
    q1.put(item('y', 1));
    expect(q1.take()?.[1]).toBe('x');
    q1.close(); // the process dies while x runs
    const q2 = new PersistentQueue(state);
    expect(q2.pendingItems.map((p) => p[1])).toEqual(['x', 'y']);
    expect(q2.take()?.[1]).toBe('x');
    q2.close(); // and dies again
    const { warnings, log } = capture();
    const q3 = new PersistentQueue(state, { log });
    expect(q3.pendingItems.map((p) => p[1])).toEqual(['y']);
    const h = q3.history.get('x');
    expect(h?.status.status_str).toBe('error');
    expect(JSON.stringify(h?.status.messages)).toMatch(/stopped while running this prompt 2 times/);
    expect(warnings.some((w) => w.includes('prompt x'))).toBe(true);
    // An orderly shutdown does not count as a crash.
    expect(q3.take()?.[1]).toBe('y');
    q3.requeueRunning();
    q3.close();
    const q4 = new PersistentQueue(state);
    expect(q4.take()?.[1]).toBe('y');
    q4.requeueRunning();
    q4.close();
    const q5 = new PersistentQueue(state);
    expect(q5.pendingItems.map((p) => p[1])).toEqual(['y']);
    q5.close();
  });

  it('keeps history entries bounded and the journal compacted as history is trimmed and deleted', () => {
    const state = path.join(dir, 'bounded');
    const q = new PersistentQueue(state, { compactAfter: 50 });
    const big = item('big');
    q.put(big);
    q.take();
    q.finish('big', { ...entry(big), outputs: { '1': { text: ['x'.repeat(9 * 1024 * 1024)] } } });
    const kept = q.history.get('big')!;
    expect(kept.outputs).toEqual({});
    expect(JSON.stringify(kept.status.messages)).toMatch(/outputs not kept/);
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    const d = item('deep');
    q.put(d);
    q.take();
    q.finish('deep', { ...entry(d), outputs: { '1': { v: [deep] } } });
    expect(q.history.get('deep')!.outputs).toEqual({});
    for (let i = 0; i < 200; i++) {
      const it = item(`p${i}`);
      q.put(it);
      q.take();
      q.finish(`p${i}`, entry(it));
    }
    q.deleteHistory([...q.history.keys()].slice(0, 150));
    q.close();
    const lines = fs.readFileSync(path.join(state, 'queue.jsonl'), 'utf8').trim().split('\n').length;
    // Without compaction the journal would hold ~750 lines (put, start, history, delete per prompt).
    expect(lines).toBeLessThan(300);
    const again = new PersistentQueue(state);
    expect(again.history.size).toBe(52);
    again.close();
  });
});
