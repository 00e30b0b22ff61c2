import fs from 'node:fs';
import path from 'node:path';
import type { StoredTensor, WeightSource } from '../core/weights.ts';
import { assertNotPickle, looksLikeSafetensors } from './pickle-guard.ts';
import { readAt } from '../core/safe-path.ts';
import { fileContentHash } from './content-hash.ts';
import { f16ToF32, f32BitsToF16, f32ToBf16, f32ToF16, isDtype, ITEMSIZE, LITTLE_ENDIAN, toFloat32, type Dtype } from '../core/dtype.ts';

export { assertNotPickle } from './pickle-guard.ts';

/**
 * The safetensors format: an 8-byte little-endian header length, a UTF-8 JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}`, then the
 * data section the offsets index into. Reading validates everything before a single byte of tensor
 * data is allocated; writing is atomic and streams one tensor at a time.
 */

/** Header bound: real checkpoints have headers of a few hundred KiB; 100 MB is far beyond any. */
export const MAX_HEADER = 100 * 1024 * 1024;

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'SafetensorsError';
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Where in the header a JSON.parse failure happened, as an absolute file offset when V8 tells us. */
function jsonErrorOffset(message: string): string {
  const m = /position (\d+)/.exec(message);
  return m ? ` (at byte ${8 + Number(m[1])} of the file)` : '';
}

/**
 * A safetensors file opened lazily: the header is read and checked (length bound, JSON, dtypes,
 * shapes, offsets inside the data section and not overlapping); tensors are read on demand with
 * one positioned read each, so a 2 GB checkpoint never sits in memory twice.
 */
export class SafetensorsFile implements WeightSource {
  readonly tensors = new Map<string, TensorInfo>();
  private readonly meta: Record<string, string> = {};
  private fd: number | null;
  private hash?: string;

