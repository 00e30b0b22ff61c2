import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import type * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { namesIn, removeDirRenamedFirst } from '../core/safe-path.ts';
import { parseByteSize } from './cache-dir.ts';
import { newScratchFolder, scratchFor, type Expanded } from './expand-half.ts';
import { prefetchFiles } from './prefetch.ts';
import { runEvalWorker } from './eval-worker.ts';

/**
 * Float32 copies of saved graphs, kept on disk beside the cache and mapped by ORT as they are.
 *
 * The compact cache keeps weights in 16 bits, and every load expands them (expand-half.ts): on the
 * dev VM about 1.1–1.4 s for the SD1.5 ControlNet's 1.9 GB, most of its 2.6–3.1 s warm load. A kept
 * copy is written once, after a load's session exists, in 8 MiB writes at 8 MiB offsets: the
 * kernel (ext4 on Linux 6.18 here) then caches it in 2 MiB folios, which ORT's mapping gets as huge
 * pages. Its session creation and first run then fault a few thousand times instead of ~70,000
 * (warm load 0.86 s), and its calls run as fast as over the expansion in /dev/shm. Mapped in 4 KiB
 * pages (the same file written in unaligned 1 MiB steps) the ControlNet ran 1.15–1.25× slower per
 * call on the same VM, so a copy the kernel did not cache in huge folios (`huge` false in its stamp)
 * is copied into /dev/shm at each load instead (~0.2 s per GB, against ~0.6–0.7 s for the expansion).
 *
 * A copy is made at the second load that finds none (admit), not the first: a first run of a new
 * checkpoint does not pay for it.
 *
 * The copies would break the compact cache's size rule (a copy is ~2.6× its 16-bit build), so they
 * have a budget of their own (`$WEFT_KEEP_EXPANDED`, default 8 GiB, `0`: none), least recently used
 * first out, and a copy is made only where it fits in it and leaves the disk 2 GiB free. A copy is
 * valid while every file of its build is as it was when it was expanded (size and modification
 * time: a graph saved again or a packing record written later makes a new copy).
 */

/** The folder in the cache root that holds the copies (not a build: BuildCache.list skips it). */
export const KEPT_FOLDER = 'expanded';
/** Default budget of the copies. */
export const KEPT_DEFAULT_BYTES = 8 * 2 ** 30;
const STAMP = 'stamp.json';
/** Write size and alignment of a copy: a multiple of the 2 MiB folio. */
const COPY_STEP = 8 << 20;
/** Free disk a copy must leave behind it. */
const DISK_RESERVE = 2 * 2 ** 30;
/** Scratch folders of expansions under way (expand-half.ts names them so and removes those of dead processes). */
const SCRATCH_PREFIX = 'weft-expand-';
/** A build loaded once without a copy (see admit). */
const SEEN_SUFFIX = '.seen';

/** One kept copy, as `weft cache list` shows it. */
export interface KeptCopy {
  /** The build's key (its folder's name in the cache). */
  readonly key: string;
  readonly dir: string;
  readonly bytes: number;
  /** Milliseconds since the epoch. */
  readonly lastUsed: number;
  /** The build folder it was expanded from. */
  readonly build?: string;
  /** Its build is gone from the cache, or changed since the copy was made: nothing can open it any more. */
  readonly orphan: boolean;
}

interface StampRecord {
  build: string;
  files: Record<string, [number, number]>;
  bytes: number;
  /** The kernel cached the copy in 2 MiB folios as it was written (see above). */
  huge: boolean;
}

/** The budget: `$WEFT_KEEP_EXPANDED` (a size such as 8G; 0 keeps none), else KEPT_DEFAULT_BYTES. */
export function resolveKeptBudget(env: NodeJS.ProcessEnv = process.env): number {
  const s = env.WEFT_KEEP_EXPANDED;
  if (s === undefined || s.trim() === '') return KEPT_DEFAULT_BYTES;
  try {
    return parseByteSize(s);
  } catch (e) {
    throw new Error(`WEFT_KEEP_EXPANDED: ${(e as Error).message}`);
  }
}

