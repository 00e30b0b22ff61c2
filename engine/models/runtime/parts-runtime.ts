import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Logger } from '../../core/log.ts';
import { BuildCache, type BuiltPart } from '../../onnx/build-cache.ts';
import { KeptExpansions } from '../../onnx/kept-expansions.ts';
import type { NetOptions } from '../../onnx/nn.ts';
import { chooseProvider, type DeviceChoice, type ProviderChoice } from '../../onnx/runtime.ts';
import { SessionPool, type PoolStats } from '../../onnx/session-pool.ts';
import type { WeightsMode } from '../../onnx/resident-half.ts';
import { ortMatMul, type MatMul } from '../lora/index.ts';
import { patchHooks, splitPatches } from '../patching/low-rank.ts';
import { NO_PATCHES, type PatchMap } from '../patching/patch-set.ts';
import { patchedModelKey, writePatchedModel } from '../patching/patched-build.ts';
import { ownPatches, type PartSpec, type RunSession } from './part.ts';
import { defaultMemoryBudget } from './memory-budget.ts';
import { createBuiltSession, createFileSession, createPatchedSession, onnxBytes, type SessionSettings } from './sessions.ts';

/**
 * ONNX parts as the model layer runs them: a part declared by a `PartSpec` is built once into the
 * on-disk cache (or found there), its session comes from one pool under one memory budget, and
 * weight patches (LoRA, merges) give it a patched variant beside its build. A model file Weft did
 * not build (an export, a user's detector) runs through the same pool.
 */

/** Bump when a graph builder changes what it emits, so old cached builds are not reused (4: the VAE decoder's fused upsampling). */
export const BUILD_VERSION = 4;

export interface PartsRuntimeOptions {
  /** Where built graphs live. */
  cacheDir: string;
  device?: DeviceChoice;
  threads?: number;
  /** Bytes of sessions kept loaded before the least recently used is released (default: 60% of RAM). */
  memoryBudgetBytes?: number;
  fusedAttention?: boolean;
  /**
   * How plain LoRAs reach a part: `branch` (default) adds them as low-rank branches with their
   * strength as an input (applying takes about 2–3 s and re-weighting 0.1 s on SD1.5 on CPU; each
   * step costs more, ~5–15% for a rank-32 LoRA on every layer); `merge` folds them into the weights
   * as ComfyUI does (no per-step cost from the LoRA; every new strength re-patches the weights).
   */
  loraMode?: 'branch' | 'merge';
  /** Read a patched model's files ahead of ORT when its session is created (default true; see prefetch.ts). */
  prefetch?: boolean;
  /** `half`: hold built parts' 16-bit cached weights in 16 bits on the CPU provider (see onnx/resident-half.ts; default `$WEFT_WEIGHTS`). */
  weights?: WeightsMode;
  /** Whether ORT's CPU provider pre-packs MatMul/Gemm weights at load (default `$WEFT_PREPACK`, else on; see onnx/runtime.ts prepackFromEnv). */
  prepack?: boolean;
  /** Bytes of float32 copies of saved graphs kept in the cache for fast loads (onnx/kept-expansions.ts; default `$WEFT_KEEP_EXPANDED`, else 8 GiB; 0: none). */
  keepExpandedBytes?: number;
  log?: Logger;
}

/** What the last patched build did (benchmarks and tests). */
export interface PatchReport {
  part: string;
  ms: number;
  written: number;
  tensorsPatched: number;
  tensorsComputed: number;
  branches: number;
}

/** A part's model file as a session of the pool sees it. */
interface Runnable {
  file: string;
  bytes: number;
  /** Pool key. */
  key: string;
  patched: boolean;
  /** Pool family: the unpatched build's key, shared by all its patched variants. */
  family: string;
}

export class PartsRuntime {
  readonly pool: SessionPool;
  readonly cache: BuildCache;
  /** Float32 copies of saved graphs opened instead of expanding the cache's 16-bit weights (undefined: switched off). */
  readonly kept?: KeptExpansions;
  /** Graphs built by this runtime (not found in the cache). */
  builds = 0;
  lastPatch?: PatchReport;
  private providerChoice?: Promise<ProviderChoice>;
  private mm?: MatMul;
  /** Input names per session, for refusing feeds a graph would silently ignore. */
  private readonly inputs = new WeakMap<ort.InferenceSession, ReadonlySet<string>>();

  constructor(readonly opts: PartsRuntimeOptions) {
    const budget = opts.memoryBudgetBytes ?? defaultMemoryBudget();
    this.pool = new SessionPool(budget, (m) => opts.log?.info(m));
    this.cache = new BuildCache(opts.cacheDir);
    this.kept = KeptExpansions.inCache(opts.cacheDir, opts.keepExpandedBytes);
  }

  provider(): Promise<ProviderChoice> {
    if (!this.providerChoice) {
      this.providerChoice = chooseProvider({ device: this.opts.device, threads: this.opts.threads }).then((c) => {
        this.opts.log?.info(`models run on ${c.reason}`);
        return c;
      });
    }
    return this.providerChoice;
  }

  async netOptions(): Promise<NetOptions> {
    const p = await this.provider();
    return { dtype: p.dtype, fusedAttention: this.opts.fusedAttention ?? true };
  }

  /** The cache key of a part's unpatched build on this provider. */
  async buildKey(spec: Pick<PartSpec, 'id' | 'hash' | 'version'>): Promise<string> {
    const p = await this.provider();
    const o = await this.netOptions();
    const own = spec.version === undefined ? '' : `.${spec.version}`;
    return `${spec.id}-${spec.hash.slice(0, 20)}-${o.dtype}-${p.provider}${o.fusedAttention ? '-mha' : ''}-v${BUILD_VERSION}${own}`;
  }

