import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectCheckpoint } from '../../engine/models/families/sd1/detect.ts';
import { Rng } from '../../engine/models/generate/rng.ts';
import { makeTinyCheckpoint, makeTinyTokenizer, tinyConfig, tokenizerDirFor } from '../../engine/models/make-model.ts';
import { SafetensorsFile } from '../../engine/formats/safetensors.ts';
import { SD15_CONFIG, sd1Buffers, sd1Layout } from '../../engine/models/families/sd1/layout.ts';
import { ClipTokenizer, bytesToUnicode, loadClipTokenizer } from '../../engine/text/clip-tokenizer.ts';

let dir: string;
let a: string;
const progress: [number, number][] = [];
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-mk-'));
  a = path.join(dir, 'a.safetensors');
  await makeTinyCheckpoint(a, { seed: 1, onProgress: (w, t) => progress.push([w, t]) });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe('generated tiny SD1 checkpoint', () => {
  it('is deterministic for a seed and different for another', async () => {
    const b = path.join(dir, 'b.safetensors');
    const c = path.join(dir, 'c.safetensors');
    await makeTinyCheckpoint(b, { seed: 1 });
    await makeTinyCheckpoint(c, { seed: 2 });
    expect(sha(a)).toBe(sha(b));
    expect(sha(a)).not.toBe(sha(c));
    expect(fs.readFileSync(path.join(tokenizerDirFor(a), 'vocab.json'))).toEqual(
      fs.readFileSync(path.join(tokenizerDirFor(c), 'vocab.json')),
    );
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it("is detected as exactly the tiny SD1 architecture, with every SD1 tensor and the real files' buffers", () => {
    const f = SafetensorsFile.open(a);
    const tok = loadClipTokenizer({ modelPath: a });
    const cfg = detectCheckpoint(f);
    expect(cfg).toEqual(tinyConfig(tok.vocabSize));
    expect(cfg.clip.vocabSize).toBe(tok.eos + 1);
    expect(cfg.unet).toMatchObject({
      modelChannels: 32,
      channelMult: [1, 2, 4, 4],
      numResBlocks: 2,
      attentionLevels: [0, 1, 2],
      transformerDepth: 1,
      contextDim: 64,
      numHeads: 8,
    });
    expect(cfg.vae).toMatchObject({ ch: 32, chMult: [1, 2, 4, 4], zChannels: 4, embedDim: 4 });
    const expected = [...sd1Layout(cfg).keys(), ...sd1Buffers(cfg).map((b) => b.name)].sort();
    expect(f.names().sort()).toEqual(expected);
    expect(f.metadata()['modelspec.architecture']).toBe('stable-diffusion-v1');
    expect(f.metadata()['weft.seed']).toBe('1');
    // position_ids as real SD1 files store them: int64 [1, 77] = 0..76.
    const ids = 'cond_stage_model.transformer.text_model.embeddings.position_ids';
    expect(f.dtype(ids)).toBe('I64');
    expect(f.shape(ids)).toEqual([1, 77]);
    expect([...f.get(ids)]).toEqual(Array.from({ length: 77 }, (_, i) => i));
    expect(fs.statSync(a).size).toBeLessThan(64 * 1024 * 1024);
    f.close();
  });

  it("stores LDM's DDPM schedule, matching SD1's published sigma range (0.0292 … 14.6146)", () => {
    const f = SafetensorsFile.open(a);
    const ac = f.get('alphas_cumprod');
    expect(ac.length).toBe(1000);
    // ComfyUI's SD1 model sampling reports sigma_min 0.0292 and sigma_max 14.6146; sigma = √((1-ᾱ)/ᾱ).
    const sigma = (x: number) => Math.sqrt((1 - x) / x);
    expect(sigma(ac[0])).toBeCloseTo(0.0292, 4);
    expect(sigma(ac[999])).toBeCloseTo(14.6146, 3);
    expect(f.get('betas')[0]).toBeCloseTo(0.00085, 9);
    expect(f.get('betas')[999]).toBeCloseTo(0.012, 9);
    expect(f.get('alphas_cumprod_prev')[0]).toBe(1);
    expect(f.get('sqrt_one_minus_alphas_cumprod')[500]).toBeCloseTo(Math.sqrt(1 - ac[500]), 6);
    f.close();
  });

  it('initialises weights with sensible scales: N(0, 1/fan_in), norms 1, biases 0, embeddings 0.02', () => {
    const f = SafetensorsFile.open(a);
    const rms = (w: Float32Array) => Math.sqrt(w.reduce((s, x) => s + x * x, 0) / w.length);
    const mean = (w: Float32Array) => w.reduce((s, x) => s + x, 0) / w.length;
    const conv = f.get('model.diffusion_model.input_blocks.1.0.in_layers.2.weight'); // [32, 32, 3, 3]: fan_in 288, 9216 values
    // The sample RMS of n normal values has a relative standard error of 1/√(2n) ≈ 0.7%: 5% is > 6σ.
    expect(rms(conv) * Math.sqrt(32 * 9)).toBeGreaterThan(0.95);
    expect(rms(conv) * Math.sqrt(32 * 9)).toBeLessThan(1.05);
    expect(Math.abs(mean(conv)) * Math.sqrt(32 * 9)).toBeLessThan(0.05);
    const tokEmb = f.get('cond_stage_model.transformer.text_model.embeddings.token_embedding.weight');
    expect(rms(tokEmb)).toBeGreaterThan(0.019);
    expect(rms(tokEmb)).toBeLessThan(0.021);
    expect([...f.get('model.diffusion_model.out.0.weight')].every((x) => x === 1)).toBe(true);
    expect([...f.get('first_stage_model.encoder.mid.attn_1.norm.weight')].every((x) => x === 1)).toBe(true);
    expect([...f.get('cond_stage_model.transformer.text_model.final_layer_norm.weight')].every((x) => x === 1)).toBe(true);
    expect([...f.get('model.diffusion_model.out.2.bias')].every((x) => x === 0)).toBe(true);
    for (const name of f.names()) expect(f.get(name).every(Number.isFinite), name).toBe(true);
    f.close();
  });

  it('reports progress up to the full data size', () => {
    expect(progress.length).toBeGreaterThan(100);
    const [w, t] = progress[progress.length - 1];
    expect(w).toBe(t);
    expect(t).toBe(fs.statSync(a).size - 8 - Number(fs.readFileSync(a).readBigUInt64LE(0)));
    expect(progress.every(([x], i) => i === 0 || x >= progress[i - 1][0])).toBe(true);
  });
});

describe("the tiny model's own tokenizer", () => {
  it('is a valid CLIP BPE vocabulary: 512 byte symbols in CLIP order, one symbol per merge, BOS/EOS last', () => {
    const { vocab, merges } = makeTinyTokenizer();
    const ids = Object.entries(vocab)
      .sort((x, y) => x[1] - y[1])
      .map(([k]) => k);
    const base = bytesToUnicode().order;
    expect(ids.slice(0, 256)).toEqual(base);
    expect(ids.slice(256, 512)).toEqual(base.map((s) => `${s}</w>`));
    expect(ids.slice(-2)).toEqual(['<|startoftext|>', '<|endoftext|>']);
    expect(new Set(Object.values(vocab)).size).toBe(ids.length);
    expect(Object.values(vocab).every((v, i, all) => v >= 0 && v < all.length)).toBe(true);
    expect(merges.length).toBeGreaterThan(250);
    for (const [x, y] of merges) expect(vocab[x + y], `${x} ${y}`).toBeTypeOf('number');
  });

  it('tokenizes through the same BPE code as the real one', () => {
    const dirTok = tokenizerDirFor(a);
    const tok = ClipTokenizer.fromFiles(path.join(dirTok, 'vocab.json'), path.join(dirTok, 'merges.txt'));
    const merges = fs.readFileSync(path.join(dirTok, 'merges.txt'), 'utf8').split('\n');
    expect(merges[0]).toBe('#version: 0.2');
    // Words of the built-in list merge into one symbol; unknown text falls back to byte symbols.
    for (const w of ['lighthouse', 'a', 'watercolor']) expect(tok.tokenize(w), w).toHaveLength(1);
    expect(tok.symbol(tok.tokenize('lighthouse')[0])).toBe('lighthouse</w>');
    const ascii = tok.tokenize('a watercolor painting of a lighthouse, 2024!');
    expect(ascii.every((i) => i >= 0 && i < tok.bos)).toBe(true);
    expect(ascii.map((i) => tok.symbol(i)).join('')).toBe(
      'a</w>watercolor</w>painting</w>of</w>a</w>lighthouse</w>,</w>2</w>0</w>2</w>4</w>!</w>',
    );
    // A word outside the list: its UTF-8 bytes as byte symbols (E7 8C AB for 猫).
    const map = bytesToUnicode().map;
    expect(
      tok
        .tokenize('猫')
        .map((i) => tok.symbol(i))
        .join(''),
    ).toBe(`${map[0xe7]}${map[0x8c]}${map[0xab]}</w>`);
    expect(tok.tokenizeWithWeights('a cat')[0]).toHaveLength(77);
  });
});

describe('random weights generator', () => {
  it('draws standard normals (mean 0, variance 1, 4.5% beyond 2σ) deterministically', () => {
    const n = 200_000;
    const x = new Rng(7).normal(new Float32Array(n), 1);
    const y = new Rng(7).normal(new Float32Array(n), 1);
    expect(x).toEqual(y);
    const mean = x.reduce((s, v) => s + v, 0) / n;
    const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
    const tail = x.filter((v) => Math.abs(v) > 2).length / n;
    // Standard errors: mean 1/√n ≈ 0.0022, variance √(2/n) ≈ 0.0032, tail √(p(1-p)/n) ≈ 0.00046.
    expect(Math.abs(mean)).toBeLessThan(0.011);
    expect(Math.abs(variance - 1)).toBeLessThan(0.016);
    expect(Math.abs(tail - 0.0455)).toBeLessThan(0.0025);
    expect(new Rng(8).normal(new Float32Array(4), 1)).not.toEqual(x.subarray(0, 4));
  });

  it('gives the full-size SD1.5 layout the published parameter count (1,066,235,307 weights, ~2.1 GB in fp16)', () => {
    const total = [...sd1Layout(SD15_CONFIG).values()].reduce((s, sh) => s + sh.reduce((p, d) => p * d, 1), 0);
    expect(total).toBe(859_520_964 + 83_653_863 + 123_060_480);
    expect(total * 2).toBeGreaterThan(2.1e9);
  });
});
