import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { namesIn, removeDirRenamedFirst, writeFileAtomic } from '../core/safe-path.ts';
import type { StoredTensor } from '../core/weights.ts';
import { storedLayout, type GraphBuilder } from './graph.ts';
import { KEPT_FOLDER } from './kept-expansions.ts';

/**
 * The on-disk cache of built ONNX parts: one folder per build key (`model.onnx` + `weights.bin`,
 * plus what ORT saves beside them, plus `entry.json`: where it came from and when it was last used),
 * written through a temporary folder and renamed, so a second process, or the same checkpoint under
 * another name, skips building. Weights are stored in 16 bits where the checkpoint holds them so, or
 * read from the checkpoint itself through a hard link (see GraphBuilder.writeTo), and the folder can
 * be listed, pruned and kept under a size limit, least recently used first.
 */

/** Where a build came from, recorded beside it (for listing and pruning). */
export interface BuildOrigin {
  /** Part id (`unet`, `clip`, `vae_decoder`, a registered part's id, ...). */
  readonly part: string;
  /** The model file the weights came from. */
  readonly source?: string;
}

export interface BuiltPart {
  readonly key: string;
  readonly dir: string;
  /** `model.onnx` in `dir`. */
  readonly file: string;
  /** Bytes of the graph and its weights as float32 (what a session holds in memory; what the pool budgets). */
  readonly bytes: number;
  /** True when this call built it (false: found in the cache). */
  readonly built: boolean;
}

/** What a build is doing, for a progress line: writing weights (bytes done of total), ORT optimising, or done. */
export interface BuildProgress {
  readonly key: string;
  readonly part: string;
  readonly phase: 'write' | 'optimise' | 'done';
  readonly done: number;
  readonly total: number;
}

export interface EnsureOptions {
  /** Where a weight-source key's tensor lies in the checkpoint (`WeightSource.locate`): equal weights point there. */
  readonly locate?: (source: string) => StoredTensor | undefined;
  /** Store weights that are exact float16s in 16 bits (default true; false: float32 as before, for comparisons). */
  readonly half?: boolean;
}

/** One build folder as `weft cache list` shows it. */
export interface CacheEntry {
  readonly key: string;
  readonly dir: string;
  readonly part: string;
  readonly source?: string;
  /** Whether the source file is still there (undefined when none was recorded). */
  readonly sourceExists?: boolean;
  /** Bytes on disk that only this entry holds. */
  readonly bytes: number;
  /** Bytes reached through hard links to the source file: free while the source exists, held by the cache once it is gone. */
  readonly linkedBytes: number;
  /** Identity (device:inode) of the linked source, so builds of one checkpoint count its bytes once. */
  readonly linkedFile?: string;
  /** Milliseconds since the epoch. */
  readonly lastUsed: number;
  readonly created?: number;
  /** In use by this process (never removed by pruning or the size limit). */
  readonly inUse: boolean;
}

export interface PruneSelection {
  /** Every entry. */
  readonly all?: boolean;
  /** Entries not used for this long. */
  readonly olderThanMs?: number;
  /** Least recently used entries until the cache holds at most this many bytes. */
  readonly maxBytes?: number;
  /** Entries whose source file is gone (or changed size: a new file under the old name). */
  readonly missingSource?: boolean;
  /** Entries built from this file (a benchmark's cold start). */
  readonly source?: string;
}

const ENTRY_FILE = 'entry.json';
/** Folders in the cache root that are not builds. */
const NOT_ENTRIES = new Set(['hashes', KEPT_FOLDER]);

interface EntryRecord {
  key: string;
  part: string;
  source?: string;
  sourceBytes?: number;
  created: number;
  lastUsed: number;
}

/** Build folders this process has handed out (several caches may share a root). */
const IN_USE = new Set<string>();

