import { existsSync, readdirSync, rmSync } from 'node:fs';
import { freemem } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Logger } from '../../core/log.ts';
import { expandHalfWeightsParallel } from '../../onnx/expand-half.ts';
import { readPrepacked, recordPrepacked } from '../../onnx/prepacked.ts';
import { sessionOptions, type ProviderChoice } from '../../onnx/runtime.ts';

/**
 * Once per build, the first time its saved optimised graph is loaded on the CPU provider: a session
 * over it that saves MLAS's packed MatMul/Gemm weights beside a copy of the graph, from which
 * prepacked.ts records ORT's keys (see there for why); the copy is then removed. Every later load
 * writes the packed form while expanding and ORT maps it instead of packing. A failure only warns:
 * the loads then pack as before.
 */
export async function savePrepacks(dir: string, p: ProviderChoice, s: { threads?: number; log?: Logger }): Promise<void> {
  const optimized = join(dir, 'optimized.onnx');
  if (p.provider !== 'cpu' || !existsSync(optimized) || readPrepacked(dir)) return;
  const t0 = Date.now();
  const tag = `prepack-save-${process.pid}-${Date.now()}`;
  let into = dir;
  let x: Awaited<ReturnType<typeof expandHalfWeightsParallel>>;
  try {
    x = await expandHalfWeightsParallel(optimized);
    // ORT writes the whole graph again in float32 with the packed buffers: beside the expansion (memory) where the machine has room for it.
    if (x && freemem() > 2 * x.bytes) into = dirname(x.file);
    const session = await ort.InferenceSession.create(x?.file ?? optimized, {
      ...sessionOptions(p, { threads: s.threads }),
      graphOptimizationLevel: 'disabled',
      optimizedModelFilePath: join(into, `${tag}.onnx`),
      extra: {
        session: {
          save_external_prepacked_constant_initializers: '1',
          optimized_model_external_initializers_file_name: `${tag}.bin`,
          optimized_model_external_initializers_min_size_in_bytes: '1024',
        },
      },
    });
    await session.release();
    const n = recordPrepacked(join(into, `${tag}.onnx`), dir);
    s.log?.info(`recorded ORT's packing of ${n} MatMul/Gemm weights of ${optimized} (${Date.now() - t0} ms, once)`);
  } catch (e) {
    s.log?.warn(`could not keep ORT's packed weights for ${optimized}: ${(e as Error).message.split('\n')[0]}`);
  } finally {
    for (const f of readdirSync(into)) if (f.startsWith(tag)) rmSync(join(into, f), { force: true });
    x?.dispose();
  }
}