/** Size and modification time of each file of a build folder (entry.json aside: every use rewrites it). */
export function buildStamp(buildDir: string): Record<string, [number, number]> {
  const files: Record<string, [number, number]> = {};
  for (const name of readdirSync(buildDir).sort()) {
    if (name === 'entry.json') continue;
    const st = statSync(join(buildDir, name));
    if (st.isFile()) files[name] = [st.size, Math.round(st.mtimeMs)];
  }
  return files;
}

const sameStamp = (a: Record<string, [number, number]>, b: Record<string, [number, number]>): boolean =>
  JSON.stringify(a) === JSON.stringify(b);

export class KeptExpansions {
  /** Milliseconds since the epoch (tests move it). */
  clock: () => number = Date.now;

  constructor(
    /** The folder of the copies (`<cache>/expanded`). */
    readonly root: string,
    /** Bytes the copies may hold together. */
    readonly budget: number,
  ) {}

  /** The copies of builds in `cacheRoot` under the budget `$WEFT_KEEP_EXPANDED` sets; undefined where it is 0. */
  static inCache(cacheRoot: string, budget: number = resolveKeptBudget()): KeptExpansions | undefined {
    return budget > 0 ? new KeptExpansions(join(cacheRoot, KEPT_FOLDER), budget) : undefined;
  }

  /** The model file of the copy of `buildDir`, when there is one and its build is unchanged; marks it used. */
  find(buildDir: string): string | undefined {
    const found = this.current(buildDir);
    return found && join(found.dir, 'model.onnx');
  }

  /**
   * The folder and stamp of the copy of `buildDir`, when its build is unchanged and its weights whole;
   * marks it used. A copy of an earlier state of the build goes: build files only change forward (a
   * graph saved, a packing record written), so it could never serve again, and it would hold its
   * gigabytes until the budget pushed it out.
   */
  private current(buildDir: string): { dir: string; rec: StampRecord } | undefined {
    const dir = join(this.root, basename(buildDir));
    const rec = readStamp(dir);
    if (!rec) return undefined;
    const changed = changedSince(rec, buildDir);
    if (changed) this.discard(buildDir);
    if (changed !== false) return undefined;
    try {
      if (statSync(join(dir, 'weights.bin')).size !== rec.bytes) return undefined;
      const now = new Date(this.clock());
      utimesSync(join(dir, STAMP), now, now);
    } catch {
      return undefined;
    }
    return { dir, rec };
  }

  /**
   * The copy of `buildDir` ready for a session (see find): the kept file itself where the kernel
   * caches it in huge folios, its pages read ahead in a worker meanwhile (after an eviction, ORT's
   * faults alone would read it back in small folios); else a copy into /dev/shm where there is room.
   */
  open(buildDir: string): Expanded | undefined {
    const found = this.current(buildDir);
    if (!found) return undefined;
    const { dir: from, rec } = found;
    const bytes = rec.bytes;
    if (rec.huge || scratchFor(bytes) !== '/dev/shm') {
      void prefetchFiles([join(from, 'weights.bin')]);
      return { file: join(from, 'model.onnx'), bytes, packed: 0, dispose: () => undefined };
    }
    const dir = newScratchFolder(bytes, '/dev/shm');
    const gone = (): void => rmSync(dir, { recursive: true, force: true });
    try {
      for (const f of ['model.onnx', 'weights.bin']) copyFileSync(join(from, f), join(dir, f));
    } catch (e) {
      gone();
      throw e;
    }
    return { file: join(dir, 'model.onnx'), bytes, packed: 0, dispose: gone };
  }

  /**
   * Whether a load of `buildDir` that found no copy should make one: the second such load does
   * (admission on second use, as caches such as 2Q admit). A part tried once, and above all the first
   * run of a new checkpoint, is spared writing gigabytes it may never read: a copy written beside a first
   * run cost it 8.4 s more on the dev VM (47.7 s against 39.3 s, bench/first-run.ts).
   */
  admit(buildDir: string): boolean {
    const seen = join(this.root, `${basename(buildDir)}${SEEN_SUFFIX}`);
    if (existsSync(seen)) {
      rmSync(seen, { force: true });
      return true;
    }
    try {
      mkdirSync(this.root, { recursive: true });
      writeFileSync(seen, '');
    } catch {
      /* a read-only cache keeps nothing */
    }
    return false;
  }

