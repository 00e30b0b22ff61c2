import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MT19937 } from '../../engine/sampling/noise/mt19937.ts';
import { TorchGenerator, torchRandn } from '../../engine/sampling/noise/torch-randn.ts';
import { prepareNoise } from '../../engine/sampling/noise/prepare-noise.ts';
import { defaultNoiseSampler } from '../../engine/sampling/noise/default-sampler.ts';
import { BrownianTree, brownianNoiseSampler, pyRound6 } from '../../engine/sampling/noise/brownian.ts';
import { SeedSequence } from '../../engine/sampling/noise/seed-sequence.ts';

interface FullCase {
  seed: string;
  shape: number[];
  values: number[];
}
interface SummaryCase {
  seed: string;
  shape: number[];
  first: number[];
  last: number[];
  sum: number;
  sum_sq: number;
}
type Case = FullCase | SummaryCase;

const fixturePath = new URL('../fixtures/torch_randn.json', import.meta.url);
const haveFixture = existsSync(fixturePath);
const cases: Case[] = haveFixture ? (JSON.parse(readFileSync(fixturePath, 'utf8')) as { cases: Case[] }).cases : [];

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, offA = 0): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[offA + i] - b[i]));
  return m;
}

describe('MT19937', () => {
  it('matches the reference mt19937 outputs (seed 5489, 10000th draw)', () => {
    const mt = new MT19937(5489);
    let v = 0;
    for (let i = 0; i < 10000; i++) v = mt.nextUint32();
    expect(v).toBe(4123659995);
  });

  it('seeds from the low 32 bits of a 64-bit seed, as torch does', () => {
    const a = new MT19937(5n);
    const b = new MT19937((1n << 32n) + 5n);
    for (let i = 0; i < 5; i++) expect(a.nextUint32()).toBe(b.nextUint32());
  });

  it('random64 puts the first 32-bit draw in the high word', () => {
    const a = new MT19937(7n);
    const b = new MT19937(7n);
    const hi = b.nextUint32();
    const lo = b.nextUint32();
    expect(a.nextUint64()).toBe((BigInt(hi) << 32n) | BigInt(lo));
  });
});

describe.skipIf(!haveFixture)('torchRandn vs torch fixtures', () => {
  for (const c of cases) {
    const n = numel(c.shape);
    it(`seed ${c.seed} shape [${c.shape.join(',')}]`, () => {
      const v = torchRandn(BigInt(c.seed), c.shape);
      expect(v.length).toBe(n);
      if ('values' in c) {
        if (n < 16) {
          expect(Array.from(v)).toEqual(c.values.map((x) => Math.fround(x)));
        } else {
          expect(maxAbsDiff(v, c.values)).toBeLessThan(1e-5);
        }
      } else {
        expect(maxAbsDiff(v, c.first)).toBeLessThan(1e-5);
        expect(maxAbsDiff(v, c.last, n - c.last.length)).toBeLessThan(1e-5);
        let sum = 0;
        let sumSq = 0;
        for (const x of v) {
          sum += x;
          sumSq += x * x;
        }
        // Each element is within ~1e-6 of torch's, so sums over 16k elements agree to ~1e-2 at worst.
        expect(Math.abs(sum - c.sum)).toBeLessThan(1e-2);
        expect(Math.abs(sumSq - c.sum_sq)).toBeLessThan(5e-2);
      }
    });
  }
});

describe('TorchGenerator state across calls', () => {
  it('short draws reuse the cached second Box-Muller value: randn(1) twice == randn(2)', () => {
    const g = new TorchGenerator(3n);
    const a = g.randn([1]);
    const b = g.randn([1]);
    expect([a[0], b[0]]).toEqual(Array.from(torchRandn(3n, [2])));
  });

  it('short draws chain like one longer short draw (odd sizes keep the cache)', () => {
    const g = new TorchGenerator(11n);
    const joined = [...g.randn([5]), ...g.randn([3]), ...g.randn([7])];
    expect(joined).toEqual(Array.from(torchRandn(11n, [15])));
  });

  it('vectorised draws of multiples of 16 chain: randn(32) then randn(16) == randn(48)', () => {
    const g = new TorchGenerator(0n);
    const joined = [...g.randn([32]), ...g.randn([16])];
    expect(joined).toEqual(Array.from(torchRandn(0n, [48])));
  });

  it('a non-multiple of 16 consumes numel + 16 draws, so chaining differs from one long draw', () => {
    const g = new TorchGenerator(0n);
    g.randn([17]);
    const next = g.randn([1])[0];
    const mt = new MT19937(0n);
    for (let i = 0; i < 33; i++) mt.nextUint32();
    const u53 = (): number => {
      const [hi, lo] = mt.nextUint64Parts();
      return ((hi & 0x1fffff) * 2 ** 32 + lo) / 2 ** 53;
    };
    const u1 = u53();
    const u2 = u53();
    expect(next).toBe(Math.fround(Math.sqrt(-2 * Math.log(1 - u2)) * Math.cos(2 * Math.PI * u1)));
    const h = new TorchGenerator(0n);
    const chained = [...h.randn([17]), ...h.randn([16])];
    expect(chained).not.toEqual(Array.from(torchRandn(0n, [33])));
  });

  it('manual_seed restarts the stream and clears the cached normal', () => {
    const g = new TorchGenerator(9n);
    g.randn([1]);
    g.manualSeed(9n);
    expect(Array.from(g.randn([3]))).toEqual(Array.from(torchRandn(9n, [3])));
  });

  it('4x64x64 randn is fast', () => {
    torchRandn(1n, [1, 4, 64, 64]);
    const t = performance.now();
    const reps = 5;
    for (let i = 0; i < reps; i++) torchRandn(BigInt(i), [1, 4, 64, 64]);
    const ms = (performance.now() - t) / reps;
    expect(ms).toBeLessThan(25);
  });
});

