import { existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Logger } from '../../core/log.ts';
import { prepackFromEnv, sessionOptions, withSessionConfig, type ProviderChoice } from '../../onnx/runtime.ts';
import { prefetchFiles } from '../../onnx/prefetch.ts';
import { shareOptimizedWeights } from '../../onnx/share-weights.ts';
import { expandHalfWeightsParallel, planExpansion, scratchFor, type Expanded, type Plan } from '../../onnx/expand-half.ts';
import { buildStamp, type KeptExpansions } from '../../onnx/kept-expansions.ts';
import { packedTensorsOf, readPrepacked, writePrepackedRecord, type PackedRecord, type PackedTensor } from '../../onnx/prepacked.ts';
import { recordOf, type PackHash } from '../../onnx/prepack-keys.ts';
import { optimizeInChild, saveOptimizedInChild } from '../../onnx/optimize-child.ts';
import { saveFolder } from '../../onnx/save-folder.ts';
import { nchwcBlockSize, nchwcFromEnv } from '../../onnx/nchwc-block.ts';
import { markResidentHalf, weightsModeFromEnv, type WeightsMode } from '../../onnx/resident-half.ts';
import { patchedModelFiles } from '../patching/patched-build.ts';
import { createRecordingPrepacks, hashKeysMeanwhile } from './saved-prepacks.ts';

/** How the runtime opens sessions over the files it built (or was given). */
export interface SessionSettings {
  threads?: number;
  /** Read a patched model's files ahead of ORT (see prefetch.ts). */
  prefetch?: boolean;
  /** `half`: built parts keep their 16-bit cached weights resident, cast by ORT per call (resident-half.ts; default `$WEFT_WEIGHTS`, else float32). */
  weights?: WeightsMode;
  log?: Logger;
  /** Whether a first build's optimising session runs in a child process (optimize-child.ts; default: by size). */
  optimizeInChild?: boolean;
  /** Activation memory given back after each run (PartSpec.activations `freed`). */
  freeActivations?: boolean;
  /** Float32 copies of saved graphs kept on disk, opened instead of expanding at every load (kept-expansions.ts; none: expand each time). */
  kept?: KeptExpansions;
  /** Whether the expansion does ORT's NCHWc layout, so no optimised graph is saved (nchwc.ts; default `$WEFT_NCHWC`, else on). */
  nchwc?: boolean;
  /** Whether the CPU provider pre-packs MatMul/Gemm weights at load (runtime.ts prepackFromEnv; default `$WEFT_PREPACK`, else on). */
  prepack?: boolean;
}

/**
 * The session options of a part: the provider's, with the CPU arena and memory patterns off where
 * activations are freed. Those parts also skip ORT's NCHWc layout on the CPU: without an arena, its
 * reordered copies of input and output are fresh memory at every run (a 576² × 128-channel conv of
 * the tiled VAE faulted 648 MB per run instead of 324 MB, and took 1.5× as long on the dev VM).
 */
function partOptions(p: ProviderChoice, s: SessionSettings): ort.InferenceSession.SessionOptions {
  const o = sessionOptions(p, { threads: s.threads, prepack: s.prepack });
  if (!s.freeActivations) return o;
  const freed = { ...o, enableCpuMemArena: false, enableMemPattern: false };
  return p.provider === 'cpu' ? { ...freed, graphOptimizationLevel: 'extended' } : freed;
}

/**
 * ORT's full optimisation of a 3 GB UNet takes ~13 s per load on a 2-core CPU, so the first load
 * saves the optimised graph beside the built one and later loads take it as is (~1 s). The saved
 * graph is specific to this provider and machine, which the cache key and folder already are.
 */