  /** Removes the copy of `buildDir` (one that could not be loaded). */
  discard(buildDir: string): void {
    removeDirRenamedFirst(join(this.root, basename(buildDir)));
  }

  /** Whether a copy of `bytes` would be kept: within the budget, and leaving the disk its reserve. */
  fits(bytes: number): boolean {
    if (bytes > this.budget) return false;
    try {
      // The store's file system: its folder, or before the first copy the cache folder it goes in.
      const s = statfsSync(existsSync(this.root) ? this.root : dirname(this.root));
      return s.bavail * s.bsize > bytes + DISK_RESERVE;
    } catch {
      return false;
    }
  }

  /**
   * Copies the expansion in `from` (a folder holding `model.onnx` and `weights.bin`; a session may
   * have them mapped) as the copy of `buildDir`, as of `stamp` (the build's files when the expansion
   * read them), in a worker thread, then keeps the copies within the budget; resolves with the
   * copies that budget removed. The caller's load does not wait: the kernel's compaction for the huge
   * folios cost 0.6–4.5 s of system time per 1.9 GB here, once per copy (see idle()).
   */
  keep(buildDir: string, from: string, stamp: Record<string, [number, number]>): Promise<KeptCopy[]> {
    const done = this.copyIn(buildDir, from, stamp).then(() => this.prune({ maxBytes: this.budget, spare: basename(buildDir) }));
    const tracked = done.then(
      () => undefined,
      () => undefined,
    );
    WRITING.add(tracked);
    void tracked.then(() => WRITING.delete(tracked));
    return done;
  }

  /** Settles when every copy started in this process is written (or failed): benchmarks and tests wait here. */
  idle(): Promise<void> {
    return keptCopiesWritten();
  }

