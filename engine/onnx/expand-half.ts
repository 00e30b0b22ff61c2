import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { freemem, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';
import { readAt } from '../core/safe-path.ts';
import { HALF_SUFFIX, halfBits } from './exact-half.ts';
import { externalData } from './graph.ts';

const { onnx } = onnxProto;

/**
 * The cache keeps weights that are exact float16s in 16 bits behind a `Cast` (graph.ts,
 * share-weights.ts). ORT's own folding of those Casts is slow (its constant folding took ~30 s per
 * 2 GB of float32 output here, more than the whole optimisation), so before a session is created the
 * model is expanded once into a scratch folder in memory (`/dev/shm` where there is room): every
 * external tensor copied into one file, the float16 ones converted to float32 (exact) under the names
 * the Casts produced, the Casts dropped. ORT then loads plain float32 initializers, the same bits as
 * a float32 build, and the scratch folder is removed as soon as the session exists.
 */

const FLOAT = 1;
const ALIGN = 64;
/** Bytes read per step (a multiple of 4, so a float16 piece is whole values). */
const CHUNK = 8 << 20;

let bitsTable: Uint32Array | undefined;

/** Each float16's float32 bit pattern (as ORT's Cast gives it, NaN payloads kept). */
function halfToFloatBits(): Uint32Array {
  if (!bitsTable) {
    bitsTable = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) bitsTable[h] = halfBits(h);
  }
  return bitsTable;
}

function widen(src: Uint16Array, dst: Uint32Array, table: Uint32Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]];
}

export interface Expanded {
  /** The model file to load. */
  readonly file: string;
  /** Float32 bytes written. */
  readonly bytes: number;
  dispose(): void;
}

type Tensor = onnxProto.onnx.ITensorProto;

function external(t: Tensor): { location: string; offset: number; length: number } | undefined {
  if (t.dataLocation !== 1 || !t.externalData) return undefined;
  const kv = new Map(t.externalData.map((e) => [e.key ?? '', e.value ?? '']));
  const location = kv.get('location');
  return location ? { location, offset: Number(kv.get('offset') ?? 0), length: Number(kv.get('length') ?? 0) } : undefined;
}

/** The model with its 16-bit weights expanded (see above), or undefined when it has none (load it as it is). */
export function expandHalfWeights(file: string, scratchRoot?: string): Expanded | undefined {
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
  if (castOf.size === 0) return undefined;

  let need = 0;
  for (const t of inits) {
    const at = external(t);
    if (at) need += (castOf.has(t.name ?? '') ? 2 * at.length : at.length) + ALIGN;
  }
  const root = scratchRoot ?? scratchFor(need);
  removeOrphans(root);
  const dir = mkdtempSync(join(root, `weft-expand-${process.pid}-`));
  const srcDir = dirname(file);
  const fds = new Map<string, number>();
  const out = openSync(join(dir, 'weights.bin'), 'w');
  // Two buffers reused for every tensor: fresh memory is what costs here (each first-touched page of a
  // new buffer faulted at ~1-35 µs on the 2-core VM, ~5x the conversion), while writes into the page
  // cache or tmpfs are cheap, and ORT maps the file it loads rather than copying it.
  const raw = new Uint8Array(CHUNK);
  const wide = new Uint32Array(CHUNK / 2);
  const wideBytes = new Uint8Array(wide.buffer);
  const table = halfToFloatBits();
  let end = 0;
  try {
    for (const t of inits) {
      const at = external(t);
      if (!at) continue;
      if (at.location.includes('/') || at.location.includes('\\')) throw new Error(`${file}: external data outside its folder`);
      let fd = fds.get(at.location);
      if (fd === undefined) fds.set(at.location, (fd = openSync(join(srcDir, at.location), 'r')));
      const castTo = castOf.get(t.name ?? '');
      if (castTo !== undefined && at.length % 2 !== 0) throw new Error(`${at.location}: float16 tensor '${t.name}' has an odd byte length`);
      const length = castTo === undefined ? at.length : 2 * at.length;
      const start = end + ((ALIGN - (end % ALIGN)) % ALIGN);
      if (start > end) writeAll(out, new Uint8Array(start - end));
      for (let done = 0; done < at.length;) {
        const n = Math.min(castTo === undefined ? CHUNK : CHUNK / 2, at.length - done);
        if (readAt(fd, raw, n, at.offset + done) < n) throw new Error(`${at.location}: short read at byte ${at.offset + done}`);
        if (castTo === undefined) writeAll(out, raw.subarray(0, n));
        else {
          widen(new Uint16Array(raw.buffer, 0, n / 2), wide, table);
          writeAll(out, wideBytes.subarray(0, 2 * n));
        }
        done += n;
      }
      if (castTo !== undefined) {
        t.name = castTo;
        t.dataType = FLOAT;
      }
      end = start + length;
      t.externalData = externalData('weights.bin', start, length);
    }
  } catch (e) {
    closeSync(out);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
  closeSync(out);
  graph.node = (graph.node ?? []).filter((n) => !(n.opType === 'Cast' && castOf.has(n.input?.[0] ?? '')));
  const expanded = join(dir, 'model.onnx');
  const fd = openSync(expanded, 'w');
  try {
    writeAll(fd, onnx.ModelProto.encode(model).finish());
  } finally {
    closeSync(fd);
  }
  return { file: expanded, bytes: end, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Scratch folders of processes that died before removing them (in /dev/shm they would hold memory until a reboot). */
function removeOrphans(root: string): void {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return;
  }
  for (const name of names) {
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

function scratchFor(bytes: number): string {
  let shmFree: number | undefined;
  try {
    if (existsSync('/dev/shm')) {
      const s = statfsSync('/dev/shm');
      shmFree = s.bavail * s.bsize;
    }
  } catch {
    /* no /dev/shm: the temp folder */
  }
  return chooseScratch(bytes, { shmFree, memAvailable: freemem() }) === 'shm' ? '/dev/shm' : tmpdir();
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done);
}
