import { existsSync, readdirSync, renameSync, statSync } from 'node:fs';
import { totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { GraphBuilder } from '../onnx/graph.ts';
import type { NetOptions } from '../onnx/nn.ts';
import { chooseProvider, sessionOptions, type DeviceChoice, type ProviderChoice } from '../onnx/runtime.ts';
import { SessionPool, type PoolStats } from '../onnx/session-pool.ts';
import { BuildCache } from '../onnx/build-cache.ts';
import type { FolderPaths } from '../paths/folders.ts';
import { type Logger } from '../core/log.ts';
import { loadClipTokenizer } from '../text/clip-tokenizer.ts';
import { SD1_PREFIX, type Sd1Config, type VaeConfig } from './config.ts';
import { detectCheckpoint, sd1Weights, vaeWeights } from './detect.ts';
import { buildClipGraph } from './graphs/clip-graph.ts';
import { buildUnetGraph, unetSkipCount } from './graphs/unet-graph.ts';
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from './graphs/vae-graph.ts';
import type { ClipHandle, ModelHandle, UNetRunArgs, UNetRunner, VaeHandle, WeightPatching } from './handles.ts';
import { OrtClip, type RunSession } from './ort-clip.ts';
import { OrtUnet } from './ort-unet.ts';
import { loadOnnxFolder, type OnnxFolderParts } from './onnx-folder.ts';
import { assertNotPickle } from '../formats/pickle-guard.ts';
import { SafetensorsFile } from '../formats/safetensors.ts';
import { OrtVae } from './ort-vae.ts';
import { PrefixedWeightSource, type WeightSource } from '../core/weights.ts';
import { ortMatMul, parseAdapter, type MatMul, type ParsedAdapter } from './lora/index.ts';
import { applyEntries, effective, NO_PATCHES, patchMapHash, patchesUnder, type PatchMap } from './patching/patch-set.ts';
import { patchedModelFiles, patchedModelKey, writePatchedModel } from './patching/patched-build.ts';
import { shareOptimizedWeights } from '../onnx/share-weights.ts';
import { prefetchFiles } from '../onnx/prefetch.ts';
import { splitPatches } from './patching/low-rank.ts';
import { EmbeddingLibrary } from '../text/embeddings.ts';

/**
 * Turns model files into MODEL/CLIP/VAE handles running on ONNX Runtime.
 *
 * Loading a checkpoint only reads its header and hashes it; each part's graph is built (or found in
 * the on-disk build cache) and its session created on first use, so a workflow that only decodes
 * never builds a UNet. The cache key is content hash + part + precision + provider + builder
 * version, so a second process, or the same file under another name, skips building.
 */

/** Bump when a graph builder changes what it emits, so old cached builds are not reused. */
export const BUILD_VERSION = 3;

export interface ModelManagerOptions {
  paths?: FolderPaths;
  /** Where built graphs live (default `<base>/cache/onnx`). */
  cacheDir: string;
  device?: DeviceChoice;
  threads?: number;
  /** Bytes of sessions kept loaded before the least recently used is released (default: 60% of RAM). */
  memoryBudgetBytes?: number;
  fusedAttention?: boolean;
  /**
   * How plain LoRAs reach the UNet and CLIP: `branch` (default) adds them as low-rank branches with
   * their strength as an input (applying takes about 2–3 s and re-weighting 0.1 s on SD1.5 on CPU;
   * each step costs more, ~5–15% for a rank-32 LoRA on every layer); `merge` folds them into the
   * weights as ComfyUI does (no per-step cost from the LoRA; every new strength re-patches the weights).
   */
  loraMode?: 'branch' | 'merge';
  /** Read a patched model's files ahead of ORT when its session is created (default true; see prefetch.ts). */
  prefetch?: boolean;
  log?: Logger;
}

export interface CheckpointParts {
  model: ModelHandle;
  clip: ClipHandle;
  vae: VaeHandle;
  config: Sd1Config;
}

/** One part of a checkpoint as the manager builds it. */
interface PartSpec {
  part: 'unet' | 'clip' | 'vae_decoder' | 'vae_encoder';
  hash: string;
  /** The part's weights under bare keys (what its graph builder reads). */
  weights: WeightSource;
  /** LDM prefix of those keys in the checkpoint (patch maps use full LDM names). */
  prefix: string;
  build: (ws: WeightSource, o: NetOptions) => GraphBuilder;
}

export const SD1_LATENT_RGB: readonly (readonly number[])[] = [
  [0.3512, 0.2297, 0.3227],
  [0.3250, 0.4974, 0.2350],
  [-0.2829, 0.1762, 0.2721],
  [-0.2120, -0.2616, -0.7177],
];

export class ModelManager {
  readonly pool: SessionPool;
  private providerChoice?: Promise<ProviderChoice>;
  private readonly checkpoints = new Map<string, CheckpointParts>();
  private readonly vaes = new Map<string, VaeHandle>();
  private readonly folders = new Map<string, OnnxFolderParts>();
  builds = 0;
  readonly cache: BuildCache;

  constructor(readonly opts: ModelManagerOptions) {
    const budget = opts.memoryBudgetBytes ?? Math.floor(totalmem() * 0.6);
    this.pool = new SessionPool(budget, (m) => opts.log?.info(m));
    this.cache = new BuildCache(opts.cacheDir);
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

  private async netOptions(): Promise<NetOptions> {
    const p = await this.provider();
    return { dtype: p.dtype, fusedAttention: this.opts.fusedAttention ?? true };
  }

  /** Builds (or finds) a part's graph on disk; returns the model file and its weight bytes. */
  private async ensureBuilt(part: string, hash: string, build: (o: NetOptions) => GraphBuilder): Promise<{ file: string; bytes: number; key: string; dir: string }> {
    const p = await this.provider();
    const o = await this.netOptions();
    const key = `${part}-${hash.slice(0, 20)}-${o.dtype}-${p.provider}${o.fusedAttention ? '-mha' : ''}-v${BUILD_VERSION}`;
    const t0 = Date.now();
    let nodes = 0;
    let weightBytes = 0;
    const b = this.cache.ensure(key, { part }, () => {
      const g = build(o);
      nodes = g.nodeCount;
      weightBytes = g.weightBytes;
      return g;
    });
    if (b.built) {
      this.builds++;
      this.opts.log?.info(`built ${part} graph (${nodes} nodes, ${(weightBytes / 2 ** 20).toFixed(0)} MiB) in ${Date.now() - t0} ms`);
    }
    return b;
  }

  /**
   * A part's session runner. With patches on the part's weights the session comes from a patched
   * model beside the unpatched build (see patched-build.ts); parts the patches do not touch keep
   * the unpatched session, so a UNet-only LoRA never reloads CLIP.
   */
  private runner(spec: PartSpec, patches: PatchMap = NO_PATCHES): RunSession {
    const own = ownPatches(patches, spec.prefix);
    const split = own.size ? splitPatches(own, spec.prefix, spec.weights, this.opts.loraMode) : undefined;
    const strengthFeeds: Record<string, ort.Tensor> = {};
    for (const [name, v] of split?.strengths ?? []) strengthFeeds[name] = new ort.Tensor('float32', new Float32Array([v]), [1]);
    type Built = { file: string; bytes: number; key: string; patched: boolean; family: string };
    let built: Promise<Built> | undefined;
    const ensure = async (): Promise<Built> => {
      const base = await this.ensureBuilt(spec.part, spec.hash, (o) => spec.build(spec.weights, o));
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
        build: (ws) => spec.build(ws, { ...o, lowRank: split.branches }),
        mm: this.matmul(),
      });
      this.lastPatch = { part: spec.part, ms: Date.now() - t0, branches: split.branches.size, ...pb };
      if (pb.tensorsComputed || pb.written) {
        this.opts.log?.info(`patched ${spec.part}: ${pb.tensorsComputed} tensors merged, ${split.branches.size} with LoRA branches (${(pb.written / 2 ** 20).toFixed(0)} MiB written) in ${Date.now() - t0} ms`);
      }
      return { file: pb.file, bytes: base.bytes, key: `${base.key}-p${patchedModelKey(split.merged, split.structureKey).slice(0, 16)}`, patched: true, family: base.key };
    };
    return async (feeds) => {
      built ??= ensure().catch((e: unknown) => {
        built = undefined;
        throw e;
      });
      const b = await built;
      const p = await this.provider();
      return this.pool.use(b.key, b.bytes, () => (b.patched ? this.createPatchedSession(b.file, p) : this.createSession(b.file, p)), (s) => s.run({ ...feeds, ...strengthFeeds }), b.family);
    };
  }

  /** What the last patched build did (for benchmarks and tests). */
  lastPatch?: { part: string; ms: number; written: number; tensorsPatched: number; tensorsComputed: number; branches: number };

  private mm?: MatMul;
  private matmul(): MatMul {
    this.mm ??= ortMatMul();
    return this.mm;
  }

  /**
   * Patched models get only ORT's basic optimisation on CPU: full optimisation (the NCHWc layout)
   * costs ~12 s for the SD1.5 UNet and gains 4% (256²) to 10% (512²) per step (docs/benchmarks.md),
   * while applying a LoRA should take seconds. Basic costs nothing measurable and folds the LoRA
   * factors' cast, transpose and scaling (see LowRankBranch) into constants. GPU providers keep
   * full optimisation, where fusions matter more.
   */
  private async createPatchedSession(file: string, p: ProviderChoice): Promise<ort.InferenceSession> {
    const base = sessionOptions(p, { threads: this.opts.threads });
    // The unpatched session read the saved optimised graph's reordered convs, not these files.
    if (this.opts.prefetch ?? true) void prefetchFiles(patchedModelFiles(file));
    return ort.InferenceSession.create(file, p.provider === 'cpu' ? { ...base, graphOptimizationLevel: 'basic' } : base);
  }

  /**
   * ORT's full optimisation of a 3 GB UNet takes ~13 s per load on a 2-core CPU, so the first load
   * saves the optimised graph beside the built one and later loads take it as is (~1 s). The saved
   * graph is specific to this provider and machine, which the cache key and folder already are.
   */
  private async createSession(file: string, p: ProviderChoice): Promise<ort.InferenceSession> {
    const base = sessionOptions(p, { threads: this.opts.threads });
    const dir = dirname(file);
    const optimized = join(dir, 'optimized.onnx');
    if (existsSync(optimized)) {
      this.shareWeights(dir);
      try {
        return await ort.InferenceSession.create(optimized, { ...base, graphOptimizationLevel: 'disabled' });
      } catch (e) {
        this.opts.log?.warn(`ignoring the saved optimised graph ${optimized}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    const tag = `${process.pid}-${Date.now()}`;
    const tmp = join(dir, `optimized-${tag}.onnx`);
    const session = await ort.InferenceSession.create(file, {
      ...base,
      optimizedModelFilePath: tmp,
      extra: { session: { optimized_model_external_initializers_file_name: `optimized-${tag}.bin`, optimized_model_external_initializers_min_size_in_bytes: '1024' } },
    });
    try {
      if (existsSync(tmp)) renameSync(tmp, optimized);
    } catch {
      /* another process saved it first */
    }
    this.shareWeights(dir);
    return session;
  }

  /** See share-weights.ts: a saving of disk and page cache, so a failure only warns. */
  private shareWeights(dir: string): void {
    try {
      const t0 = Date.now();
      const saved = shareOptimizedWeights(dir);
      if (saved) this.opts.log?.info(`the saved optimised graph in ${dir} now reads ${(saved / 2 ** 20).toFixed(0)} MiB of unchanged weights from weights.bin (${Date.now() - t0} ms)`);
    } catch (e) {
      this.opts.log?.warn(`could not share the optimised graph's weights in ${dir}: ${(e as Error).message.split('\n')[0]}`);
    }
  }

  /** A single-file SD1 checkpoint → MODEL, CLIP, VAE (memoised per file identity). */
  async loadCheckpoint(file: string): Promise<CheckpointParts> {
    assertNotPickle(file);
    const st = statSync(file);
    const identity = `${file}:${st.size}:${st.mtimeMs}`;
    const hit = this.checkpoints.get(identity);
    if (hit) return hit;
    const sf = SafetensorsFile.open(file);
    const config = detectCheckpoint(sf);
    const ws = sd1Weights(sf);
    const hash = sf.contentHash({ cacheDir: join(this.opts.cacheDir, 'hashes') });
    const unetWs = new PrefixedWeightSource(ws, SD1_PREFIX.unet);
    const clipWs = new PrefixedWeightSource(ws, SD1_PREFIX.clip);
    const vaeWs = new PrefixedWeightSource(ws, SD1_PREFIX.vae);
    const tokenizer = loadClipTokenizer({ modelPath: file, paths: this.opts.paths });
    if (tokenizer.vocabSize > config.clip.vocabSize) {
      throw new Error(`${file}: the CLIP tokenizer found has ${tokenizer.vocabSize} tokens but the text encoder only ${config.clip.vocabSize}`);
    }
    const unetSpec: PartSpec = { part: 'unet', hash, weights: unetWs, prefix: SD1_PREFIX.unet, build: (w, o) => buildUnetGraph(config.unet, w, o) };
    const clipSpec: PartSpec = { part: 'clip', hash, weights: clipWs, prefix: SD1_PREFIX.clip, build: (w, o) => buildClipGraph(config.clip, w, o) };
    const embeddings = this.opts.paths ? new EmbeddingLibrary(this.opts.paths, config.clip.hiddenSize, (m) => this.opts.log?.warn(m)) : undefined;
    const read = (patches: PatchMap) => async (name: string): Promise<Float32Array> => {
      return applyEntries(name, () => ws.get(name), ws.shape(name), patches.get(name) ?? [], this.matmul(), () => ws.raw?.(name));
    };
    const makeModel = (patches: PatchMap): ModelHandle => {
      const own = ownPatches(patches, SD1_PREFIX.unet);
      const handle: ModelHandle = {
        id: own.size ? `sd1:${hash}+${patchMapHash(own).slice(0, 16)}` : `sd1:${hash}`,
        family: 'sd1',
        unet: new OrtUnet(config.unet.inChannels, config.unet.contextDim, unetSkipCount(config.unet), this.runner(unetSpec, own)),
        sampling: { prediction: 'eps', betaSchedule: 'scaled_linear', linearStart: 0.00085, linearEnd: 0.012, timesteps: 1000 },
        latentFormat: { channels: 4, scaleFactor: config.scaleFactor, rgbFactors: SD1_LATENT_RGB },
        patching: { prefix: SD1_PREFIX.unet, weights: ws, patches: own, withPatches: (p) => makeModel(p), read: read(own) },
      };
      return handle;
    };
    const makeClip = (patches: PatchMap, layer?: number): OrtClip => {
      const own = ownPatches(patches, SD1_PREFIX.clip);
      return new OrtClip({
        id: own.size ? `clip:${hash}+${patchMapHash(own).slice(0, 16)}` : `clip:${hash}`,
        tokenizer,
        numLayers: config.clip.numLayers,
        hiddenSize: config.clip.hiddenSize,
        run: this.runner(clipSpec, own),
        layer,
        embeddings: embeddings?.lookup,
        warn: (m) => this.opts.log?.warn(m),
        patching: (c): WeightPatching<ClipHandle> => ({ prefix: SD1_PREFIX.clip, weights: ws, patches: own, withPatches: (p) => makeClip(p, c.layer), read: read(own) }),
      });
    };
    const parts: CheckpointParts = {
      config,
      model: makeModel(NO_PATCHES),
      clip: makeClip(NO_PATCHES),
      vae: this.vaeHandle(`vae:${hash}`, config.vae, vaeWs, hash),
    };
    this.checkpoints.set(identity, parts);
    return parts;
  }

  /** A standalone VAE file (LDM or diffusers key names). */
  async loadVae(file: string): Promise<VaeHandle> {
    assertNotPickle(file);
    const st = statSync(file);
    const identity = `${file}:${st.size}:${st.mtimeMs}`;
    const hit = this.vaes.get(identity);
    if (hit) return hit;
    const sf = SafetensorsFile.open(file);
    const { config, weights } = vaeWeights(sf);
    const hash = sf.contentHash({ cacheDir: join(this.opts.cacheDir, 'hashes') });
    const vae = this.vaeHandle(`vae:${hash}`, config, weights, hash);
    this.vaes.set(identity, vae);
    return vae;
  }

  private vaeHandle(id: string, cfg: VaeConfig, ws: WeightSource, hash: string): VaeHandle {
    const dec = this.runner({ part: 'vae_decoder', hash, weights: ws, prefix: SD1_PREFIX.vae, build: (w, o) => buildVaeDecoderGraph(cfg, w, o) });
    const enc = this.runner({ part: 'vae_encoder', hash, weights: ws, prefix: SD1_PREFIX.vae, build: (w, o) => buildVaeEncoderGraph(cfg, w, o) });
    return new OrtVae({ id, cfg, weights: ws, decoder: { run: (f) => dec(f as Record<string, ort.Tensor>) }, encoder: { run: (f) => enc(f as Record<string, ort.Tensor>) } });
  }

  /** A diffusers/Optimum ONNX folder → MODEL, CLIP, VAE over its own graphs (memoised per folder). */
  loadOnnxFolder(dir: string): OnnxFolderParts {
    const hit = this.folders.get(dir);
    if (hit) return hit;
    const parts = loadOnnxFolder(dir, (key, file, fn) => this.pool.use(key, onnxBytes(file), async () => ort.InferenceSession.create(file, sessionOptions(await this.provider(), { threads: this.opts.threads })), fn), { paths: this.opts.paths, log: this.opts.log });
    this.folders.set(dir, parts);
    return parts;
  }

  private readonly adapters = new WeakMap<WeightSource, Map<string, { parsed: ParsedAdapter; hash: string }>>();

  /**
   * An adapter file (LoRA, LyCORIS) read against a checkpoint's names (memoised per file identity
   * and checkpoint). Its content hash names the patches, so renaming a file never rebuilds.
   */
  loadAdapter(file: string, checkpoint: WeightSource): { parsed: ParsedAdapter; hash: string } {
    assertNotPickle(file);
    const st = statSync(file);
    const identity = `${file}:${st.size}:${st.mtimeMs}`;
    let perCkpt = this.adapters.get(checkpoint);
    if (!perCkpt) this.adapters.set(checkpoint, (perCkpt = new Map()));
    const hit = perCkpt.get(identity);
    if (hit) return hit;
    const sf = SafetensorsFile.open(file);
    const hash = sf.contentHash({ cacheDir: join(this.opts.cacheDir, 'hashes') });
    const parsed = parseAdapter(file, sf, checkpoint);
    const r = { parsed, hash };
    perCkpt.set(identity, r);
    return r;
  }

  stats(): PoolStats & { builds: number } {
    return { ...this.pool.stats(), builds: this.builds };
  }
}

/** The patches on one part's weights that change anything. */
function ownPatches(patches: PatchMap, prefix: string): PatchMap {
  return new Map([...patchesUnder(patches, prefix)].filter(([, e]) => effective(e).length > 0));
}

/** A model's size on disk: the graph plus any external-data files beside it (for the memory budget). */
function onnxBytes(file: string): number {
  const dir = dirname(file);
  return readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}
