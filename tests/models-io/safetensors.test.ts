import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, SafetensorsWriter, assertNotPickle, writeSafetensors } from '../../engine/formats/safetensors.ts';
import { f16ToF32, f32ToBf16, f32ToF16, type Dtype } from '../../engine/core/dtype.ts';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-st-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const FIXTURES = path.join(import.meta.dirname, 'fixtures');

/** A file assembled by hand (independently of the writer): 8-byte length, JSON header, data. */
function raw(name: string, header: unknown, data: Buffer, lengthOverride?: bigint): string {
  const h = Buffer.isBuffer(header) ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(h.length));
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat([len, h, data]));
  return file;
}

const f32bits = (x: number): number => {
  const b = Buffer.alloc(4);
  b.writeFloatLE(x);
  return b.readUInt32LE();
};

describe('safetensors reader', () => {
  it('reads a file written by the reference implementation (every numpy dtype, metadata)', () => {
    const ref = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'reference.json'), 'utf8')) as {
      metadata: Record<string, string>;
      tensors: Record<string, { dtype: Dtype; shape: number[]; values: (number | string)[] }>;
    };
    const f = SafetensorsFile.open(path.join(FIXTURES, 'reference.safetensors'));
    expect(f.metadata()).toEqual(ref.metadata);
    expect(f.names().sort()).toEqual(Object.keys(ref.tensors).sort());
    for (const [name, t] of Object.entries(ref.tensors)) {
      expect(f.dtype(name), name).toBe(t.dtype);
      expect(f.shape(name), name).toEqual(t.shape);
      const want = t.values.map((v) => (v === 'inf' ? Infinity : v === '-inf' ? -Infinity : Math.fround(v as number)));
      expect([...f.get(name)], name).toEqual(want);
      expect(f.getRaw(name).bytes.length).toBe(
        t.values.length * { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 }[t.dtype],
      );
    }
    f.close();
  });

  it('converts half and bfloat16 bit patterns to the values computed by hand', () => {
    // Half: sign 1, exponent 5, mantissa 10 bits, bias 15.
    const halves: [number, number][] = [
      [0x3c00, 1],
      [0xc500, -5], // -1.25 · 2^2
      [0x0001, 2 ** -24], // smallest subnormal
      [0x03ff, 1023 * 2 ** -24], // largest subnormal
      [0x0400, 2 ** -14], // smallest normal
      [0x7bff, 65504], // largest finite
      [0x3555, (1 + 341 / 1024) / 4], // ≈ 1/3
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    for (const [h, v] of halves) expect(f16ToF32(h), h.toString(16)).toBe(v);
    expect(Number.isNaN(f16ToF32(0x7e00))).toBe(true);
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
    const data = Buffer.alloc(4 * 2);
    [0x3f80, 0xc0a0, 0x4049, 0x0001].forEach((b, i) => data.writeUInt16LE(b, i * 2));
    const f = SafetensorsFile.open(raw('bf16.safetensors', { b: { dtype: 'BF16', shape: [4], data_offsets: [0, 8] } }, data));
    // bf16 is the top half of a float32: 0x3f80 → 1, 0xc0a0 → -5, 0x4049 → 3.140625, 0x0001 → 2^-133.
    expect([...f.get('b')]).toEqual([1, -5, 3.140625, 2 ** -133]);
    f.close();
  });

  it.each([
    [
      'too short',
      () => {
        const p = path.join(dir, 'short');
        fs.writeFileSync(p, Buffer.alloc(5));
        return p;
      },
      /only 5 bytes/,
    ],
    [
      'header longer than the file',
      () => raw('long', '{}', Buffer.alloc(0), 1000n),
      /header length 1000 \(bytes 0\.\.8\) exceeds the file size 10/,
    ],
    ['huge claimed header', () => raw('huge', '{}', Buffer.alloc(0), 1n << 62n), /exceeds the 104857600-byte limit/],
    ['header too short for JSON', () => raw('tiny', '{', Buffer.alloc(0)), /too short for a JSON object/],
    ['not JSON', () => raw('nojson', '{nope', Buffer.alloc(0)), /header \(bytes 8\.\.13\) is not valid JSON \(at byte 9 of the file\)/],
    ['not UTF-8', () => raw('utf8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), Buffer.alloc(0)), /not valid UTF-8/],
    ['JSON array', () => raw('arr', '[1]', Buffer.alloc(0)), /JSON but not an object/],
    ['entry not an object', () => raw('entry', { x: 5 }, Buffer.alloc(0)), /tensor 'x': header entry is not an object/],
    [
      'bad dtype',
      () => raw('dtype', { x: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, Buffer.alloc(1)),
      /tensor 'x': unsupported dtype "F8"/,
    ],
    [
      'missing dtype',
      () => raw('nodtype', { x: { shape: [1], data_offsets: [0, 1] } }, Buffer.alloc(1)),
      /tensor 'x': unsupported dtype undefined/,
    ],
    [
      'negative dimension',
      () => raw('shape', { x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, Buffer.alloc(4)),
      /tensor 'x': shape must be a list of non-negative integers, got \[-1\]/,
    ],
    [
      'fractional dimension',
      () => raw('shape2', { x: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, Buffer.alloc(4)),
      /shape must be a list of non-negative integers/,
    ],
    [
      'offsets of wrong arity',
      () => raw('arity', { x: { dtype: 'F32', shape: [1], data_offsets: [0] } }, Buffer.alloc(4)),
      /tensor 'x': data_offsets must be \[begin, end\]/,
    ],
    [
      'reversed offsets',
      () => raw('rev', { x: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, Buffer.alloc(8)),
      /data_offsets must be \[begin, end\] with 0 ≤ begin ≤ end, got \[8,0\]/,
    ],
    [
      'length mismatch',
      () => raw('mismatch', { x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, Buffer.alloc(8)),
      /tensor 'x': 8 bytes of data \(file bytes 62\.\.70\) for shape \[3\] of F32, which needs 12/,
    ],
    [
      'offsets outside the data',
      () => raw('outside', { x: { dtype: 'F32', shape: [4], data_offsets: [100, 116] } }, Buffer.alloc(16)),
      /tensor 'x': data ends at byte \d+ but the file has only \d+ bytes/,
    ],
    ['truncated data', () => raw('trunc', { x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(8)), /truncated file/],
    [
      'overlap',
      () =>
        raw(
          'overlap',
          { x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
          Buffer.alloc(12),
        ),
      /tensors 'x' and 'y' overlap at file bytes/,
    ],
    ['metadata not strings', () => raw('meta', { __metadata__: { a: 1 } }, Buffer.alloc(0)), /__metadata__\.a must be a string, got 1/],
    ['metadata not an object', () => raw('meta2', { __metadata__: 'x' }, Buffer.alloc(0)), /__metadata__ must be an object of strings/],
  ])('refuses a malformed file with a clear error: %s', (_what, make, message) => {
    const file = make();
    expect(() => SafetensorsFile.open(file)).toThrow(message);
    expect(() => SafetensorsFile.open(file)).toThrow(file);
  });

  it('checks claimed sizes against the file before allocating anything', () => {
    // 2^30 × 2^30 floats would be 4 EiB: refused from the header alone, instantly.
    const file = raw('giant', { x: { dtype: 'F32', shape: [2 ** 30, 2 ** 30], data_offsets: [0, 4] } }, Buffer.alloc(4));
    const t0 = performance.now();
    expect(() => SafetensorsFile.open(file)).toThrow(/which needs 4611686018427388000/);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("accepts empty tensors placed at a neighbour's offset, and scalars", () => {
    const data = Buffer.alloc(8);
    data.writeFloatLE(2.5, 0);
    data.writeFloatLE(-1, 4);
    const f = SafetensorsFile.open(
      raw(
        'empties',
        {
          a: { dtype: 'F32', shape: [], data_offsets: [0, 4] },
          e: { dtype: 'F16', shape: [0, 3], data_offsets: [4, 4] },
          b: { dtype: 'F32', shape: [1, 1], data_offsets: [4, 8] },
        },
        data,
      ),
    );
    expect([...f.get('a')]).toEqual([2.5]);
    expect([...f.get('e')]).toEqual([]);
    expect([...f.get('b')]).toEqual([-1]);
    f.close();
  });

  it('notices a file truncated after it was opened', () => {
    const file = path.join(dir, 'shrink.safetensors');
    writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape: [1024], data: new Float32Array(1024) }]);
    const f = SafetensorsFile.open(file);
    fs.truncateSync(file, 200);
    expect(() => f.get('x')).toThrow(/tensor 'x': short read at byte \d+/);
    f.close();
  });

  it('hashes the whole file (sha256, memoised; recorded in a cache folder when given)', () => {
    const file = path.join(dir, 'hash.safetensors');
    writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape: [3], data: Float32Array.of(1, 2, 3) }]);
    const want = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    const cache = path.join(dir, 'hash-cache');
    const f = SafetensorsFile.open(file);
    expect(f.contentHash({ cacheDir: cache })).toBe(want);
    f.close();
    const [record] = fs.readdirSync(cache);
    const rec = JSON.parse(fs.readFileSync(path.join(cache, record), 'utf8')) as { sha256: string };
    expect(rec.sha256).toBe(want);
    // Rewriting the file (new inode and mtime) gives a new hash, not the memoised one.
    writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape: [3], data: Float32Array.of(1, 2, 4) }]);
    const g = SafetensorsFile.open(file);
    expect(g.contentHash({ cacheDir: cache })).toBe(createHash('sha256').update(fs.readFileSync(file)).digest('hex'));
    expect(g.contentHash()).not.toBe(want);
    g.close();
  });
});

describe('half-precision encoding', () => {
  it('rounds float32 to the nearest half, ties to even (values worked out by hand)', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [1 + 2 ** -11, 0x3c00], // halfway between 1 and 1+2^-10: even mantissa 0 wins
      [1 + 3 * 2 ** -11, 0x3c02], // halfway between mantissas 1 and 2: 2 wins
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above halfway rounds up
      [65504, 0x7bff],
      [65519, 0x7bff], // below the midpoint to 65536
      [65520, 0x7c00], // the midpoint rounds to even, which is infinity
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // halfway between 0 and the smallest subnormal: even is 0
      [3 * 2 ** -25, 0x0002], // halfway between subnormals 1 and 2: 2 wins
      [2 ** -14 - 2 ** -25, 0x0400], // rounds up from the largest subnormal into the smallest normal
      [-2.5, 0xc100],
      [1e10, 0x7c00],
      [-0, 0x8000],
      [Infinity, 0x7c00],
    ];
    for (const [v, h] of cases) expect(f32ToF16(v), String(v)).toBe(h);
    expect(f32ToF16(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(f32ToF16(Number.NaN) & 0x3ff).not.toBe(0);
  });

  it('rounds float32 to bfloat16, ties to even', () => {
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie → even (up)
    expect(f32ToBf16(-5)).toBe(0xc0a0);
    expect(f32bits(3.140625) >>> 16).toBe(f32ToBf16(3.140625));
    expect(f32ToBf16(Number.NaN) & 0x7f).not.toBe(0);
  });
});

describe('safetensors writer', () => {
  it('round-trips every dtype, from arrays, functions and a Map, with the header padded to 8 bytes', () => {
    const file = path.join(dir, 'rt.safetensors');
    const x = Float32Array.from([0, 1, -2.5, 65504, 1e-7, 0.1]);
    const tensors = new Map<
      string,
      { dtype: Dtype; shape: number[]; data: Float32Array | BigInt64Array | number[] | (() => Float32Array) }
    >([
      ['x32', { dtype: 'F32', shape: [2, 3], data: x }],
      ['x16', { dtype: 'F16', shape: [6], data: () => x }],
      ['xb16', { dtype: 'BF16', shape: [6], data: x }],
      ['x64', { dtype: 'F64', shape: [2], data: [1 / 3, -1e300] }],
      ['ids', { dtype: 'I64', shape: [1, 3], data: BigInt64Array.of(0n, 1n, 76n) }],
      ['i32', { dtype: 'I32', shape: [2], data: [-(2 ** 31), 2 ** 31 - 1] }],
      ['i16', { dtype: 'I16', shape: [1], data: [-32768] }],
      ['i8', { dtype: 'I8', shape: [1], data: [-128] }],
      ['u8', { dtype: 'U8', shape: [1], data: [255] }],
      ['flags', { dtype: 'BOOL', shape: [3], data: [1, 0, 5] }],
      ['marker', { dtype: 'F32', shape: [0], data: new Float32Array(0) }],
    ]);
    writeSafetensors(file, tensors, { note: 'hi' });
    const bytes = fs.readFileSync(file);
    expect(Number(bytes.readBigUInt64LE(0)) % 8).toBe(0);
    const f = SafetensorsFile.open(file);
    expect(f.names()).toEqual([...tensors.keys()]);
    expect([...f.get('x32')]).toEqual([...x]);
    expect([...f.get('x16')]).toEqual([...x].map((v) => f16ToF32(f32ToF16(v))));
    expect(f.get('x16')[5]).toBe(0.0999755859375); // nearest half to 0.1: 1638/16384
    expect([...f.getRaw('xb16').bytes.subarray(2, 4)]).toEqual([0x80, 0x3f]); // 1.0 as bf16, little-endian
    expect([...f.get('x64')]).toEqual([Math.fround(1 / 3), -Infinity]); // -1e300 overflows float32
    expect([...f.getRaw('x64').bytes.subarray(0, 8)]).toEqual([...Buffer.from(Float64Array.of(1 / 3).buffer)]);
    expect([...f.get('ids')]).toEqual([0, 1, 76]);
    expect(f.dtype('ids')).toBe('I64');
    expect(f.getRaw('i32').bytes.readInt32LE(4)).toBe(2 ** 31 - 1);
    expect([...f.get('i32')]).toEqual([-(2 ** 31), Math.fround(2 ** 31 - 1)]); // float32 cannot hold 2^31 - 1
    expect([...f.get('i16'), ...f.get('i8'), ...f.get('u8')]).toEqual([-32768, -128, 255]);
    expect([...f.get('flags')]).toEqual([1, 0, 1]);
    expect(f.shape('marker')).toEqual([0]);
    expect(f.metadata()).toEqual({ note: 'hi' });
    f.close();
  });

  it('streams tensor by tensor and leaves nothing behind when a tensor is wrong', () => {
    const file = path.join(dir, 'stream.safetensors');
    const w = SafetensorsWriter.create(file, [
      { name: 'a', dtype: 'F32', shape: [2] },
      { name: 'b', dtype: 'F16', shape: [3] },
    ]);
    expect(w.pending).toBe('a');
    expect(() => w.write('b', [1, 2, 3])).toThrow("expected tensor 'a' next, got 'b'");
    w.write('a', [1, 2]);
    expect(fs.existsSync(file)).toBe(false); // nothing visible until finish()
    expect(() => w.write('b', [1, 2])).toThrow("tensor 'b' has 2 values for shape [3] (needs 3)");
    expect(fs.existsSync(file)).toBe(false);
    expect(fs.readdirSync(dir).filter((n) => n.includes('stream.safetensors'))).toEqual([]);

    const w2 = SafetensorsWriter.create(file, [
      { name: 'a', dtype: 'F32', shape: [2] },
      { name: 'b', dtype: 'F32', shape: [1] },
    ]);
    w2.write('a', [1, 2]);
    expect(() => w2.finish()).toThrow("only 1 of 2 tensors written (next was 'b')");
    expect(fs.existsSync(file)).toBe(false);
    expect(() => writeSafetensors(file, [{ name: 'i', dtype: 'I8', shape: [1], data: [200] }])).toThrow(
      "tensor 'i': value 200 at index 0 does not fit I8",
    );
    expect(() => writeSafetensors(file, [{ name: '__metadata__', dtype: 'F32', shape: [0], data: [] }])).toThrow(/reserved/);
    expect(() =>
      writeSafetensors(file, [
        { name: 'a', dtype: 'F32', shape: [0], data: [] },
        { name: 'a', dtype: 'F32', shape: [0], data: [] },
      ]),
    ).toThrow(/listed twice/);
    expect(fs.readdirSync(dir).filter((n) => n.includes('stream.safetensors'))).toEqual([]);
  });

  it('replaces a file atomically, or refuses to when exclusive', () => {
    const file = path.join(dir, 'excl.safetensors');
    writeSafetensors(file, [{ name: 'v', dtype: 'F32', shape: [1], data: [1] }]);
    writeSafetensors(file, [{ name: 'v', dtype: 'F32', shape: [1], data: [2] }]);
    expect(() => writeSafetensors(file, [{ name: 'v', dtype: 'F32', shape: [1], data: [3] }], undefined, { exclusive: true })).toThrow(
      /EEXIST/,
    );
    const f = SafetensorsFile.open(file);
    expect([...f.get('v')]).toEqual([2]);
    f.close();
    expect(fs.readdirSync(dir).filter((n) => n.includes('excl.safetensors'))).toEqual(['excl.safetensors']);
  });
});

describe('pickle refusal', () => {
  it('refuses pickles by extension and by their first bytes, with advice to convert', () => {
    for (const ext of ['.ckpt', '.pt', '.pth', '.bin', '.PT']) {
      const f = path.join(dir, `model${ext}`);
      fs.writeFileSync(f, 'PK\x03\x04');
      expect(() => assertNotPickle(f)).toThrow(/never loaded, because unpickling can run arbitrary code; convert it to \.safetensors/);
      expect(() => SafetensorsFile.open(f)).toThrow(/Pickled PyTorch checkpoints/);
    }
    const zip = path.join(dir, 'zip.safetensors');
    fs.writeFileSync(zip, Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(30)]));
    expect(() => assertNotPickle(zip)).toThrow(/PyTorch zip archive/);
    const pickle = path.join(dir, 'pickle.safetensors');
    fs.writeFileSync(pickle, Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20]));
    expect(() => SafetensorsFile.open(pickle)).toThrow(/pickle stream \(protocol 2\)/);
    // Safetensors content under a pickle name: told to rename, still not read.
    const misnamed = path.join(dir, 'real.ckpt');
    writeSafetensors(misnamed, [{ name: 'x', dtype: 'F32', shape: [1], data: [1] }]);
    expect(() => assertNotPickle(misnamed)).toThrow(/content is safetensors: rename it to \.safetensors/);
  });

  it('does not mistake a safetensors header length for pickle or zip magic', () => {
    // Header lengths of 640 (0x0280) and 19280 (0x4b50) start with the bytes 0x80 0x02 and "PK".
    for (const len of [640, 19280]) {
      const header = JSON.stringify({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } });
      const file = raw(`len${len}.safetensors`, header + ' '.repeat(len - header.length), Buffer.alloc(4));
      expect(() => assertNotPickle(file)).not.toThrow();
      const f = SafetensorsFile.open(file);
      expect([...f.get('x')]).toEqual([0]);
      f.close();
    }
  });
});