  private constructor(
    readonly file: string,
    fd: number,
    readonly size: number,
    /** Absolute offset of the data section (8 + header length). */
    readonly dataStart: number,
    header: Record<string, unknown>,
  ) {
    this.fd = fd;
    const meta = header.__metadata__;
    if (meta !== undefined) {
      if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
        throw new SafetensorsError(file, `__metadata__ must be an object of strings, got ${describe(meta)}`);
      }
      for (const [k, v] of Object.entries(meta as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__.${k} must be a string, got ${describe(v)}`);
        this.meta[k] = v;
      }
    }
    const dataLen = size - dataStart;
    const ranges: [number, number, string][] = [];
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const where = `tensor '${name}'`;
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
        throw new SafetensorsError(file, `${where}: header entry is not an object`);
      const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (!isDtype(e.dtype)) {
        throw new SafetensorsError(
          file,
          `${where}: unsupported dtype ${describe(e.dtype)} (expected one of ${Object.keys(ITEMSIZE).join(', ')})`,
        );
      }
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw new SafetensorsError(file, `${where}: shape must be a list of non-negative integers, got ${describe(e.shape)}`);
      }
      const offs = e.data_offsets;
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0) || offs[1] < offs[0]) {
        throw new SafetensorsError(file, `${where}: data_offsets must be [begin, end] with 0 ≤ begin ≤ end, got ${describe(offs)}`);
      }
      const [begin, end] = offs as [number, number];
      if (end > dataLen) {
        throw new SafetensorsError(
          file,
          `${where}: data ends at byte ${dataStart + end} but the file has only ${size} bytes (data section ${dataStart}..${size}; truncated file?)`,
        );
      }
      // Bounded by the file size checked above, so the product cannot run away unnoticed.
      let numel = 1;
      for (const d of e.shape as number[]) numel *= d;
      const want = numel * ITEMSIZE[e.dtype];
      if (end - begin !== want) {
        throw new SafetensorsError(
          file,
          `${where}: ${end - begin} bytes of data (file bytes ${dataStart + begin}..${dataStart + end}) for shape [${(e.shape as number[]).join(', ')}] of ${e.dtype}, which needs ${want}`,
        );
      }
      // Empty tensors take no bytes, so they cannot overlap anything wherever their offsets point.
      if (end > begin) ranges.push([begin, end, name]);
      this.tensors.set(name, { dtype: e.dtype, shape: [...(e.shape as number[])], begin: dataStart + begin, end: dataStart + end });
    }
    ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (let i = 1; i < ranges.length; i++) {
      const [b, , name] = ranges[i];
      const [, prevEnd, prev] = ranges[i - 1];
      if (b < prevEnd) {
        throw new SafetensorsError(file, `tensors '${prev}' and '${name}' overlap at file bytes ${dataStart + b}..${dataStart + prevEnd}`);
      }
    }
  }

  /** Open and validate; pickled checkpoints are refused first, with advice to convert them. */
  static open(file: string): SafetensorsFile {
    assertNotPickle(file);
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      throw new SafetensorsError(file, `cannot open: ${(e as Error).message}`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 8) throw new SafetensorsError(file, `only ${size} bytes: too short for the 8-byte safetensors header length`);
      const lenBuf = Buffer.alloc(8);
      fs.readSync(fd, lenBuf, 0, 8, 0);
      const len = lenBuf.readBigUInt64LE(0);
      if (len > BigInt(MAX_HEADER))
        throw new SafetensorsError(file, `header length ${len} (bytes 0..8) exceeds the ${MAX_HEADER}-byte limit: not a safetensors file?`);
      if (len > BigInt(size - 8))
        throw new SafetensorsError(
          file,
          `header length ${len} (bytes 0..8) exceeds the file size ${size} minus 8: truncated or not a safetensors file`,
        );
      if (len < 2n) throw new SafetensorsError(file, `header length ${len} (bytes 0..8) is too short for a JSON object`);
      const hbuf = Buffer.alloc(Number(len));
      const got = fs.readSync(fd, hbuf, 0, hbuf.length, 8);
      if (got !== hbuf.length) throw new SafetensorsError(file, `short read of the header (${got} of ${hbuf.length} bytes)`);
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(hbuf);
      } catch {
        throw new SafetensorsError(file, `header (bytes 8..${8 + hbuf.length}) is not valid UTF-8`);
      }
      let header: unknown;
      try {
        header = JSON.parse(text);
      } catch (e) {
        const msg = (e as Error).message;
        throw new SafetensorsError(file, `header (bytes 8..${8 + hbuf.length}) is not valid JSON${jsonErrorOffset(msg)}: ${msg}`);
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header)) {
        throw new SafetensorsError(file, `header (bytes 8..${8 + hbuf.length}) is JSON but not an object`);
      }
      return new SafetensorsFile(file, fd, size, 8 + hbuf.length, header as Record<string, unknown>);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  metadata(): Record<string, string> {
    return { ...this.meta };
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  shape(name: string): readonly number[] {
    return this.info(name).shape;
  }

  dtype(name: string): Dtype {
    return this.info(name).dtype;
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(this.file, `no tensor named '${name}'`);
    return t;
  }

  /** The tensor's raw bytes (little-endian, as stored), read with one positioned read. */
  getRaw(name: string): { dtype: Dtype; shape: number[]; bytes: Buffer } {
    const t = this.info(name);
    if (this.fd === null) throw new SafetensorsError(this.file, 'file is closed');
    const bytes = Buffer.allocUnsafe(t.end - t.begin);
    const done = readAt(this.fd, bytes, bytes.length, t.begin);
    if (done < bytes.length)
      throw new SafetensorsError(
        this.file,
        `tensor '${name}': short read at byte ${t.begin + done} (${done} of ${bytes.length} bytes; file changed?)`,
      );
    return { dtype: t.dtype, shape: [...t.shape], bytes };
  }

  /** The tensor as float32 (F16/BF16/F64/integers converted). A fresh array each call. */
  get(name: string): Float32Array {
    const { dtype, bytes } = this.getRaw(name);
    return toFloat32(dtype, bytes);
  }

  locate(name: string): StoredTensor {
    const t = this.info(name);
    return { file: this.file, fileKey: this.contentHash(), offset: t.begin, length: t.end - t.begin, dtype: t.dtype };
  }

  raw(name: string): { dtype: 'F32' | 'F16'; bytes: Uint8Array } | undefined {
    const t = this.info(name);
    if (t.dtype !== 'F32' && t.dtype !== 'F16') return undefined;
    return { dtype: t.dtype, bytes: this.getRaw(name).bytes };
  }

  /**
   * SHA-256 of the whole file, as hex. Chosen over a sampled hash because a cache key that misses a
   * changed byte would serve a stale built model; a full hash of a 2 GB file costs a few seconds, so
   * it is memoised per process by file identity (device, inode, size, mtime) and, with `cacheDir`,
   * on disk in a small JSON record per file, so later runs only stat the file.
   */
  contentHash(opts: { cacheDir?: string } = {}): string {
    if (this.hash) return this.hash;
    if (this.fd === null) throw new SafetensorsError(this.file, 'file is closed');
    return (this.hash = fileContentHash(this.fd, this.file, opts));
  }
}

/** True when the file starts like a safetensors file (plausible length, then a JSON object). */
export { looksLikeSafetensors };

// ---------------------------------------------------------------------------------------------
// Writing

export type TensorData = Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array | readonly number[];

export interface TensorSpec {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
}

export interface TensorToWrite extends TensorSpec {
  /** The values, or a function called once when this tensor's turn comes (streaming). */
  data: TensorData | (() => TensorData);
}

function numelOf(shape: readonly number[], name: string): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`tensor '${name}': bad dimension ${d} in shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

/** Encode values as little-endian bytes of `dtype`. Integer dtypes take integral values only. */
export function encodeTensor(dtype: Dtype, data: TensorData, name = 'tensor'): Uint8Array {
  const n = data.length;
  if (LITTLE_ENDIAN) {
    if (dtype === 'F32' && data instanceof Float32Array) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (dtype === 'I64' && data instanceof BigInt64Array) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  const out = new Uint8Array(n * ITEMSIZE[dtype]);
  const dv = new DataView(out.buffer);
  const num = (i: number): number => Number(data[i]);
  const int = (i: number, lo: number, hi: number): number => {
    const v = num(i);
    if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`tensor '${name}': value ${v} at index ${i} does not fit ${dtype}`);
    return v;
  };
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) dv.setFloat32(i * 4, num(i), true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) dv.setFloat64(i * 8, num(i), true);
      break;
    case 'F16': {
      const u = new Uint16Array(out.buffer);
      if (LITTLE_ENDIAN && data instanceof Float32Array) {
        const bits = new Uint32Array(data.buffer, data.byteOffset, n);
        for (let i = 0; i < n; i++) u[i] = f32BitsToF16(bits[i]);
      } else for (let i = 0; i < n; i++) dv.setUint16(i * 2, f32ToF16(num(i)), true);
      break;
    }
    case 'BF16':
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, f32ToBf16(num(i)), true);
      break;
    case 'I64':
      for (let i = 0; i < n; i++)
        dv.setBigInt64(
          i * 8,
          typeof data[i] === 'bigint' ? (data[i] as bigint) : BigInt(int(i, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)),
          true,
        );
      break;
    case 'I32':
      for (let i = 0; i < n; i++) dv.setInt32(i * 4, int(i, -(2 ** 31), 2 ** 31 - 1), true);
      break;
    case 'I16':
      for (let i = 0; i < n; i++) dv.setInt16(i * 2, int(i, -32768, 32767), true);
      break;
    case 'I8':
      for (let i = 0; i < n; i++) dv.setInt8(i, int(i, -128, 127));
      break;
    case 'U8':
      for (let i = 0; i < n; i++) dv.setUint8(i, int(i, 0, 255));
      break;
    case 'BOOL':
      for (let i = 0; i < n; i++) dv.setUint8(i, num(i) ? 1 : 0);
      break;
  }
  return out;
}

/** The header bytes for tensors laid out in the given order (padded with spaces to 8 bytes, as the reference writer does). */
function buildHeader(
  specs: readonly TensorSpec[],
  metadata?: Record<string, string>,
): { header: Buffer; offsets: Map<string, [number, number]> } {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new Error(`metadata '${k}' must be a string`);
    header.__metadata__ = metadata;
  }
  const offsets = new Map<string, [number, number]>();
  let off = 0;
  for (const t of specs) {
    if (t.name === '__metadata__') throw new Error("'__metadata__' is reserved and cannot name a tensor");
    if (offsets.has(t.name)) throw new Error(`tensor '${t.name}' is listed twice`);
    if (!isDtype(t.dtype)) throw new Error(`tensor '${t.name}': unknown dtype ${describe(t.dtype)}`);
    const bytes = numelOf(t.shape, t.name) * ITEMSIZE[t.dtype];
    offsets.set(t.name, [off, off + bytes]);
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  const raw = Buffer.from(json, 'utf8');
  json += ' '.repeat((8 - ((8 + raw.length) % 8)) % 8);
  return { header: Buffer.from(json, 'utf8'), offsets };
}

/**
 * An incremental writer: the header is computed from the shapes up front, then each tensor's data is
 * written in order as it is produced (a 2 GB checkpoint never sits in memory). The file appears only
 * on `finish()`, atomically (temp file + rename, or + link when `exclusive`, which never replaces an
 * existing file).
 */
export class SafetensorsWriter {
  private fd: number | null;
  private next = 0;
  private readonly tmp: string;

