/**
 * Warm load of a cached ControlNet (issue 14: < 2 s), split into its phases: reading the file
 * (header, layout, content-hash record), each part's session (the 16-bit expansion into /dev/shm and
 * ORT's session creation over the saved optimised graph, or over the float32 copy kept from an
 * earlier load: kept-expansions.ts) and a first 64² run, then the same run
 * loaded. Each repeat uses a fresh PartsRuntime over the same on-disk cache, as a new process would;
 * the first repeat also warms the page cache, so it is reported but not in the median.
 *
 * CPU time (all threads) is reported beside the wall time: on a loaded machine it is the steadier figure.
 *
 * Run: npx tsx bench/controlnet-load.ts [controlnet] [repeats=3]
 * (the ControlNet's builds must already be in the cache: run it once, or bench/controlnet.ts, first)
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ControlNetLoader } from '../engine/models/controlnet/loader.ts';
import { PartsRuntime } from '../engine/models/runtime/parts-runtime.ts';
import { resolveCacheDir } from '../engine/onnx/cache-dir.ts';
import type { Tensor } from '../engine/core/tensor.ts';

const cnFile = path.resolve(process.argv[2] ?? '/work/sd15/models/controlnet/weft-random-sd15-controlnet.safetensors');
const REPEATS = Number(process.argv[3] ?? 3);
if (!existsSync(cnFile)) throw new Error(`${cnFile} not found (make it with \`weft make-model controlnet --checkpoint <sd15>\`)`);
const cacheDir = resolveCacheDir();

const load = (): string =>
  os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ');
console.log(`machine: ${os.cpus()[0]?.model} ×${os.cpus().length}; load average ${load()}; node ${process.version}`);
console.log(`date: ${new Date().toISOString()}; ControlNet ${cnFile}; cache ${cacheDir}; repeats ${REPEATS}`);

const zeros = (shape: number[]): Tensor => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
const hint = zeros([1, 3, 64, 64]);

interface Phases {
  /** CPU time of the whole process (all threads: ORT's, the expansion workers'), ms. */
  cpu: number;
  read: number;
  hint: number;
  net: number;
  total: number;
  run: number;
  logs: string[];
}

async function once(): Promise<Phases> {
  const logs: string[] = [];
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const stamp = (m: string): void => {
    logs.push(`+${((performance.now() - t0) / 1000).toFixed(2)} s ${m}`);
  };
  const log = { info: stamp, warn: stamp, error: stamp };
  const runtime = new PartsRuntime({ cacheDir, log });
  const loader = new ControlNetLoader(runtime, { cacheDir, log });
  const cn = loader.load(cnFile);
  const t1 = performance.now();
  const features = await cn.encodeHint(hint);
  const t2 = performance.now();
  const args = {
    x: zeros([1, 4, 8, 8]),
    timesteps: new Float32Array([500]),
    context: zeros([1, 77, cn.config.unet.contextDim]),
    hintFeatures: features,
  };
  await cn.run(args);
  const t3 = performance.now();
  const used = process.cpuUsage(c0);
  await cn.encodeHint(hint);
  await cn.run(args);
  const t4 = performance.now();
  // A first load keeps a float32 copy beside the work (kept-expansions.ts): written before the next repeat.
  await runtime.kept?.idle();
  await runtime.pool.clear();
  return { cpu: (used.user + used.system) / 1000, read: t1 - t0, hint: t2 - t1, net: t3 - t2, total: t3 - t0, run: t4 - t3, logs };
}

const all: Phases[] = [];
for (let r = 0; r < REPEATS; r++) {
  const p = await once();
  all.push(p);
  const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
  console.log(
    `repeat ${r}${r === 0 ? ' (warms the page cache)' : ''}: total ${s(p.total)} = read ${s(p.read)} + hint part ${s(p.hint)} + net part ${s(p.net)}; the same calls loaded ${s(p.run)}; CPU time of the load and first calls ${s(p.cpu)}; load average ${load()}`,
  );
  for (const l of p.logs) console.log(`    ${l}`);
}
const warm = all.slice(1).map((p) => p.total - p.run);
if (warm.length) {
  const sorted = [...warm].sort((a, b) => a - b);
  console.log(
    `warm load (total minus the loaded run), repeats 1..${REPEATS - 1}: median ${(sorted[Math.floor(sorted.length / 2)] / 1000).toFixed(2)} s [${warm.map((v) => (v / 1000).toFixed(2)).join(', ')}] (target < 2 s)`,
  );
}
