import { MT19937 } from '../noise/mt19937.ts';

/**
 * SpotDiffusion's per-step window shifts as ComfyUI-TiledDiffusion draws them: one
 * `torch.randint(0, tile, (len(sigmas) − 1,), generator=manual_seed(seed))` for the rows and another
 * from a fresh generator with the same seed for the columns, then optionally sorted or spread in
 * Fibonacci order (SpotDiffusionParams' shift_method).
 */

export const SPOT_SHIFT_METHODS = ['random', 'sorted', 'fibonacci'] as const;
export type SpotShiftMethod = (typeof SPOT_SHIFT_METHODS)[number];

/**
 * torch.randint(0, high, (n,)) on CPU: each value is one 32-bit mt19937 draw modulo the range
 * (random_from_to for int64 below 2^32), drawn in order by the serial CPU kernel.
 */
export function torchRandint(seed: bigint, high: number, n: number): Int32Array {
  if (!(Number.isInteger(high) && high >= 1)) throw new Error(`randint: the range 0 … ${high} is empty`);
  const mt = new MT19937(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = mt.nextUint32() % high;
  return out;
}

/** The package's fibonacci_spacing: value i goes to index fib[i mod len(fib)] mod n, probing forward past used slots. */
export function fibonacciSpacing(x: Int32Array): Int32Array {
  const n = x.length;
  const out = new Int32Array(n);
  const fib = [0, 1];
  while (fib[fib.length - 1] < n) fib.push(fib[fib.length - 1] + fib[fib.length - 2]);
  const used = new Set<number>();
  for (let i = 0; i < n; i++) {
    let t = fib[i % fib.length] % n;
    while (used.has(t)) t = (t + 1) % n;
    out[t] = x[i];
    used.add(t);
  }
  return out;
}

/** Row and column shifts per step of a schedule of `steps + 1` sigmas (latent pixels). */
export function spotShifts(
  seed: bigint,
  steps: number,
  tileH: number,
  tileW: number,
  method: SpotShiftMethod,
): { h: Int32Array; w: Int32Array } {
  let h = torchRandint(seed, tileH, steps);
  let w = torchRandint(seed, tileW, steps);
  if (method !== 'random') {
    h = h.slice().sort();
    w = w.slice().sort();
    if (method === 'fibonacci') {
      h = fibonacciSpacing(h);
      w = fibonacciSpacing(w);
    }
  }
  return { h, w };
}

/**
 * The step index of σ in the schedule, as the package finds it: the schedule entry nearest to σ
 * (float32 distances, the first on a tie), then its first exact match (0 if none).
 */
export function stepIndex(sigmas: ArrayLike<number>, sigma: number): number {
  const s = Math.fround(sigma);
  let best = 0;
  let bestD = Infinity;
  for (let i = 0; i < sigmas.length; i++) {
    const d = Math.fround(Math.abs(Math.fround(sigmas[i]) - s));
    if (d < bestD) {
      bestD = d;
      best = i;
    }
  }
  const nearest = Math.fround(sigmas[best]);
  for (let i = 0; i < sigmas.length; i++) if (Math.fround(sigmas[i]) === nearest) return i;
  return 0;
}

/** torch.roll of an NCHW tensor by (dy, dx): out[y, x] = in[(y − dy) mod H, (x − dx) mod W]. */
export function roll(data: Float32Array, shape: readonly number[], dy: number, dx: number): Float32Array {
  if (dy === 0 && dx === 0) return data;
  const H = shape[shape.length - 2];
  const W = shape[shape.length - 1];
  const planes = data.length / (H * W);
  const out = new Float32Array(data.length);
  const my = ((dy % H) + H) % H;
  const mx = ((dx % W) + W) % W;
  for (let p = 0; p < planes; p++)
    for (let y = 0; y < H; y++) {
      const src = (p * H + ((y - my + H) % H)) * W;
      const dst = (p * H + y) * W;
      for (let x = 0; x < W; x++) out[dst + x] = data[src + ((x - mx + W) % W)];
    }
  return out;
}
