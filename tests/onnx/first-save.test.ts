import { cpSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { createBuiltSession } from '../../engine/models/runtime/sessions.ts';
import { expandHalfWeights } from '../../engine/onnx/expand-half.ts';
import { GraphBuilder } from '../../engine/onnx/graph.ts';
import { chooseSaveFolder } from '../../engine/onnx/save-folder.ts';
import { shareOptimizedWeights } from '../../engine/onnx/share-weights.ts';

const { onnx } = onnxProto;
const cpu = { provider: 'cpu', dtype: 'float32', reason: 'test' } as const;

/** Values with at most 8 significant bits, so float16 holds them exactly and the build stores them in 16 bits. */
const halves = (n: number, seed: number): Float32Array =>
  new Float32Array(n).map((_, i) => Math.round(Math.sin(i * 0.7 + seed) * 200) / 1024);

/** Two convs (which ORT's CPU layout pass reorders) and a linear layer (which it leaves alone), stored compact. */
function build(dir: string): void {
  const g = new GraphBuilder('first-save');
  const x = g.input('x', 'float32', [1, 16, 8, 8]);
  const c1 = g.op1(
    'Conv',
    [x, g.floats('c1.weight', [32, 16, 3, 3], () => halves(32 * 16 * 9, 1)), g.floats('c1.bias', [32], () => halves(32, 2))],
    {
      kernel_shape: [3, 3],
      pads: [1, 1, 1, 1],
    },
  );
  const c2 = g.op1('Conv', [g.op1('Relu', [c1]), g.floats('c2.weight', [16, 32, 3, 3], () => halves(16 * 32 * 9, 3))], {
    kernel_shape: [3, 3],
    pads: [1, 1, 1, 1],
  });
  g.output(g.op1('MatMul', [c2, g.floats('proj.weight.T', [8, 64], () => halves(8 * 64, 4))]), 'y', 'float32', [1, 16, 8, 64]);
  g.writeTo(dir, { half: true });
}

const input = (): Record<string, ort.Tensor> => ({
  x: new ort.Tensor(
    'float32',
    new Float32Array(16 * 64).map((_, i) => Math.cos(i * 0.3)),
    [1, 16, 8, 8],
  ),
});

async function outputOf(s: ort.InferenceSession): Promise<Buffer> {
  const y = (await s.run(input())).y.data as Float32Array;
  await s.release();
  return Buffer.from(y.buffer, y.byteOffset, y.byteLength);
}

/** The output of a session over the build in `dir` with its weights expanded, created with `opts`. */
async function runExpanded(dir: string, opts: ort.InferenceSession.SessionOptions): Promise<Buffer> {
  const x = expandHalfWeights(join(dir, 'model.onnx'))!;
  try {
    return await outputOf(await ort.InferenceSession.create(x.file, { executionProviders: ['cpu'], logSeverityLevel: 3, ...opts }));
  } finally {
    x.dispose();
  }
}

/** ORT's full optimisation of the build in `dir`, saving the optimised graph as `save` with its weights in `bin` beside it. */
function optimiseAndSave(dir: string, save: string, bin: string): Promise<Buffer> {
  return runExpanded(dir, {
    graphOptimizationLevel: 'all',
    optimizedModelFilePath: save,
    extra: {
      session: { optimized_model_external_initializers_file_name: bin, optimized_model_external_initializers_min_size_in_bytes: '1024' },
    },
  });
}

/** Each initializer of a saved graph with its bytes as stored (read from its external file), in graph order, and its nodes. */
function contents(dir: string): { nodes: string[]; inits: { name: string; type: number; dims: string; bytes: Buffer }[] } {
  const m = onnx.ModelProto.decode(readFileSync(join(dir, 'optimized.onnx')));
  const inits = (m.graph?.initializer ?? []).map((t) => {
    const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = kv.get('location');
    const bytes = location
      ? readFileSync(join(dir, location)).subarray(Number(kv.get('offset') ?? 0), Number(kv.get('offset') ?? 0) + Number(kv.get('length')))
      : Buffer.from(t.rawData ?? []);
    return { name: t.name ?? '', type: t.dataType ?? 0, dims: (t.dims ?? []).map(Number).join(','), bytes };
  });
  return { nodes: (m.graph?.node ?? []).map((n) => `${n.opType}:${(n.input ?? []).join(',')}->${(n.output ?? []).join(',')}`), inits };
}

describe("a build's first session", () => {
  it('saves the optimised graph beside the expanded weights where the scratch file system and memory hold a copy, else in the build folder', () => {
    const GB = 2 ** 30;
    // A full-size SD1.5 UNet (3.4 GB expanded) in /dev/shm on the 24 GB machine, after the expansion.
    expect(chooseSaveFolder(3.4 * GB, { free: 8 * GB, memory: true, memAvailable: 18 * GB })).toBe('scratch');
    // Memory that holds the saved copy but not ORT's reordered weights too.
    expect(chooseSaveFolder(3.4 * GB, { free: 8 * GB, memory: true, memAvailable: 6 * GB })).toBe('build');
    // An SDXL UNet expanded on disk (the temp folder): memory does not matter, the disk's room does.
    expect(chooseSaveFolder(9.8 * GB, { free: 40 * GB, memory: false, memAvailable: 5 * GB })).toBe('scratch');
    expect(chooseSaveFolder(9.8 * GB, { free: 10 * GB, memory: false, memAvailable: 20 * GB })).toBe('build');
  });

  it('shares the graph ORT saved in the scratch folder into the cache: the same saved graph and bytes as saving it in the build folder, the same outputs', async () => {
    const root = mkdtempSync(join(tmpdir(), 'weft-first-save-'));
    const scratchDir = join(root, 'scratch');
    const inPlaceDir = join(root, 'in-place');
    build(scratchDir);
    cpSync(scratchDir, inPlaceDir, { recursive: true });
    const logs: string[] = [];
    const log = {
      info: (m: string) => logs.push(m),
      warn: (m: string) => logs.push(`warn ${m}`),
      error: (m: string) => logs.push(`error ${m}`),
    };

    // The runtime's first session: optimised, saved in the scratch folder, shared into the build folder.
    const first = await outputOf(await createBuiltSession(join(scratchDir, 'model.onnx'), cpu, { log }));
    const savedIn = logs.map((m) => /^ORT optimised and saved .* \(in (.+)\) in \d+ ms$/.exec(m)?.[1]).find((d) => d !== undefined);
    expect(savedIn).toBeDefined();
    expect(savedIn).not.toBe(scratchDir);
    expect(logs.filter((m) => m.startsWith('warn') || m.startsWith('error'))).toEqual([]);
    // Nothing of ORT's own float32 copy reached the build folder; the shared graph names only files in it.
    const files = readdirSync(scratchDir);
    expect(files.filter((f) => /^optimized-\d/.test(f))).toEqual([]);
    expect(files).toContain('optimized.onnx');

    // The same graph saved as before, in the build folder, and shared there in place.
    expect(Buffer.compare(await optimiseAndSave(inPlaceDir, join(inPlaceDir, 'optimized.onnx'), 'optimized-1.bin'), first)).toBe(0);
    expect(shareOptimizedWeights(inPlaceDir)).toBeGreaterThan(0);

    const a = contents(scratchDir);
    const b = contents(inPlaceDir);
    expect(a.nodes).toEqual(b.nodes);
    expect(a.inits.map(({ name, type, dims }) => ({ name, type, dims }))).toEqual(
      b.inits.map(({ name, type, dims }) => ({ name, type, dims })),
    );
    a.inits.forEach((t, i) =>
      expect({ name: t.name, same: Buffer.compare(t.bytes, b.inits[i].bytes) === 0 }).toEqual({ name: t.name, same: true }),
    );

    // A later session loads the saved graph (the warm path) and gives the first session's bits, as does the unoptimised build.
    expect(Buffer.compare(await outputOf(await createBuiltSession(join(scratchDir, 'model.onnx'), cpu, { log })), first)).toBe(0);
    const plain = await runExpanded(scratchDir, { graphOptimizationLevel: 'disabled' });
    const ref = new Float32Array(plain.buffer, plain.byteOffset, plain.byteLength / 4);
    const got = new Float32Array(first.buffer, first.byteOffset, first.byteLength / 4);
    // ORT's NCHWc convs sum in another order than the plain ones: close, not the same bits.
    let worst = 0;
    for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(ref[i] - got[i]) / (1 + Math.abs(ref[i])));
    expect(worst).toBeLessThan(1e-5);
  });

  it('leaves an optimised graph another process saved first as it is', async () => {
    const root = mkdtempSync(join(tmpdir(), 'weft-first-save-'));
    const dir = join(root, 'b');
    build(dir);
    await (await createBuiltSession(join(dir, 'model.onnx'), cpu, {})).release();
    const before = readFileSync(join(dir, 'optimized.onnx'));
    // A second ORT save of the same build, in a scratch folder, arriving after the first was shared.
    const scratch = mkdtempSync(join(root, 'scratch-'));
    await optimiseAndSave(dir, join(scratch, 'optimized-2.onnx'), 'optimized-2.bin');
    expect(shareOptimizedWeights(dir, join(scratch, 'optimized-2.onnx'))).toBe(0);
    expect(Buffer.compare(readFileSync(join(dir, 'optimized.onnx')), before)).toBe(0);
  });
});
