import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../onnx/graph.ts';
import { sessionOptions } from '../../onnx/runtime.ts';
import type { LoraPatch } from '../lora/types.ts';

/**
 * W + f·up·down in one ONNX Runtime call, reading W as the checkpoint stores it (float16 or float32):
 * the plain-LoRA case, which is nearly every patch users apply. Converting, multiplying and adding in
 * native code keeps a full SD1.5 LoRA from costing several passes of JavaScript over 3 GB.
 */

type Stored = { dtype: 'F32' | 'F16'; bytes: Uint8Array } | Float32Array;

const sessions = new Map<string, Promise<ort.InferenceSession>>();

function session(wType: 'float16' | 'float32'): Promise<ort.InferenceSession> {
  let s = sessions.get(wType);
  if (!s) {
    const g = new GraphBuilder(`lora_add_${wType}`);
    const w = g.input('w', wType, ['m', 'n']);
    const a = g.input('a', 'float32', ['m', 'k']);
    const b = g.input('b', 'float32', ['k', 'n']);
    const f = g.input('f', 'float32', [1]);
    const w32 = wType === 'float16' ? g.op1('Cast', [w], { to: 1 }) : w;
    g.output(g.op1('Add', [w32, g.op1('Mul', [g.op1('MatMul', [a, b]), f])]), 'out', 'float32', ['m', 'n']);
    const opts = sessionOptions({ provider: 'cpu', dtype: 'float32', reason: 'LoRA patching' });
    // Every weight has another shape, so a memory pattern planned for one would not be reused.
    s = ort.InferenceSession.create(g.toBuffer(), { ...opts, enableMemPattern: false });
    s.catch(() => sessions.delete(wType));
    sessions.set(wType, s);
  }
  return s;
}

/** Whether `patch` is a plain LoRA (no Tucker core, no DoRA) that `loraAddNative` computes exactly. */
export function isPlainLora(patch: { kind: string }): patch is LoraPatch {
  const p = patch as LoraPatch;
  return p.kind === 'lora' && !p.mid && !p.doraScale;
}

/** `w + strength·(alpha/rank)·up·down` for a weight of `shape` (convs flattened to [out, in·kh·kw]). */
export async function loraAddNative(w: Stored, shape: readonly number[], patch: LoraPatch, strength: number): Promise<Float32Array> {
  const m = shape[0];
  const n = shape.reduce((x, y) => x * y, 1) / m;
  const k = patch.down.shape[0];
  const up = patch.up.read();
  const down = patch.down.read();
  if (up.length !== m * k || down.length !== k * n) {
    throw new Error(`${patch.target} (from '${patch.stem}'): up [${patch.up.shape.join(', ')}] · down [${patch.down.shape.join(', ')}] does not make a [${shape.join(', ')}] weight`);
  }
  const f = strength * (patch.alpha !== undefined ? patch.alpha / k : 1);
  const isF16 = !(w instanceof Float32Array) && w.dtype === 'F16';
  // Typed views need aligned offsets; a pooled Buffer may not give one.
  if (!(w instanceof Float32Array) && w.bytes.byteOffset % (isF16 ? 2 : 4) !== 0) w = { dtype: w.dtype, bytes: w.bytes.slice() };
  const wTensor =
    w instanceof Float32Array
      ? new ort.Tensor('float32', w, [m, n])
      : isF16
        ? new ort.Tensor('float16', new Uint16Array(w.bytes.buffer, w.bytes.byteOffset, m * n), [m, n])
        : new ort.Tensor('float32', new Float32Array(w.bytes.buffer, w.bytes.byteOffset, m * n), [m, n]);
  const s = await session(isF16 ? 'float16' : 'float32');
  const out = await s.run({ w: wTensor, a: new ort.Tensor('float32', up, [m, k]), b: new ort.Tensor('float32', down, [k, n]), f: new ort.Tensor('float32', new Float32Array([f]), [1]) });
  const data = out.out?.data;
  if (!(data instanceof Float32Array)) throw new Error('LoRA patching: ONNX Runtime returned no float32 result');
  return data;
}
