import { describe, expect, it } from 'vitest';
import { OutputCache, estimateBytes, type CacheEntry } from '../../engine/executor/cache.ts';
import type { ApiPrompt } from '../../engine/graph/prompt.ts';
import type { Tensor } from '../../engine/core/tensor.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { setup, type Recorder } from './fixtures.ts';

const N = 1000; // floats per Big tensor: 4,000 bytes of data each
const BUDGET = 10_000; // room for two Big results, not three

const bigNodes = (rec: Recorder) => [
  defineNode({
    name: 'Big',
    inputs: { required: { tag: { type: 'STRING' }, n: { type: 'INT' } } },
    outputs: [{ type: 'TENSOR' }],
    run: ({ tag, n }) => {
      rec.runs.push(tag);
      return [{ shape: [n], data: new Float32Array(n).fill(tag.length) } as Tensor];
    },
  }),
  defineNode({
    name: 'Pick3',
    inputs: { required: { a: { type: 'TENSOR' }, b: { type: 'TENSOR' }, c: { type: 'TENSOR' } } },
    outputs: [{ type: 'BOOLEAN' }],
    run: () => {
      rec.runs.push('pick3');
      return [true];
    },
  }),
  defineNode({
    name: 'LazyPick',
    inputs: { required: { pick: { type: 'BOOLEAN' }, a: { type: 'TENSOR', lazy: true }, b: { type: 'TENSOR', lazy: true } } },
    outputs: [{ type: 'TENSOR' }],
    checkLazyStatus: ({ pick }) => [pick ? 'a' : 'b'],
    run: ({ pick, a, b }) => {
      rec.runs.push('lazypick');
      return [(pick ? a : b) as Tensor];
    },
  }),
];

/** Big(tag) read by a Sink whose `k` makes the consumer new each time, so Big itself is looked up. */
const use = (tag: string, k: number, n = N): ApiPrompt => ({
  big: { class_type: 'Big', inputs: { tag, n } },
  sink: { class_type: 'Sink', inputs: { v: ['big', 0], k } },
});

describe('cache budget', () => {
  it('evicts the least recently used result, where a hit counts as a use', async () => {
    const { exec, ex } = setup(bigNodes, { cacheBudgetBytes: BUDGET });
    const ran = async (p: ApiPrompt) => {
      const r = await exec(p);
      expect(r.result.status).toBe('success');
      expect(ex.cacheStats().bytes).toBeLessThanOrEqual(BUDGET);
      return r.runs.filter((t) => t !== 'sink');
    };
    expect(await ran(use('a', 1))).toEqual(['a']);
    expect(await ran(use('b', 2))).toEqual(['b']);
    expect(await ran(use('a', 3))).toEqual([]); // hit: a is now more recent than b
    expect(await ran(use('c', 4))).toEqual(['c']); // three do not fit: b goes, not a
    expect(await ran(use('a', 5))).toEqual([]);
    expect(await ran(use('c', 6))).toEqual([]);
    expect(await ran(use('b', 7))).toEqual(['b']);
  });

  it('does not evict, mid-prompt, a hit the prompt has yet to read (pinned)', async () => {
    const { exec, ex } = setup(bigNodes, { cacheBudgetBytes: BUDGET });
    await exec({ x: { class_type: 'Big', inputs: { tag: 'x', n: N } }, s: { class_type: 'Sink', inputs: { v: ['x', 0] } } });
    // Three new Big results are stored before LazyPick asks for x: without pinning, x would be the
    // least recently used entry and be evicted to make room, then run again.
    const p: ApiPrompt = {
      x: { class_type: 'Big', inputs: { tag: 'x', n: N } },
      y: { class_type: 'Big', inputs: { tag: 'y', n: N } },
      p1: { class_type: 'Big', inputs: { tag: 'p1', n: N } },
      p2: { class_type: 'Big', inputs: { tag: 'p2', n: N } },
      p3: { class_type: 'Big', inputs: { tag: 'p3', n: N } },
      sel: { class_type: 'Pick3', inputs: { a: ['p1', 0], b: ['p2', 0], c: ['p3', 0] } },
      sw: { class_type: 'LazyPick', inputs: { pick: ['sel', 0], a: ['x', 0], b: ['y', 0] } },
      out: { class_type: 'Sink', inputs: { v: ['sw', 0] } },
    };
    const r = await exec(p);
    expect(r.result.status).toBe('success');
    expect(r.result.cached).toContain('x');
    expect(r.runs).toEqual(['p1', 'p2', 'p3', 'pick3', 'lazypick', 'out']);
    // Pins are released at the end of the prompt and the cache is back within budget.
    expect(ex.cacheStats().bytes).toBeLessThanOrEqual(BUDGET);
  });

  it('does not keep a result bigger than the whole budget', async () => {
    const { exec, ex } = setup(bigNodes, { cacheBudgetBytes: BUDGET });
    const huge = 5 * N; // 20,000 bytes of data
    expect((await exec(use('h', 1, huge))).runs).toEqual(['h', 'sink']);
    expect(ex.cacheStats().bytes).toBeLessThan(1000); // only the small Sink entry
    expect((await exec(use('h', 2, huge))).runs).toEqual(['h', 'sink']);
  });
});

