import type { AdapterTensor, WeightPatch } from './types.ts';

/**
 * What shape a patch's difference comes out as, worked out from the tensor shapes alone, so a
 * mismatched adapter is refused when it is parsed (naming the key) rather than when it is applied.
 * ComfyUI reshapes each difference to the weight's shape, so an equal element count with the same
 * output width fits (a linear-shaped LoRA on a 1×1 conv does).
 */

export type ShapeCheck = { ok: true } | { ok: false; key: string; expected: readonly number[]; got: readonly number[]; why?: string };

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** kron's result shape; the shorter operand counts as having leading 1s, as torch.kron does. */
export function kronShape(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const pa = [...Array<number>(n - a.length).fill(1), ...a];
  const pb = [...Array<number>(n - b.length).fill(1), ...b];
  return pa.map((d, i) => d * pb[i]);
}

function inner(t: AdapterTensor): number {
  return numel(t.shape) / t.shape[0];
}

/** The product shape of a low-rank pair `a·b` ([a0, r] · [r, …]), or a reason it has none. */
function pairShape(a: AdapterTensor, b: AdapterTensor): { shape: number[] } | { why: string } {
  if (a.shape.length < 2 || b.shape.length < 2) return { why: `'${a.key}' and '${b.key}' must both be matrices` };
  if (inner(a) !== b.shape[0]) return { why: `rank mismatch: '${a.key}' has ${inner(a)} columns, '${b.key}' has ${b.shape[0]} rows` };
  return { shape: [a.shape[0], ...b.shape.slice(1)] };
}

/** 'i j k l, j r, i p -> p r k l': a Tucker core t with factors b (inputs) and a (outputs). */
function tuckerShape(t: AdapterTensor, b: AdapterTensor, a: AdapterTensor): { shape: number[] } | { why: string } {
  if (t.shape.length !== 4 || a.shape.length !== 2 || b.shape.length !== 2) return { why: `Tucker form needs a 4-D '${t.key}' and 2-D factors` };
  if (t.shape[0] !== a.shape[0] || t.shape[1] !== b.shape[0]) return { why: `Tucker core '${t.key}' [${t.shape.join(', ')}] does not match '${a.key}' [${a.shape.join(', ')}] and '${b.key}' [${b.shape.join(', ')}]` };
  return { shape: [a.shape[1], b.shape[1], t.shape[2], t.shape[3]] };
}

function fits(got: readonly number[], expected: readonly number[]): boolean {
  return got[0] === expected[0] && numel(got) === numel(expected);
}

/** `outKey` holds the output axis, `inKey` the rest: a mismatch is blamed on the tensor that carries it. */
function result(outKey: string, expected: readonly number[], r: { shape: number[] } | { why: string }, inKey = outKey): ShapeCheck {
  if ('why' in r) return { ok: false, key: outKey, expected, got: [], why: r.why };
  if (fits(r.shape, expected)) return { ok: true };
  return { ok: false, key: r.shape[0] !== expected[0] ? outKey : inKey, expected, got: r.shape };
}

/** The LoRA down factor with a LoCon Tucker core folded in: [r_mid, in, kh, kw]. */
function loraShape(up: AdapterTensor, down: AdapterTensor, mid?: AdapterTensor): { shape: number[] } | { why: string } {
  if (!mid) return pairShape(up, down);
  if (mid.shape.length !== 4 || down.shape.length < 2) return { why: `LoCon core '${mid.key}' must be 4-D and '${down.key}' at least 2-D` };
  if (inner(down) !== down.shape[1] || mid.shape[1] !== down.shape[0]) return { why: `LoCon core '${mid.key}' [${mid.shape.join(', ')}] does not follow '${down.key}' [${down.shape.join(', ')}]` };
  if (inner(up) !== mid.shape[0]) return { why: `rank mismatch: '${up.key}' has ${inner(up)} columns, '${mid.key}' has ${mid.shape[0]} rows` };
  return { shape: [up.shape[0], down.shape[1], mid.shape[2], mid.shape[3]] };
}

function lokrFactor(w: AdapterTensor | undefined, a: AdapterTensor | undefined, b: AdapterTensor | undefined, t?: AdapterTensor): { shape: number[] } | { why: string } {
  if (w) return { shape: [...w.shape] };
  if (t) return tuckerShape(t, b!, a!);
  return pairShape(a!, b!);
}

