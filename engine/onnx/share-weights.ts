import { closeSync, existsSync, fsyncSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';
import { readAt, writeFileAtomic } from '../core/safe-path.ts';
import { externalData } from './graph.ts';
import { exactHalf, HALF_SUFFIX } from './exact-half.ts';

const { onnx } = onnxProto;

/**
 * ORT saves its optimised graph with every initializer in a file of its own, though it changes only
 * some (on CPU, the NCHWc-reordered conv weights). This points each unchanged one back at the build's
 * `weights.bin` and keeps only the changed ones in `optimized-shared-*.bin`: the cache holds ~1 GB
 * less per SD1.5 UNet, and the unpatched and LoRA-patched sessions (built on `weights.bin`) read the
 * same pages, so the first LoRA after a plain run finds most of its weights already in memory.
 */

type Tensor = onnxProto.onnx.ITensorProto;

const SHARED_PREFIX = 'optimized-shared-';
/** TensorProto data types. */
const FLOAT = 1;
const FLOAT16 = 10;
/** Bytes compared per read; tensors are compared in pieces so none is held whole. */
const CHUNK = 8 << 20;
/** Reused for every piece converted to 16 bits (a new buffer per piece would fault fresh pages each time). */
const HALVES = new Uint16Array(CHUNK / 4);

function external(t: Tensor): { location: string; offset: number; length: number } | undefined {
  if (t.dataLocation !== 1 || !t.externalData) return undefined;
  const kv = new Map(t.externalData.map((e) => [e.key ?? '', e.value ?? '']));
  const location = kv.get('location');
  if (!location) return undefined;
  return { location, offset: Number(kv.get('offset') ?? 0), length: Number(kv.get('length') ?? 0) };
}

/** Writes all of `bytes` at `position`; returns the bytes written. */
function writeAt(fd: number, bytes: Uint8Array, position: number): number {
  for (let done = 0; done < bytes.byteLength;) done += writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
  return bytes.byteLength;
}

function readFully(fd: number, buf: Uint8Array, length: number, position: number, file: string): void {
  const done = readAt(fd, buf, length, position);
  if (done < length) throw new Error(`${file}: short read at byte ${position + done}`);
}

function sameBytes(
  fa: number,
  oa: number,
  fb: number,
  ob: number,
  length: number,
  a: Uint8Array,
  b: Uint8Array,
  names: [string, string],
): boolean {
  for (let at = 0; at < length; at += CHUNK) {
    const n = Math.min(CHUNK, length - at);
    readFully(fa, a, n, oa + at, names[0]);
    readFully(fb, b, n, ob + at, names[1]);
    if (Buffer.compare(a.subarray(0, n), b.subarray(0, n)) !== 0) return false;
  }
  return true;
}

/** Reads float32 bytes in pieces and says whether they are, as float16, the `half` bytes at `hOffset`. */
function sameAsHalf(
  fd: number,
  offset: number,
  hfd: number,
  hOffset: number,
  length: number,
  a: Uint8Array,
  b: Uint8Array,
  names: [string, string],
): boolean {
  for (let at = 0; at < length; at += CHUNK) {
    const n = Math.min(CHUNK, length - at);
    readFully(fd, a, n, offset + at, names[0]);
    const h = exactHalf(new Float32Array(a.buffer, 0, n / 4), HALVES);
    if (!h) return false;
    readFully(hfd, b, n / 2, hOffset + at / 2, names[1]);
    if (Buffer.compare(new Uint8Array(h.buffer, h.byteOffset, h.byteLength), b.subarray(0, n / 2)) !== 0) return false;
  }
  return true;
}

/** Whether a saved optimised graph reads float16 weights through Casts, which ORT must fold when it loads it (basic optimisation). */
export function hasHalfWeights(optimized: onnxProto.onnx.IModelProto): boolean {
  return (optimized.graph?.node ?? []).some((n) => n.opType === 'Cast' && n.input?.[0]?.endsWith(HALF_SUFFIX));
}

/**
 * Rewrites `<dir>/optimized.onnx` (saved by ORT beside `model.onnx` + `weights.bin`) so that its
 * initializers equal to the build's by name, type, shape and bytes are read from where the build
 * keeps them (`weights.bin`, or the checkpoint through its hard link). A weight the build stores in
 * float16 behind a Cast, which ORT folded into float32, goes back to the build's float16 bytes behind
 * the same Cast; a tensor ORT changed (a reordered conv) is kept in float16 behind a Cast where all
 * its values are exact float16s, else in float32. The graph is then loaded with basic optimisation,
 * which folds those Casts again (the same bits). Returns the bytes no longer duplicated; 0 when the
 * model was already shared.
 *
 * `saved` is where ORT saved its graph when that is not `<dir>/optimized.onnx`: a build's first
 * session saves it in the scratch folder its float32 weights were expanded into (memory, see
 * sessions.ts), so the 3.4 GB of an SD1.5 UNet are never written to the cache's disk; only the
 * shared form is, and `<dir>/optimized.onnx` appears once complete (written last, atomically). The
 * scratch folder's files are left to its owner.
 */
export function shareOptimizedWeights(dir: string, savedModel = join(dir, 'optimized.onnx')): number {
  const optimizedFile = join(dir, 'optimized.onnx');
  const savedDir = dirname(savedModel);
  const inPlace = savedDir === dir;
  // Another process saved this build's graph first: its files are the ones in use.
  if (!inPlace && existsSync(optimizedFile)) return 0;
  const optimized = onnx.ModelProto.decode(readFileSync(savedModel));
  const inits = optimized.graph?.initializer ?? [];
  const base = onnx.ModelProto.decode(readFileSync(join(dir, 'model.onnx')));
  const baseInits = base.graph?.initializer ?? [];
  const baseFiles = new Set(baseInits.flatMap((t) => external(t)?.location ?? []));
  const sources = new Set(inits.flatMap((t) => external(t)?.location ?? []));
  const own = [...sources].filter((s) => !baseFiles.has(s));
  if (own.length === 0 || own.some((s) => s.startsWith(SHARED_PREFIX))) return 0;
  if ([...own, ...baseFiles].some((s) => s.includes('/') || s.includes('\\')))
    throw new Error(`${savedModel}: external data outside its folder`);
  if (!inPlace && own.some((s) => baseFiles.has(s) || existsSync(join(dir, s))))
    throw new Error(`${savedModel}: its external data would shadow a file of the build in ${dir}`);

  const byName = new Map(baseInits.map((t) => [t.name ?? '', t]));
  // The float32 value name → the float16 initializer the build casts it from.
  const halfOf = new Map<string, Tensor>();
  for (const n of base.graph?.node ?? []) {
    const input = n.input?.[0];
    const t = input?.endsWith(HALF_SUFFIX) && n.opType === 'Cast' ? byName.get(input) : undefined;
    if (t && n.output?.[0]) halfOf.set(n.output[0], t);
  }
  const fds = new Map([
    ...own.map((s) => [s, openSync(join(savedDir, s), 'r')] as const),
    ...[...baseFiles].map((s) => [s, openSync(join(dir, s), 'r')] as const),
  ]);
  const a = new Uint8Array(CHUNK);
  const b = new Uint8Array(CHUNK);
  const tag = `${process.pid}-${Date.now()}`;
  const sharedName = `${SHARED_PREFIX}${tag}.bin`;
  const out = openSync(join(dir, sharedName), 'w');
  const casts: onnxProto.onnx.INodeProto[] = [];
  const castTo = (half: string, name: string): void => {
    casts.push({
      name: `${half}.cast`,
      opType: 'Cast',
      domain: '',
      input: [half],
      output: [name],
      attribute: [{ name: 'to', type: 2, i: FLOAT }],
    });
  };
  let saved = 0;
  let end = 0;
  /**
   * Copies a tensor to the shared file at the next 64-byte boundary, in 16 bits when `tryHalf` and
   * every value is an exact float16 (found out while copying, in one pass), else as it is.
   */
  const append = (
    fd: number,
    at: { offset: number; length: number; location: string },
    tryHalf: boolean,
  ): { start: number; half: boolean } => {
    const start = end + ((64 - (end % 64)) % 64);
    let half = tryHalf && at.length % 4 === 0 && at.length > 0;
    for (let done = 0, pos = start; done < at.length;) {
      const n = Math.min(CHUNK, at.length - done);
      readFully(fd, a, n, at.offset + done, at.location);
      const h = half ? exactHalf(new Float32Array(a.buffer, 0, n / 4), HALVES) : undefined;
      if (half && !h) {
        // Not all exact: start the tensor again in 32 bits over what was written.
        half = false;
        done = 0;
        pos = start;
        continue;
      }
      pos += writeAt(out, h ? new Uint8Array(h.buffer, 0, n / 2) : a.subarray(0, n), pos);
      done += n;
    }
    end = start + (half ? at.length / 2 : at.length);
    return { start, half };
  };
  try {
    for (const t of inits) {
      const at = external(t);
      if (!at || baseFiles.has(at.location)) continue;
      const fd = fds.get(at.location)!;
      const name = t.name ?? '';
      const orig = byName.get(name);
      const o = orig && external(orig);
      const alike =
        o !== undefined &&
        o.length === at.length &&
        orig!.dataType === t.dataType &&
        (orig!.dims ?? []).map(Number).join(',') === (t.dims ?? []).map(Number).join(',');
      if (alike && sameBytes(fd, at.offset, fds.get(o.location)!, o.offset, at.length, a, b, [at.location, o.location])) {
        t.externalData = externalData(o.location, o.offset, o.length);
        saved += at.length;
        continue;
      }
      const half = halfOf.get(name);
      const h = half && external(half);
      if (
        h &&
        t.dataType === FLOAT &&
        h.length * 2 === at.length &&
        sameAsHalf(fd, at.offset, fds.get(h.location)!, h.offset, at.length, a, b, [at.location, h.location])
      ) {
        t.name = half!.name;
        t.dataType = FLOAT16;
        t.externalData = externalData(h.location, h.offset, h.length);
        castTo(half!.name ?? '', name);
        saved += at.length;
        continue;
      }
      // A tensor ORT changed: copied to the shared file, 64-byte aligned like the build's, in 16 bits where exact.
      const copied = append(fd, at, t.dataType === FLOAT);
      if (copied.half) {
        t.name = `${name}${HALF_SUFFIX}`;
        t.dataType = FLOAT16;
        t.externalData = externalData(sharedName, copied.start, at.length / 2);
        castTo(t.name, name);
        continue;
      }
      t.externalData = externalData(sharedName, copied.start, at.length);
    }
  } catch (e) {
    closeSync(out);
    rmSync(join(dir, sharedName), { force: true });
    throw e;
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
  fsyncSync(out);
  closeSync(out);
  if (end === 0) rmSync(join(dir, sharedName), { force: true });
  if (casts.length && optimized.graph) optimized.graph.node = [...casts, ...(optimized.graph.node ?? [])];
  writeFileAtomic(optimizedFile, onnx.ModelProto.encode(optimized).finish(), { fsync: true });
  // Files the rewritten model no longer names; a process that opened the old model may still be reading them.
  if (inPlace) for (const s of own) if (existsSync(join(dir, s)) && statSync(join(dir, s)).isFile()) rmSync(join(dir, s), { force: true });
  return saved;
}
