import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../onnx/graph.ts';
import { sessionOptions } from '../../onnx/runtime.ts';
import type { MatMul } from './tensor-ops.ts';

/**
 * Matrix products on ONNX Runtime's CPU kernels (multi-threaded, vectorised): a rank-32 LoRA on an
 * SD1.5 feed-forward weight is a 1280×32 · 32×11520 product, which ORT does several times faster
 * than plain TypeScript. One session of a single MatMul with symbolic dimensions serves every shape.
 */

let session: Promise<ort.InferenceSession> | undefined;

function matMulModel(): Uint8Array {
  const g = new GraphBuilder('lora_matmul');
  const a = g.input('a', 'float32', ['m', 'k']);
  const b = g.input('b', 'float32', ['k', 'n']);
  g.output(g.op1('MatMul', [a, b]), 'c', 'float32', ['m', 'n']);
  return g.toBuffer();
}

function getSession(): Promise<ort.InferenceSession> {
  if (!session) {
    const opts = sessionOptions({ provider: 'cpu', dtype: 'float32', reason: 'LoRA patch products' });
    // Shapes change with every weight, so a memory pattern planned for one would not be reused.
    session = ort.InferenceSession.create(matMulModel(), { ...opts, enableMemPattern: false });
    // A failed start is not cached: the next call tries again.
    session.catch(() => (session = undefined));
  }
  return session;
}

export function ortMatMul(): MatMul {
  return async (a, m, k, b, n) => {
    if (a.length !== m * k) throw new Error(`matmul: a has ${a.length} values, [${m}, ${k}] needs ${m * k}`);
    if (b.length !== k * n) throw new Error(`matmul: b has ${b.length} values, [${k}, ${n}] needs ${k * n}`);
    if (m === 0 || n === 0 || k === 0) return new Float32Array(m * n);
    const s = await getSession();
    const out = await s.run({ a: new ort.Tensor('float32', a, [m, k]), b: new ort.Tensor('float32', b, [k, n]) });
    const c = out.c;
    if (!c || !(c.data instanceof Float32Array)) throw new Error('matmul: ONNX Runtime returned no float32 result');
    return c.data;
  };
}
