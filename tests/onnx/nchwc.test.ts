import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { afterAll, describe, expect, it } from 'vitest';
import { createBuiltSession } from '../../engine/models/runtime/sessions.ts';
import { expandHalfWeightsParallel, planExpansion } from '../../engine/onnx/expand-half.ts';
import { GraphBuilder } from '../../engine/onnx/graph.ts';
import { NCHWC_DOMAIN, reorderFilter, rewriteNchwc, type NchwcRewrite } from '../../engine/onnx/nchwc.ts';
import { nchwcBlockSize, nchwcFromEnv } from '../../engine/onnx/nchwc-block.ts';
import { collectingLog, cpu } from './packed-graph.ts';

const { onnx } = onnxProto;
const root = mkdtempSync(join(tmpdir(), 'weft-nchwc-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const wave = (n: number, seed: number): Float32Array => new Float32Array(n).map((_, i) => Math.sin(i * 0.37 + seed) * 0.2);

/**
 * A small conv net with what ORT's layout pass meets in the SD graphs: a first conv over 4 channels
 * (its input stays NCHW), a conv chain whose sum with its input fuses into the conv, a sum of two
 * convs of unproven equal shape (done on blocked tensors through reshapes), a stride-2 conv, a
 * nearest 2× Resize of a blocked tensor, a last conv of 3 channels (padded filter and bias, inline),
 * and NCHW readers between (a GroupNorm-like InstanceNormalization).
 */
function convNet(dir: string, extra?: (g: GraphBuilder, x: string) => string): string {
  const g = new GraphBuilder('nchwc-net');
  const x = g.input('x', 'float32', ['n', 4, 'h', 'w']);
  const conv = (name: string, input: string, o: number, i: number, k: number, attrs: Record<string, number[]> = {}): string =>
    g.op1(
      'Conv',
      [input, g.floats(`${name}.weight`, [o, i, k, k], () => wave(o * i * k * k, o + i)), g.floats(`${name}.bias`, [o], () => wave(o, k))],
      { kernel_shape: [k, k], pads: k === 3 ? [1, 1, 1, 1] : [0, 0, 0, 0], ...attrs },
    );
  const a = conv('in', x, 32, 4, 3);
  const b = conv('c1', a, 32, 32, 3);
  const fused = g.op1('Add', [conv('c2', b, 32, 32, 3), b]);
  const norm = g.op1('InstanceNormalization', [
    fused,
    g.floats('ones', [32], () => new Float32Array(32).fill(1)),
    g.floats('zeros', [32], () => new Float32Array(32)),
  ]);
  const skip = g.op1('Add', [conv('skip', norm, 48, 32, 1), conv('h', norm, 48, 32, 3)]);
  const down = conv('down', skip, 48, 48, 3, { strides: [2, 2] });
  const up = g.op1('Resize', [down, '', g.floats('scales', [4], () => new Float32Array([1, 1, 2, 2]))], {
    mode: 'nearest',
    coordinate_transformation_mode: 'asymmetric',
    nearest_mode: 'floor',
  });
  let y = conv(
    'out',
    g.op1('InstanceNormalization', [
      up,
      g.floats('ones48', [48], () => new Float32Array(48).fill(1)),
      g.floats('zeros48', [48], () => new Float32Array(48)),
    ]),
    3,
    48,
    3,
  );
  if (extra) y = extra(g, y);
  g.output(y, 'y', 'float32', ['n', 3, 'h', 'w']);
  g.writeTo(dir, { half: false });
  return join(dir, 'model.onnx');
}

const input = new ort.Tensor('float32', wave(2 * 4 * 12 * 12, 9), [2, 4, 12, 12]);

async function run(file: string, level: 'all' | 'disabled' = 'all'): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(file, { executionProviders: ['cpu'], graphOptimizationLevel: level, intraOpNumThreads: 1 });
  try {
    return (await s.run({ x: input })).y.data as Float32Array;
  } finally {
    await s.release();
  }
}

describe("ORT's NCHWc layout done by the expansion (nchwc.ts)", () => {
  it('asks ORT for its block (16 with AVX-512, 8 with AVX2) and writes filters in its layouts, value for value', async () => {
    const block = await nchwcBlockSize();
    expect([8, 16]).toContain(block);
    // ORT's own reordering of a 20×32×3×3 filter (OIHWBiBo, 20 channels padded) and a 24×3×3×3 one (OIHWBo).
    for (const [o, i] of [
      [20, 32],
      [24, 3],
    ]) {
      const g = new GraphBuilder('filter');
      const w = wave(o * i * 9, o);
      const y = g.op1('Conv', [g.input('x', 'float32', [1, i, 'h', 'w']), g.floats('w', [o, i, 3, 3], () => w)], { kernel_shape: [3, 3] });
      g.output(y, 'y', 'float32', [1, o, 'h', 'w']);
      const saved = join(root, `filter-${o}.onnx`);
      await (
        await ort.InferenceSession.create(g.toBuffer(), {
          graphOptimizationLevel: 'all',
          optimizedModelFilePath: saved,
          logSeverityLevel: 3,
        })
      ).release();
      const graph = onnx.ModelProto.decode(readFileSync(saved)).graph!;
      const conv = graph.node!.find((n) => n.domain === NCHWC_DOMAIN && n.opType === 'Conv')!;
      const t = graph.initializer!.find((x) => x.name === conv.input![1])!;
      const theirs = new Float32Array(new Uint8Array(t.rawData!).buffer);
      const layout = i < block ? 'OIHWBo' : 'OIHWBiBo';
      const ours = reorderFilter(w, [o, i, 3, 3], layout, block, new Float32Array(Math.ceil(o / block) * block * i * 9));
      expect(ours.length).toBe(theirs.length);
      expect(Buffer.compare(Buffer.from(ours.buffer), Buffer.from(theirs.buffer))).toBe(0);
    }
  });

  it('rewrites a conv net as ORT’s layout pass does: the same outputs, bit for bit, and ORT finds nothing left to lay out', async () => {
    const block = await nchwcBlockSize();
    const file = convNet(join(root, 'net'));
    const plan = planExpansion(file, undefined, block)!;
    const r = plan.nchwc as NchwcRewrite;
    expect(r).toMatchObject({ block, convs: 7, fusedAdds: 1, blockedAdds: 1 });
    const x = (await expandHalfWeightsParallel(file, { nchwcBlock: block, scratchRoot: root }))!;
    try {
      const ops = onnx.ModelProto.decode(readFileSync(x.file)).graph!.node!.map(
        (n) => `${n.domain === NCHWC_DOMAIN ? 'nchwc.' : ''}${n.opType}`,
      );
      expect(ops.filter((o) => o === 'nchwc.Conv').length).toBe(7);
      expect(ops).toContain('nchwc.Upsample');
      expect(ops).not.toContain('Conv');
      // ORT's own pass over the plain graph, against ORT over the rewritten one: with the layout optimisation on
      // (it finds no conv left) and off altogether (the rewrite alone is the whole layout).
      const want = await run(file);
      for (const level of ['all', 'disabled'] as const) {
        const got = await run(x.file, level);
        expect(
          Buffer.compare(
            Buffer.from(got.buffer, got.byteOffset, got.byteLength),
            Buffer.from(want.buffer, want.byteOffset, want.byteLength),
          ),
        ).toBe(0);
      }
    } finally {
      x.dispose();
    }
  });

  it('leaves to ORT a graph its earlier fusions would change, or with ops it would block that the rewrite does not', async () => {
    const block = await nchwcBlockSize();
    const cases: [string, (g: GraphBuilder, y: string) => string, RegExp][] = [
      [
        'relu',
        (g, y) => g.op1('Relu', [g.op1('Conv', [y, g.floats('r.weight', [3, 3, 1, 1], () => wave(9, 1))], { kernel_shape: [1, 1] })]),
        /feeds a Relu alone/,
      ],
      ['pool', (g, y) => g.op1('MaxPool', [y], { kernel_shape: [1, 1] }), /MaxPool/],
      ['scale', (g, y) => g.op1('Mul', [y, g.floats('k', [1], () => new Float32Array([2]))]), /feeds a Mul with a constant/],
    ];
    const declined = (file: string): string | undefined => {
      const graph = onnx.ModelProto.decode(readFileSync(file)).graph!;
      const r = rewriteNchwc(graph, block, {
        isExternal: (t) => t.dataLocation === 1,
        floats: (t) => (t.rawData ? new Float32Array(new Uint8Array(t.rawData).buffer) : undefined),
      });
      return 'declined' in r ? r.declined : undefined;
    };
    for (const [name, extra, why] of cases) expect(declined(convNet(join(root, name), extra))).toMatch(why);
    // A fixed height or width: ORT's shape inference would know dims the rewrite does not track.
    const g = new GraphBuilder('fixed');
    const y = g.op1('Conv', [g.input('x', 'float32', [1, 32, 8, 8]), g.floats('w', [32, 32, 3, 3], () => wave(32 * 32 * 9, 2))], {
      kernel_shape: [3, 3],
    });
    g.output(y, 'y', 'float32', [1, 32, 6, 6]);
    g.writeTo(join(root, 'fixed'), { half: false });
    expect(declined(join(root, 'fixed', 'model.onnx'))).toMatch(/fixed height or width/);
    // Stored in float32 with nothing to block, the build is loaded as it is (no copy).
    expect(planExpansion(join(root, 'fixed', 'model.onnx'), undefined, block)).toBeUndefined();
  });

  it('opens a build with the layout done, saving no graph (WEFT_NCHWC=0: ORT’s pass and a saved graph, the same outputs)', async () => {
    const { lines, log } = collectingLog();
    const dir = join(root, 'built');
    const file = convNet(dir);
    const feed = async (s: ort.InferenceSession): Promise<Buffer> => {
      const y = (await s.run({ x: input })).y.data as Float32Array;
      await s.release();
      return Buffer.from(y.buffer, y.byteOffset, y.byteLength);
    };
    const first = await feed(await createBuiltSession(file, cpu, { log }));
    expect(lines.some((l) => /lays out 7 convs in NCHWc blocks/.test(l))).toBe(true);
    expect(lines.some((l) => /ORT optimised and saved/.test(l))).toBe(false);
    const again = await feed(await createBuiltSession(file, cpu, { log }));
    expect(Buffer.compare(first, again)).toBe(0);
    const other = join(root, 'built-saved');
    const saved = await feed(await createBuiltSession(convNet(other), cpu, { log, nchwc: false, optimizeInChild: false }));
    expect(lines.some((l) => /ORT optimised and saved/.test(l))).toBe(true);
    expect(Buffer.compare(first, saved)).toBe(0);
    expect(nchwcFromEnv({ WEFT_NCHWC: '0' })).toBe(false);
    expect(nchwcFromEnv({})).toBe(true);
  });
});
