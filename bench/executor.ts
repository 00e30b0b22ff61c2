/**
 * Executor overhead on a synthetic graph of cheap nodes (a chain with fan-in and fan-out): validation,
 * first run, fully cached re-run, re-run after changing one widget near the end, and engine overhead
 * per node (first run minus the nodes' own measured work, divided by node count). "cold" is the
 * first round in a fresh process (what a server's first prompt sees, JIT not warmed up); "warm" is
 * the median of the rounds after a few untimed ones. Also a 10×-long plain chain, which a recursive
 * scheduler would not survive.
 * Run: npx tsx bench/executor.ts [nodes=1000] [repeats=7]
 */
import os from 'node:os';
import { Executor } from '../engine/executor/executor.ts';
import type { ApiPrompt } from '../engine/graph/prompt.ts';
import { validatePrompt } from '../engine/graph/validate.ts';
import { FolderPaths } from '../engine/paths/folders.ts';
import { NodeRegistry } from '../engine/registry/registry.ts';
import { defineNode } from '../engine/registry/types.ts';

const N = Number(process.argv[2] ?? 1000);
const REPEATS = Number(process.argv[3] ?? 7);
const WARMUP = 3;
if (!Number.isInteger(N) || N < 20 || N > 1_000_000) throw new Error(`nodes must be an integer in 20..1000000, got ${process.argv[2]}`);
if (!Number.isInteger(REPEATS) || REPEATS < 1 || REPEATS > 1000)
  throw new Error(`repeats must be an integer in 1..1000, got ${process.argv[3]}`);
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
  defineNode({
    name: 'Out',
    inputs: { required: { v: { type: 'INT' } } },
    outputs: [],
    outputNode: true,
    run: ({ v }) => {
      const t = process.hrtime.bigint();
      const r = { ui: { v: [v] } };
      workNs += process.hrtime.bigint() - t;
      return r;
    },
  }),
]);

/** A chain where `b` reaches back up to 8 nodes: fan-in, and each node feeds several later ones. */
function graph(n: number, tweak = 1): ApiPrompt {
  const p: ApiPrompt = { '0': { class_type: 'Src', inputs: { v: 1 } } };
  for (let i = 1; i < n - 1; i++) {
    const back = Math.max(0, i - 1 - (i % 8));
    p[String(i)] = { class_type: 'Add', inputs: { a: [String(i - 1), 0], b: [String(back), 0], k: i === n - 10 ? tweak : 1 } };
  }
  p[String(n - 1)] = { class_type: 'Out', inputs: { v: [String(n - 2), 0] } };
  return p;
}

function chain(n: number): ApiPrompt {
  const p: ApiPrompt = { '0': { class_type: 'Src', inputs: { v: 1 } } };
  for (let i = 1; i < n - 1; i++) p[String(i)] = { class_type: 'Add', inputs: { a: [String(i - 1), 0], b: [String(i - 1), 0], k: 1 } };
  p[String(n - 1)] = { class_type: 'Out', inputs: { v: [String(n - 2), 0] } };
  return p;
}

const paths = new FolderPaths({ baseDir: os.tmpdir() });
type Row = { validate: number; first: number; cached: number; tweak: number; overheadPerNode: number };

async function round(r: number): Promise<Row> {
  const ex = new Executor(registry, { paths });
  const prompt = graph(N);
  let t = performance.now();
  const v = await validatePrompt(prompt, registry, { paths });
  const validate = performance.now() - t;
  if (!v.ok) throw new Error('benchmark graph failed validation');
  workNs = 0n;
  t = performance.now();
  const first = await ex.execute(v.prompt, { promptId: `a${r}`, outputs: v.outputs });
  const firstMs = performance.now() - t;
  if (first.status !== 'success' || first.executed.length !== N)
    throw new Error(`expected ${N} nodes to run, ran ${first.executed.length} (${first.status})`);
  const overheadPerNode = (firstMs - Number(workNs) / 1e6) / N;
  t = performance.now();
  const again = await ex.execute(v.prompt, { promptId: `b${r}`, outputs: v.outputs });
  const cached = performance.now() - t;
  if (again.executed.length !== 0) throw new Error('cached re-run executed nodes');
  const tweaked = (await validatePrompt(graph(N, 2), registry, { paths })).prompt;
  t = performance.now();
  const tw = await ex.execute(tweaked, { promptId: `c${r}`, outputs: v.outputs });
  const tweak = performance.now() - t;
  if (tw.executed.length !== 10) throw new Error(`one widget change should re-run 10 nodes, ran ${tw.executed.length}`);
  return { validate, first: firstMs, cached, tweak, overheadPerNode };
}

const cold = await round(0);
const warm: Row[] = [];
for (let r = 1; r <= WARMUP + REPEATS; r++) {
  const row = await round(r);
  if (r > WARMUP) warm.push(row);
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const med = (k: keyof Row): number => median(warm.map((w) => w[k]));

const longN = N * 10;
const longEx = new Executor(registry, { paths });
let t = performance.now();
const long = await longEx.execute(chain(longN), { promptId: 'long' });
const longMs = performance.now() - t;
if (long.status !== 'success') throw new Error(`the ${longN}-node chain failed: ${long.error?.exception_message}`);

const r2 = (x: number): number => +x.toFixed(2);
const summary = {
  nodes: N,
  repeats: REPEATS,
  validate_ms: r2(med('validate')),
  first_run_ms: r2(med('first')),
  cached_rerun_ms: r2(med('cached')),
  one_widget_changed_ms: r2(med('tweak')),
  overhead_per_node_ms: +med('overheadPerNode').toFixed(4),
  cold: {
    validate_ms: r2(cold.validate),
    first_run_ms: r2(cold.first),
    cached_rerun_ms: r2(cold.cached),
    one_widget_changed_ms: r2(cold.tweak),
    overhead_per_node_ms: +cold.overheadPerNode.toFixed(4),
  },
  long_chain_nodes: longN,
  long_chain_first_run_ms: r2(longMs),
  node: process.version,
  cpu: os.cpus()[0]?.model,
  cores: os.cpus().length,
};
const line = (label: string, w: number, c: number, unit: string, note = ''): string =>
  `  ${label.padEnd(22)}${`${w} ${unit}`.padStart(12)}${`${c} ${unit}`.padStart(12)}   ${note}`;
console.log(`executor benchmark, ${N} nodes: warm = median of ${REPEATS} after ${WARMUP} untimed rounds; cold = first round`);
console.log(`  ${''.padEnd(22)}${'warm'.padStart(12)}${'cold'.padStart(12)}`);
console.log(line('validation', summary.validate_ms, summary.cold.validate_ms, 'ms'));
console.log(line('first run', summary.first_run_ms, summary.cold.first_run_ms, 'ms'));
console.log(line('fully cached re-run', summary.cached_rerun_ms, summary.cold.cached_rerun_ms, 'ms', '(target < 20 ms)'));
console.log(line('one widget changed', summary.one_widget_changed_ms, summary.cold.one_widget_changed_ms, 'ms', '(10 nodes re-run)'));
console.log(line('overhead per node', summary.overhead_per_node_ms, summary.cold.overhead_per_node_ms, 'ms', '(target < 0.2 ms)'));
console.log(`  ${longN}-node chain, first run: ${summary.long_chain_first_run_ms} ms`);
console.log(JSON.stringify(summary));
