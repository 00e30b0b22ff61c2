import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ApiPrompt } from '../../engine/graph/prompt.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { rng, setup } from './fixtures.ts';

/**
 * A random DAG of Const/Add nodes with a few Show outputs, plus the reference facts the tests compare
 * against, derived from the prompt alone: values by direct recursion, reachability and descendants by
 * graph walks.
 */
function randomGraph(seed: number, n = 60) {
  const rand = rng(seed);
  const int = (k: number) => Math.floor(rand() * k);
  const p: ApiPrompt = {};
  for (let i = 0; i < n; i++) {
    const id = `n${i}`;
    if (i < 5 || rand() < 0.1) p[id] = { class_type: 'Const', inputs: { value: int(1_000_000) } };
    else p[id] = { class_type: 'Add', inputs: { a: [`n${int(i)}`, 0], b: [`n${int(i)}`, 0], k: int(1_000_000) } };
  }
  // Distinct sources: two Shows of one node would be identical, and identical nodes run once.
  const sources = new Set<string>();
  while (sources.size < 4) sources.add(`n${n - 1 - int(n / 2)}`);
  [...sources].forEach((src, j) => (p[`out${j}`] = { class_type: 'Show', inputs: { v: [src, 0] } }));
  return p;
}

function links(p: ApiPrompt, id: string): string[] {
  return Object.values(p[id].inputs)
    .filter((v): v is [string, number] => Array.isArray(v))
    .map((v) => v[0]);
}

function expectedValue(p: ApiPrompt, id: string, memo = new Map<string, number>()): number {
  const hit = memo.get(id);
  if (hit !== undefined) return hit;
  const node = p[id];
  const inp = node.inputs;
  const value =
    node.class_type === 'Const'
      ? (inp.value as number)
      : expectedValue(p, (inp.a as [string, number])[0], memo) + expectedValue(p, (inp.b as [string, number])[0], memo) + (inp.k as number);
  memo.set(id, value);
  return value;
}

function reachableFrom(p: ApiPrompt, roots: string[]): Set<string> {
  const seen = new Set<string>();
  const stack = [...roots];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    stack.push(...links(p, id));
  }
  return seen;
}

function descendantsOf(p: ApiPrompt, root: string): Set<string> {
  const out = new Set([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const id of Object.keys(p)) {
      if (!out.has(id) && links(p, id).some((s) => out.has(s))) {
        out.add(id);
        grew = true;
      }
    }
  }
  return out;
}

const outputsOf = (p: ApiPrompt) => Object.keys(p).filter((id) => p[id].class_type === 'Show');

