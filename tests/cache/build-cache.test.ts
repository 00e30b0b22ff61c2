import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BuildCache } from '../../engine/onnx/build-cache.ts';
import { GraphBuilder } from '../../engine/onnx/graph.ts';
import { cmdCache } from '../../cli/cache.ts';

/** A small real graph whose weights take `floats` × 4 bytes (random: stored in 32 bits). */
function graph(floats: number, seed: number): () => GraphBuilder {
  return () => {
    const g = new GraphBuilder('t');
    const x = g.input('x', 'float32', [floats]);
    const w = g.floats('w', [floats], () => new Float32Array(floats).map((_, i) => Math.sin(i * 0.37 + seed) / 3));
    g.output(g.op1('Add', [x, w]), 'y', 'float32', [floats]);
    return g;
  };
}

const DAY = 86_400_000;

/** A cache whose clock the test moves, with entries `a`, `b`, `c` built a day apart (a oldest) and released. */
function threeEntries(): { cache: BuildCache; dir: string; source: string; at: { now: number } } {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cache-test-'));
  const source = join(dir, 'model.safetensors');
  writeFileSync(source, 'checkpoint bytes');
  const cache = new BuildCache(join(dir, 'cache'));
  const at = { now: Date.UTC(2026, 0, 10) };
  cache.clock = () => at.now;
  for (const [i, key] of ['a', 'b', 'c'].entries()) {
    at.now = Date.UTC(2026, 0, 1 + i);
    cache.ensure(key, { part: 'unet', source }, graph(100_000, i));
    cache.release(key);
  }
  at.now = Date.UTC(2026, 0, 10);
  return { cache, dir, source, at };
}

describe('BuildCache listing', () => {
  it('lists each build with its part, source, size on disk and last use, least recently used first', () => {
    const { cache, source } = threeEntries();
    const list = cache.list();
    expect(list.map((e) => e.key)).toEqual(['a', 'b', 'c']);
    for (const e of list) {
      expect(e.part).toBe('unet');
      expect(e.source).toBe(source);
      expect(e.sourceExists).toBe(true);
      // 400 kB of float32 weights plus the graph and the record.
      expect(e.bytes).toBeGreaterThan(400_000);
      expect(e.bytes).toBeLessThan(410_000);
    }
    expect(list[0].lastUsed).toBe(Date.UTC(2026, 0, 1));
    const rec = JSON.parse(readFileSync(join(cache.dirOf('a'), 'entry.json'), 'utf8')) as { part: string; source: string };
    expect(rec).toMatchObject({ part: 'unet', source });
  });

  it('a later use moves an entry to the back of the LRU order', () => {
    const { cache, at } = threeEntries();
    at.now = Date.UTC(2026, 0, 5);
    const b = cache.ensure('a', { part: 'unet' }, () => {
      throw new Error('must not rebuild a cached entry');
    });
    expect(b.built).toBe(false);
    cache.release('a');
    expect(cache.list().map((e) => e.key)).toEqual(['b', 'c', 'a']);
    // The source recorded at the build is kept when a later use names none.
    expect(cache.list().find((e) => e.key === 'a')?.source).toBeDefined();
  });

  it('`weft cache list` prints the entries with part, checkpoint and size', () => {
    const { cache, source, at } = threeEntries();
    const lines: string[] = [];
    expect(cmdCache('list', { cacheDir: cache.root, print: (l) => lines.push(l), now: at.now })).toBe(0);
    expect(lines[0]).toMatch(/3 builds, 1\.\d MiB on disk$/);
    const rows = lines[1].split('\n');
    expect(rows[0]).toMatch(/^PART\s+SIZE\s+LAST USED\s+CHECKPOINT\s+KEY$/);
    expect(rows.slice(1).map((r) => r.trim().split(/\s+/).at(-1))).toEqual(['a', 'b', 'c']);
    expect(rows[1]).toContain(source);
    expect(rows[1]).toMatch(/^unet\s+39\d KiB\s+9 days ago\s+/);
  });
});

describe('BuildCache pruning', () => {
  it('--all removes every entry not in use and keeps one this process uses', () => {
    const { cache } = threeEntries();
    cache.ensure('c', { part: 'unet' }, graph(10, 9));
    const removed = cache.prune({ all: true });
    expect(removed.map((e) => e.key).sort()).toEqual(['a', 'b']);
    expect(cache.list().map((e) => e.key)).toEqual(['c']);
  });

  it('--older-than removes exactly the entries last used before the cut', () => {
    const { cache } = threeEntries();
    // Now is Jan 10: a was last used 9 days ago, b 8, c 7.
    const removed = cache.prune({ olderThanMs: 7.5 * DAY });
    expect(removed.map((e) => e.key)).toEqual(['a', 'b']);
    expect(cache.list().map((e) => e.key)).toEqual(['c']);
  });

  it('--missing-source removes the entries whose checkpoint is gone', () => {
    const { cache, dir, source } = threeEntries();
    const other = join(dir, 'other.safetensors');
    writeFileSync(other, 'x');
    cache.ensure('d', { part: 'clip', source: other }, graph(10, 4));
    cache.release('d');
    rmSync(source);
    expect(cache.list().filter((e) => e.sourceExists === false).map((e) => e.key)).toEqual(['a', 'b', 'c']);
    expect(cache.prune({ missingSource: true }).map((e) => e.key)).toEqual(['a', 'b', 'c']);
    expect(cache.list().map((e) => e.key)).toEqual(['d']);
  });

  it('--max-size removes least recently used entries until the rest fit', () => {
    const { cache } = threeEntries();
    const one = cache.list()[0].bytes;
    const removed = cache.prune({ maxBytes: 2 * one + 1000 });
    expect(removed.map((e) => e.key)).toEqual(['a']);
    expect(cache.list().map((e) => e.key)).toEqual(['b', 'c']);
  });

  it('`weft cache prune` needs a selection and reports what it removed', () => {
    const { cache } = threeEntries();
    expect(() => cmdCache('prune', { cacheDir: cache.root, print: () => {} })).toThrow(/say what to remove/);
    const lines: string[] = [];
    cmdCache('prune', { cacheDir: cache.root, olderThan: '8d', print: (l) => lines.push(l), now: Date.UTC(2026, 0, 10) });
    expect(lines.filter((l) => l.startsWith('removed '))).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/^1 removed; /);
  });
});

describe('BuildCache size limit', () => {
  it('after a build, evicts the least recently used entries and never the one just built', () => {
    const { cache, at } = threeEntries();
    const one = cache.list()[0].bytes;
    const evicted: string[] = [];
    cache.onEvict = (e) => evicted.push(e.key);
    cache.limitBytes = 2 * one + 1000;
    at.now = Date.UTC(2026, 0, 11);
    const d = cache.ensure('d', { part: 'vae_decoder' }, graph(100_000, 7));
    expect(d.built).toBe(true);
    expect(evicted).toEqual(['a', 'b']);
    expect(cache.list().map((e) => e.key)).toEqual(['c', 'd']);
    // A limit below the new build alone still keeps the build in use.
    cache.limitBytes = 1000;
    cache.ensure('e', { part: 'clip' }, graph(100_000, 8));
    expect(cache.list().map((e) => e.key)).toEqual(['d', 'e']);
    expect(existsSync(join(cache.dirOf('e'), 'model.onnx'))).toBe(true);
  });
});
