import path from 'node:path';
import { writeFileAtomic } from '../core/safe-path.ts';
import type { Sd1Config } from './families/sd1/config.ts';
import { Rng } from './generate/rng.ts';
import { makeTinyTokenizer, mergesText } from './generate/tiny-tokenizer.ts';
import { SafetensorsWriter, type TensorSpec } from '../formats/safetensors.ts';
import { ITEMSIZE } from '../core/dtype.ts';
import { SD15_CONFIG, sd1Buffers, sd1Layout } from './families/sd1/layout.ts';
import { SDXL_BASE_CONFIG, tinySdxlConfig } from './families/sdxl/layout.ts';
import { writeSdxlCheckpoint, writeTinyTokenizer, type SdxlMarker } from './families/sdxl/make.ts';

export { makeTinyTokenizer } from './generate/tiny-tokenizer.ts';

/**
 * Random-weight SD1 checkpoints made by Weft itself (no model can be downloaded here): a tiny one for
 * tests and the demo, and a full-size SD1.5-shaped one for benchmarks. Both are real single-file
 * checkpoints with the original LDM key names, deterministic from a seed.
 */

export interface MakeModelOptions {
  seed?: number;
  /** Called after each tensor with bytes written so far and the total (for a progress bar). */
  onProgress?: (written: number, total: number) => void;
}

/**
 * Values for one weight. Every 1-D `.weight` of SD1 is a Group/LayerNorm scale (1); biases start at 0;
 * embeddings N(0, 0.02²) as CLIP initialises them; the rest N(0, 1/fan_in), which keeps each layer's
 * output variance near its input's, so activations stay finite through the deep UNet.
 */
function initTensor(name: string, shape: readonly number[], rng: Rng): Float32Array {
  let n = 1;
  for (const d of shape) n *= d;
  const data = new Float32Array(n);
  if (name.endsWith('.bias')) return data;
  if (shape.length === 1) return data.fill(1);
  if (name.endsWith('embedding.weight')) return rng.normal(data, 0.02);
  let fanIn = 1;
  for (const d of shape.slice(1)) fanIn *= d;
  return rng.normal(data, 1 / Math.sqrt(fanIn));
}

async function writeModel(outFile: string, cfg: Sd1Config, dtype: 'F32' | 'F16', opts: MakeModelOptions, extraMeta: Record<string, string>): Promise<void> {
  const seed = opts.seed ?? 0;
  const rng = new Rng(seed);
  const weights = [...sd1Layout(cfg)];
  const buffers = sd1Buffers(cfg);
  const specs: TensorSpec[] = [
    ...weights.map(([name, shape]) => ({ name, dtype, shape })),
    ...buffers.map(({ name, dtype: d, shape }) => ({ name, dtype: d, shape })),
  ];
  const total = specs.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1) * ITEMSIZE[t.dtype], 0);
  const w = SafetensorsWriter.create(outFile, specs, {
    'modelspec.architecture': 'stable-diffusion-v1',
    'modelspec.title': extraMeta.title ?? path.basename(outFile),
    'weft.generator': 'make-model',
    'weft.seed': String(seed),
    ...extraMeta,
  });
  let written = 0;
  try {
    // Generated one tensor at a time, so a 2 GB file never sits in memory; yielding between tensors
    // keeps a server that runs this responsive.
    for (const [name, shape] of weights) {
      const data = initTensor(name, shape, rng);
      w.write(name, data);
      written += data.length * ITEMSIZE[dtype];
      opts.onProgress?.(written, total);
      await new Promise<void>((r) => setImmediate(r));
    }
    for (const b of buffers) {
      w.write(b.name, b.data);
      written += b.data.length * ITEMSIZE[b.dtype];
    }
    w.finish();
    opts.onProgress?.(written, total);
  } catch (e) {
    w.abort();
    throw e;
  }
}