export class BuildCache {
  /** Bytes the cache may hold; after each build the least recently used entries not in use go first. */
  limitBytes?: number;
  /** Progress of builds (the CLI draws a line from it). */
  onProgress?: (p: BuildProgress) => void;
  /** Where the limit's evictions are reported. */
  onEvict?: (e: CacheEntry) => void;
  /**
   * Store exact-float16 weights in 16 bits, expanded to float32 in /dev/shm before each session
   * (`compact` storage, the default: ~1× a float16 checkpoint on disk). The expansion streams through
   * two reused buffers (expand-half.ts); ORT's saved graph is expanded at every load with float32
   * storage too, since its reordered convs are kept in 16 bits either way (docs/benchmarks.md, "Model cache").
   */
  storeHalf = true;
  /** Point weights equal to the checkpoint's bytes at the checkpoint through a hard link (with `storeHalf`). */
  linkSource = true;
  /** Milliseconds since the epoch (tests move it). */
  clock: () => number = Date.now;

  constructor(readonly root: string) {}

  dirOf(key: string): string {
    return join(this.root, key);
  }

  /** The build under `key`, made by `build()` if it is not there yet. */
  ensure(key: string, origin: BuildOrigin, build: () => GraphBuilder, opts: EnsureOptions = {}): BuiltPart {
    const dir = this.dirOf(key);
    const file = join(dir, 'model.onnx');
    IN_USE.add(dir);
    let built = false;
    let bytes: number;
    if (!existsSync(file)) {
      const g = build();
      const total = g.weightBytes;
      let last = 0;
      const report = (phase: BuildProgress['phase'], done: number): void =>
        this.onProgress?.({ key, part: origin.part, phase, done, total });
      report('write', 0);
      g.writeTo(dir, {
        half: opts.half ?? this.storeHalf,
        locate: this.linkSource ? opts.locate : undefined,
        onProgress: (done) => {
          // A few hundred reports per build at most: each may redraw a terminal line.
          if (done - last < total / 200 && done < total) return;
          last = done;
          report('write', done);
        },
      });
      report('done', total);
      built = true;
      bytes = total + statSync(file).size;
    } else {
      bytes = floatBytes(dir) + statSync(file).size;
    }
    this.record(key, origin, built);
    if (built && this.limitBytes !== undefined) this.enforceLimit(this.limitBytes);
    return { key, dir, file, bytes, built };
  }

  /** This process no longer uses the build under `key`: pruning and the size limit may remove it. */
  release(key: string): void {
    IN_USE.delete(this.dirOf(key));
  }

  /** Reports that ORT is optimising a build's graph (a one-time cost the CLI should show). */
  optimising(key: string, part: string): void {
    this.onProgress?.({ key, part, phase: 'optimise', done: 0, total: 0 });
  }

  /** Every build in the cache, least recently used first. */
  list(): CacheEntry[] {
    const out: CacheEntry[] = [];
    for (const name of namesIn(this.root)) {
      const dir = join(this.root, name);
      if (NOT_ENTRIES.has(name) || name.includes('.tmp-') || name.includes('.del-') || !existsSync(join(dir, 'model.onnx'))) continue;
      const rec = readRecord(dir);
      const { own, linked, linkedFile } = diskBytes(dir);
      const source = rec?.source;
      let sourceExists: boolean | undefined;
      if (source !== undefined) {
        try {
          const st = statSync(source);
          sourceExists = rec?.sourceBytes === undefined || st.size === rec.sourceBytes;
        } catch {
          sourceExists = false;
        }
      }
      out.push({
        key: name,
        dir,
        part: rec?.part ?? name.split('-')[0],
        source,
        sourceExists,
        bytes: own,
        linkedBytes: linked,
        linkedFile,
        lastUsed: rec?.lastUsed ?? statSync(dir).mtimeMs,
        created: rec?.created,
        inUse: IN_USE.has(dir),
      });
    }
    return out.sort((a, b) => a.lastUsed - b.lastUsed);
  }

