import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { f16ToF32 } from '../../engine/core/dtype.ts';
import type { StoredTensor } from '../../engine/core/weights.ts';
import { exactHalf, halfBits } from '../../engine/onnx/exact-half.ts';
import { expandHalfWeights } from '../../engine/onnx/expand-half.ts';
import { GraphBuilder, storedLayout, type WriteOptions } from '../../engine/onnx/graph.ts';

/** Float32 values that are all float16s, as a checkpoint's float16 weights read back. */
function halves(n: number, seed: number): Float32Array {
  return new Float32Array(n).map((_, i) => f16ToF32(((i + seed) * 7919) % 0x7bff));
}

/** A checkpoint-like file: 128 bytes of header, then `bytes`. */
function checkpoint(dir: string, bytes: Uint8Array, dtype: 'F16' | 'F32'): StoredTensor {
  const file = join(dir, 'ckpt.safetensors');
  writeFileSync(file, Buffer.concat([Buffer.alloc(128, 7), Buffer.from(bytes)]));
  return { file, fileKey: `key-${dtype}-${bytes.length}`, offset: 128, length: bytes.length, dtype };
}

/** y = x·w with `w` declared as an untransformed checkpoint tensor (`direct`), written with `opts`. */
function write(n: number, bytes: () => Float32Array, opts: WriteOptions, root = tmpdir()): string {
  const g = new GraphBuilder('t');
  const x = g.input('x', 'float32', [1, n]);
  const w = g.floats('w', [n, 1], bytes, 'w', true);
  g.output(g.op1('MatMul', [x, w]), 'y', 'float32', [1, 1]);
  const dir = join(mkdtempSync(join(root, 'weft-direct-')), 'm');
  g.writeTo(dir, opts);
  return dir;
}

async function run(file: string, x: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(file);
  const out = await s.run({ x: new ort.Tensor('float32', x, [1, x.length]) });
  await s.release();
  return out.y.data as Float32Array;
}

const never = (): Float32Array => {
  throw new Error('the bytes of a linked checkpoint tensor were produced');
};

describe('checkpoint tensors stored as the checkpoint holds them', () => {
  const n = 4096;
  const w = halves(n, 3);
  const x = new Float32Array(n).map((_, i) => Math.sin(i) * 1e-3);

  it('links an untransformed float16 tensor behind a Cast without producing its bytes; same result as float32 storage', async () => {
    const stored = checkpoint(mkdtempSync(join(tmpdir(), 'weft-ck-')), new Uint8Array(exactHalf(w)!.buffer), 'F16');
    const dir = write(n, never, { half: true, locate: (k) => (k === 'w' ? stored : undefined) });
    const link = readdirSync(dir).find((f) => f.startsWith('src-'))!;
    expect(statSync(join(dir, link)).ino).toBe(statSync(stored.file).ino);
    expect(storedLayout(join(dir, 'model.onnx')).get('w')).toEqual({ location: link, offset: 128, length: 2 * n, half: true });
    expect(statSync(join(dir, 'weights.bin')).size).toBe(0);
    const want = await run(join(write(n, () => w, {}), 'model.onnx'), x);
    expect(Buffer.compare(Buffer.from((await run(join(dir, 'model.onnx'), x)).buffer), Buffer.from(want.buffer))).toBe(0);
  });

  it('links a float32 checkpoint tensor as it is (no Cast), and refuses a tensor whose size does not match the file', () => {
    const root = mkdtempSync(join(tmpdir(), 'weft-ck-'));
    const stored = checkpoint(root, new Uint8Array(w.buffer.slice(0)), 'F32');
    const dir = write(n, never, { half: true, locate: () => stored });
    expect(storedLayout(join(dir, 'model.onnx')).get('w')).toMatchObject({ offset: 128, length: 4 * n, half: false });
    const short = { ...stored, length: stored.length - 4 };
    expect(() => write(n, never, { half: true, locate: () => short })).toThrow(/'w' needs 16384 bytes as float32; .*ckpt\.safetensors holds 16380 of F32/);
  });

  it('stores the tensor in 16 bits when no hard link can be made (the checkpoint on another file system)', async () => {
    // /dev/shm is a tmpfs: a link from the temp folder's file system into it fails with EXDEV.
    const shm = mkdtempSync('/dev/shm/weft-ck-');
    const stored = checkpoint(shm, new Uint8Array(exactHalf(w)!.buffer), 'F16');
    if (statSync(shm).dev === statSync(tmpdir()).dev) return; // same file system here: nothing to test
    let dir: string;
    try {
      dir = write(n, () => w, { half: true, locate: () => stored });
    } finally {
      rmSync(shm, { recursive: true, force: true });
    }
    expect(readdirSync(dir).some((f) => f.startsWith('src-'))).toBe(false);
    expect(storedLayout(join(dir, 'model.onnx')).get('w')).toEqual({ location: 'weights.bin', offset: 0, length: 2 * n, half: true });
    const want = await run(join(write(n, () => w, {}), 'model.onnx'), x);
    expect(Buffer.compare(Buffer.from((await run(join(dir, 'model.onnx'), x)).buffer), Buffer.from(want.buffer))).toBe(0);
  });
});

describe('expanding 16-bit cached weights for ORT', () => {
  it('widens tensors larger than its read buffer exactly (every value ORT`s Cast would give) and copies 32-bit ones byte for byte', () => {
    // 3 M float16 values (6 MB, read in pieces of 4 MB) and a 2.5 M float32 tensor (10 MB, pieces of 8 MB).
    const big = halves(3 << 20, 11);
    const wide = new Float32Array(2.5 * 2 ** 20).map((_, i) => Math.cos(i) * 0.1);
    const g = new GraphBuilder('t');
    const x = g.input('x', 'float32', [1]);
    const a = g.floats('a', [big.length], () => big);
    const b = g.floats('b', [wide.length], () => wide);
    g.output(g.op1('Concat', [g.op1('Mul', [a, x]), g.op1('Mul', [b, x])], { axis: 0 }), 'y', 'float32', [big.length + wide.length]);
    const dir = join(mkdtempSync(join(tmpdir(), 'weft-expand-')), 'm');
    g.writeTo(dir, { half: true });
    const layout = storedLayout(join(dir, 'model.onnx'));
    expect([layout.get('a'), layout.get('b')].map((p) => p !== 'inline' && p?.half)).toEqual([true, false]);
    const e = expandHalfWeights(join(dir, 'model.onnx'))!;
    try {
      const data = readFileSync(join(e.file, '..', 'weights.bin'));
      const places = storedLayout(e.file);
      const pa = places.get('a');
      const pb = places.get('b');
      if (pa === 'inline' || pb === 'inline' || !pa || !pb) throw new Error('expected external tensors');
      expect([pa.half, pb.half, pa.length, pb.length]).toEqual([false, false, 4 * big.length, 4 * wide.length]);
      const got = new Uint32Array(data.buffer.slice(data.byteOffset + pa.offset, data.byteOffset + pa.offset + pa.length));
      const h = exactHalf(big)!;
      let bad = 0;
      for (let i = 0; i < h.length; i++) if (got[i] !== halfBits(h[i])) bad++;
      expect(bad).toBe(0);
      expect(Buffer.compare(data.subarray(pb.offset, pb.offset + pb.length), Buffer.from(wide.buffer))).toBe(0);
    } finally {
      e.dispose();
    }
  });
});