/**
 * The tiny configuration: every SD1 block kind kept (4 UNet levels, 2 res blocks each, attention at
 * levels 0–2, 8 heads, conv proj_in/out; CLIP-L's layout; a 4-level VAE so latents stay 1/8 of the
 * image) at small widths: UNet 32 channels (the GroupNorm(32) minimum), CLIP 64 wide (one 64-wide
 * head) × 2 layers, VAE 32 channels with one res block per level.
 */
export function tinyConfig(vocabSize: number): Sd1Config {
  return {
    family: 'sd1',
    scaleFactor: 0.18215,
    unet: { ...SD15_CONFIG.unet, modelChannels: 32, contextDim: 64 },
    clip: { ...SD15_CONFIG.clip, vocabSize, hiddenSize: 64, numLayers: 2, intermediateSize: 256, numHeads: 1 },
    vae: { ...SD15_CONFIG.vae, ch: 32, numResBlocks: 1 },
  };
}

/** `<dir>/<name>.tokenizer` for `<dir>/<name>.safetensors`: where a model's own tokenizer lives. */
export function tokenizerDirFor(modelFile: string): string {
  return `${modelFile.replace(/\.[^.\\/]+$/, '')}.tokenizer`;
}

/**
 * The tiny SD1-architecture checkpoint (~5 MB of float32) plus its own CLIP BPE tokenizer
 * (vocab.json + merges.txt in `<name>.tokenizer/`).
 */
export async function makeTinyCheckpoint(outFile: string, opts: MakeModelOptions & { inpainting?: boolean } = {}): Promise<void> {
  const tok = makeTinyTokenizer();
  const vocabSize = Object.keys(tok.vocab).length;
  const dir = tokenizerDirFor(outFile);
  writeFileAtomic(path.join(dir, 'vocab.json'), JSON.stringify(tok.vocab));
  writeFileAtomic(path.join(dir, 'merges.txt'), mergesText(tok.merges));
  const cfg = tinyConfig(vocabSize);
  // An inpainting variant (9 input channels: latent, mask, masked latent) for the inpaint-model paths.
  if (opts.inpainting) cfg.unet = { ...cfg.unet, inChannels: 9 };
  await writeModel(outFile, cfg, 'F32', opts, { title: `Weft tiny SD1${opts.inpainting ? ' inpainting' : ''} (random weights)` });
}

/**
 * A full-size SD1.5-shaped checkpoint with random weights (fp16 by default: ~2.1 GB), streamed to
 * disk. It uses the real CLIP tokenizer (vocab 49408): the project's copy unless one is next to it.
 */
export async function makeFullSd15Checkpoint(outFile: string, opts: MakeModelOptions & { dtype?: 'F16' | 'F32' } = {}): Promise<void> {
  await writeModel(outFile, SD15_CONFIG, opts.dtype ?? 'F16', opts, { title: 'Weft random SD1.5 (random weights)' });
}

/**
 * The tiny SDXL-architecture checkpoint (base, or the refiner with `kind: 'refiner'`), float32, with its
 * own small tokenizer as the SD1 tiny model has (see families/sdxl/layout.ts for its shape).
 */
export async function makeTinySdxlCheckpoint(outFile: string, opts: MakeModelOptions & { kind?: 'base' | 'refiner'; markers?: readonly SdxlMarker[] } = {}): Promise<void> {
  const vocab = writeTinyTokenizer(outFile);
  await writeSdxlCheckpoint(outFile, tinySdxlConfig(vocab, opts.kind ?? 'base'), { seed: opts.seed, dtype: 'F32', markers: opts.markers, onProgress: opts.onProgress });
}

/** A full-size SDXL 1.0 base-shaped checkpoint with random float16 weights (~6.9 GB), for benchmarks. */
export async function makeFullSdxlCheckpoint(outFile: string, opts: MakeModelOptions = {}): Promise<void> {
  await writeSdxlCheckpoint(outFile, SDXL_BASE_CONFIG, { seed: opts.seed, dtype: 'F16', onProgress: opts.onProgress });
}
