import { existsSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { f16ToF32 } from '../../engine/core/dtype.ts';
import { exactHalf } from '../../engine/onnx/exact-half.ts';
import { chooseScratch, expandHalfWeights } from '../../engine/onnx/expand-half.ts';
import { GraphBuilder, storedLayout } from '../../engine/onnx/graph.ts';

describe('exactHalf', () => {
  it('takes every float16 value (subnormals, ±0, ±inf) back to the same half, and refuses a value a half cannot hold', () => {
    const all = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) all[h] = f16ToF32(h);
    const nonNaN = all.filter((v) => !Number.isNaN(v));
    const h = exactHalf(nonNaN)!;
    expect(h).toBeDefined();
    const back = Float32Array.from(h, (x) => f16ToF32(x));
    expect(Buffer.compare(Buffer.from(back.buffer), Buffer.from(nonNaN.buffer))).toBe(0);
    for (const v of [0.1, 1 + 2 ** -11, 2 ** -25, 65520, 1e-8]) expect(exactHalf(new Float32Array([1, v]))).toBeUndefined();
  });
});

/** A graph y = x·w + b over `w` values, written with `opts`; returns its folder. */
function write(w: Float32Array, opts: Parameters<GraphBuilder['writeTo']>[1]): string {
  const g = new GraphBuilder('t');
  const x = g.input('x', 'float32', [1, w.length]);
  const wi = g.floats('w', [w.length, 1], () => w, 'w');
  g.output(g.op1('MatMul', [x, wi]), 'y', 'float32', [1, 1]);
  const dir = join(mkdtempSync(join(tmpdir(), 'weft-half-')), 'm');
  g.writeTo(dir, opts);
  return dir;
}

async function run(file: string, x: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(file);
  const out = await s.run({ x: new ort.Tensor('float32', x, [1, x.length]) });
  await s.release();
  return out.y.data as Float32Array;
}

describe('GraphBuilder.writeTo storage', () => {
  const n = 4096;
  const halves = new Float32Array(n).map((_, i) => f16ToF32((i * 7919) % 0x7bff));
  const x = new Float32Array(n).map((_, i) => Math.sin(i) * 1e-3);

  it('stores exact-float16 weights in 16 bits behind a Cast, with the same result as float32 storage', async () => {
    const wide = write(halves, {});
    const half = write(halves, { half: true });
    expect(statSync(join(wide, 'weights.bin')).size).toBe(4 * n);
    expect(statSync(join(half, 'weights.bin')).size).toBe(2 * n);
    expect(storedLayout(join(half, 'model.onnx')).get('w')).toEqual({ location: 'weights.bin', offset: 0, length: 2 * n, half: true });
    const want = await run(join(wide, 'model.onnx'), x);
    expect(await run(join(half, 'model.onnx'), x)).toEqual(want);
    // Expanded before ORT loads it (what sessions do): float32 again, no Cast left.
    const e = expandHalfWeights(join(half, 'model.onnx'))!;
    expect(e.bytes).toBe(4 * n);
    expect(Buffer.compare(Buffer.from(await run(e.file, x)), Buffer.from(want))).toBe(0);
    e.dispose();
    // Values a half cannot hold stay in 32 bits.
    const rough = write(
      halves.map((v) => v + 1e-4),
      { half: true },
    );
    expect(statSync(join(rough, 'weights.bin')).size).toBe(4 * n);
  });

  it('points a weight equal to the checkpoint tensor at the checkpoint through a hard link, and stores the rest', async () => {
    const src = join(mkdtempSync(join(tmpdir(), 'weft-src-')), 'ckpt.bin');
    const bytes = new Uint8Array(new Uint16Array(exactHalf(halves)!).buffer);
    writeFileSync(src, Buffer.concat([Buffer.alloc(100), Buffer.from(bytes)]));
    const stored = { file: src, fileKey: 'abc123', offset: 100, length: bytes.length, dtype: 'F16' as const };
    const dir = write(halves, { half: true, locate: (k) => (k === 'w' ? stored : undefined) });
    const link = readdirSync(dir).find((f) => f.startsWith('src-'))!;
    expect(statSync(join(dir, link)).ino).toBe(statSync(src).ino);
    expect(storedLayout(join(dir, 'model.onnx')).get('w')).toEqual({ location: link, offset: 100, length: 2 * n, half: true });
    expect(statSync(join(dir, 'weights.bin')).size).toBe(0);
    expect(await run(join(dir, 'model.onnx'), x)).toEqual(await run(join(write(halves, {}), 'model.onnx'), x));
    // Bytes that differ from the checkpoint's are stored, not linked.
    const other = write(
      halves.map((v) => -v),
      { half: true, locate: () => stored },
    );
    expect(readdirSync(other).some((f) => f.startsWith('src-'))).toBe(false);
    expect(statSync(join(other, 'weights.bin')).size).toBe(2 * n);
  });
});

describe('expandHalfWeights scratch folders', () => {
  it('removes the scratch folder of a process that died before removing it, and keeps a live one', () => {
    const root = mkdtempSync(join(tmpdir(), 'weft-scratch-'));
    const dead = join(root, 'weft-expand-999999999-abc');
    const live = join(root, `weft-expand-${process.pid}-def`);
    for (const d of [dead, live]) mkdirSync(d);
    const dir = write(new Float32Array([1, 2, 0.5, -4].flatMap((v) => Array(256).fill(v))), { half: true });
    const e = expandHalfWeights(join(dir, 'model.onnx'), root)!;
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(e.file)).toBe(true);
    e.dispose();
    expect(existsSync(e.file)).toBe(false);
  });

  it('expands in /dev/shm only where it has room and the memory holds the weights twice (the copy and ORT’s), else on disk', () => {
    const GB = 2 ** 30;
    // A full-size SD1.5 UNet (3.4 GB) on the 24 GB machine: in memory.
    expect(chooseScratch(3.4 * GB, { shmFree: 11.7 * GB, memAvailable: 22 * GB })).toBe('shm');
    // A full-size SDXL UNet (9.8 GB): /dev/shm has room, but ORT's copy beside it would not fit.
    expect(chooseScratch(9.8 * GB, { shmFree: 11.7 * GB, memAvailable: 22 * GB })).toBe('tmp');
    expect(chooseScratch(3.4 * GB, { shmFree: 3.5 * GB, memAvailable: 22 * GB })).toBe('tmp');
    expect(chooseScratch(1 * GB, { shmFree: undefined, memAvailable: 22 * GB })).toBe('tmp');
  });
});
