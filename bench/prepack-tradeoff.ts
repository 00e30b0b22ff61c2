/**
 * What ORT's pre-packing of MatMul/Gemm weights costs at session creation and gains per run, on a
 * cached build (issue 14's ControlNet warm load): the build's saved graph is expanded as a warm load
 * expands it (with the packed copies of prepacked.json), then, alternating, sessions are created
 * with packing (the default: ORT packs every constant B even where the file holds its packed form,
 * since it keys the saved buffers by the hash of the ones it packs) and with `disable_prepacking`
 * (MLAS packs B inside each call), and both run the same random inputs in turn. Prints the creation
 * times, the run times (median and ratio) and how far the outputs differ.
 *
 * Run: npx tsx bench/prepack-tradeoff.ts <build folder in the cache> [latent side=64] [batch=2] [runs=6] [creations=3]
 */
import { join } from 'node:path';
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { expandHalfWeightsParallel } from '../engine/onnx/expand-half.ts';
import { readPrepacked } from '../engine/onnx/prepacked.ts';
import { sessionOptions, withSessionConfig } from '../engine/onnx/runtime.ts';

const [dir, sideArg = '64', batchArg = '2', runsArg = '6', createsArg = '3'] = process.argv.slice(2);
if (!dir) throw new Error('usage: bench/prepack-tradeoff.ts <build folder> [latent side] [batch] [runs] [creations]');
const side = Number(sideArg);
const batch = Number(batchArg);
const runs = Number(runsArg);
const creations = Number(createsArg);

console.log(
  `machine: ${os.cpus()[0]?.model} ×${os.cpus().length}; load ${os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ')}; ${new Date().toISOString()}`,
);
const x = await expandHalfWeightsParallel(join(dir, 'optimized.onnx'), { packed: readPrepacked(dir) });
if (!x) throw new Error(`${dir}: nothing to expand (not a compact cache build?)`);
const base = { ...sessionOptions({ provider: 'cpu', dtype: 'float32', reason: 'bench' }), graphOptimizationLevel: 'disabled' as const };
const variants = { packed: base, unpacked: withSessionConfig(base, { disable_prepacking: '1' }) };
type Name = keyof typeof variants;
const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

const createMs: Record<Name, number[]> = { packed: [], unpacked: [] };
for (let i = 0; i < creations; i++)
  for (const name of Object.keys(variants) as Name[]) {
    const t0 = performance.now();
    const s = await ort.InferenceSession.create(x.file, variants[name]);
    createMs[name].push(performance.now() - t0);
    await s.release();
  }
for (const name of Object.keys(variants) as Name[])
  console.log(`create ${name}: ${createMs[name].map((v) => v.toFixed(0)).join(', ')} ms (median ${median(createMs[name]).toFixed(0)})`);

const sessions = {
  packed: await ort.InferenceSession.create(x.file, variants.packed),
  unpacked: await ort.InferenceSession.create(x.file, variants.unpacked),
};
x.dispose();
let seed = 1;
const random = (): number => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32 - 0.5;
};
const feeds: Record<string, ort.Tensor> = {};
for (const m of sessions.packed.inputMetadata) {
  if (!m.isTensor) throw new Error(`input ${m.name} is not a tensor`);
  // Symbolic dimensions: the batch first, 77 tokens for a context, the latent side for the rest.
  const dims = m.shape.map((d, i) => (typeof d === 'number' ? d : i === 0 ? batch : m.name === 'context' ? 77 : side));
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = m.name === 'timesteps' ? 500 : random();
  feeds[m.name] = new ort.Tensor('float32', data, dims);
}
console.log(
  `inputs: ${Object.entries(feeds)
    .map(([k, v]) => `${k} ${v.dims.join('×')}`)
    .join(', ')}`,
);
const runMs: Record<Name, number[]> = { packed: [], unpacked: [] };
const last: Partial<Record<Name, ort.InferenceSession.ReturnType>> = {};
for (let r = 0; r <= runs; r++)
  for (const name of Object.keys(variants) as Name[]) {
    const t0 = performance.now();
    last[name] = await sessions[name].run(feeds);
    // The first run of each (allocation, page faults) is left out.
    if (r > 0) runMs[name].push(performance.now() - t0);
  }
for (const name of Object.keys(variants) as Name[])
  console.log(`run ${name}: ${runMs[name].map((v) => v.toFixed(0)).join(', ')} ms (median ${median(runMs[name]).toFixed(0)})`);
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
await sessions.packed.release();
await sessions.unpacked.release();
