/**
 * Issue 12's first-run figure in one command: a cold run of a never-seen checkpoint (empty cache
 * folder), then two warm runs, each its own process (bench/cache.ts), and what the first run costs
 * above the faster warm run, in wall and CPU time per phase. Every run's part outputs must hash the
 * same (first run, later runs); the cache folder is removed at the end. Heavy: run it under the lock.
 *
 *   flock /tmp/weft-heavy.lock npx tsx bench/first-run.ts /work/sd15/models/checkpoints/weft-random-sd15.safetensors
 *
 * WEFT_TREE is passed on (another checkout's ModelManager); the runs' own log lines go to stderr.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

interface Run {
  mode: string;
  total: number;
  ms: Record<string, number>;
  cpu: Record<string, number>;
  cpuTotal: number;
  loadavg: number[];
  outputs: Record<string, string>;
  disk: Record<string, { own: number; linked: number }>;
  checkpointBytes: number;
}

const [fileArg = 'models/checkpoints/weft-random-sd15.safetensors', cacheArg] = process.argv.slice(2);
const file = path.resolve(fileArg);
const cacheDir = path.resolve(cacheArg ?? mkdtempSync(path.join(os.tmpdir(), 'weft-first-run-')));
const script = path.join(import.meta.dirname, 'cache.ts');

function run(mode: 'cold' | 'warm'): Run {
  const r = spawnSync(process.execPath, [...process.execArgv, script, mode, file, cacheDir], { encoding: 'utf8', maxBuffer: 64 << 20 });
  process.stderr.write(r.stdout);
  process.stderr.write(r.stderr);
  if (r.status !== 0) throw new Error(`bench/cache.ts ${mode} exited with ${r.status ?? r.signal}`);
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as Run;
}

let runs: Run[];
try {
  runs = [run('cold'), run('warm'), run('warm')];
} finally {
  rmSync(cacheDir, { recursive: true, force: true });
}
const [cold, ...warms] = runs;
const warm = warms.reduce((a, b) => (b.total < a.total ? b : a));
const same = runs.every((r) => JSON.stringify(r.outputs) === JSON.stringify(cold.outputs));
const f = (s: number): string => `${s.toFixed(1)} s`;
console.log(`| phase | cold wall / CPU | warm wall / CPU | cold − warm wall / CPU |`);
console.log(`|---|---|---|---|`);
for (const k of Object.keys(cold.ms)) {
  const row = [cold, warm].map((r) => `${f(r.ms[k] ?? 0)} / ${f(r.cpu[k] ?? 0)}`);
  console.log(
    `| ${k} | ${row.join(' | ')} | ${f((cold.ms[k] ?? 0) - (warm.ms[k] ?? 0))} / ${f((cold.cpu[k] ?? 0) - (warm.cpu[k] ?? 0))} |`,
  );
}
console.log(
  `| whole run | ${f(cold.total)} / ${f(cold.cpuTotal)} | ${f(warm.total)} / ${f(warm.cpuTotal)} | **${f(cold.total - warm.total)} / ${f(cold.cpuTotal - warm.cpuTotal)}** |`,
);
const own = Object.values(cold.disk).reduce((s, e) => s + e.own, 0);
console.log(
  `load average at the end of each run: ${runs.map((r) => r.loadavg[0].toFixed(1)).join(', ')}; warm runs ${warms.map((r) => f(r.total)).join(', ')}; ` +
    `cache ${(own / 1e9).toFixed(2)} GB = ${(own / cold.checkpointBytes).toFixed(2)}× the checkpoint; outputs ${same ? 'bit-identical in every run' : 'DIFFER between runs'}`,
);
if (!same) process.exitCode = 1;
