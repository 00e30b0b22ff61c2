import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, linkSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { storedLayout, type GraphBuilder, type InitializerPlace } from '../../onnx/graph.ts';
import { writeFileAtomic } from '../../core/safe-path.ts';
import type { MatMul } from '../lora/index.ts';
import type { StoredTensor, WeightSource } from '../../core/weights.ts';
import { applyEntries, effective, entriesSignature, patchMapHash, type PatchMap } from './patch-set.ts';

/**
 * A patched variant of a built graph, written beside the unpatched build: a model file whose
 * unchanged initializers point into the build's `weights.bin` (never copied) and whose changed
 * ones live in content-addressed files `pt-<hash>.bin`. A tensor file is named by the base build,
 * the initializer and the signature of the patches on its weight, so changing one LoRA's strength
 * rewrites only the tensors that LoRA touches and a later patch set reuses every file it shares.
 * A LoRA run as branches points at its factors where the adapter file holds them, through a hard
 * link `ad-<content hash>.safetensors` in the folder (ORT refuses external data outside the model's
 * folder, symlinks included); where links cannot be made, a copy. Factors with no file behind them
 * (adapters built in memory) go in one file per adapter, `lr-<hash>.bin`.
 */

export interface PatchedBuild {
  file: string;
  /** Bytes of the patched tensors written for this model (0 when every file already existed). */
  written: number;
  tensorsPatched: number;
  tensorsComputed: number;
}

/** A view of `inner` with some tensors replaced (the patched values, held only while they are written). */
class OverlaySource implements WeightSource {
  readonly over = new Map<string, Float32Array>();
  constructor(private readonly inner: WeightSource) {}
  has(name: string): boolean {
    return this.inner.has(name);
  }
  names(): string[] {
    return this.inner.names();
  }
  shape(name: string): readonly number[] {
    return this.inner.shape(name);
  }
  get(name: string): Float32Array {
    return this.over.get(name) ?? this.inner.get(name);
  }
}

/** The tensor files (names in its folder) a patched model lists beside itself; none when it has no list. */
function ownTensorFiles(file: string): string[] {
  try {
    return (JSON.parse(readFileSync(`${file}.json`, 'utf8')) as { tensors: string[] }).tensors;
  } catch {
    return [];
  }
}

/** The files a patched model's tensors are read from: the shared weights.bin first, then its own. */
export function patchedModelFiles(file: string): string[] {
  const dir = dirname(file);
  return [join(dir, 'weights.bin'), ...ownTensorFiles(file).map((f) => join(dir, f))];
}

/** Names a patched model (merged patches + branch structure) among its unpatched build's variants. */
export function patchedModelKey(patches: PatchMap, structureKey = ''): string {
  return createHash('sha256').update(`${patchMapHash(patches)}\n${structureKey}`).digest('hex');
}

