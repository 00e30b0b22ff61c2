import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { f32ToBf16, f32ToF16 } from '../../engine/core/dtype.ts';
import { openWeights } from '../../engine/formats/open-weights.ts';
import { TorchFile, TorchFileError } from '../../engine/formats/pickle/torch-file.ts';
import { PyDict } from '../../engine/formats/pickle/values.ts';
import { loadEmbeddingFile } from '../../engine/text/embeddings.ts';
import {
  f32Storage,
  Pickler,
  PFloat,
  POrdered,
  PStorage,
  PTensor,
  PTuple,
  storedZip,
  torchSaveLegacy,
  torchSaveZip,
  type PVal,
  type StorageClass,
} from './torch-writer.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-pickle-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;
function save(bytes: Uint8Array, ext = '.ckpt'): string {
  const f = path.join(dir, `f${n++}${ext}`);
  fs.writeFileSync(f, bytes);
  return f;
}

function storage(key: string, cls: StorageClass, values: readonly number[]): PStorage {
  const item = {
    FloatStorage: 4,
    HalfStorage: 2,
    BFloat16Storage: 2,
    DoubleStorage: 8,
    LongStorage: 8,
    IntStorage: 4,
    ShortStorage: 2,
    CharStorage: 1,
    ByteStorage: 1,
    BoolStorage: 1,
  }[cls];
  const b = Buffer.alloc(values.length * item);
  values.forEach((v, i) => {
    if (cls === 'FloatStorage') b.writeFloatLE(v, i * 4);
    else if (cls === 'HalfStorage') b.writeUInt16LE(f32ToF16(v), i * 2);
    else if (cls === 'BFloat16Storage') b.writeUInt16LE(f32ToBf16(v), i * 2);
    else if (cls === 'DoubleStorage') b.writeDoubleLE(v, i * 8);
    else if (cls === 'LongStorage') b.writeBigInt64LE(BigInt(v), i * 8);
    else if (cls === 'IntStorage') b.writeInt32LE(v, i * 4);
    else if (cls === 'ShortStorage') b.writeInt16LE(v, i * 2);
    else if (cls === 'CharStorage') b.writeInt8(v, i);
    else b.writeUInt8(v, i);
  });
  return new PStorage(key, cls, new Uint8Array(b), values.length);
}

const DTYPES: [StorageClass, string, number[]][] = [
  ['FloatStorage', 'F32', [1.5, -2.25, 3e-8, 1e30]],
  ['HalfStorage', 'F16', [1.5, -2.25, 0.0001, 65504]],
  ['BFloat16Storage', 'BF16', [1.5, -2.25, 3.140625, 1e30]],
  ['DoubleStorage', 'F64', [1.5, -2.25, 0.1, 1e20]],
  ['LongStorage', 'I64', [1, -2, 3, 123456789]],
  ['IntStorage', 'I32', [1, -2, 3, -123456789]],
  ['ShortStorage', 'I16', [1, -2, 3, -30000]],
  ['CharStorage', 'I8', [1, -2, 3, -128]],
  ['ByteStorage', 'U8', [1, 2, 3, 255]],
  ['BoolStorage', 'BOOL', [1, 0, 1, 1]],
];

