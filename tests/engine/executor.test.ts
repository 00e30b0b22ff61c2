import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor/executor.ts';
import { OutputCache, estimateBytes } from '../../engine/executor/cache.ts';
import type { ExecutionEvent } from '../../engine/executor/events.ts';
import type { ApiPrompt } from '../../engine/graph/prompt.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { NodeRegistry } from '../../engine/registry/registry.ts';
import { defineNode } from '../../engine/registry/types.ts';

const paths = new FolderPaths({ baseDir: os.tmpdir() });

function setup(budget?: number) {
  const runs: string[] = [];
  const r = new NodeRegistry();
  const Const = defineNode({
    name: 'Const',
    inputs: { required: { value: { type: 'INT', default: 0 } } },
    outputs: [{ type: 'INT' }],
    run: ({ value }, ctx) => {
      runs.push(ctx.nodeId);
      return [value];
    },
  });
  const Add = defineNode({
    name: 'Add',
    inputs: { required: { a: { type: 'INT' }, b: { type: 'INT' } } },
    outputs: [{ type: 'INT' }],
    run: ({ a, b }, ctx) => {
      runs.push(ctx.nodeId);
      return [a + b];
    },
  });
  const Show = defineNode({
    name: 'Show',
    inputs: { required: { v: { type: '*' } }, hidden: { uid: 'UNIQUE_ID', prompt: 'PROMPT', extra: 'EXTRA_PNGINFO' } },
    outputs: [],
    outputNode: true,
    run: ({ v, uid, extra }, ctx) => {
      runs.push(ctx.nodeId);
      return { ui: { values: [v], uid: [uid], extra: [extra ?? null] } };
    },
  });
  const Big = defineNode({
    name: 'Big',
    inputs: { required: { n: { type: 'INT' } } },
    outputs: [{ type: 'IMAGE' }],
    run: ({ n }, ctx) => {
      runs.push(ctx.nodeId);
      return [{ shape: [1, 1, n, 1], data: new Float32Array(n) }];
    },
  });
  const Switch = defineNode({
    name: 'Switch',
    inputs: { required: { pick: { type: 'BOOLEAN' }, a: { type: 'INT', lazy: true }, b: { type: 'INT', lazy: true } } },
    outputs: [{ type: 'INT' }],
    checkLazyStatus: (av) => [av.pick ? 'a' : 'b'],
    run: ({ pick, a, b }, ctx) => {
      runs.push(ctx.nodeId);
      return [(pick ? a : b) as number];
    },
  });
  const Range = defineNode({
    name: 'Range',
    inputs: { required: { n: { type: 'INT' } } },
    outputs: [{ type: 'INT', isList: true }],
    run: ({ n }) => [Array.from({ length: n }, (_, i) => i)],
  });
  const Sum = defineNode({
    name: 'Sum',
    inputIsList: true,
    inputs: { required: { xs: { type: 'INT' } } },
    outputs: [{ type: 'INT' }],
    run: ({ xs }) => [xs.reduce((s, x) => s + x, 0)],
  });
  const Slow = defineNode({
    name: 'Slow',
    inputs: { required: { steps: { type: 'INT' } } },
    outputs: [{ type: 'INT' }],
    run: async ({ steps }, ctx) => {
      for (let i = 0; i < steps; i++) {
        await new Promise((res) => setTimeout(res, 5));
        ctx.progress(i + 1, steps);
      }
      return [steps];
    },
  });
  const Fail = defineNode({
    name: 'Fail',
    inputs: { required: { v: { type: 'INT' } } },
    outputs: [{ type: 'INT' }],
    run: () => {
      throw new RangeError('deliberate failure');
    },
  });
  const Random = defineNode({
    name: 'Random',
    inputs: { required: { v: { type: 'INT' } } },
    outputs: [{ type: 'INT' }],
    fingerprint: () => Number.NaN,
    run: ({ v }, ctx) => {
      runs.push(ctx.nodeId);
      return [v];
    },
  });
  r.registerAll([Const, Add, Show, Big, Switch, Range, Sum, Slow, Fail, Random]);
  const ex = new Executor(r, { paths, cacheBudgetBytes: budget });
  return { ex, runs };
}

const chain = (a: number, b: number): ApiPrompt => ({
  '1': { class_type: 'Const', inputs: { value: a } },
  '2': { class_type: 'Const', inputs: { value: b } },
  '3': { class_type: 'Add', inputs: { a: ['1', 0], b: ['2', 0] } },
  '4': { class_type: 'Add', inputs: { a: ['3', 0], b: ['1', 0] } },
  '5': { class_type: 'Show', inputs: { v: ['4', 0] } },
  '9': { class_type: 'Const', inputs: { value: 123 } },
});

