import fs from 'node:fs';
import { ITEMSIZE, toFloat32, type Dtype } from '../../core/dtype.ts';
import { readAt } from '../../core/safe-path.ts';
import type { WeightSource } from '../../core/weights.ts';
import { describeValue, STORAGE_DTYPES } from './allowlist.ts';
import { flattenTensors } from './flatten.ts';
import { fileContentHash } from '../content-hash.ts';
import { PickleError, readPickle, type PersistentLoad } from './vm.ts';
import { PyGlobal, PyTuple, StorageRef, TensorRef, type PyValue } from './values.ts';
import { readZipDirectory, ZipError } from './zip.ts';

/**
 * PyTorch's two file formats read without running anything: the zip archive (torch >= 1.6:
 * `<folder>/data.pkl` plus one stored record `<folder>/data/<key>` per storage) and the legacy
 * stream (magic number, protocol, sys info, the pickle, the storage keys, then each storage as an
 * 8-byte element count and its bytes). The result is a WeightSource over the flattened state dict
 * whose tensors are read lazily, one positioned read per tensor, plus the raw object tree.
 */

/** The pickle itself is small (names and shapes); 1 GiB is far beyond any real one. */
export const MAX_PICKLE_BYTES = 1024 * 1024 * 1024;
/** A single tensor materialised as float32 is bounded (the largest SD weights are ~100 MB). */
export const MAX_TENSOR_ELEMENTS = 1 << 28;
/** A strided view is gathered from one read of its span unless the span is this much larger than the view. */
const SPARSE_SPAN_FACTOR = 4;
/** A sparser view is read element by element, which only makes sense for small ones. */
const MAX_SPARSE_ELEMENTS = 1 << 16;

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

