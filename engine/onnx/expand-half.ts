import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, writeSync } from 'node:fs';
import * as fs from 'node:fs';
import { availableParallelism, freemem, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';
import { namesIn } from '../core/safe-path.ts';
import { runEvalWorker } from './eval-worker.ts';
import { HALF_SUFFIX, halfBits } from './exact-half.ts';
import { externalData } from './graph.ts';
import type { PackedRecord } from './prepacked.ts';
import { NCHWC_DOMAIN, reorderFilter, rewriteNchwc, type NchwcFilter, type NchwcRewrite } from './nchwc.ts';

const { onnx } = onnxProto;

/**
 * The cache keeps weights that are exact float16s in 16 bits behind a `Cast` (graph.ts,
 * share-weights.ts). ORT's own folding of those Casts is slow (its constant folding took ~30 s per
 * 2 GB of float32 output here, more than the whole optimisation), so before a session is created the
 * model is expanded once into a scratch folder in memory (`/dev/shm` where there is room): every
 * external tensor copied into one file, the float16 ones converted to float32 (exact) under the names
 * the Casts produced, the Casts dropped. ORT then loads plain float32 initializers, the same bits as
 * a float32 build, and the scratch folder is removed as soon as the session exists (ORT maps the
 * tensors it keeps, so their pages live on until the session ends).
 */

const FLOAT = 1;
/** Each tensor starts on its own page: ORT maps page-aligned external data instead of reading it into buffers of its own. */
const ALIGN = 4096;
/**
 * Source bytes per step. Small on purpose: on the 2-core VM each first-touched page of a new buffer
 * costs ~12 µs (a page fault in a paravirtualised guest), so 8 MiB steps spent ~70 ms per load on
 * their own buffers; 1 MiB steps cost 768 faults and ~2,800 syscalls per GB, both negligible.
 */
const CHUNK = 1 << 20;
/** Expanded size from which worker threads share the work. */
const PARALLEL_FROM = 64 << 20;

/** One external tensor: where its bytes are and where they go in the expanded file. */
export interface Piece {
  readonly source: string;
  readonly offset: number;
  /** Bytes in the source (half the output for a float16 tensor). */
  readonly length: number;
  readonly half: boolean;
  readonly at: number;
  /** Also written in MLAS's packed layout (prepacked.ts) at `pack.at`: a [rows, cols] float tensor. */
  readonly pack?: { readonly at: number; readonly rows: number; readonly cols: number; readonly strideK: number };
  /** Written as MLAS's blocked conv filter instead (nchwc.ts): read whole, permuted, O padded up to the block. */
  readonly reorder?: { readonly dims: NchwcFilter['dims']; readonly layout: NchwcFilter['layout']; readonly block: number };
}

/** A model's expanded layout (plan); used by one expansion only: planning rewrites its decoded model. */
export interface Plan {
  model: onnxProto.onnx.ModelProto;
  pieces: Piece[];
  /** Size of the expanded weights file. */
  bytes: number;
  /** Float16 tensors among the pieces. */
  halves: number;
  /** ORT's NCHWc layout done here (nchwc.ts), or why not; absent where it was not asked for. */
  nchwc?: NchwcRewrite | { declined: string };
}

export interface Expanded {
  /** The model file to load. */
  readonly file: string;
  /** Float32 bytes written. */
  readonly bytes: number;
  /** Tensors written with their packed form beside them (prepacked.ts). */
  readonly packed: number;
  dispose(): void;
}

export interface ExpandOptions {
  /** Scratch folder (default: /dev/shm where there is room, else the temp folder; see chooseScratch). */
  scratchRoot?: string;
  /** Threads converting at once, this one included (default: one below PARALLEL_FROM bytes, else the machine's cores, at most 4). */
  threads?: number;
  /** Tensors whose packed form goes beside them (prepacked.ts). */
  packed?: PackedRecord;
  /** The layout planExpansion made for this file and `packed`, so it is not decoded again. */
  plan?: Plan;
  /** Also do ORT's NCHWc layout for this channel block (nchwc.ts; 0 or absent: leave it to ORT). */
  nchwcBlock?: number;
}

type Tensor = onnxProto.onnx.ITensorProto;

function external(t: Tensor): { location: string; offset: number; length: number } | undefined {
  if (t.dataLocation !== 1 || !t.externalData) return undefined;
  const kv = new Map(t.externalData.map((e) => [e.key ?? '', e.value ?? '']));
  const location = kv.get('location');
  return location ? { location, offset: Number(kv.get('offset') ?? 0), length: Number(kv.get('length') ?? 0) } : undefined;
}

/**
 * Decodes `file` and lays out its expanded weights file, with the packed form of `record`'s tensors
 * (prepacked.ts) after each; rewrites the model to point there. Undefined when there is nothing to expand.
 */
function plan(file: string, record?: PackedRecord, nchwcBlock = 0): Plan | undefined {
  const model = onnx.ModelProto.decode(readFileSync(file));
  const graph = model.graph;
  if (!graph) return undefined;
  const inits = graph.initializer ?? [];
  const initNames = new Set(inits.map((t) => t.name ?? ''));
  const castOf = new Map<string, string>();
  for (const n of graph.node ?? []) {
    const input = n.input?.[0];
    if (n.opType === 'Cast' && input?.endsWith(HALF_SUFFIX) && initNames.has(input) && n.output?.[0]) castOf.set(input, n.output[0]);
  }
  const packs = record?.tensors ?? {};
  // A model with nothing in 16 bits loads as it is (float32 storage): copying it all to write the packed form would cost about what it saves;
  // the NCHWc layout (nchwc.ts) is worth a copy where it has convs to block.
  if (castOf.size === 0 && nchwcBlock === 0) return undefined;
  const srcDir = dirname(file);
  const pieces: Piece[] = [];
  let end = 0;
  for (const t of inits) {
    const at = external(t);
    if (!at) continue;
    if (at.location.includes('/') || at.location.includes('\\')) throw new Error(`${file}: external data outside its folder`);
    const castTo = castOf.get(t.name ?? '');
    if (castTo !== undefined && at.length % 2 !== 0)
      throw new Error(`${join(srcDir, at.location)}: float16 tensor '${t.name}' has an odd byte length`);
    const start = end + ((ALIGN - (end % ALIGN)) % ALIGN);
    const length = castTo === undefined ? at.length : 2 * at.length;
    pieces.push({ source: join(srcDir, at.location), offset: at.offset, length: at.length, half: castTo !== undefined, at: start });
    if (castTo !== undefined) {
      t.name = castTo;
      t.dataType = FLOAT;
    }
    t.externalData = externalData('weights.bin', start, length);
    end = start + length;
    const packed = packs[t.name ?? ''];
    if (!packed || t.dataType !== packed.dataType || (t.dims ?? []).map(Number).join(',') !== packed.dims.join(',')) continue;
    const packAt = end + ((ALIGN - (end % ALIGN)) % ALIGN);
    const [rows, cols] = packed.dims;
    pieces[pieces.length - 1] = { ...pieces[pieces.length - 1], pack: { at: packAt, rows, cols, strideK: record?.strideK ?? 0 } };
    t.externalData.push({ key: packed.entry, value: `${packed.key}|${packAt};${packed.length};0` });
    end = packAt + packed.length;
  }
  graph.node = (graph.node ?? []).filter((n) => !(n.opType === 'Cast' && castOf.has(n.input?.[0] ?? '')));
  const p: Plan = { model, pieces, bytes: end, halves: castOf.size };
  if (nchwcBlock > 0) p.nchwc = blockFilters(p, nchwcBlock);
  if (castOf.size === 0 && (!p.nchwc || 'declined' in p.nchwc || p.nchwc.convs === 0)) return undefined;
  return p;
}

/**
 * Rewrites the planned model for ORT's NCHWc layout (nchwc.ts): each blocked filter becomes a piece
 * written permuted, the filters no other node reads are dropped, and the file is laid out again.
 */
function blockFilters(p: Plan, block: number): NchwcRewrite | { declined: string } {
  const graph = p.model.graph;
  if (!graph) return { declined: 'no graph' };
  if (p.pieces.some((q) => q.pack)) return { declined: "the expansion writes ORT's packed copies (a saved graph's)" };
  const pieceAt = new Map(p.pieces.map((q) => [q.at, q]));
  const pieceOf = new Map<string, Piece>();
  for (const t of graph.initializer ?? []) {
    const at = external(t);
    const piece = at && pieceAt.get(at.offset);
    if (piece) pieceOf.set(t.name ?? '', piece);
  }
  const r = rewriteNchwc(graph, block, {
    isExternal: (t) => pieceOf.has(t.name ?? ''),
    floats: (t) => {
      if (t.dataType !== FLOAT || t.dataLocation === 1) return undefined;
      if (t.floatData && t.floatData.length > 0) return Float32Array.from(t.floatData);
      const raw = t.rawData;
      return raw && raw.byteLength % 4 === 0 ? new Float32Array(new Uint8Array(raw).buffer) : undefined;
    },
  });
  if ('declined' in r) return r;
  const filters = new Map(r.filters.map((f) => [f.name, f]));
  const pieces: Piece[] = [];
  let end = 0;
  for (const t of graph.initializer ?? []) {
    const f = filters.get(t.name ?? '');
    const source = pieceOf.get(f ? f.from : (t.name ?? ''));
    if (!source) continue;
    const at = end + ((ALIGN - (end % ALIGN)) % ALIGN);
    const length = f ? 4 * (t.dims ?? []).map(Number).reduce((a, b) => a * b, 1) : source.half ? 2 * source.length : source.length;
    pieces.push({ ...source, at, ...(f ? { reorder: { dims: f.dims, layout: f.layout, block } } : {}) });
    t.dataLocation = 1;
    t.externalData = externalData('weights.bin', at, length);
    end = at + length;
  }
  p.pieces = pieces;
  p.bytes = end;
  if (r.convs > 0 && !p.model.opsetImport?.some((o) => o.domain === NCHWC_DOMAIN))
    p.model.opsetImport = [...(p.model.opsetImport ?? []), { domain: NCHWC_DOMAIN, version: 1 }];
  return r;
}

/** Buffers for a block of a conv filter written in NCHWc blocks: its stored bytes and its blocked float32 bits. */
interface FilterBuffers {
  whole: Uint8Array;
  blocked: Uint32Array;
}

/** Buffers for a packed tensor's blocks of rows, kept by their owner between calls (fresh pages cost, see CHUNK). */
interface BlockBuffers {
  raw: Uint8Array;
  wide: Uint32Array;
  packed: Uint32Array;
}

/**
 * Copies `pieces` into the open file `out`, widening float16 ones through `table` (each half's
 * float32 bits), in `raw.length`-byte steps; a piece with `pack` goes by blocks of rows and is also
 * written reordered as prepacked.ts describes. Self-contained on purpose (no imports, no nested
 * functions): a worker thread runs this very function from its source text.
 */
function copyPieces(
  io: typeof fs,
  pieces: readonly Piece[],
  out: number,
  table: Uint32Array,
  raw: Uint8Array,
  wide: Uint32Array,
  blocks: { buffers?: BlockBuffers; filter?: FilterBuffers },
  reorder: typeof reorderFilter,
): void {
  const fds = new Map<string, number>();
  try {
    for (const p of pieces) {
      let fd = fds.get(p.source);
      if (fd === undefined) {
        fd = io.openSync(p.source, 'r');
        fds.set(p.source, fd);
      }
      const size = p.half ? 2 : 4;
      const cols = p.pack ? p.pack.cols : 0;
      const padded = (cols + 15) & ~15;
      // A blocked conv filter goes one block of output channels at a time: their rows are consecutive in
      // the filter and their blocked form is consecutive in the output, so ~1.5 MB buffers (kept for the
      // next filter: fresh pages are what costs, see CHUNK) serve filters of up to 120 MB.
      const row = p.reorder ? p.reorder.dims[1] * p.reorder.dims[2] * p.reorder.dims[3] : 0;
      // A packed tensor goes a block of rows at a time (each block's panels need all its rows).
      const step = p.reorder ? p.reorder.block * row * size : p.pack ? p.pack.strideK * cols * size : raw.byteLength;
      if (p.reorder && (!blocks.filter || blocks.filter.blocked.length < p.reorder.block * row))
        blocks.filter = { whole: new Uint8Array(4 * p.reorder.block * row), blocked: new Uint32Array(p.reorder.block * row) };
      if (p.pack && (!blocks.buffers || blocks.buffers.raw.byteLength < step)) {
        // Sized for either storage: up to step / 2 values, plus each panel row's padding.
        blocks.buffers = {
          raw: new Uint8Array(step),
          wide: new Uint32Array(step >> 1),
          packed: new Uint32Array((step >> 1) + 16 * p.pack.strideK),
        };
      }
      const src = p.reorder && blocks.filter ? blocks.filter.whole : p.pack && blocks.buffers ? blocks.buffers.raw : raw;
      const dst = p.pack && blocks.buffers ? blocks.buffers.wide : wide;
      const halves = new Uint32Array(src.buffer, src.byteOffset, src.byteLength >> 2);
      for (let done = 0; done < p.length;) {
        const n = Math.min(step, p.length - done);
        for (let got = 0; got < n;) {
          const r = io.readSync(fd, src, got, n - got, p.offset + done + got);
          if (r <= 0)
            throw new Error(
              `${p.source}: short read at byte ${p.offset + done + got} (the file ends before the tensor does: a damaged cache?)`,
            );
          got += r;
        }
        let values = n >> 2;
        let blocked: Uint32Array | undefined;
        if (p.reorder && blocks.filter) {
          // Widened and blocked in one pass; the last block's missing channels are zeros.
          const { block, layout } = p.reorder;
          const dims = [n / size / row, p.reorder.dims[1], p.reorder.dims[2], p.reorder.dims[3]] as const;
          const into = blocks.filter.blocked.subarray(0, block * row);
          blocked = p.half
            ? reorder(new Uint16Array(src.buffer, src.byteOffset, n >> 1), dims, layout, block, into, table)
            : reorder(new Uint32Array(src.buffer, src.byteOffset, n >> 2), dims, layout, block, into);
        } else if (p.half) {
          // Two halves per 32-bit read: ~1.6x the speed of one 16-bit read per value.
          const pairs = n >> 2;
          for (let i = 0, j = 0; i < pairs; i++, j += 2) {
            const two = halves[i];
            dst[j] = table[two & 0xffff];
            dst[j + 1] = table[two >>> 16];
          }
          if (n & 2) dst[2 * pairs] = table[src[n - 2] | (src[n - 1] << 8)];
          values = n >> 1;
        } else if (p.pack) dst.set(halves.subarray(0, values));
        const bytes = blocked
          ? new Uint8Array(blocked.buffer, blocked.byteOffset, blocked.byteLength)
          : p.half || p.pack
            ? new Uint8Array(dst.buffer, dst.byteOffset, 4 * values)
            : src.subarray(0, n);
        for (let w = 0, pos = p.at + (p.half ? 2 * done : done); w < bytes.byteLength;)
          w += io.writeSync(out, bytes, w, bytes.byteLength - w, pos + w);
        if (p.pack && blocks.buffers) {
          const rows = values / cols;
          const packed = blocks.buffers.packed;
          const full = cols & ~15;
          let d = 0;
          for (let x = 0; x < full; x += 16)
            for (let y = 0, at = x; y < rows; y++, at += cols, d += 16) for (let c = 0; c < 16; c++) packed[d + c] = dst[at + c];
          // The last panel of a width that is not a multiple of 16, zero-padded.
          for (let y = 0; full < cols && y < rows; y++) for (let c = full; c < padded; c++) packed[d++] = c < cols ? dst[y * cols + c] : 0;
          const first = (p.half ? done / 2 : done / 4) / cols;
          const at = p.pack.at + first * padded * 4;
          const pb = new Uint8Array(packed.buffer, packed.byteOffset, 4 * d);
          for (let w = 0; w < pb.byteLength;) w += io.writeSync(out, pb, w, pb.byteLength - w, at + w);
        }
        done += n;
      }
    }
  } finally {
    for (const fd of fds.values()) io.closeSync(fd);
  }
}

let bitsTable: Uint32Array | undefined;
let buffers: { raw: Uint8Array; wide: Uint32Array; buffers?: BlockBuffers; filter?: FilterBuffers } | undefined;

/** Each float16's float32 bit pattern (as ORT's Cast gives it, NaN payloads kept). */
function halfToFloatBits(): Uint32Array {
  if (!bitsTable) {
    bitsTable = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) bitsTable[h] = halfBits(h);
  }
  return bitsTable;
}

