import { crc32 } from 'node:zlib';

/**
 * A small torch.save imitation for tests: it assembles pickle bytes by hand (protocol 2 opcodes as
 * torch writes them) and wraps them in the zip or the legacy layout, so the reader is tested without
 * Python or torch. Values: strings, numbers (integers; `new PFloat(x)` for floats), booleans, null,
 * arrays (lists), `PTuple`, plain objects and Maps (dicts; `new POrdered(map)` for OrderedDict),
 * `PTensor` over a `PStorage`, and `PRaw` for hand-written opcodes (hostile tests).
 */

export class PFloat {
  constructor(readonly v: number) {}
}
export class PTuple {
  constructor(readonly items: readonly PVal[]) {}
}
export class POrdered {
  constructor(readonly map: Map<PVal, PVal>) {}
}
export class PRaw {
  constructor(readonly bytes: readonly number[]) {}
}
export type StorageClass =
  | 'FloatStorage'
  | 'HalfStorage'
  | 'BFloat16Storage'
  | 'DoubleStorage'
  | 'LongStorage'
  | 'IntStorage'
  | 'ShortStorage'
  | 'CharStorage'
  | 'ByteStorage'
  | 'BoolStorage';
export class PStorage {
  constructor(
    readonly key: string,
    readonly cls: StorageClass,
    readonly data: Uint8Array,
    readonly numel: number,
  ) {}
}
export class PTensor {
  constructor(
    readonly storage: PStorage,
    readonly shape: readonly number[],
    readonly stride: readonly number[] = contiguous(shape),
    readonly offset = 0,
  ) {}
}
export type PVal =
  | null
  | boolean
  | number
  | string
  | PFloat
  | PTuple
  | POrdered
  | PRaw
  | PStorage
  | PTensor
  | PVal[]
  | Map<PVal, PVal>
  | { [k: string]: PVal };

export function contiguous(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

const enc = new TextEncoder();

export class Pickler {
  readonly out: number[] = [];
  readonly storages = new Map<string, PStorage>();
  op(...b: number[]): this {
    this.out.push(...b);
    return this;
  }
  u32(n: number): this {
    return this.op(n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255);
  }
  str(s: string): this {
    const b = enc.encode(s);
    if (b.length < 256) this.op(0x8c, b.length);
    else this.op(0x58).u32(b.length);
    for (const x of b) this.out.push(x);
    return this;
  }
  global(module: string, name: string): this {
    this.op(0x63);
    for (const c of `${module}\n${name}\n`) this.out.push(c.charCodeAt(0));
    return this;
  }
  int(n: number | bigint): this {
    if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < 256) return this.op(0x4b, n);
    if (typeof n === 'number' && Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31) {
      this.op(0x4a);
      return this.u32(n >>> 0);
    }
    // LONG1: little-endian two's complement
    let v = BigInt(n);
    const bytes: number[] = [];
    for (;;) {
      bytes.push(Number(v & 255n));
      v >>= 8n;
      if ((v === 0n && !(bytes[bytes.length - 1] & 0x80)) || (v === -1n && bytes[bytes.length - 1] & 0x80)) break;
    }
    return this.op(0x8a, bytes.length, ...bytes);
  }
  value(v: PVal): this {
    if (v === null) return this.op(0x4e);
    if (v === true) return this.op(0x88);
    if (v === false) return this.op(0x89);
    if (typeof v === 'number') return this.int(v);
    if (typeof v === 'string') return this.str(v);
    if (v instanceof PRaw) return this.op(...v.bytes);
    if (v instanceof PFloat) {
      const b = Buffer.alloc(8);
      b.writeDoubleBE(v.v);
      return this.op(0x47, ...b);
    }
    if (v instanceof PTuple) {
      this.op(0x28);
      for (const x of v.items) this.value(x);
      return this.op(0x74);
    }
    if (Array.isArray(v)) {
      this.op(0x5d);
      if (v.length) {
        this.op(0x28);
        for (const x of v) this.value(x);
        this.op(0x65);
      }
      return this;
    }
    if (v instanceof POrdered) {
      this.global('collections', 'OrderedDict').op(0x29, 0x52);
      return this.items(v.map);
    }
    if (v instanceof PStorage) throw new Error('storages appear inside tensors');
    if (v instanceof PTensor) {
      this.storages.set(v.storage.key, v.storage);
      this.global('torch._utils', '_rebuild_tensor_v2').op(0x28);
      this.op(0x28).str('storage').global('torch', v.storage.cls).str(v.storage.key).str('cpu').int(v.storage.numel).op(0x74, 0x51);
      this.int(v.offset).value(new PTuple(v.shape)).value(new PTuple(v.stride)).op(0x89);
      this.global('collections', 'OrderedDict').op(0x29, 0x52);
      return this.op(0x74, 0x52);
    }
    this.op(0x7d);
    return this.items(v instanceof Map ? v : new Map(Object.entries(v)));
  }
  private items(m: Map<PVal, PVal>): this {
    if (!m.size) return this;
    this.op(0x28);
    for (const [k, x] of m) this.value(k).value(x);
    return this.op(0x75);
  }
  /** A complete pickle: PROTO 2, the value, STOP. */
  static dump(v: PVal): { bytes: Uint8Array; storages: Map<string, PStorage> } {
    const p = new Pickler().op(0x80, 2).value(v).op(0x2e);
    return { bytes: Uint8Array.from(p.out), storages: p.storages };
  }
}

