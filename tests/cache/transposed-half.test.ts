import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { f16ToF32 } from '../../engine/core/dtype.ts';
import type { WeightSource } from '../../engine/core/weights.ts';
import { SafetensorsFile, writeSafetensors } from '../../engine/formats/safetensors.ts';
import { expandHalfWeights } from '../../engine/onnx/expand-half.ts';
import { GraphBuilder, storedLayout, type WriteOptions } from '../../engine/onnx/graph.ts';
import { Net } from '../../engine/onnx/nn.ts';

const ROWS = 240;
const COLS = 264;

/** Every float16 bit pattern that is not a NaN (±0, subnormals, normals, ±inf), shuffled, then repeated to fill [ROWS, COLS]. */
function everyHalf(): Uint16Array {
  const all: number[] = [];
  for (let h = 0; h < 65536; h++) if (!((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0)) all.push(h);
  for (let i = all.length - 1, s = 12345; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [all[i], all[j]] = [all[j], all[i]];
  }
  return Uint16Array.from({ length: ROWS * COLS }, (_, i) => all[i % all.length]);
}

/** A float16 checkpoint with one linear layer `l` of [ROWS, COLS] bits `w` (torch layout: out × in). */
function checkpoint(w: Uint16Array): SafetensorsFile {
  const file = join(mkdtempSync(join(tmpdir(), 'weft-transposed-')), 'ck.safetensors');
  writeSafetensors(file, [{ name: 'l.weight', dtype: 'F16', shape: [ROWS, COLS], data: Float32Array.from(w, (h) => f16ToF32(h)) }]);
  return SafetensorsFile.open(file);
}

/** y = x·Wᵀ through Net.linear, written with `opts`; returns the model file. */
function write(ws: WeightSource, opts: WriteOptions): string {
  const g = new GraphBuilder('t');
  const net = new Net(g, ws, { dtype: 'float32', fusedAttention: false });
  g.output(net.linear('l', g.input('x', 'float32', [1, COLS])), 'y', 'float32', [1, ROWS]);
  const dir = join(mkdtempSync(join(tmpdir(), 'weft-transposed-')), 'm');
  g.writeTo(dir, opts);
  return join(dir, 'model.onnx');
}

/** The stored bytes of the transposed weight and whether they are 16-bit. */
function storedWeight(model: string): { half: boolean; bytes: Buffer } {
  const p = storedLayout(model).get('l.weight.T');
  if (!p || p === 'inline') throw new Error('expected an external weight');
  return { half: p.half, bytes: readFileSync(join(model, '..', p.location)).subarray(p.offset, p.offset + p.length) };
}

async function run(model: string): Promise<Buffer> {
  const x = expandHalfWeights(model);
  try {
    const s = await ort.InferenceSession.create(x?.file ?? model, { logSeverityLevel: 3 });
    const input = new Float32Array(COLS).map((_, i) => Math.sin(i) * 1e-3);
    const y = (await s.run({ x: new ort.Tensor('float32', input, [1, COLS]) })).y.data as Float32Array;
    await s.release();
    return Buffer.from(y.buffer, y.byteOffset, y.byteLength);
  } finally {
    x?.dispose();
  }
}

describe('a transposed float16 checkpoint weight in the compact cache', () => {
  it('is transposed in 16 bits without widening the values: the same bits as the float32 path, for every float16 that is not a NaN', async () => {
    const w = everyHalf();
    const sf = checkpoint(w);
    // The fast path never asks for the float32 values; the float32 path (no file to transpose from) does.
    const noValues: WeightSource = { ...sourceOf(sf), get: () => expect.fail('the float32 values were produced') };
    const fast = write(noValues, { half: true, locate: (k) => sf.locate(k) });
    const slow = write(sourceOf(sf), { half: true, locate: () => undefined });
    const a = storedWeight(fast);
    const b = storedWeight(slow);
    expect([a.half, b.half]).toEqual([true, true]);
    expect(Buffer.compare(a.bytes, b.bytes)).toBe(0);
    // Checked against the definition too: element [j, i] of the stored matrix is the checkpoint's [i, j].
    const got = new Uint16Array(a.bytes.buffer.slice(a.bytes.byteOffset, a.bytes.byteOffset + a.bytes.byteLength));
    let wrong = 0;
    for (let i = 0; i < ROWS; i++) for (let j = 0; j < COLS; j++) if (got[j * ROWS + i] !== w[i * COLS + j]) wrong++;
    expect(wrong).toBe(0);
    const float32 = write(sourceOf(sf), {});
    expect(Buffer.compare(await run(fast), await run(float32))).toBe(0);
  });

  it('falls back to the float32 path for a weight holding a NaN', () => {
    const w = everyHalf();
    w[7] = 0x7e01;
    const sf = checkpoint(w);
    const fast = write(sourceOf(sf), { half: true, locate: (k) => sf.locate(k) });
    const slow = write(sourceOf(sf), { half: true, locate: () => undefined });
    expect(Buffer.compare(storedWeight(fast).bytes, storedWeight(slow).bytes)).toBe(0);
  });
});

/** The file's tensors as a plain WeightSource (so a test can replace one method). */
function sourceOf(sf: SafetensorsFile): WeightSource {
  return { has: (n) => sf.has(n), names: () => sf.names(), shape: (n) => sf.shape(n), get: (n) => sf.get(n), locate: (n) => sf.locate(n) };
}