export async function writePatchedModel(opts: {
  /** Build folder of the unpatched graph (holds model.onnx + weights.bin). */
  dir: string;
  /** The part's weights under bare keys (as its graph builder reads them). */
  weights: WeightSource;
  /** Prefix that turns a bare key into the checkpoint's LDM name (the patch map's keys). */
  prefix: string;
  patches: PatchMap;
  build: (ws: WeightSource) => GraphBuilder;
  /** Unused: where the unpatched build keeps each initializer is read from its model.onnx (it may store weights in 16 bits or in the checkpoint). */
  baseLayout?: () => ReadonlyMap<string, InitializerPlace>;
  /** Identity of low-rank branches in the graph (see low-rank.ts); '' when there are none. */
  structureKey?: string;
  /** Branch id → the adapter it comes from; the graph must contain each branch (one the builder never placed would be silently lost). */
  branches?: ReadonlyMap<string, string>;
  mm?: MatMul;
  /** Patched tensor files kept in `dir` beyond the current model's, as a multiple of weights.bin. */
  keepFactor?: number;
}): Promise<PatchedBuild> {
  const { dir, prefix, patches } = opts;
  const file = join(dir, `patched-${patchedModelKey(patches, opts.structureKey).slice(0, 24)}.onnx`);
  if (existsSync(file)) return { file, written: 0, tensorsPatched: 0, tensorsComputed: 0 };
  const baseLayout = storedLayout(join(dir, 'model.onnx'));
  const overlay = new OverlaySource(opts.weights);
  const g = opts.build(overlay);
  const placed = new Set(g.layout().map((p) => p.name.slice(0, p.name.indexOf('.'))));
  for (const id of opts.branches?.keys() ?? []) {
    if (!placed.has(id)) throw new Error(`a ${id.startsWith('lora_') ? 'LoRA branch' : 'graph patch'} (${id}) has no layer to attach to in this graph`);
  }
  const baseId = createHash('sha256').update(readFileSync(join(dir, 'model.onnx'))).digest('hex').slice(0, 16);
  const patchedKey = (bare: string | undefined): string | undefined => {
    if (bare === undefined) return undefined;
    const entries = patches.get(prefix + bare);
    return entries && effective(entries).length ? entriesSignature(entries) : undefined;
  };
  const places = g.layout();
  const tensorFile = (p: InitializerPlace, sig: string): string =>
    `pt-${createHash('sha256').update(`${baseId}\n${p.name}\n${p.type}\n${sig}`).digest('hex').slice(0, 32)}.bin`;

  let written = 0;
  let computed = 0;
  let patched = 0;
  const patchedValue = (bare: string): Promise<Float32Array> => {
    computed++;
    const full = prefix + bare;
    return applyEntries(full, () => opts.weights.get(bare), opts.weights.shape(bare), patches.get(full) ?? [], opts.mm, () => opts.weights.raw?.(bare));
  };
  const compute = async (bare: string): Promise<void> => {
    if (overlay.over.has(bare)) return;
    overlay.over.clear();
    overlay.over.set(bare, await patchedValue(bare));
  };
  const located = new Map<string, 'inline' | { location: string; offset: number; half?: boolean }>();
  const factorGroups = new Map<string, InitializerPlace[]>();
  const inlinePatched: InitializerPlace[] = [];
  for (const p of places) {
    if (p.stored) {
      located.set(p.name, { location: linkInto(dir, p.stored), offset: p.stored.offset });
      continue;
    }
    const sig = patchedKey(p.source);
    if (!sig) {
      const base = baseLayout.get(p.name);
      if (base === 'inline' && p.offset === undefined) {
        located.set(p.name, 'inline');
      } else if (base && base !== 'inline' && base.length === (base.half ? p.length / 2 : p.length)) {
        located.set(p.name, { location: base.location, offset: base.offset, half: base.half });
      } else if (p.offset === undefined) {
        located.set(p.name, 'inline');
      } else {
        const adapter = opts.branches?.get(p.name.slice(0, p.name.indexOf('.')));
        if (!adapter) throw new Error(`initializer '${p.name}' is neither in the unpatched build nor a LoRA branch's factor`);
        let group = factorGroups.get(adapter);
        if (!group) factorGroups.set(adapter, (group = []));
        group.push(p);
      }
      continue;
    }
    patched++;
    if (p.offset === undefined) {
      inlinePatched.push(p);
      located.set(p.name, 'inline');
      continue;
    }
    const name = tensorFile(p, sig);
    if (!existsSync(join(dir, name))) {
      await compute(p.source!);
      const bytes = g.initializerBytes(p.name);
      writeFileAtomic(join(dir, name), bytes);
      written += bytes.byteLength;
    }
    located.set(p.name, { location: name, offset: 0 });
  }
  for (const group of factorGroups.values()) written += writeFactorFile(dir, baseId, g, group, located);
  // Small patched tensors (biases, tiny models) are inlined: their values must be in the overlay
  // while the model file is encoded, and they are cheap to hold all at once.
  const inlineValues = new Map<string, Float32Array>();
  for (const p of inlinePatched) {
    const bare = p.source!;
    if (!inlineValues.has(bare)) inlineValues.set(bare, await patchedValue(bare));
  }
  overlay.over.clear();
  for (const [k, v] of inlineValues) overlay.over.set(k, v);
  // The list of tensor files goes first: pruning must never see a model without the files it needs.
  const refs = [...new Set([...located.values()].flatMap((l) => (l !== 'inline' && l.location !== 'weights.bin' && !l.location.startsWith('src-') ? [l.location] : [])))];
  writeFileAtomic(`${file}.json`, JSON.stringify({ tensors: refs }));
  g.writeModel(file, (p) => located.get(p.name)!);
  overlay.over.clear();
  prunePatchedFiles(dir, file, opts.keepFactor ?? 2);
  return { file, written, tensorsPatched: patched, tensorsComputed: computed };
}