/** This thread's step buffers, kept for the next load (fresh pages are what costs, see CHUNK). */
function stepBuffers(): { raw: Uint8Array; wide: Uint32Array; buffers?: BlockBuffers; filter?: FilterBuffers } {
  return (buffers ??= { raw: new Uint8Array(CHUNK), wide: new Uint32Array(CHUNK / 2) });
}

const WORKER_SOURCE = (copy: string, reorder: string): string => `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
${copy}
${reorder}
try {
  const { pieces, out, table, chunk } = workerData;
  copyPieces(fs, pieces, out, new Uint32Array(table), new Uint8Array(chunk), new Uint32Array(chunk / 2), {}, reorderFilter);
  parentPort.postMessage({ ok: true });
} catch (e) {
  parentPort.postMessage({ ok: false, message: e instanceof Error ? e.message : String(e) });
}
`;

/** Splits `pieces` into `n` runs of about equal output bytes, in file order (each thread writes one stretch). */
export function splitPieces(pieces: readonly Piece[], n: number): Piece[][] {
  const cost = (p: Piece): number => (p.half ? 2 * p.length : p.length);
  const total = pieces.reduce((s, p) => s + cost(p), 0);
  const runs: Piece[][] = [[]];
  let sum = 0;
  for (const p of pieces) {
    if (runs.length < n && sum >= (total * runs.length) / n && runs[runs.length - 1].length > 0) runs.push([]);
    runs[runs.length - 1].push(p);
    sum += cost(p);
  }
  return runs;
}

