import path from 'node:path';
import { ITEMSIZE } from '../../../core/dtype.ts';
import { writeFileAtomic } from '../../../core/safe-path.ts';
import { encodeTensor, SafetensorsWriter, type TensorSpec } from '../../../formats/safetensors.ts';
import { Rng } from '../../generate/rng.ts';
import { makeTinyTokenizer, mergesText } from '../../generate/tiny-tokenizer.ts';
import type { SdxlConfig } from './config.ts';
import { sdxlLayout } from './layout.ts';

/** A marker tensor: a bare name is a float32 scalar 1 (its presence is what counts). */
export type SdxlMarker = string | { readonly name: string; readonly shape: readonly number[]; readonly values: readonly number[] };

/**
 * The marker keys of the SDXL variants ComfyUI's SDXL.model_type tells apart, as the released files
 * carry them: Playground v2.5's latent mean and std [1, 4, 1, 1], CosXL's σ range, NoobAI-style v with
 * zero terminal SNR.
 */
export const SDXL_VARIANT_MARKERS = {
  playground: [
    { name: 'edm_mean', shape: [1, 4, 1, 1], values: [-1.6574, 1.886, -1.383, 2.5155] },
    { name: 'edm_std', shape: [1, 4, 1, 1], values: [8.4927, 5.9022, 6.5498, 5.2299] },
  ],
  cosxl: [
    { name: 'edm_vpred.sigma_max', shape: [], values: [120] },
    { name: 'edm_vpred.sigma_min', shape: [], values: [0.002] },
  ],
  vpred: ['v_pred', 'ztsnr'],
} as const satisfies Record<string, readonly SdxlMarker[]>;

export type SdxlVariant = keyof typeof SDXL_VARIANT_MARKERS;

export interface MakeSdxlOptions {
  seed?: number;
  dtype?: 'F32' | 'F16';
  /** Marker tensors ComfyUI reads the prediction from (`v_pred`, `ztsnr`, `edm_mean`, `edm_vpred.sigma_max`, ...). */
  markers?: readonly SdxlMarker[];
  onProgress?: (written: number, total: number) => void;
}

/** Spread of a weight's random values: norms 1, biases 0, embeddings 0.02 (CLIP's init), the rest 1/√fan-in. */
function spread(name: string, shape: readonly number[]): { fill?: number; std?: number } {
  if (name.endsWith('.bias') || name.endsWith('_bias')) return { fill: 0 };
  if (shape.length === 1) return { fill: 1 };
  if (name.endsWith('embedding.weight') || name.endsWith('positional_embedding')) return { std: 0.02 };
  // open_clip's text_projection is applied as x·P: its fan-in is its first axis.
  if (name.endsWith('text_projection')) return { std: 1 / Math.sqrt(shape[0]) };
  let fanIn = 1;
  for (const d of shape.slice(1)) fanIn *= d;
  return { std: 1 / Math.sqrt(fanIn) };
}

/** Values drawn once per spread, which every tensor of that spread copies slices of (random offsets). */
const POOL = 1 << 20;

/**
 * A random-weight SDXL checkpoint with the original key names, streamed one tensor at a time. Values
 * come from one pool of Gaussians per distinct spread, encoded once in the file's dtype and copied in
 * slices at random offsets: a byte copy per slice rather than a Box–Muller pair and an encoding per
 * value, so a full-size SDXL (3.5 G values) is bound by the disk. The repetition does not matter for random test/benchmark weights.
 */
export async function writeSdxlCheckpoint(outFile: string, cfg: SdxlConfig, opts: MakeSdxlOptions = {}): Promise<void> {
  const seed = opts.seed ?? 0;
  const dtype = opts.dtype ?? 'F32';
  const rng = new Rng(seed);
  const weights = [...sdxlLayout(cfg)];
  const markers = (opts.markers ?? []).map((m) =>
    typeof m === 'string' ? { name: m, dtype: 'F32' as const, shape: [] as number[], values: [1] } : { ...m, dtype: 'F32' as const, shape: [...m.shape] },
  );
  const specs: TensorSpec[] = [...weights.map(([name, shape]) => ({ name, dtype, shape })), ...markers];
  const total = specs.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1) * ITEMSIZE[t.dtype], 0);
  const arch = cfg.kind === 'base' ? 'stable-diffusion-xl-v1-base' : 'stable-diffusion-xl-v1-refiner';
  const w = SafetensorsWriter.create(outFile, specs, { 'modelspec.architecture': arch, 'modelspec.title': path.basename(outFile), 'weft.generator': 'make-model', 'weft.seed': String(seed) });
  const item = ITEMSIZE[dtype];
  // Pools hold encoded values, so a tensor is byte copies and the encoding runs once per pool value.
  const pools = new Map<number, Uint8Array>();
  const pool = (std: number): Uint8Array => {
    let p = pools.get(std);
    if (!p) pools.set(std, (p = encodeTensor(dtype, rng.normal(new Float32Array(POOL), std))));
    return p;
  };
  const constant = (v: number, n: number): Uint8Array => {
    const one = encodeTensor(dtype, new Float32Array([v]));
    const out = new Uint8Array(n * item);
    for (let i = 0; i < item; i++) if (one[i] !== 0) for (let j = i; j < out.length; j += item) out[j] = one[i];
    return out;
  };
  let written = 0;
  try {
    for (const [name, shape] of weights) {
      const n = shape.reduce((a, b) => a * b, 1);
      const s = spread(name, shape);
      let bytes: Uint8Array;
      if (s.fill !== undefined) bytes = constant(s.fill, n);
      else {
        const p = pool(s.std!);
        bytes = new Uint8Array(n * item);
        for (let at = 0; at < n; ) {
          const len = Math.min(n - at, POOL >> 1);
          const off = rng.nextU32() % (POOL - len + 1);
          bytes.set(p.subarray(off * item, (off + len) * item), at * item);
          at += len;
        }
      }
      w.writeRaw(name, bytes);
      written += n * item;
      opts.onProgress?.(written, total);
      await new Promise<void>((r) => setImmediate(r));
    }
    for (const m of markers) w.write(m.name, Float32Array.from(m.values));
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
}

/** The tiny model's own BPE vocabulary, `<dir>/<name>.tokenizer/` as the SD1 tiny model has it; returns its size. */
export function writeTinyTokenizer(outFile: string): number {
  const tok = makeTinyTokenizer();
  const dir = `${outFile.replace(/\.[^.\\/]+$/, '')}.tokenizer`;
  writeFileAtomic(path.join(dir, 'vocab.json'), JSON.stringify(tok.vocab));
  writeFileAtomic(path.join(dir, 'merges.txt'), mergesText(tok.merges));
  return Object.keys(tok.vocab).length;
}
