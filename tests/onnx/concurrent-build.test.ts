import { existsSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../engine/onnx/graph.ts';

function builder(): GraphBuilder {
  const g = new GraphBuilder('race');
  const x = g.input('x', 'float32', [1, 64]);
  const w = g.floats('w', [64, 64], () => new Float32Array(64 * 64).map((_, i) => Math.sin(i) * 0.1));
  g.output(g.op1('MatMul', [x, w]), 'y', 'float32', [1, 64]);
  return g;
}

// Two workers on one cache folder may build the same part at once; the second to finish must not pull the
// first one's files from under a session that is already reading them (seen as ENOENT weights.bin).
describe('GraphBuilder.writeTo into a folder another process already built', () => {
  it('keeps the finished build (same inode) and leaves no temporary folder', async () => {
    const root = mkdtempSync(join(tmpdir(), 'weft-race-'));
    const dir = join(root, 'key');
    const first = builder().writeTo(dir);
    const inode = statSync(join(dir, 'weights.bin')).ino;
    const second = builder().writeTo(dir);
    expect(second.modelFile).toBe(first.modelFile);
    expect(statSync(join(dir, 'weights.bin')).ino).toBe(inode);
    expect(readdirSync(root)).toEqual(['key']);
    const s = await ort.InferenceSession.create(second.modelFile);
    const out = await s.run({ x: new ort.Tensor('float32', new Float32Array(64).fill(1), [1, 64]) });
    expect(out.y.dims).toEqual([1, 64]);
    await s.release();
  });

  it('replaces a leftover folder that holds no model', () => {
    const root = mkdtempSync(join(tmpdir(), 'weft-race-'));
    const dir = join(root, 'key');
    mkdirSync(dir);
    writeFileSync(join(dir, 'entry.json'), '{}');
    builder().writeTo(dir);
    expect(existsSync(join(dir, 'model.onnx'))).toBe(true);
    expect(existsSync(join(dir, 'entry.json'))).toBe(false);
    expect(readdirSync(root)).toEqual(['key']);
  });
});