function runInWorker(pieces: readonly Piece[], out: number, table: Uint32Array): Promise<void> {
  const shared = new SharedArrayBuffer(table.byteLength);
  new Uint32Array(shared).set(table);
  return runEvalWorker(
    WORKER_SOURCE(copyPieces.toString(), reorderFilter.toString()),
    { pieces, out, table: shared, chunk: CHUNK },
    'the expansion worker',
  );
}

/**
 * The layout expandHalfWeightsParallel writes for `file` with `packed`'s copies (its `bytes` is the
 * file's size in an explicit scratch folder), to hand it back as `opts.plan`; undefined: nothing to expand.
 */
export function planExpansion(file: string, packed?: PackedRecord, nchwcBlock?: number): Plan | undefined {
  return plan(file, packed, nchwcBlock);
}

/** The model with its 16-bit weights expanded (see above), or undefined when it has none (load it as it is). */
export function expandHalfWeights(file: string, scratchRoot?: string): Expanded | undefined {
  const p = plan(file);
  if (!p) return undefined;
  const { dir, out } = openScratch(p, scratchRoot);
  try {
    const b = stepBuffers();
    copyPieces(fs, p.pieces, out, halfToFloatBits(), b.raw, b.wide, b, reorderFilter);
    return finish(p, dir, out);
  } catch (e) {
    abandon(dir, out);
    throw e;
  }
}