describe('OutputCache', () => {
  const entry = (bytes: number): CacheEntry => ({ outputs: [[bytes]], bytes });
  const present = (c: OutputCache, keys: string[]) => keys.map((k) => c.peek(k) !== undefined);

  it('evicts in least-recently-used order, skipping pinned keys until they are released', () => {
    const c = new OutputCache(100);
    c.set('a', entry(40));
    c.set('b', entry(40));
    c.get('a');
    c.set('c', entry(40));
    expect(present(c, ['a', 'b', 'c'])).toEqual([true, false, true]);
    // The executor pins every key of the prompt, those it is about to store included.
    c.pin(['a', 'c', 'd']);
    c.set('d', entry(40));
    // Everything is pinned: the cache may exceed its budget while the prompt runs.
    expect(present(c, ['a', 'c', 'd'])).toEqual([true, true, true]);
    expect(c.bytes).toBe(120);
    c.unpinAll();
    expect(c.bytes).toBeLessThanOrEqual(100);
    expect(present(c, ['a', 'c', 'd'])).toEqual([false, true, true]);
    // With the old entries pinned, an unpinned newcomer is the one that has to go.
    c.pin(['c', 'd']);
    c.set('e', entry(40));
    expect(present(c, ['c', 'd', 'e'])).toEqual([true, true, false]);
  });

  it('replaces an entry under the same key and refuses one larger than the budget', () => {
    const c = new OutputCache(100);
    c.set('a', entry(30));
    c.set('a', entry(50));
    expect(c.bytes).toBe(50);
    expect(c.size).toBe(1);
    c.set('huge', entry(101));
    expect(c.peek('huge')).toBeUndefined();
    expect(c.bytes).toBe(50);
    expect([c.hits, c.misses]).toEqual([0, 0]); // peek does not count
    c.get('a');
    c.get('zzz');
    expect([c.hits, c.misses]).toEqual([1, 1]);
  });
});

describe('estimateBytes', () => {
  it('counts typed arrays by byteLength and each buffer once, however it is referenced', () => {
    const data = new Float32Array(1000);
    const t = { shape: [1000], data };
    // 4,000 bytes of floats once; 8 per array slot: the outer list (3) and the shape (1).
    expect(estimateBytes([t, t, { x: t }])).toBe(4000 + 8 * 3 + 8);
    // Views of one buffer count once.
    const whole = new Uint8Array(64);
    expect(estimateBytes({ a: whole, b: whole.subarray(0, 8) })).toBe(64);
  });

  it('trusts a numeric byteSize instead of walking the object', () => {
    expect(estimateBytes({ byteSize: 12_345, weights: new Float32Array(10) })).toBe(12_345);
    expect(estimateBytes([{ byteSize: 100 }, { byteSize: 23 }])).toBe(123 + 16);
  });

  it('terminates on cycles and deep nesting and ignores opaque class instances', () => {
    const cyclic: Record<string, unknown> = { data: new Float64Array(8) };
    cyclic.self = cyclic;
    expect(estimateBytes(cyclic)).toBe(64);
    let deep: Record<string, unknown> = { data: new Float32Array(1) };
    for (let i = 0; i < 10_000; i++) deep = { next: deep };
    expect(Number.isFinite(estimateBytes(deep))).toBe(true);
    class Opaque {
      data = new Float32Array(100);
    }
    expect(estimateBytes(new Opaque())).toBe(0);
  });
});