export function patchResultShape(p: WeightPatch, expected: readonly number[]): ShapeCheck {
  const dora = p.doraScale;
  if (dora) {
    const n = expected.length;
    const ok = n >= 2 && dora.shape.length <= n && dora.shape.every((d, i) => d === 1 || d === expected[n - dora.shape.length + i]);
    if (!ok) return { ok: false, key: dora.key, expected, got: dora.shape, why: 'a DoRA scale must broadcast over the weight (per output row, [out, 1, …], or per input channel, [1, in, …])' };
  }
  switch (p.kind) {
    case 'lora':
      return result(p.up.key, expected, loraShape(p.up, p.down, p.mid), p.down.key);
    case 'loha': {
      const m1 = p.t1 && p.t2 ? tuckerShape(p.t1, p.w1b, p.w1a) : pairShape(p.w1a, p.w1b);
      const m2 = p.t1 && p.t2 ? tuckerShape(p.t2, p.w2b, p.w2a) : pairShape(p.w2a, p.w2b);
      if ('shape' in m1 && 'shape' in m2 && m1.shape.join() !== m2.shape.join()) {
        return { ok: false, key: p.w2a.key, expected, got: m2.shape, why: `the two Hadamard factors differ: [${m1.shape.join(', ')}] vs [${m2.shape.join(', ')}]` };
      }
      return 'why' in m2 ? result(p.w2a.key, expected, m2) : result(p.w1a.key, expected, m1, p.w1b.key);
    }
    case 'lokr': {
      const w1 = lokrFactor(p.w1, p.w1a, p.w1b);
      const w2 = lokrFactor(p.w2, p.w2a, p.w2b, p.t2);
      const key1 = (p.w1 ?? p.w1a)!.key;
      const key2 = (p.w2 ?? p.w2a)!.key;
      if ('why' in w1) return result(key1, expected, w1);
      if ('why' in w2) return result(key2, expected, w2);
      // ComfyUI gives a 2-D w1 two trailing unit dims when w2 is a conv kernel.
      const a = w2.shape.length === 4 && w1.shape.length === 2 ? [...w1.shape, 1, 1] : w1.shape;
      return result(key1, expected, { shape: kronShape(a, w2.shape) }, key2);
    }
    case 'ia3': {
      const want = expected.length >= 2 ? (p.onInput ? expected[1] : expected[0]) : -1;
      if (numel(p.weight.shape) === want) return { ok: true };
      return { ok: false, key: p.weight.key, expected: [want], got: p.weight.shape, why: expected.length < 2 ? 'IA3 scales a matrix or conv kernel' : `one scale per ${p.onInput ? 'input' : 'output'} channel` };
    }
    case 'diff':
      return p.diff.shape.join() === expected.join() ? { ok: true } : { ok: false, key: p.diff.key, expected, got: p.diff.shape };
    case 'set':
      return p.value.shape.join() === expected.join() ? { ok: true } : { ok: false, key: p.value.key, expected, got: p.value.shape };
    case 'glora': {
      const g = gloraLayout(p, expected);
      if ('why' in g) return { ok: false, key: p.a1.key, expected, got: p.a1.shape, why: g.why };
      return { ok: true };
    }
    case 'slices': {
      for (const part of p.parts) {
        if (part.start < 0 || part.start + part.rows > (expected[0] ?? 0)) {
          return { ok: false, key: part.patch.stem, expected, got: [part.start + part.rows], why: `rows ${part.start}..${part.start + part.rows} lie outside the weight` };
        }
        const check = patchResultShape(part.patch, [part.rows, ...expected.slice(1)]);
        if (!check.ok) return check;
      }
      return { ok: true };
    }
  }
}

/**
 * ComfyUI tells GLoRA's two layouts apart by shapes. New: W·a1·a2 + b1·b2 (a1 [in, r], a2 [r, in],
 * b1 [out, r], b2 [r, in]); old LyCORIS: W·a2·a1 + b2·b1. Both shapes can hold for a square weight,
 * where the new layout wins unless a2 is as tall as the weight.
 */
export function gloraLayout(p: { a1: AdapterTensor; a2: AdapterTensor; b1: AdapterTensor; b2: AdapterTensor }, weight: readonly number[]): { old: boolean; rank: number } | { why: string } {
  const [a1, a2, b1, b2] = [p.a1.shape, p.a2.shape, p.b1.shape, p.b2.shape].map((s) => [s[0], numel(s) / s[0]]);
  let old = false;
  let rank = 0;
  if (b2[1] === b1[0] && b1[0] === a1[0] && a1[0] === a2[1]) {
    rank = a1[0];
    old = true;
  }
  if (b2[0] === b1[1] && b1[1] === a1[1] && a1[1] === a2[0]) {
    if (!(old && a2[0] === weight[0] && weight[0] === weight[1])) {
      old = false;
      rank = a2[0];
    }
  }
  if (!rank) return { why: `GLoRA factors [${a1}], [${a2}], [${b1}], [${b2}] share no rank` };
  const rest = numel(weight) / weight[0];
  const ok = old
    ? b2[0] * b1[1] === numel(weight) && a2[0] === rest && a1[1] === rest
    : a1[0] === weight[1] && a2[1] === weight[1] && b1[0] * b2[1] === numel(weight);
  return ok ? { old, rank } : { why: `GLoRA factors do not fit a [${weight.join(', ')}] weight` };
}
