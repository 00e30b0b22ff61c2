import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';
import { f32ToF16 } from '../core/dtype.ts';
import type { StoredTensor } from '../core/weights.ts';
import { readAt, writeFileAtomic } from '../core/safe-path.ts';
import type { Dtype } from '../core/dtype.ts';
import { exactHalf, HALF_SUFFIX } from './exact-half.ts';
import { hardLinkInto } from './stored-link.ts';

const { onnx } = onnxProto;

/**
 * A small builder for ONNX graphs: named values, nodes, and initializers whose bytes are produced
 * lazily, so a 3 GB UNet is streamed to its external-data file one tensor at a time instead of being
 * held in memory twice. Models are serialised with the onnx protobuf schema (onnx-proto).
 */

export type ElemType = 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'bool';

const ELEM: Record<ElemType, number> = { float32: 1, float16: 10, bfloat16: 16, int64: 7, int32: 6, bool: 9 };
const ELEM_SIZE: Record<ElemType, number> = { float32: 4, float16: 2, bfloat16: 2, int64: 8, int32: 4, bool: 1 };

/** A dimension: a fixed size or a symbolic name (batch, height, ...). */
export type Dim = number | string;

export type AttrValue = number | string | readonly number[] | { floats: readonly number[] } | { int: number } | { float: number };

interface Initializer {
  name: string;
  type: ElemType;
  dims: readonly number[];
  bytes: () => Uint8Array;
  /** The weight-source key the bytes derive from, so a weight patch can tell which initializers it changes. */
  source?: string;
  /** Bytes that already lie in a file (an adapter's factors): a model can point there instead of copying them. */
  stored?: StoredTensor;
  /**
   * The values are the source tensor's, in its element order (a reshape at most), so where the source
   * lies in a file as float16 or float32 the build can point there without producing the bytes.
   */
  direct?: boolean;
  /**
   * The values are the source tensor's, read as [rows, cols] and transposed: where the source lies in
   * a file as float16, writeTo transposes its 16-bit values itself (the bits `bytes()` then a 16-bit
   * store give) instead of widening, transposing and narrowing them in fresh float32 arrays.
   */
  transposed?: readonly [number, number];
}

/** Where one initializer lives in the external-data file that `writeTo` writes (inline ones are < 1 KiB). */
export interface InitializerPlace {
  readonly name: string;
  readonly source?: string;
  readonly type: ElemType;
  readonly dims: readonly number[];
  readonly length: number;
  /** Byte offset in `weights.bin`, or undefined when the tensor is stored inside model.onnx. */
  readonly offset?: number;
  readonly stored?: StoredTensor;
}

/** How `GraphBuilder.writeTo` stores weights (see there). */
export interface WriteOptions {
  /** Store float32 weights whose values are all exact float16s in 16 bits, cast back by ORT at load. */
  readonly half?: boolean;
  /** Where the weight-source key an initializer derives from lies in a file (`WeightSource.locate`). */
  readonly locate?: (source: string) => StoredTensor | undefined;
  /** Bytes of initializers handled so far (as float32 / their own type) and in all. */
  readonly onProgress?: (done: number, total: number) => void;
}

const STORED_DTYPE: Partial<Record<ElemType, Dtype>> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/** External tensors below this size stay inline: ORT folds them at load, and they would cost a page each outside. */
const INLINE_BELOW = 1024;

interface NodeDef {
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  name: string;
  attrs: Record<string, AttrValue>;
}

interface ValueInfo {
  name: string;
  type: ElemType;
  dims: readonly Dim[];
}

export const MS_DOMAIN = 'com.microsoft';

export class GraphBuilder {
  private readonly nodes: NodeDef[] = [];
  private readonly inits: Initializer[] = [];
  private readonly initNames = new Set<string>();
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private counter = 0;
  /** Constants shared by value, so a graph holds one `[0]` or `1.0` however often it is used. */
  private readonly constCache = new Map<string, string>();
  usesMsDomain = false;

  constructor(readonly name: string) {}

  /** A unique value name under a readable prefix. */
  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  input(name: string, type: ElemType, dims: readonly Dim[]): string {
    this.inputs.push({ name, type, dims });
    return name;
  }