  private async copyIn(buildDir: string, from: string, stamp: Record<string, [number, number]>): Promise<void> {
    mkdirSync(this.root, { recursive: true });
    const tmp = newScratchFolder(0, this.root);
    try {
      copyFileSync(join(from, 'model.onnx'), join(tmp, 'model.onnx'));
      const before = fileHugePages();
      const bytes = await runEvalWorker<number>(
        COPY_WORKER(copyAligned.toString()),
        { src: join(from, 'weights.bin'), dst: join(tmp, 'weights.bin'), step: COPY_STEP },
        'the copy of the expanded weights',
      );
      const grown = fileHugePages() - before;
      const rec: StampRecord = { build: buildDir, files: stamp, bytes, huge: grown * HUGE_PAGE >= bytes / 2 };
      writeFileSync(join(tmp, STAMP), JSON.stringify(rec));
      const now = new Date(this.clock());
      utimesSync(join(tmp, STAMP), now, now);
      const to = join(this.root, basename(buildDir));
      removeDirRenamedFirst(to);
      try {
        renameSync(tmp, to);
      } catch (e) {
        // Another process kept its copy of the same build first: that one serves.
        if (!existsSync(join(to, STAMP))) throw e;
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  /** Every copy, least recently used first. */
  list(): KeptCopy[] {
    const out: KeptCopy[] = [];
    for (const name of namesIn(this.root)) {
      if (name.startsWith(SCRATCH_PREFIX) || name.includes('.del-') || name.endsWith(SEEN_SUFFIX)) continue;
      const dir = join(this.root, name);
      const rec = readStamp(dir);
      let bytes = 0;
      let lastUsed = 0;
      try {
        for (const f of readdirSync(dir)) bytes += statSync(join(dir, f)).size;
        lastUsed = statSync(rec ? join(dir, STAMP) : dir).mtimeMs;
      } catch {
        continue;
      }
      out.push({
        key: name,
        dir,
        bytes,
        lastUsed,
        build: rec?.build,
        // A build gone changes its stamp too (every build has its model.onnx).
        orphan: !rec || changedSince(rec) !== false,
      });
    }
    return out.sort((a, b) => a.lastUsed - b.lastUsed);
  }

  /**
   * Removes orphans (their build is gone or changed, or the copy is incomplete), and with `all` every copy, or
   * with `maxBytes` the least recently used until the rest fit (never `spare`). Returns what went.
   */
  prune(sel: { all?: boolean; maxBytes?: number; spare?: string } = {}): KeptCopy[] {
    const copies = this.list();
    const doomed = new Set(copies.filter((c) => sel.all || c.orphan));
    if (sel.maxBytes !== undefined) {
      let held = copies.filter((c) => !doomed.has(c)).reduce((s, c) => s + c.bytes, 0);
      for (const c of copies) {
        if (held <= sel.maxBytes) break;
        if (doomed.has(c) || c.key === sel.spare) continue;
        doomed.add(c);
        held -= c.bytes;
      }
    }
    for (const c of doomed) removeDirRenamedFirst(c.dir);
    this.pruneMarks(sel.all === true);
    return copies.filter((c) => doomed.has(c));
  }

  /** Notes of admit() for builds no longer in the cache folder beside the store (all of them with `all`). */
  private pruneMarks(all: boolean): void {
    for (const name of namesIn(this.root)) {
      if (!name.endsWith(SEEN_SUFFIX)) continue;
      const build = join(dirname(this.root), name.slice(0, -SEEN_SUFFIX.length));
      if (all || !existsSync(join(build, 'model.onnx'))) rmSync(join(this.root, name), { force: true });
    }
  }
}

const HUGE_PAGE = 2 << 20;

/** Whether `build` (by default the folder the copy was expanded from) has changed since; undefined where it cannot be read. */
function changedSince(rec: StampRecord, build: string = rec.build): boolean | undefined {
  try {
    return !sameStamp(rec.files, buildStamp(build));
  } catch {
    return undefined;
  }
}

/** The kernel's count of 2 MiB page-cache folios of files (0 where it has no such count). */
function fileHugePages(): number {
  try {
    const m = /^nr_file_hugepages (\d+)$/m.exec(readFileSync('/proc/vmstat', 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * Copies `src` to a new file `dst` in `step`-byte writes at multiples of `step` (see above); returns
 * its size. Self-contained: the copy worker runs it from its source text.
 */
function copyAligned(io: typeof fs, src: string, dst: string, step: number): number {
  const input = io.openSync(src, 'r');
  let output: number | undefined;
  try {
    output = io.openSync(dst, 'wx');
    const size = io.fstatSync(input).size;
    const buf = new Uint8Array(Math.min(step, Math.max(1, size)));
    for (let at = 0; at < size;) {
      const want = Math.min(buf.length, size - at);
      let got = 0;
      while (got < want) {
        const n = io.readSync(input, buf, got, want - got, at + got);
        if (n <= 0) throw new Error(`${src}: short read at byte ${at + got}`);
        got += n;
      }
      for (let w = 0; w < want;) w += io.writeSync(output, buf, w, want - w, at + w);
      at += want;
    }
    return size;
  } finally {
    io.closeSync(input);
    if (output !== undefined) io.closeSync(output);
  }
}

const COPY_WORKER = (copy: string): string => `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
${copy}
// The lowest priority for this thread (Linux takes a thread id here): the copy, and the kernel's compaction
// for its huge folios, charged to it, yield to the work it runs beside (a first run's builds, sampling).
try {
  require('node:os').setPriority(Number(fs.readlinkSync('/proc/thread-self').split('/').pop()), 19);
} catch {}
try {
  parentPort.postMessage({ ok: true, value: copyAligned(fs, workerData.src, workerData.dst, workerData.step) });
} catch (e) {
  parentPort.postMessage({ ok: false, message: e instanceof Error ? e.message : String(e) });
}
`;

/** Copies being written by any store of this process. */
const WRITING = new Set<Promise<void>>();

/** Settles when every copy any store of this process has started is written: a command that exits waits here first. */
export async function keptCopiesWritten(): Promise<void> {
  while (WRITING.size) await Promise.all([...WRITING]);
}

function readStamp(dir: string): StampRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(join(dir, STAMP), 'utf8')) as Partial<StampRecord>;
    if (typeof r.build !== 'string' || typeof r.bytes !== 'number' || typeof r.files !== 'object' || r.files === null) return undefined;
    return { build: r.build, files: r.files, bytes: r.bytes, huge: r.huge === true };
  } catch {
    return undefined;
  }
}
