import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { GraphBuilder } from './graph.ts';
import { NCHWC_DOMAIN } from './nchwc.ts';

const { onnx } = onnxProto;

let probed: Promise<number> | undefined;

/** `WEFT_NCHWC=0` leaves ORT's NCHWc layout to ORT (first builds then save ORT's optimised graph, as before). */
export function nchwcFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.WEFT_NCHWC !== '0';
}

/**
 * The channel block of MLAS's NCHWc kernels on this CPU (16 with AVX-512, 8 with AVX2; 0 where ORT
 * has none), asked of ORT itself: its layout pass pads a one-channel conv's filter up to one block,
 * so the saved graph of a 1×1 conv with one output channel says the block. Once per process (~20 ms).
 */
export function nchwcBlockSize(): Promise<number> {
  probed ??= probe().catch(() => 0);
  return probed;
}

async function probe(): Promise<number> {
  const g = new GraphBuilder('nchwc-probe');
  const x = g.input('x', 'float32', ['n', 32, 'h', 'w']);
  const y = g.op1('Conv', [x, g.floats('w', [1, 32, 1, 1], () => new Float32Array(32).fill(0.5))], { kernel_shape: [1, 1] });
  g.output(y, 'y', 'float32', ['n', 1, 'h', 'w']);
  const dir = mkdtempSync(join(tmpdir(), 'weft-nchwc-probe-'));
  try {
    const saved = join(dir, 'optimized.onnx');
    const s = await ort.InferenceSession.create(g.toBuffer(), {
      graphOptimizationLevel: 'all',
      executionProviders: ['cpu'],
      optimizedModelFilePath: saved,
      // Its warning that the saved graph is for this CPU only is the point here.
      logSeverityLevel: 3,
    });
    await s.release();
    const graph = onnx.ModelProto.decode(readFileSync(saved)).graph;
    const conv = graph?.node?.find((n) => n.domain === NCHWC_DOMAIN && n.opType === 'Conv');
    const filter = graph?.initializer?.find((t) => t.name === conv?.input?.[1]);
    const block = Number(filter?.dims?.[0] ?? 0);
    return block >= 2 && 32 % block === 0 ? block : 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