  private constructor(
    readonly file: string,
    private readonly specs: readonly TensorSpec[],
    header: Buffer,
    private readonly exclusive: boolean,
  ) {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.tmp = path.join(
      path.dirname(path.resolve(file)),
      `.${path.basename(file)}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2, 8)}.tmp`,
    );
    this.fd = fs.openSync(this.tmp, 'wx');
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      writeAll(this.fd, len);
      writeAll(this.fd, header);
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  static create(
    file: string,
    specs: readonly TensorSpec[],
    metadata?: Record<string, string>,
    opts: { exclusive?: boolean } = {},
  ): SafetensorsWriter {
    const { header } = buildHeader(specs, metadata);
    return new SafetensorsWriter(file, [...specs], header, opts.exclusive ?? false);
  }

  /** The name of the tensor `write` expects next, or undefined when all are written. */
  get pending(): string | undefined {
    return this.specs[this.next]?.name;
  }

  /** Write the next tensor's values (in the order given to `create`). */
  write(name: string, data: TensorData): void {
    if (this.fd === null) throw new Error(`${this.file}: writer is closed`);
    const spec = this.specs[this.next];
    if (!spec) throw new Error(`${this.file}: all ${this.specs.length} tensors are already written; '${name}' is extra`);
    if (spec.name !== name) throw new Error(`${this.file}: expected tensor '${spec.name}' next, got '${name}'`);
    const n = numelOf(spec.shape, name);
    if (data.length !== n) {
      this.abort();
      throw new Error(`${this.file}: tensor '${name}' has ${data.length} values for shape [${spec.shape.join(', ')}] (needs ${n})`);
    }
    try {
      writeAll(this.fd, encodeTensor(spec.dtype, data, name));
    } catch (e) {
      this.abort();
      throw e;
    }
    this.next++;
  }

  /**
   * Write the next tensor's bytes as they are stored (little-endian, the spec's dtype), for generators
   * that produce encoded values directly (random float16 weights) and would otherwise pay a conversion per value.
   */
  writeRaw(name: string, bytes: Uint8Array): void {
    if (this.fd === null) throw new Error(`${this.file}: writer is closed`);
    const spec = this.specs[this.next];
    if (!spec || spec.name !== name) throw new Error(`${this.file}: expected tensor '${spec?.name ?? '(none)'}' next, got '${name}'`);
    const n = numelOf(spec.shape, name) * ITEMSIZE[spec.dtype];
    if (bytes.length !== n) {
      this.abort();
      throw new Error(`${this.file}: tensor '${name}' has ${bytes.length} bytes for ${spec.dtype} [${spec.shape.join(', ')}] (needs ${n})`);
    }
    try {
      writeAll(this.fd, bytes);
    } catch (e) {
      this.abort();
      throw e;
    }
    this.next++;
  }

  /** Flush and move the file into place. */
  finish(): void {
    if (this.fd === null) throw new Error(`${this.file}: writer is closed`);
    if (this.next !== this.specs.length) {
      const missing = this.specs[this.next].name;
      this.abort();
      throw new Error(`${this.file}: only ${this.next} of ${this.specs.length} tensors written (next was '${missing}')`);
    }
    try {
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.fd = null;
      if (this.exclusive) {
        fs.linkSync(this.tmp, this.file);
        fs.unlinkSync(this.tmp);
      } else {
        fs.renameSync(this.tmp, this.file);
      }
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** Drop the temp file; the target is left as it was. */
  abort(): void {
    if (this.fd !== null) {
      try {
        fs.closeSync(this.fd);
      } catch {
        /* already closed */
      }
      this.fd = null;
    }
    fs.rmSync(this.tmp, { force: true });
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length;) off += fs.writeSync(fd, bytes, off, bytes.length - off);
}

/**
 * Write a safetensors file atomically. Tensors are written in the order given (a Map keeps its
 * insertion order); a `data` function is called only when its tensor's turn comes, so large files
 * stream. With `exclusive`, an existing file is never replaced (EEXIST is thrown instead).
 */
export function writeSafetensors(
  file: string,
  tensors: readonly TensorToWrite[] | ReadonlyMap<string, Omit<TensorToWrite, 'name'>>,
  metadata?: Record<string, string>,
  opts: { exclusive?: boolean } = {},
): void {
  const list: TensorToWrite[] = Array.isArray(tensors)
    ? [...(tensors as readonly TensorToWrite[])]
    : [...(tensors as ReadonlyMap<string, Omit<TensorToWrite, 'name'>>)].map(([name, t]) => ({ name, ...t }));
  const w = SafetensorsWriter.create(file, list, metadata, opts);
  for (const t of list) w.write(t.name, typeof t.data === 'function' ? t.data() : t.data);
  w.finish();
}