describe('executor', () => {
  it('runs only nodes reachable from outputs, in dependency order, with hidden inputs', async () => {
    const { ex, runs } = setup();
    const r = await ex.execute(chain(2, 3), { promptId: 'p1', extraData: { extra_pnginfo: { workflow: { x: 1 } } } });
    expect(r.status).toBe('success');
    expect(runs).toEqual(['1', '2', '3', '4', '5']);
    expect(r.outputs['5']).toEqual({ values: [7], uid: ['5'], extra: [{ workflow: { x: 1 } }] });
  });

  it('re-runs exactly the descendants of a changed widget, and nothing for an unchanged prompt', async () => {
    const { ex, runs } = setup();
    await ex.execute(chain(2, 3), { promptId: 'a' });
    runs.length = 0;
    const same = await ex.execute(chain(2, 3), { promptId: 'b' });
    expect(runs).toEqual([]);
    expect(same.executed).toEqual([]);
    expect(same.cached.sort()).toEqual(['1', '2', '3', '4', '5']);
    expect(same.outputs['5'].values).toEqual([7]);
    const r = await ex.execute(chain(2, 10), { promptId: 'c' });
    expect(runs).toEqual(['2', '3', '4', '5']);
    expect(r.outputs['5'].values).toEqual([14]);
  });

  it('hits the cache whatever the node ids are (signatures follow structure)', async () => {
    const { ex, runs } = setup();
    await ex.execute(chain(2, 3), { promptId: 'a' });
    runs.length = 0;
    const renumbered: ApiPrompt = {
      a: { class_type: 'Const', inputs: { value: 2 } },
      b: { class_type: 'Const', inputs: { value: 3 } },
      c: { class_type: 'Add', inputs: { a: ['a', 0], b: ['b', 0] } },
      d: { class_type: 'Add', inputs: { a: ['c', 0], b: ['a', 0] } },
      e: { class_type: 'Show', inputs: { v: ['d', 0] } },
    };
    await ex.execute(renumbered, { promptId: 'b' });
    // Show takes UNIQUE_ID, so ComfyUI keys it by node id too: only it re-runs.
    expect(runs).toEqual(['e']);
  });

  it('re-runs a NaN-fingerprint node every time, and honours a prompt is_changed', async () => {
    const { ex, runs } = setup();
    const p: ApiPrompt = {
      '1': { class_type: 'Random', inputs: { v: 1 } },
      '2': { class_type: 'Show', inputs: { v: ['1', 0] } },
      '3': { class_type: 'Const', inputs: { value: 5 }, is_changed: 'x' },
      '4': { class_type: 'Show', inputs: { v: ['3', 0] } },
    };
    await ex.execute(p, { promptId: 'a' });
    runs.length = 0;
    await ex.execute(p, { promptId: 'b' });
    expect(runs.sort()).toEqual(['1', '2']);
    runs.length = 0;
    await ex.execute({ ...p, '3': { ...p['3'], is_changed: 'y' } }, { promptId: 'c' });
    expect(runs.sort()).toEqual(['1', '2', '3', '4']);
  });

  it('keeps nothing bigger than the budget: with a tiny budget every prompt re-runs', async () => {
    const { ex, runs } = setup(100);
    const p: ApiPrompt = { '1': { class_type: 'Big', inputs: { n: 1000 } }, '2': { class_type: 'Show', inputs: { v: ['1', 0] } } };
    await ex.execute(p, { promptId: 'a' });
    await ex.execute(p, { promptId: 'b' });
    expect(runs).toEqual(['1', '2', '1', '2']);
    expect(ex.cacheStats().bytes).toBeLessThanOrEqual(100);
  });

  it('evaluates only the lazy branch a node asks for', async () => {
    const { ex, runs } = setup();
    const p = (pick: boolean): ApiPrompt => ({
      '1': { class_type: 'Const', inputs: { value: 1 } },
      '2': { class_type: 'Const', inputs: { value: 2 } },
      '3': { class_type: 'Switch', inputs: { pick, a: ['1', 0], b: ['2', 0] } },
      '4': { class_type: 'Show', inputs: { v: ['3', 0] } },
    });
    const r = await ex.execute(p(false), { promptId: 'a' });
    expect(runs).toEqual(['2', '3', '4']);
    expect(r.outputs['4'].values).toEqual([2]);
  });

  it('maps nodes over lists and hands whole lists to INPUT_IS_LIST nodes', async () => {
    const { ex } = setup();
    const p: ApiPrompt = {
      '1': { class_type: 'Range', inputs: { n: 4 } },
      '2': { class_type: 'Const', inputs: { value: 10 } },
      '3': { class_type: 'Add', inputs: { a: ['1', 0], b: ['2', 0] } },
      '4': { class_type: 'Show', inputs: { v: ['3', 0] } },
      '5': { class_type: 'Sum', inputs: { xs: ['3', 0] } },
      '6': { class_type: 'Show', inputs: { v: ['5', 0] } },
    };
    const r = await ex.execute(p, { promptId: 'a' });
    expect(r.status).toBe('success');
    // Add ran per item (shorter list repeats its last item); Show's ui from 4 calls merged.
    expect(r.outputs['4'].values).toEqual([10, 11, 12, 13]);
    expect(r.outputs['6'].values).toEqual([46]);
  });

  it('stops a running node at its next check on interrupt, then runs the next prompt', async () => {
    const { ex } = setup();
    const events: ExecutionEvent[] = [];
    const ac = new AbortController();
    const p: ApiPrompt = { '1': { class_type: 'Slow', inputs: { steps: 1000 } }, '2': { class_type: 'Show', inputs: { v: ['1', 0] } } };
    setTimeout(() => ac.abort(), 60);
    const t0 = performance.now();
    const r = await ex.execute(p, { promptId: 'slow', signal: ac.signal, onEvent: (e) => events.push(e) });
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(r.status).toBe('interrupted');
    const last = events.filter((e) => e.type !== 'executing').pop()!;
    expect(last.type).toBe('execution_interrupted');
    expect(last.data).toMatchObject({ prompt_id: 'slow', node_id: '1', node_type: 'Slow' });
    expect(events.some((e) => e.type === 'progress')).toBe(true);
    const ok = await ex.execute(
      { '1': { class_type: 'Slow', inputs: { steps: 2 } }, '2': { class_type: 'Show', inputs: { v: ['1', 0] } } },
      { promptId: 'next' },
    );
    expect(ok.status).toBe('success');
  });

  it('reports a failing node with id, class, message, type, traceback and inputs, and stays usable', async () => {
    const { ex } = setup();
    const events: ExecutionEvent[] = [];
    const p: ApiPrompt = {
      '1': { class_type: 'Const', inputs: { value: 1 } },
      '2': { class_type: 'Fail', inputs: { v: ['1', 0] } },
      '3': { class_type: 'Show', inputs: { v: ['2', 0] } },
    };
    const r = await ex.execute(p, { promptId: 'e', onEvent: (e) => events.push(e) });
    expect(r.status).toBe('error');
    expect(r.error).toMatchObject({
      prompt_id: 'e',
      node_id: '2',
      node_type: 'Fail',
      exception_message: 'deliberate failure',
      exception_type: 'RangeError',
      executed: ['1'],
      current_inputs: { v: ['1'] },
    });
    expect(r.error!.traceback.length).toBeGreaterThan(0);
    expect(events.map((e) => e.type)).toEqual([
      'execution_start',
      'execution_cached',
      'executing',
      'executing',
      'execution_error',
      'executing',
    ]);
    expect((await ex.execute(chain(1, 1), { promptId: 'after' })).status).toBe('success');
  });

  it("emits ComfyUI's event sequence, with cached output nodes re-sending executed", async () => {
    const { ex } = setup();
    const events: ExecutionEvent[] = [];
    await ex.execute(chain(2, 3), { promptId: 'x', onEvent: (e) => events.push(e) });
    expect(events.map((e) => `${e.type}${'node' in e.data ? `:${e.data.node}` : ''}`)).toEqual([
      'execution_start',
      'execution_cached',
      'executing:1',
      'executing:2',
      'executing:3',
      'executing:4',
      'executing:5',
      'executed:5',
      'execution_success',
      'executing:null',
    ]);
    events.length = 0;
    await ex.execute(chain(2, 3), { promptId: 'y', onEvent: (e) => events.push(e) });
    expect(events[1]).toMatchObject({ type: 'execution_cached', data: { nodes: ['1', '2', '3', '4', '5'] } });
    expect(events.map((e) => e.type)).toEqual(['execution_start', 'execution_cached', 'executed', 'execution_success', 'executing']);
  });

  it('runs only the requested outputs (partial execution)', async () => {
    const { ex, runs } = setup();
    const p: ApiPrompt = { ...chain(1, 2), '6': { class_type: 'Show', inputs: { v: ['9', 0] } } };
    await ex.execute(p, { promptId: 'p', outputs: ['6'] });
    expect(runs).toEqual(['9', '6']);
  });
});

describe('output cache', () => {
  const entry = (bytes: number) => ({ outputs: [[bytes]], bytes });
  it('evicts least recently used entries first, skipping pinned ones', () => {
    const c = new OutputCache(100);
    c.set('a', entry(40));
    c.set('b', entry(40));
    c.get('a'); // a is now more recent than b
    c.set('c', entry(40));
    expect([c.peek('a'), c.peek('b'), c.peek('c')].map(Boolean)).toEqual([true, false, true]);
    c.pin(['a']);
    c.set('d', entry(40));
    expect([c.peek('a'), c.peek('c'), c.peek('d')].map(Boolean)).toEqual([true, false, true]);
    c.set('huge', entry(101));
    expect(c.peek('huge')).toBeUndefined();
    expect(c.bytes).toBe(80);
  });
  it('counts typed arrays once however often they are referenced', () => {
    const data = new Float32Array(1000);
    const t = { shape: [1000], data };
    // 4,000 bytes of data, 8 per list slot: the outer list (3) and the shape (1).
    expect(estimateBytes([t, t, { x: t }])).toBe(4000 + 8 * 3 + 8);
  });
});