describe('signature cache on random graphs', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: runs what the outputs need, nothing when unchanged, exactly the descendants of a changed widget`, async () => {
      const { exec } = setup();
      const p = randomGraph(seed);
      const outs = outputsOf(p);
      const reachable = reachableFrom(p, outs);

      const first = await exec(p);
      expect(first.result.status).toBe('success');
      expect(new Set(first.runs)).toEqual(reachable);
      expect(first.runs.length).toBe(reachable.size); // each node once
      for (const o of outs) expect(first.result.outputs[o]).toEqual({ values: [expectedValue(p, links(p, o)[0])] });

      const same = await exec(p);
      expect(same.runs).toEqual([]);
      expect(same.result.executed).toEqual([]);
      // Every prompt node that ran before is a hit; unreachable ones never ran.
      expect(new Set(same.result.cached)).toEqual(reachable);
      for (const o of outs) expect(same.result.outputs[o]).toEqual(first.result.outputs[o]);

      // Change one widget of a reachable Add node: exactly it and its reachable descendants run.
      const rand = rng(seed * 7919);
      const candidates = [...reachable].filter((id) => p[id].class_type === 'Add').sort();
      const target = candidates[Math.floor(rand() * candidates.length)];
      const changed: ApiPrompt = structuredClone(p);
      changed[target].inputs.k = 2_000_000 + seed;
      const expectedRuns = [...descendantsOf(changed, target)].filter((id) => reachable.has(id));
      const third = await exec(changed);
      expect(new Set(third.runs)).toEqual(new Set(expectedRuns));
      expect(third.runs.length).toBe(expectedRuns.length);
      for (const o of outs) expect(third.result.outputs[o]).toEqual({ values: [expectedValue(changed, links(changed, o)[0])] });
    });
  }

  it('hits the cache after every node id is renumbered and the key order shuffled', async () => {
    const { exec } = setup();
    const p = randomGraph(11);
    await exec(p);
    const rand = rng(99);
    const ids = Object.keys(p);
    const rename = new Map(ids.map((id, i) => [id, `x${(i * 7 + 3) % 1000}_${Math.floor(rand() * 1e6)}`]));
    const shuffled = [...ids].sort(() => rand() - 0.5);
    const renumbered: ApiPrompt = {};
    for (const id of shuffled) {
      const inputs = Object.fromEntries(
        Object.entries(p[id].inputs).map(([k, v]) => [k, Array.isArray(v) ? [rename.get(v[0] as string)!, v[1]] : v]),
      );
      renumbered[rename.get(id)!] = { class_type: p[id].class_type, inputs };
    }
    const again = await exec(renumbered);
    expect(again.result.status).toBe('success');
    expect(again.runs).toEqual([]);
    for (const o of outputsOf(p)) expect(again.result.outputs[rename.get(o)!]).toEqual({ values: [expectedValue(p, links(p, o)[0])] });
  });

  it('changing the seed of a sampler-like node re-runs only it and what follows', async () => {
    const { exec } = setup((rec) => [
      defineNode({
        name: 'Sampler',
        inputs: { required: { model: { type: 'INT' }, seed: { type: 'INT' } } },
        outputs: [{ type: 'INT' }],
        run: ({ model, seed }, ctx) => {
          rec.runs.push(ctx.nodeId);
          return [model * 31 + seed];
        },
      }),
    ]);
    const p = (seed: number): ApiPrompt => ({
      ckpt: { class_type: 'Const', inputs: { value: 7 } },
      clip: { class_type: 'Add', inputs: { a: ['ckpt', 0], b: ['ckpt', 0] } },
      ks: { class_type: 'Sampler', inputs: { model: ['clip', 0], seed } },
      decode: { class_type: 'Add', inputs: { a: ['ks', 0], b: ['ckpt', 0] } },
      save: { class_type: 'Show', inputs: { v: ['decode', 0] } },
    });
    await exec(p(1));
    const r = await exec(p(2));
    expect(r.runs).toEqual(['ks', 'decode', 'save']);
    expect(r.result.outputs.save.values).toEqual([14 * 31 + 2 + 7]);
  });
});

describe('fingerprints (IS_CHANGED)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-exec-fp-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const filePaths = new FolderPaths({ baseDir: dir, inputDir: dir });

  const fileNodes = (rec: { runs: string[] }) => [
    defineNode({
      name: 'ReadText',
      inputs: { required: { file: { type: 'STRING' } } },
      outputs: [{ type: 'STRING' }],
      // As LoadImage: the content hash, so editing the file re-runs the node.
      fingerprint: ({ file }, env) =>
        createHash('sha256')
          .update(fs.readFileSync(path.join(env.paths.inputDir, String(file))))
          .digest('hex'),
      run: ({ file }, ctx) => {
        rec.runs.push(ctx.nodeId);
        return [fs.readFileSync(path.join(ctx.paths.inputDir, file), 'utf8')];
      },
    }),
    defineNode({
      name: 'Upper',
      inputs: { required: { s: { type: 'STRING' } } },
      outputs: [{ type: 'STRING' }],
      run: ({ s }, ctx) => {
        rec.runs.push(ctx.nodeId);
        return [s.toUpperCase()];
      },
    }),
    defineNode({
      name: 'Random',
      inputs: { required: { v: { type: 'INT' } } },
      outputs: [{ type: 'INT' }],
      fingerprint: () => Number.NaN,
      run: ({ v }, ctx) => {
        rec.runs.push(ctx.nodeId);
        return [v];
      },
    }),
    defineNode({
      name: 'Flaky',
      inputs: { required: { v: { type: 'INT' } } },
      outputs: [{ type: 'INT' }],
      fingerprint: async () => {
        throw new Error('cannot fingerprint');
      },
      run: ({ v }, ctx) => {
        rec.runs.push(ctx.nodeId);
        return [v];
      },
    }),
  ];

  it('re-runs a node (and its descendants) when its fingerprint changes, and only then', async () => {
    const { exec } = setup(fileNodes, { paths: filePaths });
    fs.writeFileSync(path.join(dir, 'a.txt'), 'hello');
    const p: ApiPrompt = {
      '1': { class_type: 'ReadText', inputs: { file: 'a.txt' } },
      '2': { class_type: 'Upper', inputs: { s: ['1', 0] } },
      '3': { class_type: 'Show', inputs: { v: ['2', 0] } },
      '4': { class_type: 'Const', inputs: { value: 3 } },
      '5': { class_type: 'Show', inputs: { v: ['4', 0] } },
    };
    expect((await exec(p)).result.outputs['3'].values).toEqual(['HELLO']);
    expect((await exec(p)).runs).toEqual([]);
    fs.writeFileSync(path.join(dir, 'a.txt'), 'world');
    const r = await exec(p);
    expect(r.runs).toEqual(['1', '2', '3']);
    expect(r.result.outputs['3'].values).toEqual(['WORLD']);
  });

  it('re-runs a NaN-fingerprint node and its descendants every time, but not its siblings', async () => {
    const { exec, ex } = setup(fileNodes, { paths: filePaths });
    const p: ApiPrompt = {
      '1': { class_type: 'Random', inputs: { v: 1 } },
      '2': { class_type: 'Add', inputs: { a: ['1', 0], b: ['3', 0] } },
      '3': { class_type: 'Const', inputs: { value: 5 } },
      '4': { class_type: 'Show', inputs: { v: ['2', 0] } },
      '5': { class_type: 'Show', inputs: { v: ['3', 0] } },
    };
    await exec(p);
    const entries = ex.cacheStats().entries;
    for (let i = 0; i < 3; i++) {
      const r = await exec(p);
      expect(r.runs).toEqual(['1', '2', '4']);
      expect(r.result.cached.sort()).toEqual(['3', '5']);
    }
    // Results keyed by a NaN token can never be hit again, so they are not kept.
    expect(ex.cacheStats().entries).toBe(entries);
  });

  it('treats a failing fingerprint as NaN: the node runs every time', async () => {
    const { exec } = setup(fileNodes, { paths: filePaths });
    const p: ApiPrompt = { '1': { class_type: 'Flaky', inputs: { v: 1 } }, '2': { class_type: 'Show', inputs: { v: ['1', 0] } } };
    expect((await exec(p)).runs).toEqual(['1', '2']);
    expect((await exec(p)).runs).toEqual(['1', '2']);
  });

  it("lets a prompt node's is_changed override the class fingerprint", async () => {
    const { exec } = setup(fileNodes, { paths: filePaths });
    const p = (token: string): ApiPrompt => ({
      '1': { class_type: 'Random', inputs: { v: 1 }, is_changed: [token] },
      '2': { class_type: 'Show', inputs: { v: ['1', 0] } },
    });
    expect((await exec(p('a'))).runs).toEqual(['1', '2']);
    expect((await exec(p('a'))).runs).toEqual([]);
    expect((await exec(p('b'))).runs).toEqual(['1', '2']);
  });
});

describe('identity and cache modes', () => {
  const notIdempotent = (rec: { runs: string[] }) => [
    defineNode({
      name: 'Counter',
      inputs: { required: { v: { type: 'INT' } } },
      outputs: [{ type: 'INT' }],
      notIdempotent: true,
      run: ({ v }, ctx) => {
        rec.runs.push(ctx.nodeId);
        return [v];
      },
    }),
  ];

  it('runs structurally identical nodes once, but NOT_IDEMPOTENT ones each (and caches both across prompts)', async () => {
    const { exec } = setup(notIdempotent);
    const p: ApiPrompt = {
      c1: { class_type: 'Const', inputs: { value: 4 } },
      c2: { class_type: 'Const', inputs: { value: 4 } },
      k1: { class_type: 'Counter', inputs: { v: ['c1', 0] } },
      k2: { class_type: 'Counter', inputs: { v: ['c2', 0] } },
      sum: { class_type: 'Add', inputs: { a: ['k1', 0], b: ['k2', 0] } },
      out: { class_type: 'Show', inputs: { v: ['sum', 0] } },
    };
    const r = await exec(p);
    expect(r.result.outputs.out.values).toEqual([8]);
    expect(r.runs.filter((id) => id.startsWith('c'))).toHaveLength(1);
    expect(r.runs.filter((id) => id.startsWith('k')).sort()).toEqual(['k1', 'k2']);
    expect((await exec(p)).runs).toEqual([]);
  });

  it("cacheMode 'none' runs every node every time and reports no hits", async () => {
    const { exec, ex } = setup(() => [], { cacheMode: 'none' });
    const p: ApiPrompt = { '1': { class_type: 'Const', inputs: { value: 1 } }, '2': { class_type: 'Show', inputs: { v: ['1', 0] } } };
    await exec(p);
    const r = await exec(p);
    expect(r.runs).toEqual(['1', '2']);
    expect(r.result.cached).toEqual([]);
    expect(ex.cacheStats().entries).toBe(0);
  });

  it('clearCache forgets everything; cacheStats counts one lookup per node per prompt', async () => {
    const { exec, ex } = setup();
    const p: ApiPrompt = {
      '1': { class_type: 'Const', inputs: { value: 1 } },
      '2': { class_type: 'Add', inputs: { a: ['1', 0], b: ['1', 0] } },
      '3': { class_type: 'Show', inputs: { v: ['2', 0] } },
    };
    await exec(p);
    expect(ex.cacheStats()).toMatchObject({ entries: 3, hits: 0, misses: 3 });
    await exec(p);
    // Only the output is looked up: its hit makes its ancestors irrelevant.
    expect(ex.cacheStats()).toMatchObject({ entries: 3, hits: 1, misses: 3 });
    ex.clearCache();
    expect(ex.cacheStats()).toMatchObject({ entries: 0, bytes: 0 });
    expect((await exec(p)).runs).toEqual(['1', '2', '3']);
  });
});
