/**
 * What ORT's pre-packing of MatMul/Gemm weights costs at session creation and gains per run.
 *
 * On a cached build (issue 14's ControlNet warm load): the build's saved graph is expanded as a warm
 * load expands it (with the packed copies of prepacked.json), then, alternating, sessions are created
 * with packing (the default: ORT packs every constant B even where the file holds its packed form,
 * since it keys the saved buffers by the hash of the ones it packs) and with `disable_prepacking`
 * (MLAS packs B inside each call; `WEFT_PREPACK=0`), and both run the same random inputs in turn.
 *
 * On a float32 model file as it is (issue 18: a kept copy, `<cache>/expanded/<build>/model.onnx`, of
 * SDXL's UNet, ~10 GB): two such sessions do not fit beside each other on 24 GB, so each variant is a
 * block (create, one warm-up run, the timed runs, release), the blocks alternating for `creations` rounds.
 *
 * Prints the creation times and page faults, the run times (median and ratio) and how far the outputs differ.
 *
 * Run: npx tsx bench/prepack-tradeoff.ts <build folder in the cache | float32 model.onnx> [latent side=64] [batch=2] [runs=6] [creations=3]
 */
import { join } from 'node:path';
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { expandHalfWeightsParallel } from '../engine/onnx/expand-half.ts';
import { readPrepacked } from '../engine/onnx/prepacked.ts';
import { sessionOptions, withSessionConfig } from '../engine/onnx/runtime.ts';

const [target, sideArg = '64', batchArg = '2', runsArg = '6', createsArg = '3'] = process.argv.slice(2);
if (!target)
  throw new Error('usage: bench/prepack-tradeoff.ts <build folder | float32 model.onnx> [latent side] [batch] [runs] [creations]');
const side = Number(sideArg);
const batch = Number(batchArg);
const runs = Number(runsArg);
const creations = Number(createsArg);
const asIs = target.endsWith('.onnx');

console.log(
  `machine: ${os.cpus()[0]?.model} ×${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(2)} GiB; load ${os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ')}; ${new Date().toISOString()}; ${asIs ? 'model as it is, variants in blocks' : 'build expanded, variants side by side'}`,
);
const x = asIs ? undefined : await expandHalfWeightsParallel(join(target, 'optimized.onnx'), { packed: readPrepacked(target) });
if (!asIs && !x) throw new Error(`${target}: nothing to expand (not a compact cache build?)`);
const file = x?.file ?? target;
// The prepacking entry is set explicitly in both, whatever WEFT_PREPACK says.
const base = {
  ...sessionOptions({ provider: 'cpu', dtype: 'float32', reason: 'bench' }, { prepack: true }),
  graphOptimizationLevel: 'disabled' as const,
};
const variants = { packed: base, unpacked: withSessionConfig(base, { disable_prepacking: '1' }) };
type Name = keyof typeof variants;
const names = Object.keys(variants) as Name[];
const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const gib = (): string => `${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GiB`;

const createMs: Record<Name, number[]> = { packed: [], unpacked: [] };
const runMs: Record<Name, number[]> = { packed: [], unpacked: [] };
const last: Partial<Record<Name, ort.InferenceSession.ReturnType>> = {};

async function create(name: Name): Promise<ort.InferenceSession> {
  const r0 = process.resourceUsage();
  const t0 = performance.now();
  const s = await ort.InferenceSession.create(file, variants[name]);
  const ms = performance.now() - t0;
  const r1 = process.resourceUsage();
  createMs[name].push(ms);
  console.log(
    `create ${name}: ${ms.toFixed(0)} ms (user ${((r1.userCPUTime - r0.userCPUTime) / 1e6).toFixed(1)} s, system ${((r1.systemCPUTime - r0.systemCPUTime) / 1e6).toFixed(1)} s, ${r1.minorPageFault - r0.minorPageFault} minor faults), RSS ${gib()}`,
  );
  return s;
}

let feeds: Record<string, ort.Tensor> | undefined;
function feedsFor(session: ort.InferenceSession): Record<string, ort.Tensor> {
  if (feeds) return feeds;
  let seed = 1;
  const random = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32 - 0.5;
  };
  feeds = {};
  for (const m of session.inputMetadata) {
    if (!m.isTensor) throw new Error(`input ${m.name} is not a tensor`);
    // The UNet's overridable control residuals: a zero that broadcasts, as the handle feeds them.
    if (m.name.startsWith('control_')) {
      feeds[m.name] = new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]);
      continue;
    }
    // Symbolic dimensions: the batch first, 77 tokens for a context, the latent side for the rest.
    const dims = m.shape.map((d, i) => (typeof d === 'number' ? d : i === 0 ? batch : m.name === 'context' ? 77 : side));
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = m.name === 'timesteps' ? 500 : random();
    feeds[m.name] = new ort.Tensor('float32', data, dims);
  }
  console.log(
    `inputs: ${Object.entries(feeds)
      .filter(([k]) => !k.startsWith('control_'))
      .map(([k, v]) => `${k} ${v.dims.join('×')}`)
      .join(', ')}`,
  );
  return feeds;
}

async function timedRun(name: Name, session: ort.InferenceSession, keep: boolean): Promise<void> {
  const t0 = performance.now();
  const out = await session.run(feedsFor(session));
  const ms = performance.now() - t0;
  if (keep) runMs[name].push(ms);
  else console.log(`first run ${name}: ${ms.toFixed(0)} ms, RSS ${gib()}`);
  last[name] = out;
}

if (asIs) {
  for (let round = 0; round < creations; round++)
    for (const name of round % 2 ? [...names].reverse() : names) {
      const session = await create(name);
      // The first run of each (allocation, page faults of the mapped weights) is reported apart.
      for (let r = 0; r <= runs; r++) await timedRun(name, session, r > 0);
      await session.release();
    }
} else {
  for (let i = 0; i < creations; i++)
    for (const name of names) {
      const s = await create(name);
      await s.release();
    }
  const sessions = { packed: await create('packed'), unpacked: await create('unpacked') };
  x?.dispose();
  for (let r = 0; r <= runs; r++) for (const name of names) await timedRun(name, sessions[name], r > 0);
  await sessions.packed.release();
  await sessions.unpacked.release();
}
for (const name of names)
  console.log(
    `create ${name}: median ${median(createMs[name]).toFixed(0)} ms; run ${name}: ${runMs[name].map((v) => v.toFixed(0)).join(', ')} ms (median ${median(runMs[name]).toFixed(0)})`,
  );
console.log(
  `unpacked / packed, medians: create ${(median(createMs.unpacked) / median(createMs.packed)).toFixed(3)}, run ${(median(runMs.unpacked) / median(runMs.packed)).toFixed(3)}`,
);
let differing = 0;
let total = 0;
let maxDiff = 0;
let maxAbs = 0;
for (const k of Object.keys(last.packed ?? {})) {
  const a = last.packed![k].data as Float32Array;
  const b = last.unpacked![k].data as Float32Array;
  total += a.length;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > 0) differing++;
    maxDiff = Math.max(maxDiff, d);
    maxAbs = Math.max(maxAbs, Math.abs(a[i]));
  }
}
console.log(
  `outputs: ${differing} of ${total} values differ, largest difference ${maxDiff.toExponential(2)} (largest value ${maxAbs.toFixed(2)})`,
);
