import { describe, expect, it } from 'vitest';
import { fmaf } from '../../engine/image/preprocess/cv-fma.ts';

/** A finite double as m · 2^e with integer m (exact). */
function exact(v: number): { m: bigint; e: number } {
  if (v === 0) return { m: 0n, e: 0 };
  let e = 0;
  let x = v;
  while (!Number.isInteger(x)) {
    x *= 2;
    e--;
  }
  return { m: BigInt(x), e };
}

/** Rounds m · 2^e to the nearest float32 (ties to even), for values well inside float32's normal range. */
function roundToFloat32(m: bigint, e: number): number {
  if (m === 0n) return 0;
  const neg = m < 0n;
  let a = neg ? -m : m;
  let bits = a.toString(2).length;
  if (bits > 24) {
    const drop = BigInt(bits - 24);
    const q = a >> drop;
    const rest = a - (q << drop);
    const half = 1n << (drop - 1n);
    a = rest > half || (rest === half && (q & 1n) === 1n) ? q + 1n : q;
    e += Number(drop);
    bits = a.toString(2).length;
  }
  const v = Number(a) * 2 ** e;
  return neg ? -v : v;
}

/** fmaf by exact integer arithmetic: a·b + c with one rounding. */
function fmaExact(a: number, b: number, c: number): number {
  const [x, y, z] = [exact(a), exact(b), exact(c)];
  const pe = x.e + y.e;
  const pm = x.m * y.m;
  const e = Math.min(pe, z.e);
  const sum = (pm << BigInt(pe - e)) + (z.m << BigInt(z.e - e));
  return roundToFloat32(sum, e);
}

/** A deterministic float32 generator (xorshift) over a range of magnitudes and both signs. */
function* floats(seed: number, n: number): Generator<[number, number, number]> {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  const f = (): number => Math.fround((next() - 0.5) * 2 ** Math.floor(next() * 20 - 10));
  for (let i = 0; i < n; i++) yield [f(), f(), f()];
}

describe('fmaf: float32 fused multiply-add with one rounding', () => {
  it('equals exact rational arithmetic on random float32 triples', () => {
    for (const [a, b, c] of floats(12345, 20000)) expect(fmaf(a, b, c), `${a} * ${b} + ${c}`).toBe(fmaExact(a, b, c));
  });

  it('rounds a double that lies exactly halfway between two float32s by the bits the double dropped', () => {
    // a·a = 1 + 2^-11 + 2^-24 exactly, halfway between the float32s 1 + 2^-11 and 1 + 2^-11 + 2^-23;
    // adding c = ±2^-70 moves the exact value off the midpoint, but the double sum loses c and lands on it
    const a = Math.fround(1 + 2 ** -12);
    const mid = 1 + 2 ** -11 + 2 ** -24;
    expect(a * a).toBe(mid);
    expect(a * a + 2 ** -70).toBe(mid);
    // rounding the double alone ties to the even neighbour, below; the exact value is above
    expect(Math.fround(a * a + 2 ** -70)).toBe(1 + 2 ** -11);
    expect(fmaf(a, a, 2 ** -70)).toBe(1 + 2 ** -11 + 2 ** -23);
    expect(fmaf(a, a, -(2 ** -70))).toBe(1 + 2 ** -11);
    expect(fmaf(-a, a, -(2 ** -70))).toBe(-(1 + 2 ** -11 + 2 ** -23));
    for (const c of [2 ** -70, -(2 ** -70), 0]) expect(fmaf(a, a, c)).toBe(fmaExact(a, a, c));
    // and rounding the product to float32 before adding (no fusion) differs from fmaf somewhere
    let twice = 0;
    for (const [x, y, z] of floats(99, 5000)) if (Math.fround(Math.fround(x * y) + z) !== fmaExact(x, y, z)) twice++;
    expect(twice).toBeGreaterThan(0);
  });
});
