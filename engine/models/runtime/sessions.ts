import { existsSync, readdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Logger } from '../../core/log.ts';
import { sessionOptions, type ProviderChoice } from '../../onnx/runtime.ts';
import { prefetchFiles } from '../../onnx/prefetch.ts';
import { shareOptimizedWeights } from '../../onnx/share-weights.ts';
import { expandHalfWeightsParallel } from '../../onnx/expand-half.ts';
import { readPrepacked } from '../../onnx/prepacked.ts';
import { saveFolder } from '../../onnx/save-folder.ts';
import { markResidentHalf, weightsModeFromEnv, type WeightsMode } from '../../onnx/resident-half.ts';
import { patchedModelFiles } from '../patching/patched-build.ts';
import { createRecordingPrepacks } from './saved-prepacks.ts';

/** How the runtime opens sessions over the files it built (or was given). */
export interface SessionSettings {
  threads?: number;
  /** Read a patched model's files ahead of ORT (see prefetch.ts). */
  prefetch?: boolean;
  /** `half`: built parts keep their 16-bit cached weights resident, cast by ORT per call (resident-half.ts; default `$WEFT_WEIGHTS`, else float32). */
  weights?: WeightsMode;
  log?: Logger;
}

/**
 * ORT's full optimisation of a 3 GB UNet takes ~13 s per load on a 2-core CPU, so the first load
 * saves the optimised graph beside the built one and later loads take it as is (~1 s). The saved
 * graph is specific to this provider and machine, which the cache key and folder already are.
 */
export async function createBuiltSession(file: string, p: ProviderChoice, s: SessionSettings): Promise<ort.InferenceSession> {
  const base = sessionOptions(p, { threads: s.threads });
  const dir = dirname(file);
  const optimized = join(dir, 'optimized.onnx');
  // GPU providers run the float16 build as it is; the float32 builds of the CPU provider are the ones that would hold 32 bits.
  const half = p.provider === 'cpu' && (s.weights ?? weightsModeFromEnv()) === 'half';
  const fromSaved = async (): Promise<ort.InferenceSession> => {
    const resident = half ? markResidentHalf(optimized) : undefined;
    try {
      const options = { ...base, graphOptimizationLevel: 'disabled' as const };
      return await withExpanded(
        resident?.file ?? optimized,
        (f) => createRecordingPrepacks(f, dir, options, p.provider === 'cpu' && !half, s.log),
        s.log,
        // The resident copy is expanded without ORT's packed copies (its record is for the saved graph as it is).
        half ? undefined : dir,
      );
    } finally {
      resident?.dispose();
    }
  };
  if (existsSync(optimized)) {
    shareWeights(dir, s.log);
    try {
      return await fromSaved();
    } catch (e) {
      s.log?.warn(`ignoring the saved optimised graph ${optimized}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const tag = `${process.pid}-${Date.now()}`;
  const tmp = join(dir, `optimized-${tag}.onnx`);
  const session = await withExpanded(
    file,
    async (f) => {
      // Saved beside the expanded weights (memory) when there is room, shared from there into the cache (save-folder.ts).
      const into = saveFolder(f, dir);
      const t0 = Date.now();
      const created = await ort.InferenceSession.create(f, {
        ...base,
        optimizedModelFilePath: join(into, `optimized-${tag}.onnx`),
        extra: { session: { optimized_model_external_initializers_file_name: `optimized-${tag}.bin`, optimized_model_external_initializers_min_size_in_bytes: '1024' } },
      });
      s.log?.info(`ORT optimised and saved ${file}${into === dir ? '' : ` (in ${into})`} in ${Date.now() - t0} ms`);
      if (into !== dir) shareWeights(dir, s.log, join(into, `optimized-${tag}.onnx`));
      return created;
    },
    s.log,
  );
  try {
    if (existsSync(tmp)) renameSync(tmp, optimized);
  } catch {
    /* another process saved it first */
  }
  shareWeights(dir, s.log);
  if (!half || !existsSync(optimized)) return session;
  // The optimising session holds every weight in float32: the saved graph, now shared, is what keeps them in 16 bits.
  await session.release();
  return fromSaved();
}

/**
 * Patched models get only ORT's basic optimisation on CPU: full optimisation (the NCHWc layout)
 * costs ~12 s for the SD1.5 UNet and gains 4% (256²) to 10% (512²) per step (docs/benchmarks.md),
 * while applying a LoRA should take seconds. Basic costs nothing measurable and folds the LoRA
 * factors' cast, transpose and scaling (see LowRankBranch) into constants. GPU providers keep
 * full optimisation, where fusions matter more.
 */
export async function createPatchedSession(file: string, p: ProviderChoice, s: SessionSettings): Promise<ort.InferenceSession> {
  const base = sessionOptions(p, { threads: s.threads });
  // The unpatched session read the saved optimised graph's reordered convs, not these files.
  if (s.prefetch ?? true) void prefetchFiles(patchedModelFiles(file));
  return withExpanded(file, (f) => ort.InferenceSession.create(f, p.provider === 'cpu' ? { ...base, graphOptimizationLevel: 'basic' } : base), s.log);
}

/**
 * Creates a session over `file` with its 16-bit cached weights expanded to float32 first (see
 * expand-half.ts), and, for a build's saved graph (`packedFor`, the build folder), the packed
 * MatMul/Gemm weights its record names put beside their tensors (prepacked.ts).
 */
async function withExpanded(
  file: string,
  create: (f: string) => Promise<ort.InferenceSession>,
  log?: Logger,
  packedFor?: string,
): Promise<ort.InferenceSession> {
  const t0 = Date.now();
  const packed = packedFor === undefined ? undefined : readPrepacked(packedFor);
  const x = await expandHalfWeightsParallel(file, { packed });
  if (!x) return create(file);
  const note = packed && Object.keys(packed.tensors).length ? ", with ORT's packed MatMul/Gemm weights" : '';
  log?.info(`expanded ${(x.bytes / 2 ** 20).toFixed(0)} MiB of 16-bit cached weights for ${file}${note} in ${Date.now() - t0} ms`);
  try {
    return await create(x.file);
  } finally {
    x.dispose();
  }
}

/** A model file Weft did not build (an export's folder, a user's detector): opened as it is, nothing written beside it. */
export async function createFileSession(file: string, p: ProviderChoice, s: SessionSettings): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(file, sessionOptions(p, { threads: s.threads }));
}

/** See share-weights.ts: a saving of disk and page cache, so a failure only warns. */
function shareWeights(dir: string, log?: Logger, savedModel?: string): void {
  try {
    const t0 = Date.now();
    const saved = shareOptimizedWeights(dir, savedModel);
    if (saved) log?.info(`the saved optimised graph in ${dir} now reads ${(saved / 2 ** 20).toFixed(0)} MiB of unchanged weights from weights.bin (${Date.now() - t0} ms)`);
  } catch (e) {
    log?.warn(`could not share the optimised graph's weights in ${dir}: ${(e as Error).message.split('\n')[0]}`);
  }
}

/**
 * A model's size on disk for the memory budget: the graph plus, when it is the only model in its
 * folder (an export's part folder), the external-data files beside it. A model among others (a
 * folder of detectors) counts its own file only.
 */
export function onnxBytes(file: string): number {
  const dir = dirname(file);
  const names = readdirSync(dir);
  if (names.filter((f) => f.endsWith('.onnx')).length > 1) return statSync(file).size;
  return names.reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}