  output(value: string, name: string, type: ElemType, dims: readonly Dim[]): void {
    if (value !== name) this.op('Identity', [value], {}, name);
    this.outputs.push({ name, type, dims });
  }

  hasInitializer(name: string): boolean {
    return this.initNames.has(name);
  }

  /**
   * A weight or constant tensor; `bytes` runs once, while the model is written (or never, when
   * `direct`: its values are exactly the `source` tensor's in stored order, and writeTo finds them in
   * the checkpoint).
   */
  initializer(name: string, type: ElemType, dims: readonly number[], bytes: () => Uint8Array, source?: string, direct = false): string {
    if (this.initNames.has(name)) throw new Error(`${this.name}: initializer '${name}' defined twice`);
    this.initNames.add(name);
    this.inits.push({ name, type, dims, bytes, source, direct: direct && source !== undefined });
    return name;
  }

  /** A tensor whose bytes are `stored` in a file, as they lie there (its dtype and byte order). */
  storedTensor(name: string, type: ElemType, dims: readonly number[], stored: StoredTensor): string {
    const length = dims.reduce((a, b) => a * b, 1) * ELEM_SIZE[type];
    if (length !== stored.length)
      throw new Error(
        `${this.name}: '${name}' [${dims.join(', ')}] of ${type} needs ${length} bytes; ${stored.file} has ${stored.length} at byte ${stored.offset}`,
      );
    this.initializer(name, type, dims, () => readStored(stored));
    this.inits[this.inits.length - 1].stored = stored;
    return name;
  }

  floats(
    name: string,
    dims: readonly number[],
    data: () => Float32Array,
    source?: string,
    direct = false,
    transposed?: readonly [number, number],
  ): string {
    const n = this.initializer(
      name,
      'float32',
      dims,
      () => {
        const d = data();
        const n = dims.reduce((a, b) => a * b, 1);
        if (d.length !== n) throw new Error(`${this.name}: '${name}' has ${d.length} values, shape [${dims.join(', ')}] needs ${n}`);
        return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
      },
      source,
      direct,
    );
    if (transposed && source !== undefined) this.inits[this.inits.length - 1].transposed = transposed;
    return n;
  }

  /** A small int64 constant (shapes, axes), deduplicated. */
  ints(values: readonly number[]): string {
    const key = `i64:${values.join(',')}`;
    let name = this.constCache.get(key);
    if (!name) {
      name = this.fresh('const_i64');
      const data = BigInt64Array.from(values.map((v) => BigInt(v)));
      this.initializer(name, 'int64', [values.length], () => new Uint8Array(data.buffer));
      this.constCache.set(key, name);
    }
    return name;
  }

  /** A float32 scalar constant, deduplicated (broadcasts against anything). */
  scalar(value: number, type: ElemType = 'float32'): string {
    const key = `${type}:${value}`;
    let name = this.constCache.get(key);
    if (!name) {
      name = this.fresh('const_f');
      const bytes =
        type === 'float16' ? new Uint8Array(new Uint16Array([f32ToF16(value)]).buffer) : new Uint8Array(new Float32Array([value]).buffer);
      this.initializer(name, type, [], () => bytes);
      this.constCache.set(key, name);
    }
    return name;
  }

  /** Adds a node; returns its output names (one unless `outputs` says more). */
  op(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, AttrValue> = {},
    outputs: string | number = 1,
    domain = '',
  ): string[] {
    const outs = typeof outputs === 'string' ? [outputs] : Array.from({ length: outputs }, () => this.fresh(opType.toLowerCase()));
    if (domain === MS_DOMAIN) this.usesMsDomain = true;
    this.nodes.push({ opType, domain, inputs: [...inputs], outputs: outs, name: this.fresh(`n_${opType}`), attrs });
    return outs;
  }

  /** Single-output op. */
  op1(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, domain = ''): string {
    return this.op(opType, inputs, attrs, 1, domain)[0];
  }

  get nodeCount(): number {
    return this.nodes.length;
  }