  /** Builds (or finds) a part's unpatched graph on disk. */
  async ensureBuilt(spec: PartSpec): Promise<BuiltPart> {
    const key = await this.buildKey(spec);
    const o = await this.netOptions();
    const t0 = Date.now();
    let nodes = 0;
    let weightBytes = 0;
    const b = this.cache.ensure(
      key,
      { part: spec.id, source: spec.source },
      () => {
        const g = spec.build(spec.weights, o);
        nodes = g.nodeCount;
        weightBytes = g.weightBytes;
        return g;
      },
      { locate: (k) => spec.weights.locate?.(k) },
    );
    if (b.built) {
      this.builds++;
      this.opts.log?.info(`built ${spec.id} graph (${nodes} nodes, ${(weightBytes / 2 ** 20).toFixed(0)} MiB) in ${Date.now() - t0} ms`);
    }
    return b;
  }

  /**
   * A part's session runner. With patches on the part's weights the session comes from a patched
   * model beside the unpatched build (see patched-build.ts); parts the patches do not touch keep
   * the unpatched session, so a UNet-only LoRA never reloads CLIP. A feed naming an input the
   * graph lacks is refused (ORT would ignore it).
   */
  runner(spec: PartSpec, patches: PatchMap = NO_PATCHES): RunSession {
    const own = ownPatches(patches, spec.prefix);
    const split = own.size ? splitPatches(own, spec.prefix, spec.weights, this.opts.loraMode) : undefined;
    const strengthFeeds: Record<string, ort.Tensor> = {};
    for (const [name, v] of split?.strengths ?? []) strengthFeeds[name] = new ort.Tensor('float32', new Float32Array([v]), [1]);
    let built: Promise<Runnable> | undefined;
    const ensure = async (): Promise<Runnable> => {
      const base = await this.ensureBuilt(spec);
      if (!split) return { ...base, patched: false, family: base.key };
      const o = await this.netOptions();
      const t0 = Date.now();
      const pb = await writePatchedModel({
        dir: base.dir,
        weights: spec.weights,
        prefix: spec.prefix,
        patches: split.merged,
        structureKey: split.structureKey,
        branches: split.adapters,
        baseLayout: () => new Map(spec.build(spec.weights, o).layout().map((p) => [p.name, p])),
        build: (ws) => spec.build(ws, { ...o, layerHooks: [...(o.layerHooks ?? []), ...patchHooks(split)] }),
        mm: this.matmul(),
      });
      this.lastPatch = { part: spec.id, ms: Date.now() - t0, branches: split.branches.size, ...pb };
      if (pb.tensorsComputed || pb.written) {
        this.opts.log?.info(`patched ${spec.id}: ${pb.tensorsComputed} tensors merged, ${split.branches.size} with LoRA branches (${(pb.written / 2 ** 20).toFixed(0)} MiB written) in ${Date.now() - t0} ms`);
      }
      return { file: pb.file, bytes: base.bytes, key: `${base.key}-p${patchedModelKey(split.merged, split.structureKey).slice(0, 16)}`, patched: true, family: base.key };
    };
    const run: RunSession = async (feeds, outputs) => {
      built ??= ensure().catch((e: unknown) => {
        built = undefined;
        throw e;
      });
      const b = await built;
      const p = await this.provider();
      const settings: SessionSettings = { ...this.opts, kept: this.kept, ...(spec.activations === 'freed' ? { freeActivations: true } : {}) };
      const create = (): Promise<ort.InferenceSession> => {
        if (b.patched) return createPatchedSession(b.file, p, settings);
        if (!existsSync(join(dirname(b.file), 'optimized.onnx'))) this.cache.optimising(b.key, spec.id);
        return createBuiltSession(b.file, p, settings);
      };
      return this.pool.use(b.key, b.bytes, create, (s) => this.run(s, spec.id, { ...feeds, ...strengthFeeds }, outputs), b.family);
    };
    run.release = async () => {
      const b = await built?.catch(() => undefined);
      if (b) await this.pool.release(b.key, 'with its activation memory, its node done');
    };
    return run;
  }

  /** Runs `fn` with a pooled session over an ONNX file Weft did not build (loaded as it is, budgeted by its size). */
  async useFile<T>(key: string, file: string, fn: (s: ort.InferenceSession) => Promise<T>): Promise<T> {
    return this.pool.use(key, onnxBytes(file), async () => createFileSession(file, await this.provider(), this.opts), fn);
  }

  /** An existing model file (a user's YOLO export, say) as a pooled, budgeted part. */
  fileRunner(file: string, key = `file:${file}`): RunSession {
    return (feeds) => this.useFile(key, file, (s) => this.run(s, file, feeds));
  }

  matmul(): MatMul {
    this.mm ??= ortMatMul();
    return this.mm;
  }

  /** Holds `bytes` of the session budget for work outside the sessions while it runs (see SessionPool.reserve). */
  async withReserved<T>(bytes: number, why: string, fn: () => Promise<T>): Promise<T> {
    const release = await this.pool.reserve(bytes, why);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  stats(): PoolStats & { builds: number } {
    return { ...this.pool.stats(), builds: this.builds };
  }

  private run(
    s: ort.InferenceSession,
    what: string,
    feeds: Record<string, ort.Tensor>,
    outputs?: Record<string, ort.Tensor>,
  ): Promise<ort.InferenceSession.OnnxValueMapType> {
    let names = this.inputs.get(s);
    if (!names) this.inputs.set(s, (names = new Set(s.inputNames)));
    for (const name of Object.keys(feeds)) {
      if (!names.has(name)) throw new Error(`the ${what} graph has no input '${name}' (its inputs: ${s.inputNames.join(', ')})`);
    }
    return outputs ? s.run(feeds, outputs) : s.run(feeds);
  }
}