  /** Bytes the cache holds on disk: each entry's own bytes, plus linked sources that are gone. */
  static held(entries: readonly CacheEntry[]): number {
    const gone = new Map<string, number>();
    for (const e of entries) if (e.sourceExists === false && e.linkedBytes) gone.set(e.linkedFile ?? e.key, e.linkedBytes);
    return entries.reduce((s, e) => s + e.bytes, 0) + [...gone.values()].reduce((s, b) => s + b, 0);
  }

  /** Removes the entries `sel` picks (never one in use by this process); returns them. */
  prune(sel: PruneSelection, now = this.clock()): CacheEntry[] {
    const entries = this.list();
    const doomed = new Set<CacheEntry>();
    for (const e of entries) {
      if (e.inUse) continue;
      const old = sel.olderThanMs !== undefined && now - e.lastUsed > sel.olderThanMs;
      if (sel.all || old || (sel.missingSource && e.sourceExists === false) || (sel.source !== undefined && e.source === sel.source))
        doomed.add(e);
    }
    if (sel.maxBytes !== undefined) {
      for (const e of entries) {
        if (BuildCache.held(entries.filter((x) => !doomed.has(x))) <= sel.maxBytes) break;
        if (!e.inUse) doomed.add(e);
      }
    }
    for (const e of doomed) removeDirRenamedFirst(e.dir);
    if (sel.all) for (const f of ['hashes', KEPT_FOLDER]) rmSync(join(this.root, f), { recursive: true, force: true });
    return entries.filter((e) => doomed.has(e));
  }

  /** The size limit: least recently used entries go until the cache holds at most `limit` bytes. */
  enforceLimit(limit: number): CacheEntry[] {
    const removed = this.prune({ maxBytes: limit });
    for (const e of removed) this.onEvict?.(e);
    return removed;
  }

  /** Records origin and last use beside the build (atomically: a reader never sees half a record). */
  private record(key: string, origin: BuildOrigin, built: boolean): void {
    const dir = this.dirOf(key);
    const now = this.clock();
    const old = built ? undefined : readRecord(dir);
    let sourceBytes = old?.sourceBytes;
    if (origin.source !== undefined) {
      try {
        sourceBytes = statSync(origin.source).size;
      } catch {
        /* recorded without a size */
      }
    }
    const rec: EntryRecord = {
      key,
      part: origin.part,
      source: origin.source ?? old?.source,
      sourceBytes,
      created: old?.created ?? now,
      lastUsed: now,
    };
    try {
      writeFileAtomic(join(dir, ENTRY_FILE), JSON.stringify(rec));
    } catch {
      /* a read-only cache still serves its builds */
    }
  }
}

function readRecord(dir: string): EntryRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(join(dir, ENTRY_FILE), 'utf8')) as Partial<EntryRecord>;
    if (typeof r.part !== 'string' || typeof r.lastUsed !== 'number') return undefined;
    return {
      key: String(r.key),
      part: r.part,
      source: typeof r.source === 'string' ? r.source : undefined,
      sourceBytes: typeof r.sourceBytes === 'number' ? r.sourceBytes : undefined,
      created: Number(r.created ?? r.lastUsed),
      lastUsed: r.lastUsed,
    };
  } catch {
    return undefined;
  }
}

/** Files of a folder: bytes only it holds, and bytes of hard links (the checkpoint the build reads in place). */
function diskBytes(dir: string): { own: number; linked: number; linkedFile?: string } {
  let own = 0;
  let linked = 0;
  let linkedFile: string | undefined;
  for (const f of readdirSync(dir)) {
    const st = statSync(join(dir, f));
    if (!st.isFile()) continue;
    if (f.startsWith('src-')) {
      linked += st.size;
      linkedFile = `${st.dev}:${st.ino}`;
    } else own += st.size;
  }
  return { own, linked, linkedFile };
}

/** A build's weights as float32 bytes (what a session holds), however they are stored. */
function floatBytes(dir: string): number {
  let n = 0;
  for (const p of storedLayout(join(dir, 'model.onnx')).values()) if (p !== 'inline') n += p.half ? 2 * p.length : p.length;
  return n;
}