export async function createBuiltSession(file: string, p: ProviderChoice, s: SessionSettings): Promise<ort.InferenceSession> {
  const base = partOptions(p, s);
  const dir = dirname(file);
  const optimized = join(dir, 'optimized.onnx');
  // GPU providers run the float16 build as it is; the float32 builds of the CPU provider are the ones that would hold 32 bits.
  const half = p.provider === 'cpu' && (s.weights ?? weightsModeFromEnv()) === 'half';
  // Whether ORT packs MatMul/Gemm weights at load: the packing record and the packed copies serve only then.
  const packing = p.provider === 'cpu' && (s.prepack ?? prepackFromEnv());
  const fromSaved = async (): Promise<ort.InferenceSession> => {
    // Without packing, every kernel reads its weight as given, so every 16-bit weight can stay 16-bit.
    const resident = half ? markResidentHalf(optimized, { packing }) : undefined;
    try {
      const options = { ...base, graphOptimizationLevel: 'disabled' as const };
      const create = (f: string): Promise<ort.InferenceSession> => createRecordingPrepacks(f, dir, options, packing && !half, s.log);
      if (!half && s.kept) return await withKeptExpansion(optimized, dir, s.kept, create, s.log, { unpacked: !packing });
      return await withExpanded(
        resident?.file ?? optimized,
        create,
        s.log,
        // The resident copy is expanded without ORT's packed copies (its record is for the saved graph as it is).
        half || !packing ? undefined : dir,
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
  const cpu = p.provider === 'cpu';
  // Parts whose activations are freed run without ORT's NCHWc layout (partOptions), so without this one too.
  if (cpu && !half && !s.freeActivations && (s.nchwc ?? nchwcFromEnv())) {
    const blocked = await createBlocked(file, dir, base, s);
    if (blocked) return blocked;
  }
  const session = await withExpanded(file, (f, bytes) => saveOptimised(f, dir, base, packing, cpu && (s.optimizeInChild ?? optimizeInChild(bytes)), s), s.log);
  if (session && !half) return session;
  if (!existsSync(optimized)) {
    if (session) return session;
    throw new Error(`${file}: the optimising process saved no graph in ${dir}`);
  }
  // The optimising session holds every weight in float32, or ran in the child: the saved, shared graph is what is opened.
  await session?.release();
  return fromSaved();
}

/**
 * A CPU build opened with ORT's NCHWc layout done by its expansion (nchwc.ts): ORT's remaining
 * optimisation then costs ~0.5 s for the SD1.5 UNet instead of ~13 s, so no optimised graph is saved
 * and every load (the first one too) opens the build the same way, with the same bits as ORT's own
 * layout. Undefined where the rewrite declines the graph (ORT's optimisation is saved as before).
 */
async function createBlocked(file: string, dir: string, base: ort.InferenceSession.SessionOptions, s: SessionSettings): Promise<ort.InferenceSession | undefined> {
  const block = await nchwcBlockSize();
  if (block === 0) return undefined;
  const create = (f: string): Promise<ort.InferenceSession> => ort.InferenceSession.create(f, base);
  // A kept copy holds the blocked expansion (a copy ORT refuses is expanded and blocked again).
  if (s.kept?.find(dir)) return withKeptExpansion(file, dir, s.kept, create, s.log, { nchwcBlock: block });
  const plan = planExpansion(file, undefined, block);
  if (!plan?.nchwc) return undefined;
  if ('declined' in plan.nchwc) {
    s.log?.info(`ORT does the NCHWc layout of ${file} itself: ${plan.nchwc.declined}`);
    return undefined;
  }
  const r = plan.nchwc;
  if (r.convs > 0) s.log?.info(`the expansion of ${file} lays out ${r.convs} convs in NCHWc blocks of ${r.block} (${r.fusedAdds + r.blockedAdds} adds in blocks), as ORT would`);
  if (s.kept) return withKeptExpansion(file, dir, s.kept, create, s.log, { plan });
  return withExpanded(file, create, s.log, undefined, { plan });
}

/**
 * ORT's full optimisation of the build in `dir` (over `f`, its model with the weights expanded), saved
 * as the build's `optimized.onnx` (shared with the build's weights, share-weights.ts) with, where ORT
 * packs (`packing`: the CPU provider, pre-packing on), the record of ORT's packing (prepacked.ts). In a
 * child process when `child` (optimize-child.ts; in this process if that fails), returning no session;
 * else the optimising session itself.
 */
async function saveOptimised(
  f: string,
  dir: string,
  base: ort.InferenceSession.SessionOptions,
  packing: boolean,
  child: boolean,
  s: SessionSettings,
): Promise<ort.InferenceSession | undefined> {
  const optimized = join(dir, 'optimized.onnx');
  const tag = `${process.pid}-${Date.now()}`;
  // Saved beside the expanded weights (memory) when there is room, shared from there into the cache (save-folder.ts).
  const into = saveFolder(f, dir);
  const saved = join(into, `optimized-${tag}.onnx`);
  const saveOptions = (prepacked: 'save' | 'none' | undefined): ort.InferenceSession.SessionOptions =>
    withSessionConfig(
      { ...base, optimizedModelFilePath: saved },
      {
        optimized_model_external_initializers_file_name: `optimized-${tag}.bin`,
        optimized_model_external_initializers_min_size_in_bytes: '1024',
        // The session kept here runs, so it packs, and saves the packed buffers for the record (prepacked.ts).
        ...(prepacked === 'save' ? { save_external_prepacked_constant_initializers: '1' } : {}),
        // The child's session never runs: it skips packing, and the record's keys are hashed beside it (prepack-keys.ts).
        ...(prepacked === 'none' ? { disable_prepacking: '1' } : {}),
      },
    );
  const t0 = Date.now();
  let inChild = false;
  let hashing: Promise<Map<string, PackHash> | undefined> | undefined;
  if (child) {
    // ORT's keys for the record are hashed from the weights the child reads, meanwhile (prepack-keys.ts).
    if (packing) hashing = hashKeysMeanwhile(f, s.log);
    try {
      await saveOptimizedInChild(f, saveOptions(packing ? 'none' : undefined));
      inChild = true;
    } catch (e) {
      s.log?.warn(`${(e as Error).message.split('\n')[0]}; optimising in this process instead`);
    }
  }
  const created = inChild ? undefined : await ort.InferenceSession.create(f, saveOptions(packing ? 'save' : undefined));
  try {
    s.log?.info(`ORT optimised and saved ${f}${into === dir ? '' : ` (in ${into})`}${inChild ? ' in a child process' : ''} in ${Date.now() - t0} ms`);
    const hashes = inChild ? await hashing : undefined;
    const packs = !packing || (inChild && !hashes) ? undefined : packedTensors(saved, hashes, s.log);
    if (into !== dir) shareWeights(dir, s.log, saved);
    try {
      if (existsSync(join(dir, `optimized-${tag}.onnx`))) renameSync(join(dir, `optimized-${tag}.onnx`), optimized);
    } catch {
      /* another process saved it first */
    }
    shareWeights(dir, s.log);
    if (packs && existsSync(optimized) && !readPrepacked(dir)) {
      try {
        writePrepackedRecord(dir, packs);
      } catch (e) {
        s.log?.warn(`could not record ORT's packed weights for ${optimized}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
  } finally {
    // The saved copy in the scratch folder has been shared into the cache (or could not be): it is not needed.
    if (into !== dir) for (const n of [`optimized-${tag}.onnx`, `optimized-${tag}.bin`]) rmSync(join(into, n), { force: true });
  }
  return created;
}

/**
 * The packed tensors of ORT's saved graph (prepacked.ts): read from the buffers ORT saved with it, or
 * keyed from `hashes` where it saved none; undefined (with a warning) where that fails: later loads then record them.
 */
function packedTensors(saved: string, hashes: ReadonlyMap<string, PackHash> | undefined, log?: Logger): Record<string, PackedTensor> | undefined {
  try {
    return hashes ? recordOf(saved, hashes) : packedTensorsOf(saved);
  } catch (e) {
    log?.warn(`could not read ORT's packed weights in ${saved}: ${(e as Error).message.split('\n')[0]}`);
    return undefined;
  }
}

/**
 * Patched models get only ORT's basic optimisation on CPU: full optimisation (the NCHWc layout)
 * costs ~12 s for the SD1.5 UNet and gains 4% (256²) to 10% (512²) per step (docs/benchmarks.md),
 * while applying a LoRA should take seconds. Basic costs nothing measurable and folds the LoRA
 * factors' cast, transpose and scaling (see LowRankBranch) into constants. GPU providers keep
 * full optimisation, where fusions matter more.
 */
export async function createPatchedSession(file: string, p: ProviderChoice, s: SessionSettings): Promise<ort.InferenceSession> {
  const base = partOptions(p, s);
  // The unpatched session read the saved optimised graph's reordered convs, not these files.
  if (s.prefetch ?? true) void prefetchFiles(patchedModelFiles(file));
  return withExpanded(file, (f) => ort.InferenceSession.create(f, p.provider === 'cpu' ? { ...base, graphOptimizationLevel: 'basic' } : base), s.log);
}

/**
 * Creates a session over `file` with its 16-bit cached weights expanded to float32 first (see
 * expand-half.ts), and, for a build's saved graph (`packedFor`, the build folder), the packed
 * MatMul/Gemm weights its record names put beside their tensors (prepacked.ts).
 */
async function withExpanded<T>(
  file: string,
  create: (f: string, bytes: number) => Promise<T>,
  log?: Logger,
  packedFor?: string,
  planned?: { packed?: PackedRecord; plan?: Plan },
): Promise<T> {
  const t0 = Date.now();
  const packed = planned ? planned.packed : packedFor === undefined ? undefined : readPrepacked(packedFor);
  const x = await expandHalfWeightsParallel(file, { packed, plan: planned?.plan });
  if (!x) return create(file, onnxBytes(file));
  logExpanded(x, file, t0, log);
  try {
    return await create(x.file, x.bytes);
  } finally {
    x.dispose();
  }
}

/**
 * Creates a session over the build `dir`'s saved graph `file` (or, with `planned`, its model laid out
 * in NCHWc blocks: createBlocked) from its kept float32 copy (kept-expansions.ts), or, at the second
 * load that finds none, expands it and keeps a copy of the expansion once the session exists;
 * otherwise (first such load, no room in the budget or on the disk) expands it for this load only (withExpanded).
 */
async function withKeptExpansion<T>(
  file: string,
  dir: string,
  kept: KeptExpansions,
  create: (f: string) => Promise<T>,
  log?: Logger,
  planned: { plan?: Plan; nchwcBlock?: number; unpacked?: boolean } = {},
): Promise<T> {
  const t0 = Date.now();
  const found = kept.open(dir);
  if (found) {
    try {
      const session = await create(found.file);
      log?.info(`opened ${file} from its kept float32 copy (${(found.bytes / 2 ** 20).toFixed(0)} MiB, ${found.file}) in ${Date.now() - t0} ms`);
      return session;
    } catch (e) {
      // A copy ORT refuses (damaged on disk) goes; the saved graph is expanded as if there were none.
      log?.warn(`removed the kept float32 copy of ${file}, which ORT could not load: ${(e as Error).message.split('\n')[0]}`);
      kept.discard(dir);
    } finally {
      found.dispose();
    }
  }
  const blocked = planned.plan !== undefined || planned.nchwcBlock !== undefined;
  // A copy made with the packed copies serves a session that does not pack (ORT leaves them unread), and the reverse.
  const packed = blocked || planned.unpacked ? undefined : readPrepacked(dir);
  const plan = planned.plan ?? planExpansion(file, packed, planned.nchwcBlock);
  if (!plan || !kept.fits(plan.bytes) || !kept.admit(dir)) return withExpanded(file, create, log, dir, { packed, plan });
  const stamp = buildStamp(dir);
  // With ORT's packed copies wherever the expansion goes (the automatic choice writes them only in
  // /dev/shm): the copy is written once and mapped by every later load.
  const x = await expandHalfWeightsParallel(file, { packed, plan, scratchRoot: scratchFor(plan.bytes) });
  if (!x) return create(file);
  logExpanded(x, file, t0, log);
  let session: T;
  try {
    session = await create(x.file);
  } catch (e) {
    x.dispose();
    throw e;
  }
  // Written while the caller goes on; the expansion's folder is removed once the copy has read it.
  const t1 = Date.now();
  void kept
    .keep(dir, dirname(x.file), stamp)
    .then(
      (removed) => {
        log?.info(`kept a float32 copy of ${file} for later loads in ${kept.root} (${Date.now() - t1} ms, once, beside the work)`);
        for (const c of removed)
          log?.info(`removed the kept float32 copy ${c.dir} (${(c.bytes / 2 ** 20).toFixed(0)} MiB): over the copies' budget of ${(kept.budget / 2 ** 30).toFixed(1)} GiB`);
      },
      (e: unknown) => log?.warn(`could not keep a float32 copy of ${file}: ${(e as Error).message.split('\n')[0]}`),
    )
    .finally(() => x.dispose());
  return session;
}

function logExpanded(x: Expanded, file: string, t0: number, log?: Logger): void {
  const note = x.packed ? `, with ORT's packed form of ${x.packed} MatMul/Gemm weights` : '';
  log?.info(`expanded ${(x.bytes / 2 ** 20).toFixed(0)} MiB of 16-bit cached weights for ${file}${note} in ${Date.now() - t0} ms`);
}

/** A model file Weft did not build (an export's folder, a user's detector): opened as it is, nothing written beside it. */
export async function createFileSession(file: string, p: ProviderChoice, s: SessionSettings): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(file, sessionOptions(p, { threads: s.threads, prepack: s.prepack }));
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
