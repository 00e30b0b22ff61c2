/**
 * The optimising child of a first build (optimize-child.ts) on its own: a cached build's model is
 * expanded as a first build expands it, then ORT's full optimisation and save run in the child, once
 * with ORT packing every MatMul/Gemm weight and saving the packed buffers (how first builds recorded
 * ORT's keys before prepack-keys.ts) and once with packing off (how they run now), alternating.
 * Prints each child's wall time and the size of the graph it saved.
 *
 * Run: npx tsx bench/optimize-child.ts <build folder in the cache> [variants=pack,nopack] [rounds=2]
 */
import { readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { expandHalfWeightsParallel } from '../engine/onnx/expand-half.ts';
import { saveOptimizedInChild } from '../engine/onnx/optimize-child.ts';
import { sessionOptions, withSessionConfig } from '../engine/onnx/runtime.ts';

const [dir, variantsArg = 'pack,nopack', roundsArg = '2'] = process.argv.slice(2);
if (!dir) throw new Error('usage: bench/optimize-child.ts <build folder> [pack,nopack] [rounds]');
const variants = variantsArg.split(',');
console.log(
  `machine: ${os.cpus()[0]?.model} ×${os.cpus().length}; load ${os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ')}; ${new Date().toISOString()}`,
);
const x = await expandHalfWeightsParallel(join(dir, 'model.onnx'));
if (!x) throw new Error(`${dir}: nothing to expand (not a compact cache build?)`);
const into = dirname(x.file);
const base = sessionOptions({ provider: 'cpu', dtype: 'float32', reason: 'bench' });
try {
  for (let round = 0; round < Number(roundsArg); round++)
    for (const v of variants) {
      const tag = `bench-${v}-${Date.now()}`;
      const options = withSessionConfig(
        { ...base, optimizedModelFilePath: join(into, `${tag}.onnx`) },
        {
          optimized_model_external_initializers_file_name: `${tag}.bin`,
          optimized_model_external_initializers_min_size_in_bytes: '1024',
          ...(v === 'pack' ? { save_external_prepacked_constant_initializers: '1' } : { disable_prepacking: '1' }),
        },
      );
      const t0 = performance.now();
      await saveOptimizedInChild(x.file, options);
      const saved = statSync(join(into, `${tag}.bin`)).size;
      console.log(
        `round ${round} ${v}: ${((performance.now() - t0) / 1000).toFixed(1)} s; saved weights ${(saved / 2 ** 20).toFixed(0)} MiB`,
      );
      for (const f of readdirSync(into)) if (f.startsWith(tag)) rmSync(join(into, f));
    }
} finally {
  x.dispose();
}
