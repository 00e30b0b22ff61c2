import { existsSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { PartsRuntime } from '../../engine/models/runtime/parts-runtime.ts';
import type { PatchEntry, PatchMap } from '../../engine/models/patching/patch-set.ts';
import type { WeightPatch } from '../../engine/models/lora/types.ts';
import { fakePart, twiceXPlusW, vectorWeights } from './fakes.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const runtime = (cacheDir: string, extra: Partial<ConstructorParameters<typeof PartsRuntime>[0]> = {}) =>
  new PartsRuntime({ cacheDir, device: 'cpu', log: quiet, ...extra });
const X = Float32Array.from([1, -2, 0.5, 3]);
const W = Float32Array.from([10, 20, 30, 40]);
const feed = (x: Float32Array) => ({ x: new ort.Tensor('float32', x, [x.length]) });

async function y(run: (f: Record<string, ort.Tensor>) => Promise<ort.InferenceSession.OnnxValueMapType>, x = X): Promise<number[]> {
  return [...((await run(feed(x))).y.data as Float32Array)];
}

function patchOn(target: string, patch: WeightPatch, strength: number, sig: string): PatchMap {
  const e: PatchEntry = { sig, strength, strengthModel: 1, source: { kind: 'adapter', patch } };
  return new Map([[target, [e]]]);
}

const tensor = (key: string, data: Float32Array) => ({ key, shape: [data.length], read: () => Float32Array.from(data) });

describe('PartsRuntime with a part it was never told about', () => {
  it('builds a declared part into the cache, runs it, pools it, and a second runtime finds the build', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'weft-parts-'));
    const a = runtime(cacheDir);
    const run = a.runner(fakePart(W));
    expect(await y(run)).toEqual([12, 16, 31, 46]);
    expect(a.stats().builds).toBe(1);
    const dirs = readdirSync(cacheDir).filter((d) => d.startsWith('fake-'));
    expect(dirs).toEqual([expect.stringMatching(/^fake-f{20}-float32-cpu-mha-v\d+$/)]);
    expect(existsSync(join(cacheDir, dirs[0], 'model.onnx'))).toBe(true);
    expect(existsSync(join(cacheDir, dirs[0], 'weights.bin'))).toBe(true);
    expect(a.stats().loaded.map((l) => l.key)).toEqual([dirs[0]]);
    expect(a.stats().loads).toBe(1);
    await y(run);
    expect(a.stats().loads).toBe(1);

    const b = runtime(cacheDir);
    // The second runtime's builder would give other numbers: the cached build is what runs.
    const stale = b.runner({ ...fakePart(Float32Array.from([0, 0, 0, 0])) });
    expect(await y(stale)).toEqual([12, 16, 31, 46]);
    expect(b.stats().builds).toBe(0);
  });

  it('a part version of its own names another build', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'weft-parts-'));
    const r = runtime(cacheDir);
    await y(r.runner(fakePart(W)));
    await y(r.runner({ ...fakePart(W), version: 2 }));
    expect(r.stats().builds).toBe(2);
    expect(
      readdirSync(cacheDir)
        .filter((d) => d.startsWith('fake-'))
        .sort(),
    ).toEqual([expect.stringMatching(/-v\d+$/), expect.stringMatching(/-v\d+\.2$/)]);
  });

  it('patches on its weight give a patched variant computing the patched formula; the base session is replaced, not doubled', async () => {
    const r = runtime(mkdtempSync(join(tmpdir(), 'weft-parts-')));
    const spec = fakePart(W);
    const D = Float32Array.from([1, 2, 3, 4]);
    const diff = r.runner(spec, patchOn('fake.w', { kind: 'diff', target: 'fake.w', stem: 'w', diff: tensor('d', D) }, 0.5, 'test:diff'));
    expect(await y(diff)).toEqual([...X].map((x, i) => 2 * x + W[i] + 0.5 * D[i]));
    expect(r.lastPatch).toMatchObject({ part: 'fake', tensorsComputed: 1 });
    const V = Float32Array.from([-1, -1, -1, -1]);
    const set = r.runner(spec, patchOn('fake.w', { kind: 'set', target: 'fake.w', stem: 'w', value: tensor('v', V) }, 1, 'test:set'));
    expect(await y(set)).toEqual([...X].map((x) => 2 * x - 1));
    // A patch on another part's weights leaves this one's session as it was.
    const other = r.runner(spec, patchOn('unet.w', { kind: 'diff', target: 'unet.w', stem: 'w', diff: tensor('d', D) }, 1, 'test:other'));
    expect(await y(other)).toEqual([12, 16, 31, 46]);
    const keys = r.stats().loaded.map((l) => l.key);
    expect(keys.filter((k) => k.startsWith('fake-'))).toHaveLength(1);
  });

  it('refuses a feed the graph has no input for, naming it', async () => {
    const r = runtime(mkdtempSync(join(tmpdir(), 'weft-parts-')));
    const run = r.runner(fakePart(W));
    await expect(run({ ...feed(X), z: new ort.Tensor('float32', X, [4]) })).rejects.toThrow(
      /the fake graph has no input 'z' \(its inputs: x\)/,
    );
  });

  it('runs an existing .onnx file as a pooled part under the memory budget', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-parts-'));
    const models = join(dir, 'detectors');
    mkdirSync(models);
    const a = join(models, 'a.onnx');
    const b = join(models, 'b.onnx');
    writeFileSync(a, twiceXPlusW(vectorWeights('w', W), { dtype: 'float32', fusedAttention: false }).toBuffer());
    writeFileSync(
      b,
      twiceXPlusW(vectorWeights('w', Float32Array.from([1, 1, 1, 1])), { dtype: 'float32', fusedAttention: false }).toBuffer(),
    );
    // Room for one of the two files: the second evicts the first.
    const r = runtime(join(dir, 'cache'), { memoryBudgetBytes: statSync(a).size + 8 });
    expect(await y(r.fileRunner(a))).toEqual([12, 16, 31, 46]);
    expect(r.stats().loaded).toEqual([{ key: `file:${a}`, bytes: statSync(a).size }]);
    expect(await y(r.fileRunner(b, 'detector-b'))).toEqual([3, -3, 2, 7]);
    expect(r.stats().loaded.map((l) => l.key)).toEqual(['detector-b']);
    expect(r.stats().evictions).toBe(1);
    expect(r.stats().builds).toBe(0);
    expect(existsSync(join(dir, 'cache'))).toBe(false);
    await expect(r.fileRunner(a)({ q: new ort.Tensor('float32', X, [4]) })).rejects.toThrow(/has no input 'q'/);
  });
});