describe('prepareNoise', () => {
  const shape = [3, 4, 2, 3];
  const item = 4 * 2 * 3;

  it('without batch index is one randn over the whole latent', () => {
    expect(Array.from(prepareNoise(shape, 77n))).toEqual(Array.from(torchRandn(77n, shape)));
  });

  it('with batch index draws per index up to the max and maps items to their index', () => {
    const gen = new TorchGenerator(77n);
    const perIndex = [0, 1, 2, 3, 4, 5].map(() => gen.randn([1, 4, 2, 3]));
    const idx = [5, 2, 5];
    const got = prepareNoise(shape, 77n, idx);
    expect(got.length).toBe(3 * item);
    idx.forEach((k, j) => expect(Array.from(got.subarray(j * item, (j + 1) * item))).toEqual(Array.from(perIndex[k])));
  });

  it('an item keeps its noise whatever other indices are present', () => {
    const alone = prepareNoise([1, 4, 2, 3], 5n, [3]);
    const mixed = prepareNoise([2, 4, 2, 3], 5n, [0, 3]);
    expect(Array.from(mixed.subarray(item))).toEqual(Array.from(alone));
  });
});

describe('defaultNoiseSampler', () => {
  it('is a torch generator seeded with seed + 1 (ComfyUI on CPU), advancing per call', () => {
    const ns = defaultNoiseSampler(10n, [1, 4, 4, 4]);
    const g = new TorchGenerator(11n);
    expect(Array.from(ns(14, 10))).toEqual(Array.from(g.randn([1, 4, 4, 4])));
    expect(Array.from(ns(10, 5))).toEqual(Array.from(g.randn([1, 4, 4, 4])));
  });

  it('wraps the largest seed', () => {
    const ns = defaultNoiseSampler((1n << 64n) - 1n, [2]);
    expect(Array.from(ns(1, 0))).toEqual(Array.from(torchRandn(0n, [2])));
  });
});

describe('SeedSequence matches numpy', () => {
  // Values from numpy 2.x: np.random.SeedSequence(entropy, spawn_key, pool_size).generate_state(4).
  const ref: [bigint, bigint[], number, number[]][] = [
    [0n, [], 8, [505204425, 577484580, 1929377249, 3239996992]],
    [42n, [], 24, [387750627, 2536650517, 4078839648, 2023786165]],
    [18446744073709551615n, [], 24, [1186816001, 310380770, 3217591682, 2718387704]],
    [42n, [0n, 0n], 24, [2102017995, 2891809698, 2144110403, 379559146]],
    [42n, [5n, 3n], 24, [3084123560, 468215949, 242942938, 2650128260]],
    [123456789012345678901234567890n, [1234567n, 20n], 24, [1717355115, 1677491244, 3262787381, 1500862775]],
    [7n, [9n], 4, [3830915925, 2342690304, 4020750378, 924432417]],
  ];
  for (const [e, k, p, want] of ref) {
    it(`entropy ${e} key (${k.join(',')}) pool ${p}`, () => {
      expect(Array.from(new SeedSequence(e, k, p).generateState(4))).toEqual(want);
    });
  }
});

describe('pyRound6', () => {
  it('rounds like Python round(x, 6), ties to even on exact binary ties', () => {
    expect(pyRound6(0.0078125)).toBe(0.007812);
    expect(pyRound6(0.0234375)).toBe(0.023438);
    expect(pyRound6(14.614641189575195)).toBe(14.614641);
    expect(pyRound6(5e-7)).toBe(0);
  });
});

