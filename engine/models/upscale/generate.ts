import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { SafetensorsWriter } from '../../formats/safetensors.ts';
import { Rng } from '../generate/rng.ts';
import { expectedTensors, type CompactArch, type EsrganArch, type UpscaleArch } from './detect.ts';

/**
 * Random-weight upscalers made by Weft (tests, the demo, benchmarks). Each is a small random
 * perturbation around an identity path (the first conv copies RGB into the first three features,
 * every later conv passes them on, the last writes them out), so the demo's upscale looks like a
 * nearest-neighbour enlargement with texture rather than noise, while every weight still matters.
 */

export type EsrganShape = Pick<EsrganArch, 'nf' | 'nb' | 'gc' | 'upsamples'> & { inNc?: number; outNc?: number };

export function esrganArch(s: EsrganShape): EsrganArch {
  const outNc = s.outNc ?? 3;
  const inNc = s.inNc ?? 3;
  const shuffle = inNc === outNc * 4 ? 2 : inNc === outNc * 16 ? 4 : 1;
  return { kind: 'esrgan', layout: 'new', inNc, outNc, nf: s.nf, nb: s.nb, gc: s.gc, upsamples: s.upsamples, shuffle, scale: 2 ** s.upsamples / shuffle };
}

export function compactArch(s: Pick<CompactArch, 'nf' | 'numConv' | 'scale'>): CompactArch {
  return { kind: 'compact', inNc: 3, outNc: 3, ...s };
}

/** The published Real-ESRGAN x4plus shape (64 features, 23 RRDBs). */
export const REALESRGAN_X4PLUS: EsrganShape = { nf: 64, nb: 23, gc: 32, upsamples: 2 };
/** The published realesr-general-x4v3 shape (SRVGGNetCompact, 64 features, 32 body convs). */
export const REALESR_GENERAL_X4V3 = { nf: 64, numConv: 32, scale: 4 } as const;
/** The demo's tiny ESRGAN ×4 and compact ×4. */
export const TINY_ESRGAN: EsrganShape = { nf: 8, nb: 1, gc: 4, upsamples: 2 };
export const TINY_COMPACT = { nf: 8, numConv: 2, scale: 4 } as const;

/** New-layout (Real-ESRGAN) name of an old-layout key, the inverse of the loader's map. */
export function esrganNewName(a: EsrganArch, k: string): string {
  if (k.startsWith('model.0.')) return k.replace('model.0.', 'conv_first.');
  const rdb = /^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$/.exec(k);
  if (rdb) return `body.${rdb[1]}.rdb${rdb[2]}.conv${rdb[3]}.${rdb[4]}`;
  if (k.startsWith(`model.1.sub.${a.nb}.`)) return k.replace(`model.1.sub.${a.nb}.`, 'conv_body.');
  const m = /^model\.(\d+)\.(weight|bias)$/.exec(k)!;
  const i = Number(m[1]);
  if (i === 3 * a.upsamples + 4) return `conv_last.${m[2]}`;
  if (i === 3 * a.upsamples + 2) return `conv_hr.${m[2]}`;
  return `conv_up${i / 3}.${m[2]}`;
}

/** 2× stages for an ESRGAN scale spandrel can detect (a power of two: 1, 2, 4, 8, …). */
export function esrganUpsamples(scale: number): number {
  const u = Math.log2(scale);
  if (!Number.isInteger(u) || u < 0 || u > 4)
    throw new Error(`ESRGAN scale ${scale}: expected 1, 2, 4, 8 or 16 (spandrel reads the scale as a power of two from the layer count)`);
  return u;
}

/** Whether a conv carries the identity path (its output's first channels are its input's first channels). */
function identityConv(a: UpscaleArch, k: string): boolean {
  if (a.kind === 'compact') return k.endsWith('.weight') && /^body\.\d*[02468]\./.test(k);
  return !k.startsWith('model.1.sub.');
}

/** Random weights of an architecture under its graph names (ESRGAN: old names). */
export function randomUpscaleWeights(a: UpscaleArch, seed: number): Map<string, { shape: number[]; data: Float32Array }> {
  const rng = new Rng(seed);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, shape] of expectedTensors(a)) {
    const n = shape.reduce((x, y) => x * y, 1);
    const data = rng.normal(new Float32Array(n), 1);
    if (shape.length === 4) {
      const [o, i] = shape;
      const s = 0.1 / Math.sqrt(i * 9);
      for (let j = 0; j < n; j++) data[j] *= s;
      // Compact's last conv feeds a pixel shuffle over a nearest-upsampled input: no identity needed there.
      const last = a.kind === 'compact' && o === a.outNc * a.scale * a.scale;
      if (identityConv(a, k) && !last) for (let c = 0; c < Math.min(3, o, i); c++) data[((c * i + c) * 3 + 1) * 3 + 1] += 1;
    } else if (a.kind === 'compact' && shape.length === 1 && !k.endsWith('.bias')) data.fill(0.25);
    else for (let j = 0; j < n; j++) data[j] *= 0.01;
    out.set(k, { shape, data });
  }
  return out;
}

/** Writes a random upscaler (ESRGAN in the new Real-ESRGAN layout unless `esrganLayout: 'old'`, compact as published) to `file`. */
export function makeUpscaleFile(
  file: string,
  a: UpscaleArch,
  opts: { seed?: number; dtype?: 'F32' | 'F16'; esrganLayout?: 'old' | 'new' } = {},
): void {
  const weights = randomUpscaleWeights(a, opts.seed ?? 0);
  const name = (k: string): string => (a.kind === 'esrgan' && opts.esrganLayout !== 'old' ? esrganNewName(a, k) : k);
  const tensors = [...weights].map(([k, t]) => ({ name: name(k), shape: t.shape, data: t.data }));
  mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const w = SafetensorsWriter.create(file, tensors.map((t) => ({ name: t.name, dtype: opts.dtype ?? 'F32', shape: t.shape })), {
    'weft.generator': `make-upscaler-${a.kind}`,
    'weft.seed': String(opts.seed ?? 0),
  });
  try {
    for (const t of tensors) w.write(t.name, t.data);
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
}

/** Where `weft make-model tiny` puts the demo upscalers, under the models folder. */
export const DEMO_ESRGAN = 'upscale_models/weft-tiny-esrgan-x4.safetensors';
export const DEMO_COMPACT = 'upscale_models/weft-tiny-compact-x4.safetensors';

/** The demo upscalers, unless they exist; returns their paths. */
export function makeDemoUpscalers(modelsDir: string, seed: number): string[] {
  const made: [string, UpscaleArch][] = [
    [DEMO_ESRGAN, esrganArch(TINY_ESRGAN)],
    [DEMO_COMPACT, compactArch(TINY_COMPACT)],
  ];
  return made.map(([rel, a], i) => {
    const out = path.join(modelsDir, rel);
    if (!existsSync(out)) makeUpscaleFile(out, a, { seed: seed + 10 + i });
    return out;
  });
}