export class TorchFileError extends Error {
  constructor(
    readonly file: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${detail}`, options);
    this.name = 'TorchFileError';
  }
}

const ADVICE =
  'it was read as a pickled PyTorch file by a reader that never runs its code and takes only tensors, storages and plain containers; ' +
  'if it is a PyTorch file this reader does not handle, convert it to .safetensors (e.g. safetensors.torch.save_file(torch.load(f, weights_only=True), out)) and load that';

interface Located {
  offset: number;
  bytes: number;
}

function storageLoader(file: string, storages: Map<string, StorageRef>): PersistentLoad {
  return (pid) => {
    const items = pid instanceof PyTuple ? pid.items : undefined;
    if (!items || items[0] !== 'storage' || items.length < 5)
      throw new TorchFileError(file, `persistent id ${describeValue(pid)} is not a storage`);
    const [, type, key, location, numel] = items;
    if (!(type instanceof PyGlobal) || !Object.hasOwn(STORAGE_DTYPES, type.qualified))
      throw new TorchFileError(file, `storage type ${describeValue(type ?? null)} is not a torch storage class`);
    if (typeof key !== 'string' || key.length > 256) throw new TorchFileError(file, 'storage key must be a short string');
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0)
      throw new TorchFileError(file, `storage ${key} has element count ${describeValue(numel ?? null)}`);
    const dtype = STORAGE_DTYPES[type.qualified];
    const seen = storages.get(key);
    if (seen) {
      if (seen.dtype !== dtype) throw new TorchFileError(file, `storage ${key} is named with two dtypes`);
      return seen;
    }
    if (items[5] !== undefined && items[5] !== null) throw new TorchFileError(file, 'storage views (torch <= 0.3 files) are not read');
    const ref = new StorageRef(key, dtype, numel, typeof location === 'string' ? location : 'cpu');
    storages.set(key, ref);
    return ref;
  };
}

function readWhole(fd: number, offset: number, length: number, file: string): Uint8Array {
  if (length > MAX_PICKLE_BYTES)
    throw new TorchFileError(file, `the pickle is ${length} bytes, more than the ${MAX_PICKLE_BYTES} a weights file needs`);
  const b = new Uint8Array(length);
  if (readAt(fd, b, length, offset) !== length) throw new TorchFileError(file, 'truncated');
  return b;
}

export class TorchFile implements WeightSource {
  private fd: number | null;
  private readonly flat: Map<string, TensorRef>;
  private hash?: string;

  private constructor(
    readonly file: string,
    fd: number,
    readonly size: number,
    /** The unpickled object tree (dicts, lists, tensors as TensorRef), for loaders that read structure. */
    readonly root: PyValue,
    private readonly located: Map<string, Located>,
    readonly format: 'zip' | 'legacy',
  ) {
    this.fd = fd;
    this.flat = flattenTensors(root);
  }

  /** `firstRead`: how much of a legacy file is read for its pickles before growing 4x (16 MiB; smaller in tests). */
  static open(file: string, opts: { firstRead?: number } = {}): TorchFile {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const head = Buffer.alloc(Math.min(4, size));
      readAt(fd, head, head.length, 0);
      const isZip = head.length === 4 && head.readUInt32LE(0) === 0x04034b50;
      const r = isZip ? TorchFile.readZip(file, fd, size) : TorchFile.readLegacy(file, fd, size, opts.firstRead ?? 16 * 1024 * 1024);
      return new TorchFile(file, fd, size, r.root, r.located, isZip ? 'zip' : 'legacy');
    } catch (e) {
      fs.closeSync(fd);
      if (e instanceof TorchFileError) throw new TorchFileError(file, `${e.detail}; ${ADVICE}`, { cause: e });
      if (e instanceof PickleError || e instanceof ZipError) throw new TorchFileError(file, `${e.message}; ${ADVICE}`, { cause: e });
      throw e;
    }
  }

  private static readZip(file: string, fd: number, size: number): { root: PyValue; located: Map<string, Located> } {
    const entries = readZipDirectory(fd, size);
    const pkl = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkl.length !== 1) throw new TorchFileError(file, `a torch zip archive holds one <folder>/data.pkl; found ${pkl.length}`);
    const folder = pkl[0].slice(0, -'data.pkl'.length);
    const order = entries.get(`${folder}byteorder`);
    if (order && order.size <= 16 && Buffer.from(readWhole(fd, order.dataOffset, order.size, file)).toString() !== 'little') {
      throw new TorchFileError(file, 'big-endian archives are not read');
    }
    const e = entries.get(pkl[0]);
    if (!e) throw new TorchFileError(file, 'data.pkl vanished');
    const storages = new Map<string, StorageRef>();
    const { value } = readPickle(readWhole(fd, e.dataOffset, e.size, file), 0, storageLoader(file, storages));
    const located = new Map<string, Located>();
    for (const s of storages.values()) {
      const rec = entries.get(`${folder}data/${s.key}`);
      if (!rec) throw new TorchFileError(file, `storage record ${folder}data/${s.key} is missing`);
      const bytes = s.numel * ITEMSIZE[s.dtype];
      if (rec.size < bytes)
        throw new TorchFileError(file, `storage ${s.key} declares ${s.numel} ${s.dtype} elements but its record holds ${rec.size} bytes`);
      located.set(s.key, { offset: rec.dataOffset, bytes });
    }
    return { root: value, located };
  }

  private static readLegacy(file: string, fd: number, size: number, firstRead: number): { root: PyValue; located: Map<string, Located> } {
    // The pickles come first and are small, the storages follow: read a growing prefix (`firstRead`,
    // then 4x while the pickles run past it, up to the bound), never the whole file.
    for (let want = firstRead; ; want *= 4) {
      const len = Math.min(size, want, MAX_PICKLE_BYTES);
      try {
        return TorchFile.readLegacyFrom(file, fd, size, readWhole(fd, 0, len, file));
      } catch (e) {
        if (!(e instanceof PickleError && e.message.startsWith('truncated')) || len === size || len === MAX_PICKLE_BYTES) throw e;
      }
    }
  }

  private static readLegacyFrom(
    file: string,
    fd: number,
    size: number,
    prefix: Uint8Array,
  ): { root: PyValue; located: Map<string, Located> } {
    const none: PersistentLoad = () => {
      throw new TorchFileError(file, 'a persistent id in the legacy header');
    };
    const magic = readPickle(prefix, 0, none);
    if (magic.value !== LEGACY_MAGIC && magic.value !== Number(LEGACY_MAGIC))
      throw new TorchFileError(file, 'a pickle stream that is not a PyTorch file (no legacy magic number, not a zip archive)');
    const proto = readPickle(prefix, magic.end, none);
    if (proto.value !== 1001) throw new TorchFileError(file, `legacy protocol ${describeValue(proto.value)} is not 1001`);
    const sysInfo = readPickle(prefix, proto.end, none);
    const storages = new Map<string, StorageRef>();
    const main = readPickle(prefix, sysInfo.end, storageLoader(file, storages));
    const keys = readPickle(prefix, main.end, none);
    if (!Array.isArray(keys.value) || keys.value.some((k) => typeof k !== 'string'))
      throw new TorchFileError(file, 'legacy storage key list is not a list of strings');
    const located = new Map<string, Located>();
    let pos = keys.end;
    const head = Buffer.alloc(8);
    for (const k of keys.value as string[]) {
      const s = storages.get(k);
      if (!s) throw new TorchFileError(file, `legacy storage ${k} is listed but no tensor names it`);
      if (readAt(fd, head, 8, pos) !== 8) throw new TorchFileError(file, `truncated before storage ${k}`);
      const n = head.readBigInt64LE(0);
      if (n !== BigInt(s.numel)) throw new TorchFileError(file, `storage ${k} holds ${n} elements on disk, ${s.numel} in the pickle`);
      const bytes = s.numel * ITEMSIZE[s.dtype];
      if (pos + 8 + bytes > size) throw new TorchFileError(file, `storage ${k} (${bytes} bytes) runs past the end of the file`);
      located.set(k, { offset: pos + 8, bytes });
      pos += 8 + bytes;
    }
    for (const s of storages.values()) if (!located.has(s.key)) throw new TorchFileError(file, `storage ${s.key} is named but not stored`);
    return { root: main.value, located };
  }

  /** SHA-256 of the whole file (as SafetensorsFile's), naming built models and patches. */
  contentHash(opts: { cacheDir?: string } = {}): string {
    if (this.fd === null) throw new TorchFileError(this.file, 'file is closed');
    return (this.hash ??= fileContentHash(this.fd, this.file, opts));
  }

  /** Torch files carry no string metadata as safetensors headers do. */
  metadata(): Record<string, string> {
    return {};
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  has(name: string): boolean {
    return this.flat.has(name);
  }
  names(): string[] {
    return [...this.flat.keys()];
  }
  shape(name: string): readonly number[] {
    return this.tensor(name).shape;
  }
  dtype(name: string): Dtype {
    return this.tensor(name).dtype;
  }
  /** The named tensor's view (storage, offset, shape, stride). */
  tensor(name: string): TensorRef {
    const t = this.flat.get(name);
    if (!t) throw new TorchFileError(this.file, `tensor '${name}' is missing`);
    return t;
  }

  /** The tensor's elements in row-major order as stored bytes of its dtype (strided views gathered). */
  getRaw(name: string): { dtype: Dtype; shape: readonly number[]; bytes: Uint8Array } {
    return { dtype: this.dtype(name), shape: this.shape(name), bytes: this.viewBytes(this.tensor(name)) };
  }

  get(name: string): Float32Array {
    const t = this.tensor(name);
    return toFloat32(t.dtype, this.viewBytes(t));
  }

  raw(name: string): { dtype: 'F32' | 'F16'; bytes: Uint8Array } | undefined {
    const t = this.tensor(name);
    if (t.dtype !== 'F32' && t.dtype !== 'F16') return undefined;
    return { dtype: t.dtype, bytes: this.viewBytes(t) };
  }

  private gatherByReads(base: number, out: Uint8Array, shape: readonly number[], stride: readonly number[], item: number): void {
    const fd = this.fd;
    if (fd === null) throw new TorchFileError(this.file, 'file is closed');
    forEachStrided(shape, stride, (n, src) => {
      if (readAt(fd, out.subarray(n * item, n * item + item), item, base + src * item) !== item)
        throw new TorchFileError(this.file, 'truncated tensor data');
    });
  }

  /** Read the view's bytes: one positioned read of the span it covers, then a gather when strided. */
  viewBytes(t: TensorRef): Uint8Array {
    if (this.fd === null) throw new TorchFileError(this.file, 'file is closed');
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count > MAX_TENSOR_ELEMENTS)
      throw new TorchFileError(this.file, `a tensor of ${count} elements is beyond the ${MAX_TENSOR_ELEMENTS} read at once`);
    const item = ITEMSIZE[t.dtype];
    const out = new Uint8Array(count * item);
    if (count === 0) return out;
    const loc = this.located.get(t.storage.key);
    if (!loc) throw new TorchFileError(this.file, `storage ${t.storage.key} is not located`);
    let last = t.offset;
    for (let i = 0; i < t.shape.length; i++) last += (t.shape[i] - 1) * t.stride[i];
    const spanBytes = (last - t.offset + 1) * item;
    if ((last + 1) * item > loc.bytes) throw new TorchFileError(this.file, `tensor view reaches past storage ${t.storage.key}`);
    if (isContiguous(t.shape, t.stride)) {
      if (readAt(this.fd, out, out.length, loc.offset + t.offset * item) !== out.length)
        throw new TorchFileError(this.file, 'truncated tensor data');
      return out;
    }
    if (spanBytes > SPARSE_SPAN_FACTOR * out.length + (1 << 20)) {
      // A view over a small part of a large storage: never allocate the whole span.
      if (count > MAX_SPARSE_ELEMENTS)
        throw new TorchFileError(this.file, `a strided view of ${count} elements spread over ${spanBytes} bytes is not read`);
      this.gatherByReads(loc.offset + t.offset * item, out, t.shape, t.stride, item);
      return out;
    }
    const span = new Uint8Array(spanBytes);
    if (readAt(this.fd, span, spanBytes, loc.offset + t.offset * item) !== spanBytes)
      throw new TorchFileError(this.file, 'truncated tensor data');
    gather(span, out, t.shape, t.stride, item);
    return out;
  }
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expect) return false;
    expect *= shape[i];
  }
  return true;
}

/** Calls `fn(n, src)` for each element of a strided view in row-major order: n-th element, storage element `src` (from the view's offset). */
function forEachStrided(shape: readonly number[], stride: readonly number[], fn: (n: number, src: number) => void): void {
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  const count = shape.reduce((a, b) => a * b, 1);
  let src = 0;
  for (let n = 0; n < count; n++) {
    fn(n, src);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      src += stride[d];
      if (idx[d] < shape[d]) break;
      src -= stride[d] * shape[d];
      idx[d] = 0;
    }
  }
}

/** Copy a strided view (element strides into `span`) into row-major `out`, `item` bytes per element. */
function gather(span: Uint8Array, out: Uint8Array, shape: readonly number[], stride: readonly number[], item: number): void {
  forEachStrided(shape, stride, (n, src) => out.set(span.subarray(src * item, src * item + item), n * item));
}
