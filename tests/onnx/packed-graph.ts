import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { f16ToF32 } from '../../engine/core/dtype.ts';
import { GraphBuilder } from '../../engine/onnx/graph.ts';

/** Exact float16 values (so the compact storage keeps them in 16 bits), varied enough that any reordering shows. */
const halves = (n: number, seed: number): Float32Array =>
  new Float32Array(n).map((_, i) => f16ToF32((i * 7919 + seed * 104729) % 0x3bff) * (i % 3 === 0 ? -1 : 1));

/**
 * A conv (reordered by ORT's layout pass), a MatMul whose B has 300 rows (two of MLAS's 256-row
 * blocks) and 40 columns (a zero-padded last panel), and a Gemm: written with `half` storage or not.
 */
export function build(dir: string, half: boolean): string {
  const g = new GraphBuilder('packed');
  const x = g.input('x', 'float32', [1, 16, 4, 4]);
  const c = g.op1(
    'Conv',
    [x, g.floats('conv.weight', [32, 16, 3, 3], () => halves(32 * 16 * 9, 1)), g.floats('conv.bias', [32], () => halves(32, 2))],
    {
      kernel_shape: [3, 3],
      pads: [1, 1, 1, 1],
    },
  );
  const flat = g.op1('Reshape', [c, g.ints([1, 512])]);
  const m = g.op1('MatMul', [
    g.op1('Slice', [flat, g.ints([0]), g.ints([300]), g.ints([1])]),
    g.floats('proj.weight.T', [300, 40], () => halves(300 * 40, 3)),
  ]);
  const y = g.op1('Gemm', [
    m,
    g.floats('out.weight.T', [40, 24], () => halves(40 * 24, 4)),
    g.floats('out.bias', [24], () => halves(24, 5)),
  ]);
  g.output(y, 'y', 'float32', [1, 24]);
  g.writeTo(dir, half ? { half: true } : {});
  return join(dir, 'model.onnx');
}

export const input = new ort.Tensor(
  'float32',
  new Float32Array(256).map((_, i) => Math.cos(i * 0.31)),
  [1, 16, 4, 4],
);

export async function outputOf(s: ort.InferenceSession): Promise<Buffer> {
  const r = await s.run({ x: input });
  await s.release();
  const y = r.y.data as Float32Array;
  return Buffer.from(y.buffer, y.byteOffset, y.byteLength);
}

export const cpu = { provider: 'cpu' as const, dtype: 'float32' as const, reason: 'test' };

/** A logger that collects its lines (warnings and errors marked), for tests that check what a load logged. */
export function collectingLog(): {
  lines: string[];
  log: { info: (m: string) => void; warn: (m: string) => void; error: (m: string) => void };
} {
  const lines: string[] = [];
  return {
    lines,
    log: {
      info: (m) => lines.push(m),
      warn: (m) => lines.push(`WARN ${m}`),
      error: (m) => lines.push(`ERROR ${m}`),
    },
  };
}