/** A zip of stored entries (what torch's PyTorchFileWriter writes, without its 64-byte alignment padding unless `align`). */
export function storedZip(entries: readonly [string, Uint8Array][], align = true): Uint8Array {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let pos = 0;
  for (const [name, data] of entries) {
    const nameB = Buffer.from(name);
    let pad = 0;
    if (align) pad = (64 - ((pos + 30 + nameB.length + 4) % 64)) % 64;
    const extra = Buffer.alloc(pad ? pad + 4 : 0);
    if (pad) {
      extra.writeUInt16LE(0xcafe, 0);
      extra.writeUInt16LE(pad, 2);
    }
    const crc = crc32(data);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(data.length, 18);
    lh.writeUInt32LE(data.length, 22);
    lh.writeUInt16LE(nameB.length, 26);
    lh.writeUInt16LE(extra.length, 28);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(data.length, 20);
    ch.writeUInt32LE(data.length, 24);
    ch.writeUInt16LE(nameB.length, 28);
    ch.writeUInt32LE(pos, 42);
    central.push(ch, nameB);
    parts.push(lh, nameB, extra, Buffer.from(data));
    pos += 30 + nameB.length + extra.length + data.length;
  }
  const cd = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(pos, 16);
  return new Uint8Array(Buffer.concat([...parts, cd, eocd]));
}

/** torch.save's zip format (torch >= 1.6) of `v`, in folder `folder`. */
export function torchSaveZip(v: PVal, folder = 'archive'): Uint8Array {
  const { bytes, storages } = Pickler.dump(v);
  const entries: [string, Uint8Array][] = [
    [`${folder}/data.pkl`, bytes],
    [`${folder}/byteorder`, enc.encode('little')],
  ];
  for (const s of storages.values()) entries.push([`${folder}/data/${s.key}`, s.data]);
  entries.push([`${folder}/version`, enc.encode('3\n')]);
  return storedZip(entries);
}

/** torch's legacy format (torch < 1.6, `_use_new_zipfile_serialization=False`). */
export function torchSaveLegacy(v: PVal): Uint8Array {
  const magic = Pickler.dump(new PRaw(new Pickler().int(0x1950a86a20f9469cfc6cn).out)).bytes;
  const proto = Pickler.dump(1001).bytes;
  const sys = Pickler.dump({ protocol_version: 1001, little_endian: true, type_sizes: { short: 2, int: 4, long: 4 } }).bytes;
  const main = Pickler.dump(v);
  const keys = [...main.storages.keys()];
  const chunks: Uint8Array[] = [magic, proto, sys, main.bytes, Pickler.dump(keys).bytes];
  for (const k of keys) {
    const s = main.storages.get(k)!;
    const n = Buffer.alloc(8);
    n.writeBigInt64LE(BigInt(s.numel));
    chunks.push(n, s.data);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** A float32 storage of `data`. */
export function f32Storage(key: string, data: ArrayLike<number>): PStorage {
  const a = Float32Array.from(data);
  return new PStorage(key, 'FloatStorage', new Uint8Array(a.buffer), a.length);
}
