/**
 * Executor overhead on a synthetic 1,000-node graph of cheap nodes (a chain with fan-in and fan-out):
 * validation, first run, fully cached re-run, re-run after changing one widget near the end, and
 * engine overhead per node (first run minus the nodes' own measured work, divided by node count).
 * Run: npx tsx bench/executor.ts [nodes=1000] [repeats=5]
 */
import os from 'node:os';
import { Executor } from '../engine/executor/executor.ts';
import type { ApiPrompt } from '../engine/graph/prompt.ts';
import { validatePrompt } from '../engine/graph/validate.ts';
import { FolderPaths } from '../engine/paths/folders.ts';
import { NodeRegistry } from '../engine/registry/registry.ts';
import { defineNode } from '../engine/registry/types.ts';

const N = Number(process.argv[2] ?? 1000);
const REPEATS = Number(process.argv[3] ?? 5);
let workNs = 0n;

const registry = new NodeRegistry();
registry.registerAll([
  defineNode({
    name: 'Src',
    inputs: { required: { v: { type: 'INT', default: 0, min: 0, max: 1e9 } } },
    outputs: [{ type: 'INT' }],
    run: ({ v }) => {
      const t = process.hrtime.bigint();
      const r = [v] as [number];
      workNs += process.hrtime.bigint() - t;
      return r;
    },
  }),
  defineNode({
    name: 'Add',
    inputs: { required: { a: { type: 'INT' }, b: { type: 'INT' }, k: { type: 'INT', default: 1, min: 0, max: 100 } } },
    outputs: [{ type: 'INT' }],
    run: ({ a, b, k }) => {
      const t = process.hrtime.bigint();
      const r = [(a + b + k) % 1000003] as [number];
      workNs += process.hrtime.bigint() - t;
      return r;
    },
  }),
  defineNode({ name: 'Out', inputs: { required: { v: { type: 'INT' } } }, outputs: [], outputNode: true, run: ({ v }) => ({ ui: { v: [v] } }) }),
]);

function graph(n: number, tweak = 1): ApiPrompt {
  const p: ApiPrompt = { '0': { class_type: 'Src', inputs: { v: 1 } } };
  for (let i = 1; i < n - 1; i++) {
    // b reaches back up to 8 nodes: fan-in, and each node feeds several later ones (fan-out).
    const back = Math.max(0, i - 1 - (i % 8));
    p[String(i)] = { class_type: 'Add', inputs: { a: [String(i - 1), 0], b: [String(back), 0], k: i === n - 10 ? tweak : 1 } };
  }
  p[String(n - 1)] = { class_type: 'Out', inputs: { v: [String(n - 2), 0] } };
  return p;
}

const paths = new FolderPaths({ baseDir: os.tmpdir() });
const rows: Record<string, number[]> = { validate: [], first: [], cached: [], tweak: [], overheadPerNode: [] };
for (let r = 0; r < REPEATS; r++) {
  const ex = new Executor(registry, { paths });
  const prompt = graph(N);
  let t = performance.now();
  const v = await validatePrompt(prompt, registry, { paths });
  rows.validate.push(performance.now() - t);
  if (!v.ok) throw new Error('benchmark graph failed validation');
  workNs = 0n;
  t = performance.now();
  const first = await ex.execute(v.prompt, { promptId: `a${r}`, outputs: v.outputs });
  const firstMs = performance.now() - t;
  rows.first.push(firstMs);
  if (first.executed.length !== N) throw new Error(`expected ${N} nodes to run, ran ${first.executed.length}`);
  rows.overheadPerNode.push((firstMs - Number(workNs) / 1e6) / N);
  t = performance.now();
  const again = await ex.execute(v.prompt, { promptId: `b${r}`, outputs: v.outputs });
  rows.cached.push(performance.now() - t);
  if (again.executed.length !== 0) throw new Error('cached re-run executed nodes');
  const tweaked = (await validatePrompt(graph(N, 2), registry, { paths })).prompt;
  t = performance.now();
  const tw = await ex.execute(tweaked, { promptId: `c${r}`, outputs: v.outputs });
  rows.tweak.push(performance.now() - t);
  if (tw.executed.length !== 10) throw new Error(`one widget change should re-run 10 nodes, ran ${tw.executed.length}`);
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const summary = {
  nodes: N,
  repeats: REPEATS,
  validate_ms: +median(rows.validate).toFixed(2),
  first_run_ms: +median(rows.first).toFixed(2),
  cached_rerun_ms: +median(rows.cached).toFixed(2),
  one_widget_changed_ms: +median(rows.tweak).toFixed(2),
  overhead_per_node_ms: +median(rows.overheadPerNode).toFixed(4),
  node: process.version,
  cpu: os.cpus()[0]?.model,
  cores: os.cpus().length,
};
console.log(`executor benchmark, ${N} nodes, median of ${REPEATS}`);
console.log(`  validation            ${summary.validate_ms} ms`);
console.log(`  first run             ${summary.first_run_ms} ms`);
console.log(`  fully cached re-run   ${summary.cached_rerun_ms} ms   (target < 20 ms)`);
console.log(`  one widget changed    ${summary.one_widget_changed_ms} ms   (10 nodes re-run)`);
console.log(`  overhead per node     ${summary.overhead_per_node_ms} ms   (target < 0.2 ms)`);
console.log(JSON.stringify(summary));