/** The adapter file `s` lies in, made reachable from `dir` under a name for its content. */
function linkInto(dir: string, s: StoredTensor): string {
  const name = `ad-${s.fileKey.slice(0, 32)}.safetensors`;
  const target = join(dir, name);
  if (existsSync(target)) return name;
  const tmp = join(dir, `.${name}.${process.pid}.${Date.now()}.tmp`);
  try {
    try {
      linkSync(s.file, tmp);
    } catch {
      copyFileSync(s.file, tmp);
    }
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  return name;
}

/**
 * One adapter's branch factors in one file, 64-byte aligned in graph order. The name covers the
 * base build and the branch ids (adapter content × target weight), so equal names hold equal bytes.
 */
function writeFactorFile(dir: string, baseId: string, g: GraphBuilder, group: readonly InitializerPlace[], located: Map<string, 'inline' | { location: string; offset: number }>): number {
  const h = createHash('sha256').update(baseId);
  let end = 0;
  const offsets = group.map((p) => {
    h.update(`\n${p.name}:${p.type}:${p.dims.join('x')}`);
    const at = end + ((64 - (end % 64)) % 64);
    end = at + p.length;
    return at;
  });
  const name = `lr-${h.digest('hex').slice(0, 32)}.bin`;
  group.forEach((p, i) => located.set(p.name, { location: name, offset: offsets[i] }));
  const file = join(dir, name);
  if (existsSync(file) && statSync(file).size === end) return 0;
  const all = new Uint8Array(end);
  group.forEach((p, i) => all.set(g.initializerBytes(p.name), offsets[i]));
  writeFileAtomic(file, all);
  return end;
}

/**
 * Keeps the folder's patched tensor files under `factor` × weights.bin by removing the oldest
 * patched models other than `current`, then every tensor file no remaining model refers to. A session
 * already created keeps its tensors (ORT read them at load).
 */
function prunePatchedFiles(dir: string, current: string, factor: number): void {
  // The build's weights as float32, however it stores them (16 bits, or in the checkpoint itself).
  let base = 0;
  for (const p of storedLayout(join(dir, 'model.onnx')).values()) if (p !== 'inline') base += p.half ? 2 * p.length : p.length;
  const size = (f: string): number => {
    try {
      return statSync(join(dir, f)).size;
    } catch {
      return 0;
    }
  };
  const tensorFiles = (): string[] => readdirSync(dir).filter((f) => ((f.startsWith('pt-') || f.startsWith('lr-')) && f.endsWith('.bin')) || (f.startsWith('ad-') && f.endsWith('.safetensors')));
  let total = tensorFiles().reduce((s, f) => s + size(f), 0);
  if (total <= factor * base) return;
  const models = readdirSync(dir)
    .filter((f) => f.startsWith('patched-') && f.endsWith('.onnx') && join(dir, f) !== current)
    .sort((a, b) => statSync(join(dir, a)).mtimeMs - statSync(join(dir, b)).mtimeMs);
  const currentName = current.slice(dir.length + 1);
  while (total > factor * base && models.length) {
    const m = models.shift()!;
    rmSync(join(dir, m), { force: true });
    rmSync(join(dir, `${m}.json`), { force: true });
    const live = new Set([currentName, ...models].flatMap((m) => ownTensorFiles(join(dir, m))));
    for (const f of tensorFiles()) {
      if (live.has(f)) continue;
      total -= size(f);
      rmSync(join(dir, f), { force: true });
    }
  }
}
