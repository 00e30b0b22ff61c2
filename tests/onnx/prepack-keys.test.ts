import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../engine/onnx/graph.ts';
import { hashPackedInWorker, packCandidates, recordOf } from '../../engine/onnx/prepack-keys.ts';

const ramp = (n: number, seed: number): Float32Array => new Float32Array(n).map((_, i) => Math.sin(i * 0.37 + seed));

/** MatMul (packed), Gemm with transB (packed differently: left out), one weight under MatMul and Gemm (two kinds: left out), a 3-D B. */
function build(dir: string): string {
  const g = new GraphBuilder('keys');
  // Every weight 1 KiB or more, so it is stored outside the graph as ORT's saved graphs store theirs.
  const x = g.input('x', 'float32', [2, 20]);
  const a = g.op1('MatMul', [x, g.floats('a.T', [20, 40], () => ramp(800, 1))]);
  const b = g.op1('Gemm', [a, g.floats('b', [20, 40], () => ramp(800, 2))], { transB: 1 });
  const shared = g.floats('shared.T', [20, 20], () => ramp(400, 3));
  const c = g.op1('MatMul', [b, shared]);
  const d = g.op1('Gemm', [c, shared]);
  const e = g.op1('MatMul', [g.op1('Unsqueeze', [d, g.ints([0])]), g.floats('batched', [1, 20, 16], () => ramp(320, 4))]);
  g.output(e, 'y', 'float32', [1, 2, 16]);
  g.writeTo(dir, {});
  return join(dir, 'model.onnx');
}

describe('ORT’s keys for packed weights (prepack-keys.ts)', () => {
  it('takes only the weights ORT packs as packPanels does, each keyed by the op type of its kernel', async () => {
    const model = build(mkdtempSync(join(tmpdir(), 'weft-keys-')));
    const candidates = packCandidates(model);
    expect(candidates.map((c) => [c.name, c.op, c.rows, c.cols])).toEqual([['a.T', 'MatMul', 20, 40]]);
    const hashes = await hashPackedInWorker(candidates);
    const record = recordOf(model, hashes);
    expect(Object.keys(record)).toEqual(['a.T']);
    expect(record['a.T'].key).toMatch(/^MatMul\+\d+$/);
    // 40 columns pack into three 16-wide panels.
    expect(record['a.T'].length).toBe(20 * 48 * 4);
    // A hash for other dims (a graph that changed the weight) is not recorded.
    expect(recordOf(model, new Map([['a.T', { ...hashes.get('a.T')!, cols: 41 }]]))).toEqual({});
  });

  it('fails clearly when the weights file is cut short', async () => {
    const model = build(mkdtempSync(join(tmpdir(), 'weft-keys-cut-')));
    const [c] = packCandidates(model);
    await expect(hashPackedInWorker([{ ...c, offset: 1 << 30 }])).rejects.toThrow(/short read at byte 1073741824 \(weight a\.T\)/);
  });
});