function sample(): PVal {
  const s = f32Storage('0', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  const sd = new Map<PVal, PVal>([
    ['a.weight', new PTensor(s, [3, 4])],
    // A transposed view, and a window at an offset into the same storage.
    ['a.t', new PTensor(s, [4, 3], [1, 4])],
    ['a.window', new PTensor(s, [2, 2], [4, 1], 5)],
  ]);
  DTYPES.forEach(([cls, , values], i) => sd.set(`d.${cls}`, new PTensor(storage(`s${i}`, cls, values), [2, 2])));
  return { state_dict: new POrdered(sd), global_step: 470000, epoch: 12, lr: new PFloat(1e-4), big: 2 ** 40 };
}

describe('torch files, zip and legacy', () => {
  for (const [format, write] of [
    ['zip', torchSaveZip],
    ['legacy', torchSaveLegacy],
  ] as const) {
    it(`${format}: every dtype, strided views and offsets read back as written`, () => {
      const t = TorchFile.open(save(write(sample())));
      expect(t.format).toBe(format);
      expect(t.names().sort()).toEqual(['a.t', 'a.weight', 'a.window', ...DTYPES.map(([c]) => `d.${c}`)].sort());
      expect([...t.get('a.weight')]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      expect(t.shape('a.t')).toEqual([4, 3]);
      expect([...t.get('a.t')]).toEqual([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
      expect([...t.get('a.window')]).toEqual([5, 6, 9, 10]);
      for (const [cls, dtype, values] of DTYPES) {
        expect(t.dtype(`d.${cls}`)).toBe(dtype);
        // Half and bfloat16 keep 11 and 8 significant bits; everything else is float32-exact.
        const tol = dtype === 'F16' ? 2 ** -11 : dtype === 'BF16' ? 2 ** -8 : 2 ** -24;
        const got = t.get(`d.${cls}`);
        for (let i = 0; i < 4; i++) expect(Math.abs(got[i] - values[i])).toBeLessThanOrEqual(Math.abs(values[i]) * tol);
      }
      // raw() gathers a strided F32 view too, in row-major order.
      expect([...new Float32Array(t.raw('a.t')!.bytes.slice().buffer)]).toEqual([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
      // The object tree stays readable: training metadata next to the state dict.
      expect(t.root).toBeInstanceOf(PyDict);
      const root = (t.root as PyDict).map;
      expect(root.get('global_step')).toBe(470000);
      expect(root.get('lr')).toBe(1e-4);
      expect(root.get('big')).toBe(2 ** 40);
      t.close();
    });
  }

  it('legacy: a pickle longer than the first read is read with a longer prefix', () => {
    const t = TorchFile.open(save(torchSaveLegacy({ notes: 'x'.repeat(5000), w: new PTensor(f32Storage('0', [7, 8]), [2]) })), {
      firstRead: 300,
    });
    expect([...t.get('w')]).toEqual([7, 8]);
    expect(((t.root as PyDict).map.get('notes') as string).length).toBe(5000);
  });

  it('any archive folder name; state dicts at top level; embeddings and hypernetworks flatten to dotted names', () => {
    const s = f32Storage('7', [1, 2, 3, 4, 5, 6]);
    const top = TorchFile.open(save(torchSaveZip(new POrdered(new Map<PVal, PVal>([['w', new PTensor(s, [6])]])), 'my_model')));
    expect(top.names()).toEqual(['w']);
    const emb = { string_to_token: { '*': 265 }, string_to_param: { '*': new PTensor(s, [2, 3]) }, name: 'cat', step: 3000 };
    const e = TorchFile.open(save(torchSaveZip(emb), '.pt'));
    expect(e.names()).toEqual(['string_to_param.*']);
    const hyper = new Map<PVal, PVal>([
      [
        768,
        [
          new POrdered(new Map<PVal, PVal>([['linear.0.weight', new PTensor(s, [3, 2])]])),
          new POrdered(new Map<PVal, PVal>([['linear.0.bias', new PTensor(s, [3], [1], 3)]])),
        ],
      ],
      ['activation_func', 'relu'],
      ['is_layer_norm', false],
    ]);
    const h = TorchFile.open(save(torchSaveLegacy(hyper), '.pt'));
    expect(h.names().sort()).toEqual(['768.0.linear.0.weight', '768.1.linear.0.bias']);
    expect([...h.get('768.1.linear.0.bias')]).toEqual([4, 5, 6]);
    expect((h.root as PyDict).map.get('activation_func')).toBe('relu');
  });

  it('openWeights picks the reader by content; A1111 .pt embeddings load as vectors', () => {
    const vec = Array.from({ length: 2 * 768 }, (_, i) => (i % 17) / 16);
    const file = save(
      torchSaveZip({
        string_to_token: { '*': 265 },
        string_to_param: { '*': new PTensor(f32Storage('0', vec), [2, 768]) },
        name: 'e',
        step: 10,
      }),
      '.pt',
    );
    expect(openWeights(file)).toBeInstanceOf(TorchFile);
    const vs = loadEmbeddingFile(file, 768);
    expect(vs).toHaveLength(2);
    expect([...vs[1]]).toEqual(vec.slice(768).map((v) => Math.fround(v)));
    // Legacy pickles are recognised by content whatever their name.
    const disguised = save(torchSaveLegacy({ w: new PTensor(f32Storage('0', [1]), [1]) }), '.safetensors');
    expect(openWeights(disguised)).toBeInstanceOf(TorchFile);
  });
});

describe('training metadata A1111 lets through', () => {
  it('numpy scalars (dtype + latin-1 bytes via _codecs.encode), a Lightning callback record, sets and torch.Size read as inert values', () => {
    // 1234567 as little-endian int64: bytes 0x87 0xd6 0x12 0..., carried as a latin-1 string as protocol 2 does.
    const bytes = String.fromCharCode(0x87, 0xd6, 0x12, 0, 0, 0, 0, 0);
    const p = new Pickler().op(0x80, 2, 0x7d);
    p.str('step').global('numpy.core.multiarray', 'scalar').op(0x28);
    p.global('numpy', 'dtype').op(0x28).str('i8').op(0x89, 0x88, 0x74, 0x52);
    p.op(0x28).int(3).str('<').op(0x4e, 0x4e, 0x4e).int(-1).int(-1).int(0).op(0x74, 0x62);
    p.global('_codecs', 'encode').op(0x28).str(bytes).str('latin1').op(0x74, 0x52);
    p.op(0x74, 0x52, 0x73);
    p.str('callbacks')
      .global('pytorch_lightning.callbacks.model_checkpoint', 'ModelCheckpoint')
      .op(0x29, 0x81)
      .value({ monitor: null, best_model_score: 0 })
      .op(0x62, 0x73);
    p.str('size').global('torch', 'Size').op(0x28).int(2).int(3).op(0x74, 0x85, 0x52, 0x73);
    p.str('tags').global('builtins', 'set').op(0x5d, 0x28).str('a').str('b').op(0x65, 0x85, 0x52, 0x73);
    p.op(0x2e);
    const t = TorchFile.open(save(zipWithPickle(Uint8Array.from(p.out))));
    const root = (t.root as PyDict).map;
    expect(root.get('step')).toBe(1234567);
    expect(root.get('callbacks')).toMatchObject({ cls: 'pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint' });
    expect(root.get('size')).toMatchObject({ items: [2, 3] });
    expect(root.get('tags')).toMatchObject({ items: ['a', 'b'], frozen: false });
    expect(t.names()).toEqual([]);
  });
});

describe('newer torch spellings and sparse views', () => {
  it('a Parameter through _rebuild_from_type_v2 reads as its tensor; a view of a few elements of a large storage reads without the span', () => {
    const p = new Pickler().op(0x80, 2, 0x7d).str('w');
    p.global('torch._tensor', '_rebuild_from_type_v2').op(0x28);
    p.global('torch._utils', '_rebuild_tensor_v2').global('torch.nn.parameter', 'Parameter');
    p.op(0x28, 0x28).str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(300001).op(0x74, 0x51);
    p.int(0)
      .value(new PTuple([3]))
      .value(new PTuple([150000]))
      .op(0x88)
      .global('collections', 'OrderedDict')
      .op(0x29, 0x52, 0x74);
    p.op(0x7d, 0x74, 0x52, 0x73, 0x2e);
    const data = new Float32Array(300001);
    data[0] = 1;
    data[150000] = 2;
    data[300000] = 3;
    const t = TorchFile.open(
      save(
        storedZip([
          ['archive/data.pkl', Uint8Array.from(p.out)],
          ['archive/data/0', new Uint8Array(data.buffer)],
        ]),
      ),
    );
    expect(t.shape('w')).toEqual([3]);
    expect([...t.get('w')]).toEqual([1, 2, 3]);
  });
});

describe('what the reader refuses', () => {
  const evil = (module: string, name: string, stack = false): Uint8Array => {
    // {'x': module.name('id')} then STOP, as a malicious __reduce__ writes it.
    const g = stack
      ? [0x8c, module.length, ...Buffer.from(module), 0x8c, name.length, ...Buffer.from(name), 0x93]
      : [0x63, ...Buffer.from(`${module}\n${name}\n`)];
    return Uint8Array.from([0x80, 0x02, 0x7d, 0x8c, 1, 0x78, ...g, 0x8c, 2, 0x69, 0x64, 0x85, 0x52, 0x73, 0x2e]);
  };
  for (const [module, name] of [
    ['os', 'system'],
    ['builtins', 'eval'],
    ['subprocess', 'Popen'],
    ['__builtin__', 'getattr'],
    ['posix', 'system'],
    ['torch', 'load'],
  ]) {
    it(`${module}.${name} is refused by name at its opcode, before anything is applied`, () => {
      for (const stack of [false, true]) {
        const file = save(zipWithPickle(evil(module, name, stack)));
        let err: unknown;
        try {
          TorchFile.open(file);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(TorchFileError);
        expect((err as Error).message).toContain(`refused global ${module}.${name}`);
        // The offset is the GLOBAL (or STACK_GLOBAL) opcode's, before REDUCE could be reached.
        const offset = Number(/pickle byte (\d+)/.exec((err as Error).message)?.[1]);
        expect(offset).toBe(stack ? 6 + 2 + module.length + 2 + name.length : 6);
      }
    });
  }

  it('allowed names cannot be misused: a storage class called, REDUCE on a non-global, NEWOBJ of an unlisted class', () => {
    const cases: [number[], RegExp][] = [
      [[0x80, 2, 0x63, ...Buffer.from('torch\nFloatStorage\n'), 0x29, 0x52, 0x2e], /torch\.FloatStorage may be named but not called/],
      [[0x80, 2, 0x4b, 1, 0x29, 0x52, 0x2e], /REDUCE on 1, not an allowed global/],
      [
        [0x80, 2, 0x63, ...Buffer.from('torch._utils\n_rebuild_tensor_v2\n'), 0x29, 0x81, 0x2e],
        /NEWOBJ of torch\._utils\._rebuild_tensor_v2 is not allowed/,
      ],
      [
        [0x80, 2, 0x63, ...Buffer.from('torch._utils\n_rebuild_tensor_v2\n'), 0x4b, 1, 0x85, 0x52, 0x2e],
        /storage must be a persistent storage/,
      ],
      [[0x80, 2, 0x69, ...Buffer.from('os\nsystem\n'), 0x2e], /refused global os\.system/],
      [[0x80, 2, 0x6f, 0x2e], /opcode 0x6f is not read/],
      [[0x80, 2, 0xff, 0x2e], /opcode 0xff is not read/],
      [[0x80, 2, 0x50, ...Buffer.from('0\n'), 0x2e], /PERSID/],
    ];
    for (const [bytes, re] of cases) expect(() => TorchFile.open(save(zipWithPickle(Uint8Array.from(bytes))))).toThrow(re);
  });

  it('huge declared sizes fail against the bytes that are there, without allocating them', () => {
    const big = (op: number, len: number[]): Uint8Array => Uint8Array.from([0x80, 2, op, ...len, 0x2e]);
    for (const [bytes, re] of [
      [big(0x58, [0xff, 0xff, 0xff, 0xff]), /truncated: 4294967295 bytes wanted/],
      [big(0x8e, [0, 0, 0, 0, 0, 0, 0, 0x7f]), /truncated/],
      [big(0x8d, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), /truncated/],
      [big(0x8b, [0xff, 0xff, 0xff, 0x7f]), /integer is beyond any weight file/],
    ] as const) {
      expect(() => TorchFile.open(save(zipWithPickle(bytes)))).toThrow(re);
    }
    // A storage claiming more elements than its record holds, and a view past its storage.
    const s = f32Storage('0', [1, 2, 3]);
    const lying = new PStorage('0', 'FloatStorage', s.data, 2 ** 40);
    expect(() => TorchFile.open(save(torchSaveZip({ w: new PTensor(lying, [2 ** 20, 2 ** 20]) })))).toThrow(
      /declares 1099511627776 F32 elements but its record holds 12 bytes/,
    );
    expect(() => TorchFile.open(save(torchSaveZip({ w: new PTensor(s, [2, 2]) })))).toThrow(/reaches element 3 of a storage of 3/);
    expect(() => TorchFile.open(save(torchSaveLegacy({ w: new PTensor(lying, [1]) })))).toThrow(/runs past the end|holds/);
    expect(() => TorchFile.open(save(torchSaveZip({ w: new PTensor(s, [3], [-1], 2) })))).toThrow(/negative/);
  });

  it('truncations of a zip and of a legacy file fail with a TorchFileError', () => {
    for (const bytes of [torchSaveZip(sample()), torchSaveLegacy(sample())]) {
      const f = path.join(dir, 'trunc.ckpt');
      let opened = 0;
      // Every cut in the first 256 bytes (headers, the pickle start), then every 11th: the file is a few KB.
      for (let len = 0; len < bytes.length; len += len < 256 ? 1 : 11) {
        fs.writeFileSync(f, bytes.subarray(0, len));
        try {
          TorchFile.open(f).close();
          opened++;
        } catch (e) {
          expect(e).toBeInstanceOf(TorchFileError);
        }
      }
      // Only a zip cut inside trailing padding could still open; nothing here does.
      expect(opened).toBe(0);
    }
  });

  it('deep nesting (10^5 MARKs, or a 10^5-deep chain built through the memo) and memo bombs fail fast', () => {
    const t0 = Date.now();
    const marks = Uint8Array.from([0x80, 2, ...new Array<number>(100_000).fill(0x28), 0x2e]);
    expect(() => TorchFile.open(save(zipWithPickle(marks)))).toThrow(/MARKs nested deeper than 1000/);
    // [] q0, then 10^5 times: [] h0 a q0 (L = [L_prev]) with a constant stack: the flattener bounds depth.
    const chain: number[] = [0x80, 2, 0x5d, 0x71, 0];
    for (let i = 0; i < 100_000; i++) chain.push(0x5d, 0x68, 0, 0x61, 0x71, 0);
    chain.push(0x2e);
    expect(() => TorchFile.open(save(zipWithPickle(Uint8Array.from(chain))))).toThrow(/nested deeper than 64 containers/);
    // A list of itself, and 2^60 paths through a doubled list: each container is visited once.
    expect(TorchFile.open(save(zipWithPickle(Uint8Array.from([0x80, 2, 0x5d, 0x71, 0, 0x68, 0, 0x61, 0x2e])))).names()).toEqual([]);
    const doubled: number[] = [0x80, 2, 0x5d, 0x71, 0];
    for (let i = 0; i < 60; i++) doubled.push(0x5d, 0x28, 0x68, 0, 0x68, 0, 0x65, 0x71, 0);
    doubled.push(0x2e);
    expect(TorchFile.open(save(zipWithPickle(Uint8Array.from(doubled)))).names()).toEqual([]);
    // GET of an unset memo slot; memo slots beyond the bound (LONG_BINPUT of many distinct ids).
    expect(() => TorchFile.open(save(zipWithPickle(Uint8Array.from([0x80, 2, 0x6a, 9, 9, 9, 9, 0x2e]))))).toThrow(
      /memo 151587081 is not set/,
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});

/** A torch zip archive whose data.pkl is `pkl` (no storages). */
function zipWithPickle(pkl: Uint8Array): Uint8Array {
  return storedZip([['archive/data.pkl', pkl]]);
}