  /** Total bytes of all initializers (without producing them). */
  get weightBytes(): number {
    return this.inits.reduce((s, i) => s + i.dims.reduce((a, b) => a * b, 1) * ELEM_SIZE[i.type], 0);
  }

  /** `casts` (from float16-stored initializers) go first: their inputs are initializers, and every other node may read them. */
  private modelObject(tensors: object[], casts: readonly NodeDef[] = []): object {
    const valueInfo = (v: ValueInfo): object => ({
      name: v.name,
      type: {
        tensorType: {
          elemType: ELEM[v.type],
          shape: { dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
        },
      },
    });
    const opset = [{ domain: '', version: 17 }];
    if (this.usesMsDomain) opset.push({ domain: MS_DOMAIN, version: 1 });
    return {
      irVersion: 8,
      producerName: 'weft',
      opsetImport: opset,
      graph: {
        name: this.name,
        node: [...casts, ...this.nodes].map((n) => ({
          name: n.name,
          opType: n.opType,
          domain: n.domain,
          input: n.inputs,
          output: n.outputs,
          attribute: Object.entries(n.attrs).map(([k, v]) => attribute(k, v)),
        })),
        initializer: tensors,
        input: this.inputs.map(valueInfo),
        output: this.outputs.map(valueInfo),
      },
    };
  }

  /** The whole model in one buffer with weights inline (small graphs: tests, previews); limited to 2 GB by protobuf. */
  toBuffer(): Uint8Array {
    const tensors = this.inits.map((i) => ({ name: i.name, dims: [...i.dims], dataType: ELEM[i.type], rawData: i.bytes() }));
    return onnx.ModelProto.encode(onnx.ModelProto.create(this.modelObject(tensors) as onnxProto.onnx.IModelProto)).finish();
  }

  /**
   * Writes `<dir>/model.onnx` and its external data `<dir>/weights.bin`, through a temporary folder
   * renamed into place, so a crash never leaves a half-written model where the cache looks. With
   * `opts.half`, float32 weights whose values are all exact float16s are stored in 16 bits behind a
   * `Cast` (ORT folds it at load; the values are the same bits), and with `opts.locate` a weight whose
   * stored bytes equal its checkpoint tensor's points at the checkpoint through a hard link instead.
   */
  writeTo(dir: string, opts: WriteOptions = {}): { modelFile: string; bytes: number } {
    const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
    mkdirSync(tmp, { recursive: true });
    try {
      const fd = openSync(join(tmp, 'weights.bin'), 'w');
      const tensors: object[] = [];
      const casts: NodeDef[] = [];
      const links = new Map<string, string | undefined>();
      const total = this.weightBytes;
      let done = 0;
      let end = 0;
      try {
        const places = this.layout();
        this.inits.forEach((init, i) => {
          const place = places[i];
          done += place.length;
          if (place.offset === undefined) {
            const bytes = init.bytes();
            if (bytes.byteLength !== place.length)
              throw new Error(`${this.name}: initializer '${init.name}' has ${bytes.byteLength} bytes, expected ${place.length}`);
            tensors.push(inlineTensor(init, bytes));
            opts.onProgress?.(done, total);
            return;
          }
          const direct = init.direct && init.source !== undefined ? opts.locate?.(init.source) : undefined;
          if (direct && init.type === 'float32' && (direct.dtype === 'F32' || (opts.half && direct.dtype === 'F16'))) {
            // The checkpoint's own bytes, never read: a float32 tensor as it is, a float16 one behind a Cast (exact).
            const half = direct.dtype === 'F16';
            if (direct.length * (half ? 2 : 1) !== place.length)
              throw new Error(
                `${this.name}: '${init.name}' needs ${place.length} bytes as float32; ${direct.file} holds ${direct.length} of ${direct.dtype}`,
              );
            if (!links.has(direct.fileKey)) links.set(direct.fileKey, hardLinkInto(tmp, direct));
            const link = links.get(direct.fileKey);
            if (link) {
              const name = half ? `${init.name}${HALF_SUFFIX}` : init.name;
              if (half)
                casts.push({
                  opType: 'Cast',
                  domain: '',
                  inputs: [name],
                  outputs: [init.name],
                  name: `${name}.cast`,
                  attrs: { to: ELEM.float32 },
                });
              tensors.push(externalTensor({ ...init, name, type: half ? 'float16' : 'float32' }, link, direct.offset, direct.length));
              opts.onProgress?.(done, total);
              return;
            }
          }
          const swapped =
            opts.half && init.type === 'float32' && init.transposed && init.source !== undefined
              ? transposedHalf(init.transposed, opts.locate?.(init.source), place.length)
              : undefined;
          let bytes = swapped ?? init.bytes();
          if (bytes.byteLength !== place.length && !swapped)
            throw new Error(`${this.name}: initializer '${init.name}' has ${bytes.byteLength} bytes, expected ${place.length}`);
          let stored: ElemType = swapped ? 'float16' : init.type;
          if (opts.half && init.type === 'float32' && !init.stored && !swapped) {
            const h = exactHalf(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), halfScratch(bytes.byteLength / 4));
            if (h) {
              bytes = new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
              stored = 'float16';
            }
          }
          const name = stored === init.type ? init.name : `${init.name}${HALF_SUFFIX}`;
          if (stored !== init.type)
            casts.push({
              opType: 'Cast',
              domain: '',
              inputs: [name],
              outputs: [init.name],
              name: `${name}.cast`,
              attrs: { to: ELEM[init.type] },
            });
          const entry = { ...init, name, type: stored };
          const src = init.source === undefined ? undefined : opts.locate?.(init.source);
          if (src && src.dtype === STORED_DTYPE[stored] && src.length === bytes.byteLength && equalsStored(src, bytes)) {
            if (!links.has(src.fileKey)) links.set(src.fileKey, hardLinkInto(tmp, src));
            const link = links.get(src.fileKey);
            if (link) {
              tensors.push(externalTensor(entry, link, src.offset, bytes.byteLength));
              opts.onProgress?.(done, total);
              return;
            }
          }
          const at = end + ((64 - (end % 64)) % 64);
          if (at > end) writeAll(fd, new Uint8Array(at - end));
          writeAll(fd, bytes);
          end = at + bytes.byteLength;
          tensors.push(externalTensor(entry, 'weights.bin', at, bytes.byteLength));
          opts.onProgress?.(done, total);
        });
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      const model = this.encode(tensors, casts);
      writeFileAtomic(join(tmp, 'model.onnx'), model, { fsync: true });
      mkdirSync(dirname(dir), { recursive: true });
      const modelFile = join(dir, 'model.onnx');
      // Another process (a second worker on the same cache) may have finished the same build first and be
      // running it: its files stay, ours go. Only a folder without a model (a leftover) is replaced.
      if (!existsSync(modelFile)) {
        if (existsSync(dir)) {
          const gone = `${dir}.del-${process.pid}-${Date.now()}`;
          try {
            renameSync(dir, gone);
            rmSync(gone, { recursive: true, force: true });
          } catch {
            /* another process moved it first */
          }
        }
        try {
          renameSync(tmp, dir);
        } catch (e) {
          if (!existsSync(modelFile)) throw e;
        }
      }
      rmSync(tmp, { recursive: true, force: true });
      return { modelFile, bytes: end + model.byteLength };
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * Where `writeTo` puts each initializer, computed from shapes alone (64-byte aligned, in definition
   * order), so a patched model can point at an existing `weights.bin` without reading it.
   */
  layout(): InitializerPlace[] {
    let offset = 0;
    return this.inits.map((init) => {
      const length = init.dims.reduce((a, b) => a * b, 1) * ELEM_SIZE[init.type];
      const base = { name: init.name, source: init.source, type: init.type, dims: init.dims, length, stored: init.stored };
      if (length < INLINE_BELOW) return base;
      offset += (64 - (offset % 64)) % 64;
      const place = { ...base, offset };
      offset += length;
      return place;
    });
  }

  /**
   * Writes only a model file whose initializers live where `locate` says: `'inline'` (bytes produced
   * now) or a file beside the model at an offset, as float16 behind a `Cast` where `half` (what the
   * unpatched build stored so). Used for patched models that share the unpatched build's files and
   * keep changed tensors in files of their own.
   */
  writeModel(file: string, locate: (place: InitializerPlace) => 'inline' | { location: string; offset: number; half?: boolean }): void {
    const places = this.layout();
    const casts: NodeDef[] = [];
    const tensors = this.inits.map((init, i) => {
      const where = locate(places[i]);
      if (where === 'inline') return inlineTensor(init, init.bytes());
      if (!where.half) return externalTensor(init, where.location, where.offset, places[i].length);
      const name = `${init.name}${HALF_SUFFIX}`;
      casts.push({
        opType: 'Cast',
        domain: '',
        inputs: [name],
        outputs: [init.name],
        name: `${name}.cast`,
        attrs: { to: ELEM[init.type] },
      });
      return externalTensor({ ...init, name, type: 'float16' }, where.location, where.offset, places[i].length / 2);
    });
    writeFileAtomic(file, this.encode(tensors, casts));
  }

  /** An initializer's bytes by name (what `writeTo` would store). */
  initializerBytes(name: string): Uint8Array {
    const init = this.inits.find((i) => i.name === name);
    if (!init) throw new Error(`${this.name}: no initializer '${name}'`);
    return init.bytes();
  }

  private encode(tensors: object[], casts: readonly NodeDef[] = []): Uint8Array {
    return onnx.ModelProto.encode(onnx.ModelProto.create(this.modelObject(tensors, casts) as onnxProto.onnx.IModelProto)).finish();
  }
}

function readStored(s: StoredTensor): Uint8Array {
  const fd = openSync(s.file, 'r');
  try {
    const out = new Uint8Array(s.length);
    const done = readAt(fd, out, s.length, s.offset);
    if (done < s.length) throw new Error(`${s.file}: short read at byte ${s.offset + done} (file changed?)`);
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Bytes compared per read of a stored tensor. */
const COMPARE_CHUNK = 1 << 20;
let compareBuf: Uint8Array | undefined;

/**
 * Whether `bytes` equal the stored tensor's, read in pieces into one reused buffer and stopping at
 * the first piece that differs (a transposed weight differs in its first piece): fresh memory per
 * tensor was a large part of a build's time on the 2-core VM.
 */
function equalsStored(s: StoredTensor, bytes: Uint8Array): boolean {
  if (s.length !== bytes.byteLength) return false;
  compareBuf ??= new Uint8Array(COMPARE_CHUNK);
  const buf = compareBuf;
  const fd = openSync(s.file, 'r');
  try {
    for (let at = 0; at < s.length; at += COMPARE_CHUNK) {
      const n = Math.min(COMPARE_CHUNK, s.length - at);
      if (readAt(fd, buf, n, s.offset + at) < n) throw new Error(`${s.file}: short read at byte ${s.offset + at} (file changed?)`);
      if (Buffer.compare(buf.subarray(0, n), bytes.subarray(at, at + n)) !== 0) return false;
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

function inlineTensor(init: Pick<Initializer, 'name' | 'dims' | 'type'>, bytes: Uint8Array): object {
  return { name: init.name, dims: [...init.dims], dataType: ELEM[init.type], rawData: bytes.slice() };
}

function externalTensor(init: Pick<Initializer, 'name' | 'dims' | 'type'>, location: string, offset: number, length: number): object {
  return {
    name: init.name,
    dims: [...init.dims],
    dataType: ELEM[init.type],
    dataLocation: 1,
    externalData: externalData(location, offset, length),
  };
}

/** A TensorProto's `external_data` entries for bytes at `offset` in the file `location`. */
export function externalData(location: string, offset: number, length: number): { key: string; value: string }[] {
  return [
    { key: 'location', value: location },
    { key: 'offset', value: String(offset) },
    { key: 'length', value: String(length) },
  ];
}

let halfBuf = new Uint16Array(0);
let sourceBuf = new Uint16Array(0);
/** Square tiles of the 16-bit transpose: a row of reads and a column of writes each stay in cache. */
const TILE = 64;

/**
 * A float16 source tensor of [rows, cols] transposed in 16 bits (into the reused half buffer), or
 * undefined where that would not give the float32 path's bits: the source is not float16 in a file,
 * or holds a NaN (widened and narrowed through JS numbers its payload may not survive).
 */
function transposedHalf(
  [rows, cols]: readonly [number, number],
  src: StoredTensor | undefined,
  floatBytes: number,
): Uint8Array | undefined {
  const n = rows * cols;
  if (!src || src.dtype !== 'F16' || src.length !== 2 * n || floatBytes !== 4 * n) return undefined;
  if (sourceBuf.length < n) sourceBuf = new Uint16Array(n);
  const raw = new Uint8Array(sourceBuf.buffer, 0, 2 * n);
  const fd = openSync(src.file, 'r');
  try {
    if (readAt(fd, raw, 2 * n, src.offset) < 2 * n) throw new Error(`${src.file}: short read at byte ${src.offset} (file changed?)`);
  } finally {
    closeSync(fd);
  }
  const a = sourceBuf;
  for (let i = 0; i < n; i++) if ((a[i] & 0x7c00) === 0x7c00 && (a[i] & 0x3ff) !== 0) return undefined;
  const out = halfScratch(n);
  for (let i0 = 0; i0 < rows; i0 += TILE) {
    const i1 = Math.min(rows, i0 + TILE);
    for (let j0 = 0; j0 < cols; j0 += TILE) {
      const j1 = Math.min(cols, j0 + TILE);
      for (let i = i0; i < i1; i++) for (let j = j0, at = i * cols + j0; j < j1; j++, at++) out[j * rows + i] = a[at];
    }
  }
  return new Uint8Array(out.buffer, 0, 2 * n);
}

/** One growing buffer for the 16-bit form of each weight (written out before the next is made). */
function halfScratch(n: number): Uint16Array {
  if (halfBuf.length < n) halfBuf = new Uint16Array(n);
  return halfBuf;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done);
}

function attribute(name: string, v: AttrValue): object {
  // AttributeType: FLOAT 1, INT 2, STRING 3, FLOATS 6, INTS 7.
  if (typeof v === 'string') return { name, type: 3, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') return Number.isInteger(v) ? { name, type: 2, i: v } : { name, type: 1, f: v };
  if ('floats' in v) return { name, type: 6, floats: [...v.floats] };
  if ('int' in v) return { name, type: 2, i: v.int };
  if ('float' in v) return { name, type: 1, f: v.float };
  return { name, type: 7, ints: [...v] };
}

/** A float32 array as float16 bytes (GPU graphs). */
export function toF16Bytes(data: Float32Array): Uint8Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = f32ToF16(data[i]);
  return new Uint8Array(out.buffer);
}

/** Where a written model keeps one initializer: a file beside it and, where `half`, as float16 behind a Cast. */
export interface StoredPlace {
  readonly location: string;
  readonly offset: number;
  readonly length: number;
  readonly half: boolean;
}

/**
 * Where the model `file` (as `writeTo` wrote it) keeps each initializer, by the name its graph uses:
 * 'inline' or a place in a file. A patched model points its unchanged initializers there.
 */
export function storedLayout(file: string): Map<string, StoredPlace | 'inline'> {
  const m = onnx.ModelProto.decode(readFileSync(file));
  const halves = new Map<string, string>();
  for (const n of m.graph?.node ?? []) {
    const input = n.input?.[0];
    if (n.opType === 'Cast' && input?.endsWith(HALF_SUFFIX)) halves.set(input, n.output?.[0] ?? '');
  }
  const out = new Map<string, StoredPlace | 'inline'>();
  for (const t of m.graph?.initializer ?? []) {
    const half = halves.get(t.name ?? '');
    const name = half ?? t.name ?? '';
    if (t.dataLocation !== 1) {
      out.set(name, 'inline');
      continue;
    }
    const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    out.set(name, {
      location: kv.get('location') ?? '',
      offset: Number(kv.get('offset') ?? 0),
      length: Number(kv.get('length') ?? 0),
      half: half !== undefined,
    });
  }
  return out;
}