/**
 * The same file as expandHalfWeights (plus `opts.packed`'s buffers), the conversion spread over
 * worker threads besides this one, each writing its own stretch: the cores are otherwise idle while a
 * model loads (ORT's session creation starts once the file is whole). Small models stay on this
 * thread: a worker takes ~50-100 ms to start.
 */
export async function expandHalfWeightsParallel(file: string, opts: ExpandOptions = {}): Promise<Expanded | undefined> {
  let p = opts.plan ?? plan(file, opts.packed, opts.nchwcBlock);
  if (!p) return undefined;
  let scratchRoot = opts.scratchRoot;
  if (scratchRoot === undefined) {
    const room = scratchRoom();
    const plain = opts.packed ? plan(file, undefined, opts.nchwcBlock) : undefined;
    const choice = choosePacking(p.bytes, plain?.bytes ?? p.bytes, room);
    if (!choice.packs && plain) p = plain;
    scratchRoot = choice.scratch === 'shm' ? '/dev/shm' : tmpdir();
  }
  const wanted = opts.threads ?? (p.bytes < PARALLEL_FROM ? 1 : Math.min(4, availableParallelism()));
  const runs = splitPieces(p.pieces, Math.max(1, Math.min(wanted, p.pieces.length)));
  const table = halfToFloatBits();
  const { dir, out } = openScratch(p, scratchRoot);
  try {
    const others = runs.slice(1).map((r) => runInWorker(r, out, table));
    const b = stepBuffers();
    // Every worker is waited for, also when this thread's share fails, before the folder goes.
    const results = await Promise.allSettled([
      Promise.resolve().then(() => copyPieces(fs, runs[0], out, table, b.raw, b.wide, b, reorderFilter)),
      ...others,
    ]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return finish(p, dir, out);
  } catch (e) {
    abandon(dir, out);
    throw e;
  }
}

/**
 * A new scratch folder for `bytes` of expanded weights, in `scratchRoot` or where chooseScratch says;
 * named so that a later call removes it if this process dies first.
 */
export function newScratchFolder(bytes: number, scratchRoot?: string): string {
  const root = scratchRoot ?? scratchFor(bytes);
  removeOrphans(root);
  return mkdtempSync(join(root, `weft-expand-${process.pid}-`));
}

/** A scratch folder with `weights.bin` sized for `p` (the alignment gaps stay holes, which take no memory) and open. */
function openScratch(p: Plan, scratchRoot: string | undefined): { dir: string; out: number } {
  const dir = newScratchFolder(p.bytes, scratchRoot);
  let out: number | undefined;
  try {
    out = openSync(join(dir, 'weights.bin'), 'w');
    ftruncateSync(out, p.bytes);
    return { dir, out };
  } catch (e) {
    abandon(dir, out);
    throw e;
  }
}

/** Closes the weights and writes the rewritten model beside them. */
function finish(p: Plan, dir: string, out: number): Expanded {
  closeSync(out);
  const file = join(dir, 'model.onnx');
  const fd = openSync(file, 'w');
  try {
    writeAll(fd, onnx.ModelProto.encode(p.model).finish());
  } finally {
    closeSync(fd);
  }
  const packed = p.pieces.filter((piece) => piece.pack).length;
  return { file, bytes: p.bytes, packed, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

function abandon(dir: string, out: number | undefined): void {
  try {
    if (out !== undefined) closeSync(out);
  } catch {
    /* closed already */
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Scratch folders of processes that died before removing them (in /dev/shm they would hold memory until a reboot). */
function removeOrphans(root: string): void {
  for (const name of namesIn(root)) {
    const m = /^weft-expand-(\d+)-/.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    rmSync(join(root, name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Memory-backed /dev/shm when it has room for the expanded weights and the machine's available memory
 * holds them twice over (the copy in /dev/shm is memory too, and ORT then reads the same bytes into its
 * own buffers), else the temp folder on disk. A full-size SDXL UNet (9.8 GB expanded) fit /dev/shm on a
 * 24 GB machine and the session creation that followed was killed for memory.
 */
export function chooseScratch(bytes: number, room: { shmFree: number | undefined; memAvailable: number }): 'shm' | 'tmp' {
  if (room.shmFree === undefined) return 'tmp';
  return room.shmFree > bytes * 1.25 && room.memAvailable > bytes * 2.5 ? 'shm' : 'tmp';
}

/**
 * Whether the expansion writes the packed MatMul/Gemm copies (`withPacks` bytes in all, else
 * `without`), and where: only where that file is memory. On disk (a full-size SDXL UNet on a 24 GB
 * machine) writing and reading back ~40% more costs more than ORT's own packing.
 */
export function choosePacking(
  withPacks: number,
  without: number,
  room: { shmFree: number | undefined; memAvailable: number },
): { packs: boolean; scratch: 'shm' | 'tmp' } {
  if (chooseScratch(withPacks, room) === 'shm') return { packs: withPacks > without, scratch: 'shm' };
  return { packs: false, scratch: chooseScratch(without, room) };
}

function scratchRoom(): { shmFree: number | undefined; memAvailable: number } {
  let shmFree: number | undefined;
  try {
    if (existsSync('/dev/shm')) {
      const s = statfsSync('/dev/shm');
      shmFree = s.bavail * s.bsize;
    }
  } catch {
    /* no /dev/shm: the temp folder */
  }
  return { shmFree, memAvailable: freemem() };
}

/** Where chooseScratch puts `bytes` of expanded weights now: `/dev/shm` or the temp folder. */
export function scratchFor(bytes: number): string {
  return chooseScratch(bytes, scratchRoom()) === 'shm' ? '/dev/shm' : tmpdir();
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done);
}