describe('brownianNoiseSampler', () => {
  const sigmas = [14.614642, 9.7232, 6.3412, 4.0933, 2.6167, 1.6484, 1.0208, 0.6181, 0.3628, 0.2027, 0.0292];
  const smin = 0.0292;
  const smax = 14.614642;

  it('matches torchsde (run with a numpy torch stand-in) on a small latent', () => {
    // Reference: torchsde 0.2.6 brownian_interval.py, halfway_tree, tol 1e-6, pool 24, entropy
    // 2^64-1, shape [2, 3] (< 16 elements, so the scalar randn path that is exact on both sides).
    const ns = brownianNoiseSampler(18446744073709551615n, [2, 3], smin, smax);
    expect(ns(14.614642, 9.7232)[0]).toBeCloseTo(-1.155027, 6);
    expect(ns(1.0208, 0.7)[0]).toBeCloseTo(-0.074023, 6);
    expect(ns(0.05, 0.0292)[0]).toBeCloseTo(-0.204804, 6);
    expect(ns(3.3, 3.1)[0]).toBeCloseTo(-0.883711, 6);
    expect(ns(14.614642, 0.0292)[0]).toBeCloseTo(-0.957013, 6);
  });

  it('is standard normal per element (mean 0 +- 0.02, variance 1 +- 0.04 over 16k elements)', () => {
    const ns = brownianNoiseSampler(1234n, [1, 4, 64, 64], smin, smax);
    for (let i = 0; i < 3; i++) {
      const v = ns(sigmas[i], sigmas[i + 1]);
      let s = 0;
      let s2 = 0;
      for (const x of v) {
        s += x;
        s2 += x * x;
      }
      const mean = s / v.length;
      const variance = s2 / v.length - mean * mean;
      // 16384 samples: sd of the mean ~0.008, of the variance ~0.011.
      expect(Math.abs(mean)).toBeLessThan(0.04);
      expect(Math.abs(variance - 1)).toBeLessThan(0.05);
    }
  });

  it('is deterministic per seed and differs across seeds', () => {
    const a = brownianNoiseSampler(99n, [1, 4, 8, 8], smin, smax)(4.0933, 2.6167);
    const b = brownianNoiseSampler(99n, [1, 4, 8, 8], smin, smax)(4.0933, 2.6167);
    const c = brownianNoiseSampler(100n, [1, 4, 8, 8], smin, smax)(4.0933, 2.6167);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  });

  it('does not depend on query order', () => {
    const fwd = brownianNoiseSampler(5n, [1, 4, 8, 8], smin, smax);
    const rev = brownianNoiseSampler(5n, [1, 4, 8, 8], smin, smax);
    const steps = sigmas.slice(0, -1).map((s, i) => [s, sigmas[i + 1]] as const);
    const f = steps.map(([a, b]) => Array.from(fwd(a, b)));
    const r = [...steps]
      .reverse()
      .map(([a, b]) => Array.from(rev(a, b)))
      .reverse();
    expect(r).toEqual(f);
  });

  it('increments add up: W[a,c] = W[a,b] + W[b,c]', () => {
    const tree = new BrownianTree(Math.fround(smin), Math.fround(smax), [1, 4, 8, 8], 17n);
    const [a, b, c] = [Math.fround(0.6181), Math.fround(2.6167), Math.fround(9.7232)];
    const ab = tree.increment(a, b);
    const bc = tree.increment(b, c);
    const ac = tree.increment(a, c);
    for (let i = 0; i < ac.length; i++) expect(Math.abs(ab[i] + bc[i] - ac[i])).toBeLessThan(1e-5);
    // The same through the normalised sampler: n_ac*sqrt(c-a) = n_ab*sqrt(b-a) + n_bc*sqrt(c-b).
    const ns = brownianNoiseSampler(17n, [1, 4, 8, 8], smin, smax);
    const nab = ns(b, a);
    const nbc = ns(c, b);
    const nac = ns(c, a);
    for (let i = 0; i < nac.length; i++) {
      const lhs = nac[i] * Math.sqrt(c - a);
      const rhs = nab[i] * Math.sqrt(b - a) + nbc[i] * Math.sqrt(c - b);
      expect(Math.abs(lhs - rhs)).toBeLessThan(1e-5);
    }
  });

  it('increments over disjoint intervals are uncorrelated', () => {
    const ns = brownianNoiseSampler(8n, [1, 4, 64, 64], smin, smax);
    const x = ns(9.7232, 6.3412);
    const y = ns(6.3412, 4.0933);
    let dot = 0;
    for (let i = 0; i < x.length; i++) dot += x[i] * y[i];
    expect(Math.abs(dot / x.length)).toBeLessThan(0.04);
  });

  it('reverses sign with the direction of the step', () => {
    const ns = brownianNoiseSampler(3n, [2, 2, 2, 2], smin, smax);
    const down = ns(2.6167, 1.6484);
    const up = ns(1.6484, 2.6167);
    for (let i = 0; i < down.length; i++) expect(up[i]).toBe(-down[i]);
  });
});
