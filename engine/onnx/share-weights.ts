import { closeSync, existsSync, fsyncSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { readAt, writeFileAtomic } from '../core/safe-path.ts';
import { externalData } from './graph.ts';

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
/** Bytes compared per read; tensors are compared in pieces so none is held whole. */
const CHUNK = 8 << 20;

function external(t: Tensor): { location: string; offset: number; length: number } | undefined {
  if (t.dataLocation !== 1 || !t.externalData) return undefined;
  const kv = new Map(t.externalData.map((e) => [e.key ?? '', e.value ?? '']));
  const location = kv.get('location');
  if (!location) return undefined;
  return { location, offset: Number(kv.get('offset') ?? 0), length: Number(kv.get('length') ?? 0) };
}

function readFully(fd: number, buf: Uint8Array, length: number, position: number, file: string): void {
  const done = readAt(fd, buf, length, position);
  if (done < length) throw new Error(`${file}: short read at byte ${position + done}`);
}

function sameBytes(fa: number, oa: number, fb: number, ob: number, length: number, a: Uint8Array, b: Uint8Array, names: [string, string]): boolean {
  for (let at = 0; at < length; at += CHUNK) {
    const n = Math.min(CHUNK, length - at);
    readFully(fa, a, n, oa + at, names[0]);
    readFully(fb, b, n, ob + at, names[1]);
    if (Buffer.compare(a.subarray(0, n), b.subarray(0, n)) !== 0) return false;
  }
  return true;
}

/**
 * Rewrites `<dir>/optimized.onnx` (saved by ORT beside `model.onnx` + `weights.bin`) so that its
 * initializers equal to the build's by name, type, shape and bytes are read from `weights.bin`.
 * Returns the bytes no longer duplicated; 0 when the model was already shared.
 */
export function shareOptimizedWeights(dir: string): number {
  const optimizedFile = join(dir, 'optimized.onnx');
  const optimized = onnx.ModelProto.decode(readFileSync(optimizedFile));
  const inits = optimized.graph?.initializer ?? [];
  const sources = new Set(inits.flatMap((t) => external(t)?.location ?? []));
  const own = [...sources].filter((s) => s !== 'weights.bin');
  if (own.length === 0 || own.some((s) => s.startsWith(SHARED_PREFIX))) return 0;
  if (own.some((s) => s.includes('/') || s.includes('\\'))) throw new Error(`${optimizedFile}: external data outside its folder`);

  const base = onnx.ModelProto.decode(readFileSync(join(dir, 'model.onnx')));
  const byName = new Map((base.graph?.initializer ?? []).map((t) => [t.name ?? '', t]));
  const weights = openSync(join(dir, 'weights.bin'), 'r');
  const fds = new Map(own.map((s) => [s, openSync(join(dir, s), 'r')]));
  const a = new Uint8Array(CHUNK);
  const b = new Uint8Array(CHUNK);
  const tag = `${process.pid}-${Date.now()}`;
  const sharedName = `${SHARED_PREFIX}${tag}.bin`;
  const out = openSync(join(dir, sharedName), 'w');
  let saved = 0;
  let end = 0;
  try {
    for (const t of inits) {
      const at = external(t);
      if (!at || at.location === 'weights.bin') continue;
      const fd = fds.get(at.location)!;
      const orig = byName.get(t.name ?? '');
      const o = orig && external(orig);
      const alike =
        o?.location === 'weights.bin' &&
        o.length === at.length &&
        orig!.dataType === t.dataType &&
        (orig!.dims ?? []).map(Number).join(',') === (t.dims ?? []).map(Number).join(',');
      if (alike && sameBytes(fd, at.offset, weights, o.offset, at.length, a, b, [at.location, 'weights.bin'])) {
        t.externalData = externalData('weights.bin', o.offset, o.length);
        saved += at.length;
        continue;
      }
      // A tensor ORT changed: copied to the shared file, 64-byte aligned like the build's.
      const start = end + ((64 - (end % 64)) % 64);
      if (start > end) writeSync(out, new Uint8Array(start - end));
      for (let done = 0; done < at.length; done += CHUNK) {
        const n = Math.min(CHUNK, at.length - done);
        readFully(fd, a, n, at.offset + done, at.location);
        writeSync(out, a, 0, n);
      }
      t.externalData = externalData(sharedName, start, at.length);
      end = start + at.length;
    }
  } catch (e) {
    closeSync(out);
    rmSync(join(dir, sharedName), { force: true });
    throw e;
  } finally {
    closeSync(weights);
    for (const fd of fds.values()) closeSync(fd);
  }
  fsyncSync(out);
  closeSync(out);
  if (end === 0) rmSync(join(dir, sharedName), { force: true });
  writeFileAtomic(optimizedFile, onnx.ModelProto.encode(optimized).finish(), { fsync: true });
  // Files the rewritten model no longer names; a process that opened the old model may still be reading them.
  for (const s of own) if (existsSync(join(dir, s)) && statSync(join(dir, s)).isFile()) rmSync(join(dir, s), { force: true });
  return saved;
}
