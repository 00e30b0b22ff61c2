import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { WeightSource } from './weights.ts';

/** Header bound: real checkpoints have headers of a few hundred KiB; 100 MB is far beyond any. */
const MAX_HEADER = 100 * 1024 * 1024;

export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const ITEMSIZE: Record<Dtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

export class SafetensorsError extends Error {
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'SafetensorsError';
  }
}

/** IEEE half → float. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** float → IEEE half, round to nearest even (for writing F16 files). */
const F32_SCRATCH = new Float32Array(1);
const U32_SCRATCH = new Uint32Array(F32_SCRATCH.buffer);

export function f32ToF16(v: number): number {
  F32_SCRATCH[0] = v;
  const x = U32_SCRATCH[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >> 10;
  return sign | half;
}

/**
 * A safetensors file opened lazily: the header is read and checked (length bound, JSON, dtypes,
 * shapes, offsets inside the data section and not overlapping); tensors are read on demand with
 * one positioned read each, so a 2 GB checkpoint never sits in memory twice.
 */
export class SafetensorsFile implements WeightSource {
  readonly tensors = new Map<string, TensorInfo>();
  private readonly meta: Record<string, string>;
  private fd: number | null;
  private hash?: string;

  private constructor(
    readonly file: string,
    fd: number,
    readonly size: number,
    header: Record<string, unknown>,
    dataStart: number,
  ) {
    this.fd = fd;
    const meta = header.__metadata__;
    if (meta !== undefined && (typeof meta !== 'object' || meta === null || Array.isArray(meta))) {
      throw new SafetensorsError(file, '__metadata__ must be an object of strings');
    }
    this.meta = {};
    for (const [k, v] of Object.entries((meta as Record<string, unknown>) ?? {})) {
      if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__.${k} must be a string`);
      this.meta[k] = v;
    }
    const dataLen = size - dataStart;
    const ranges: [number, number, string][] = [];
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof e !== 'object' || e === null) throw new SafetensorsError(file, `tensor '${name}': entry is not an object`);
      if (typeof e.dtype !== 'string' || !(e.dtype in ITEMSIZE)) throw new SafetensorsError(file, `tensor '${name}': unsupported dtype ${JSON.stringify(e.dtype)}`);
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw new SafetensorsError(file, `tensor '${name}': shape must be a list of non-negative integers`);
      }
      const offs = e.data_offsets;
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0) || offs[1] < offs[0]) {
        throw new SafetensorsError(file, `tensor '${name}': data_offsets must be [begin, end] with 0 ≤ begin ≤ end`);
      }
      if (offs[1] > dataLen) {
        throw new SafetensorsError(file, `tensor '${name}': data ends at byte ${dataStart + offs[1]} but the file has ${size} bytes (truncated?)`);
      }
      const numel = (e.shape as number[]).reduce((a, b) => a * b, 1);
      const want = numel * ITEMSIZE[e.dtype as Dtype];
      if (offs[1] - offs[0] !== want) {
        throw new SafetensorsError(file, `tensor '${name}': ${offs[1] - offs[0]} bytes of data for shape [${(e.shape as number[]).join(', ')}] of ${e.dtype} (needs ${want})`);
      }
      ranges.push([offs[0], offs[1], name]);
      this.tensors.set(name, { dtype: e.dtype as Dtype, shape: e.shape as number[], begin: dataStart + offs[0], end: dataStart + offs[1] });
    }
    ranges.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < ranges.length; i++) {
      if (ranges[i][0] < ranges[i - 1][1]) throw new SafetensorsError(file, `tensors '${ranges[i - 1][2]}' and '${ranges[i][2]}' overlap`);
    }
  }

  static open(file: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      throw new SafetensorsError(file, `cannot open: ${(e as Error).message}`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 8) throw new SafetensorsError(file, `only ${size} bytes: too short for a safetensors header`);
      const lenBuf = Buffer.alloc(8);
      fs.readSync(fd, lenBuf, 0, 8, 0);
      const len = lenBuf.readBigUInt64LE(0);
      if (len > BigInt(MAX_HEADER)) throw new SafetensorsError(file, `header length ${len} exceeds the ${MAX_HEADER}-byte limit`);
      if (len > BigInt(size - 8)) throw new SafetensorsError(file, `header length ${len} exceeds the file size ${size}`);
      const hbuf = Buffer.alloc(Number(len));
      fs.readSync(fd, hbuf, 0, hbuf.length, 8);
      let header: unknown;
      try {
        header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hbuf));
      } catch (e) {
        throw new SafetensorsError(file, `header (bytes 8–${8 + hbuf.length}) is not valid UTF-8 JSON: ${(e as Error).message}`);
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new SafetensorsError(file, 'header is not a JSON object');
      return new SafetensorsFile(file, fd, size, header as Record<string, unknown>, 8 + hbuf.length);
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

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(this.file, `no tensor named '${name}'`);
    return t;
  }

  /** The tensor's raw bytes (little-endian, as stored). */
  getRaw(name: string): { dtype: Dtype; shape: number[]; bytes: Buffer } {
    const t = this.info(name);
    if (this.fd === null) throw new SafetensorsError(this.file, 'file is closed');
    const bytes = Buffer.alloc(t.end - t.begin);
    const n = fs.readSync(this.fd, bytes, 0, bytes.length, t.begin);
    if (n !== bytes.length) throw new SafetensorsError(this.file, `tensor '${name}': short read (${n} of ${bytes.length} bytes)`);
    return { dtype: t.dtype, shape: t.shape, bytes };
  }

  get(name: string): Float32Array {
    const { dtype, bytes } = this.getRaw(name);
    return toFloat32(dtype, bytes);
  }

  /** SHA-256 of the whole file, computed once per open file (cache keys of built models). */
  contentHash(): string {
    if (this.hash) return this.hash;
    if (this.fd === null) throw new SafetensorsError(this.file, 'file is closed');
    const h = createHash('sha256');
    const buf = Buffer.alloc(4 * 1024 * 1024);
    let pos = 0;
    for (;;) {
      const n = fs.readSync(this.fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
    this.hash = h.digest('hex');
    return this.hash;
  }
}

export function toFloat32(dtype: Dtype, bytes: Buffer): Float32Array {
  const n = bytes.length / ITEMSIZE[dtype];
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(i * 2, true));
      break;
    case 'BF16': {
      const u = new Uint32Array(1);
      const f = new Float32Array(u.buffer);
      for (let i = 0; i < n; i++) {
        u[0] = dv.getUint16(i * 2, true) << 16;
        out[i] = f[0];
      }
      break;
    }
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      break;
    case 'I16':
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(i * 2, true);
      break;
    case 'I8':
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
      break;
    default:
      for (let i = 0; i < n; i++) out[i] = dv.getUint8(i);
  }
  return out;
}

export interface TensorToWrite {
  name: string;
  dtype: 'F32' | 'F16';
  shape: readonly number[];
  /** Values for the whole tensor, or a function called once when the tensor is written (streaming). */
  data: Float32Array | (() => Float32Array);
}

function encode(dtype: 'F32' | 'F16', data: Float32Array): Buffer {
  if (dtype === 'F32') return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const h = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) h[i] = f32ToF16(data[i]);
  return Buffer.from(h.buffer, h.byteOffset, h.byteLength);
}

/**
 * Write a safetensors file atomically (temp file + rename). Tensor data may be produced lazily, one
 * tensor at a time, so multi-gigabyte files are streamed.
 */
export function writeSafetensors(file: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'F32' ? 4 : 2);
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const hbytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hbytes.length));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, hbytes);
    for (const t of tensors) {
      const data = typeof t.data === 'function' ? t.data() : t.data;
      const expected = t.shape.reduce((a, b) => a * b, 1);
      if (data.length !== expected) throw new Error(`tensor '${t.name}' has ${data.length} values for shape [${t.shape.join(', ')}]`);
      fs.writeSync(fd, encode(t.dtype, data));
    }
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed */
    }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

const PICKLE_EXTS = new Set(['.ckpt', '.pt', '.pth', '.bin', '.pkl', '.pt2']);

/** Pickled checkpoints can run code when loaded: refuse them, by extension and by magic bytes. */
export function assertNotPickle(file: string): void {
  const ext = path.extname(file).toLowerCase();
  let magic = Buffer.alloc(0);
  try {
    const fd = fs.openSync(file, 'r');
    magic = Buffer.alloc(2);
    fs.readSync(fd, magic, 0, 2, 0);
    fs.closeSync(fd);
  } catch {
    /* a missing file is reported by the caller */
  }
  const zip = magic[0] === 0x50 && magic[1] === 0x4b;
  const pickle = magic[0] === 0x80 && magic[1] >= 2 && magic[1] <= 5;
  if (PICKLE_EXTS.has(ext) || zip || pickle) {
    throw new Error(
      `${file}: pickled PyTorch checkpoints (.ckpt/.pt/.pth/.bin) are never loaded, because unpickling can run arbitrary code; ` +
        'convert it to .safetensors (e.g. with the safetensors Python package, or a "Convert to safetensors" tool) and load that',
    );
  }
}
