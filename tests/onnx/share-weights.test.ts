import { copyFileSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../engine/onnx/graph.ts';
import { shareOptimizedWeights } from '../../engine/onnx/share-weights.ts';

const { onnx } = onnxProto;

/** A conv (which ORT's CPU layout pass reorders) and a linear layer (which it leaves alone). */
function build(dir: string): void {
  const g = new GraphBuilder('share');
  const x = g.input('x', 'float32', [1, 16, 8, 8]);
  const rnd = (n: number, seed: number) => new Float32Array(n).map((_, i) => Math.sin(i * 0.7 + seed) * 0.2);
  const w = g.floats('conv.weight', [32, 16, 3, 3], () => rnd(32 * 16 * 9, 1));
  const b = g.floats('conv.bias', [32], () => rnd(32, 2));
  const c = g.op1('Conv', [x, w, b], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  const m = g.op1('MatMul', [c, g.floats('proj.weight.T', [8, 64], () => rnd(8 * 64, 3))]);
  g.output(m, 'y', 'float32', [1, 32, 8, 64]);
  g.writeTo(dir);
}

const externals = (file: string) =>
  onnx.ModelProto.decode(readFileSync(file)).graph!.initializer!.flatMap((t) => {
    const loc = t.externalData?.find((e) => e.key === 'location')?.value;
    return loc ? [{ name: t.name!, loc }] : [];
  });

const run = async (file: string, level: 'disabled' | 'all', save?: string) => {
  const s = await ort.InferenceSession.create(file, {
    graphOptimizationLevel: level,
    logSeverityLevel: 3,
    ...(save
      ? {
          optimizedModelFilePath: save,
          extra: {
            session: {
              optimized_model_external_initializers_file_name: 'optimized-1.bin',
              optimized_model_external_initializers_min_size_in_bytes: '1024',
            },
          },
        }
      : {}),
  });
  const x = new Float32Array(16 * 64).map((_, i) => Math.cos(i * 0.3));
  const out = (await s.run({ x: new ort.Tensor('float32', x, [1, 16, 8, 8]) })).y.data as Float32Array;
  await s.release();
  return out;
};

describe('shareOptimizedWeights', () => {
  it("points ORT's saved graph at weights.bin for every tensor it left unchanged; the model runs the same", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-share-'));
    build(join(dir, 'b'));
    const d = join(dir, 'b');
    const ref = await run(join(d, 'model.onnx'), 'all', join(d, 'optimized.onnx'));
    expect(externals(join(d, 'optimized.onnx')).every((e) => e.loc === 'optimized-1.bin')).toBe(true);
    const dup = statSync(join(d, 'optimized-1.bin')).size;

    const saved = shareOptimizedWeights(d);
    const after = externals(join(d, 'optimized.onnx'));
    // The linear weight is unchanged by ORT, so it is now read from the build's file.
    expect(after.find((e) => e.name === 'proj.weight.T')?.loc).toBe('weights.bin');
    expect(saved).toBeGreaterThanOrEqual(8 * 64 * 4);
    expect(readdirSync(d)).not.toContain('optimized-1.bin');
    // Whatever ORT did change (the reordered conv weight, on CPUs with NCHWc) stays in a file of its own.
    const own = after.filter((e) => e.loc !== 'weights.bin');
    for (const e of own) expect(e.loc).toMatch(/^optimized-shared-.*\.bin$/);
    const sharedFiles = readdirSync(d).filter((f) => f.startsWith('optimized-shared-'));
    expect(sharedFiles.reduce((s, f) => s + statSync(join(d, f)).size, 0) + saved).toBeGreaterThanOrEqual(dup - 64 * own.length);
    expect(Array.from(await run(join(d, 'optimized.onnx'), 'disabled'))).toEqual(Array.from(ref));
    // Already shared: nothing to do.
    expect(shareOptimizedWeights(d)).toBe(0);
  });

  it('keeps a tensor whose bytes differ from the build in its own file, even under the same name and shape', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-share-'));
    const d = join(dir, 'b');
    build(d);
    // An "optimised" model that is the build itself with its weights in a copy, one value changed.
    const m = onnx.ModelProto.decode(readFileSync(join(d, 'model.onnx')));
    for (const t of m.graph!.initializer!) for (const e of t.externalData ?? []) if (e.key === 'location') e.value = 'optimized-2.bin';
    writeFileSync(join(d, 'optimized.onnx'), onnx.ModelProto.encode(m).finish());
    copyFileSync(join(d, 'weights.bin'), join(d, 'optimized-2.bin'));
    const bytes = readFileSync(join(d, 'optimized-2.bin'));
    const proj = m.graph!.initializer!.find((t) => t.name === 'proj.weight.T')!;
    const at = Number(proj.externalData!.find((e) => e.key === 'offset')!.value);
    bytes.writeFloatLE(bytes.readFloatLE(at + 4) + 1, at + 4);
    writeFileSync(join(d, 'optimized-2.bin'), bytes);

    const saved = shareOptimizedWeights(d);
    const after = externals(join(d, 'optimized.onnx'));
    expect(after.find((e) => e.name === 'conv.weight')?.loc).toBe('weights.bin');
    expect(after.find((e) => e.name === 'proj.weight.T')?.loc).toMatch(/^optimized-shared-/);
    expect(saved).toBe(32 * 16 * 9 * 4);
    // The changed value survives the rewrite: the outputs differ from the build's where that weight acts.
    const a = await run(join(d, 'model.onnx'), 'disabled');
    const b = await run(join(d, 'optimized.onnx'), 'disabled');
    let differ = 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differ++;
    expect(differ).toBe(32 * 8);
  });
});
