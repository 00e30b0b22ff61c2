import fs from 'node:fs';
import path from 'node:path';
import type { Sd1Config } from './config.ts';
import { writeSafetensors, type TensorToWrite } from './safetensors.ts';
import { SD15_CONFIG, sd1Layout } from './sd1-layout.ts';

/**
 * Random-weight SD1 checkpoints made by Weft itself (no model can be downloaded here): a tiny one for
 * tests and the demo, and a full-size SD1.5-shaped one for benchmarks. Deterministic from a seed.
 */

/** SplitMix64-seeded xoshiro128** — fast, deterministic, good enough for random weights. */
class Rng {
  private s = new Uint32Array(4);
  constructor(seed: number) {
    let x = BigInt.asUintN(64, BigInt(seed) + 0x9e3779b97f4a7c15n);
    for (let i = 0; i < 4; i++) {
      x = BigInt.asUintN(64, x + 0x9e3779b97f4a7c15n);
      let z = x;
      z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
      z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
      this.s[i] = Number((z ^ (z >> 31n)) & 0xffffffffn);
    }
  }
  private next(): number {
    const s = this.s;
    const r = Math.imul(((s[1] * 5) << 7) | ((s[1] * 5) >>> 25), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 11) | (s[3] >>> 21);
    return r;
  }
  uniform(): number {
    return (this.next() + 1) / 4294967297;
  }
  /** Fills with N(0, std²) by Box–Muller. */
  normal(out: Float32Array, std: number): void {
    for (let i = 0; i < out.length; i += 2) {
      const r = Math.sqrt(-2 * Math.log(this.uniform()));
      const th = 2 * Math.PI * this.uniform();
      out[i] = r * Math.cos(th) * std;
      if (i + 1 < out.length) out[i + 1] = r * Math.sin(th) * std;
    }
  }
}

/** Values for one tensor: norms start at 1/0, biases at 0, weights N(0, 1/fan_in) (embeddings 0.02). */
function initTensor(name: string, shape: readonly number[], rng: Rng): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  const isNorm = /(norm|norm1|norm2|norm3|norm_out|layer_norm\d|final_layer_norm|in_layers\.0|out_layers\.0|out\.0)\.weight$/.test(name);
  if (isNorm && shape.length === 1) return data.fill(1);
  if (name.endsWith('.bias')) return data;
  if (name.includes('embedding')) {
    rng.normal(data, 0.02);
    return data;
  }
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1) || 1;
  rng.normal(data, 1 / Math.sqrt(fanIn));
  return data;
}

function writeModel(outFile: string, cfg: Sd1Config, seed: number, dtype: 'F32' | 'F16'): void {
  const rng = new Rng(seed);
  const tensors: TensorToWrite[] = [...sd1Layout(cfg)].map(([name, shape]) => ({
    name,
    dtype,
    shape,
    // Generated lazily, one tensor at a time, so a 2 GB file never sits in memory.
    data: () => initTensor(name, shape, rng),
  }));
  writeSafetensors(outFile, tensors, { 'weft.generator': 'make-model', 'weft.seed': String(seed), 'modelspec.architecture': 'stable-diffusion-v1' });
}

/** Common prompt words, from which the tiny tokenizer learns its merges. */
const WORDS = `a an the of and in on with at by for to from photo painting portrait landscape city street night day
light dark sunset sunrise sky cloud clouds mountain mountains river lake sea ocean beach forest tree trees flower flowers
garden house castle tower lighthouse bridge road car train boat ship cat dog bird horse fox wolf dragon robot woman man
girl boy child old young face eyes hair smile dress coat hat red blue green yellow orange purple pink black white gold
silver bright soft warm cold detailed intricate beautiful cinematic dramatic studio watercolor oil digital art style
illustration render sharp focus high quality best masterpiece blurry lowres watermark text signature ugly deformed
snow rain fog mist storm fire water stone wood glass metal winter summer autumn spring morning evening dawn dusk`
  .split(/\s+/)
  .filter(Boolean);

/**
 * A valid CLIP BPE tokenizer of its own for the tiny model: the 256 byte symbols and their `</w>`
 * forms, merges learned from WORDS (most frequent pair first, ties by name), BOS/EOS last.
 */
export function makeTinyTokenizer(merges = 400): { vocab: Record<string, number>; merges: [string, string][] } {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let extra = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) {
    bs.push(b);
    cs.push(256 + extra++);
  }
  const base = cs.map((c) => String.fromCodePoint(c));
  const symbols = [...base, ...base.map((s) => `${s}</w>`)];
  let words = WORDS.map((w) => {
    const ch = [...w];
    return [...ch.slice(0, -1), `${ch[ch.length - 1]}</w>`];
  });
  const learned: [string, string][] = [];
  for (let m = 0; m < merges; m++) {
    const counts = new Map<string, number>();
    for (const w of words) for (let i = 0; i < w.length - 1; i++) {
      const k = `${w[i]} ${w[i + 1]}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    let best = '';
    let bestN = 0;
    for (const [k, n] of counts) if (n > bestN || (n === bestN && k < best)) {
      best = k;
      bestN = n;
    }
    if (!best) break;
    const [a, b] = best.split(' ') as [string, string];
    learned.push([a, b]);
    symbols.push(a + b);
    words = words.map((w) => {
      const out: string[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i < w.length - 1 && w[i] === a && w[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(w[i]);
      }
      return out;
    });
  }
  const vocab: Record<string, number> = {};
  for (const s of symbols) if (!(s in vocab)) vocab[s] = Object.keys(vocab).length;
  vocab['<|startoftext|>'] = Object.keys(vocab).length;
  vocab['<|endoftext|>'] = Object.keys(vocab).length;
  return { vocab, merges: learned };
}

export function tinyConfig(vocabSize: number): Sd1Config {
  return {
    family: 'sd1',
    scaleFactor: 0.18215,
    unet: { ...SD15_CONFIG.unet, modelChannels: 32, contextDim: 64 },
    clip: { ...SD15_CONFIG.clip, vocabSize, hiddenSize: 64, numLayers: 2, intermediateSize: 256, numHeads: 1 },
    vae: { ...SD15_CONFIG.vae, ch: 32, numResBlocks: 1 },
  };
}

/**
 * The tiny SD1-architecture checkpoint (UNet 32 channels, CLIP 64 wide × 2 layers, VAE 32 channels;
 * latents still 1/8 of the image) plus its tokenizer in `<name>.tokenizer/`.
 */
export async function makeTinyCheckpoint(outFile: string, opts: { seed?: number } = {}): Promise<void> {
  const tok = makeTinyTokenizer();
  const vocabSize = Object.keys(tok.vocab).length;
  writeModel(outFile, tinyConfig(vocabSize), opts.seed ?? 0, 'F32');
  const dir = `${outFile.replace(/\.[^.\\/]+$/, '')}.tokenizer`;
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(tok.vocab));
  fs.writeFileSync(path.join(dir, 'merges.txt'), ['#version: 0.2', ...tok.merges.map(([a, b]) => `${a} ${b}`)].join('\n') + '\n');
}

/** A full-size SD1.5-shaped checkpoint with random fp16 weights (~2 GB), streamed to disk. */
export async function makeFullSd15Checkpoint(outFile: string, opts: { seed?: number; dtype?: 'F16' | 'F32' } = {}): Promise<void> {
  writeModel(outFile, SD15_CONFIG, opts.seed ?? 0, opts.dtype ?? 'F16');
}
