import { describe, expect, it } from 'vitest';
import { jsMatMul, patchedWeight } from '../../engine/models/lora/apply.ts';
import { ortMatMul } from '../../engine/models/lora/ort-matmul.ts';
import type { AdapterTensor, WeightPatch } from '../../engine/models/lora/types.ts';
import { Rng } from '../../engine/models/generate/rng.ts';
import { mmRef, relErr } from './reference.ts';

const rand = (n: number, seed: number): Float32Array => new Rng(seed).normal(new Float32Array(n), 1);
const tensor = (key: string, shape: number[], seed: number): AdapterTensor => {
  const data = rand(
    shape.reduce((a, b) => a * b, 1),
    seed,
  );
  return { key, shape, read: () => data.slice() };
};

describe('matrix products', () => {
  it('jsMatMul and ortMatMul agree with a plain triple loop on odd sizes', async () => {
    const ort = ortMatMul();
    for (const [m, k, n] of [
      [1, 1, 1],
      [37, 13, 53],
      [129, 7, 1],
      [3, 70, 1100],
      [65, 65, 65],
    ]) {
      const a = rand(m * k, m);
      const b = rand(k * n, n);
      const want = mmRef(a, m, k, b, n);
      expect(relErr(await jsMatMul(a, m, k, b, n), want)).toBeLessThan(1e-5);
      expect(relErr(await ort(a, m, k, b, n), want)).toBeLessThan(1e-5);
    }
  });

  it('ortMatMul takes views into a larger buffer, as the Tucker rebuild passes them', async () => {
    const big = rand(100, 1);
    const view = big.subarray(10, 10 + 6 * 4);
    const b = rand(4 * 5, 2);
    expect(relErr(await ortMatMul()(view, 6, 4, b, 5), mmRef(view, 6, 4, b, 5))).toBeLessThan(1e-5);
  });

  it('patchedWeight gives the same result with either product (LoCon Tucker, LoHa Tucker)', async () => {
    const shape = [16, 8, 3, 3];
    const base = rand(16 * 8 * 9, 9);
    const patches: WeightPatch[] = [
      {
        kind: 'lora',
        target: 'w',
        stem: 'a',
        alpha: 3,
        up: tensor('up', [16, 4, 1, 1], 1),
        down: tensor('down', [4, 8, 1, 1], 2),
        mid: tensor('mid', [4, 4, 3, 3], 3),
      },
      {
        kind: 'loha',
        target: 'w',
        stem: 'b',
        alpha: 2,
        w1a: tensor('w1a', [4, 16], 4),
        w1b: tensor('w1b', [4, 8], 5),
        w2a: tensor('w2a', [4, 16], 6),
        w2b: tensor('w2b', [4, 8], 7),
        t1: tensor('t1', [4, 4, 3, 3], 8),
        t2: tensor('t2', [4, 4, 3, 3], 10),
      },
    ];
    const list = patches.map((patch) => ({ patch, strength: 0.7 }));
    const viaJs = await patchedWeight('w', base, shape, list, jsMatMul);
    const viaOrt = await patchedWeight('w', base, shape, list, ortMatMul());
    expect(relErr(viaOrt, viaJs)).toBeLessThan(1e-5);
  });

  it('timing: 1280×32 · 32×11520 (printed, not asserted)', async () => {
    const [m, k, n] = [1280, 32, 11520];
    const a = rand(m * k, 1);
    const b = rand(k * n, 2);
    const ort = ortMatMul();
    await ort(a, m, k, b, n);
    const time = async (f: () => Promise<unknown>): Promise<number> => {
      const t0 = performance.now();
      await f();
      return performance.now() - t0;
    };
    const tOrt = await time(() => ort(a, m, k, b, n));
    const tJs = await time(() => jsMatMul(a, m, k, b, n));
    console.log(`LoRA product 1280×32 · 32×11520: ortMatMul ${tOrt.toFixed(1)} ms, jsMatMul ${tJs.toFixed(1)} ms`);
    expect(tOrt).toBeGreaterThan(0);
  });
});
