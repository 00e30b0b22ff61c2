import { cpSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ModelManager } from '../../engine/models/manager.ts';
import { SafetensorsFile, writeSafetensors } from '../../engine/formats/safetensors.ts';
import { storedLayout } from '../../engine/onnx/graph.ts';
import { makeTiny, type Tiny } from '../models-onnx/tiny.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/** The tiny checkpoint with every tensor in float16, as real SD1.5 checkpoints store them. */
function halfCopy(t: Tiny): string {
  const sf = SafetensorsFile.open(t.file);
  const out = t.file.replace(/\.safetensors$/, '-f16.safetensors');
  writeSafetensors(out, sf.names().map((name) => ({ name, dtype: 'F16' as const, shape: sf.shape(name), data: () => sf.get(name) })));
  cpSync(t.file.replace(/\.safetensors$/, '.tokenizer'), out.replace(/\.safetensors$/, '.tokenizer'), { recursive: true });
  return out;
}

/** Every part's output for fixed inputs, from a fresh manager over `cacheDir` (a first run builds, a second finds the builds). */
async function outputs(file: string, cacheDir: string, compact: boolean, contextDim: number): Promise<Float32Array[]> {
  const m = new ModelManager({ cacheDir, device: 'cpu', log: quiet });
  // Compact storage is the default: only the float32 runs set anything.
  if (!compact) m.cache.storeHalf = m.cache.linkSource = false;
  const p = await m.loadCheckpoint(file);
  const clip = await p.clip.encodeText('a photograph of an astronaut');
  const x = { shape: [2, 4, 8, 8], data: new Float32Array(512).map((_, i) => Math.sin(i * 0.7)) };
  const context = { shape: [2, 77, contextDim], data: new Float32Array(2 * 77 * contextDim).map((_, i) => Math.cos(i * 0.3)) };
  const unet = await p.model.unet.run({ x, timesteps: new Float32Array([500, 20]), context });
  const image = await p.vae.decode({ shape: [1, 4, 8, 8], data: x.data.slice(0, 256) });
  const latent = await p.vae.encode(image);
  await m.pool.clear();
  return [clip.cond.data, clip.pooled.data, unet.data, image.data, latent.data];
}

/** Bytes of the part folders under `cacheDir` that only the cache holds (a hard link to the checkpoint is the checkpoint's). */
function ownBytes(cacheDir: string): number {
  let n = 0;
  for (const d of readdirSync(cacheDir)) {
    if (d === 'hashes') continue;
    for (const f of readdirSync(join(cacheDir, d))) {
      const st = statSync(join(cacheDir, d, f));
      if (!f.startsWith('src-')) n += st.size;
    }
  }
  return n;
}

describe('16-bit and linked weight storage', () => {
  let tiny: Tiny;
  let f16: string;
  beforeAll(async () => {
    tiny = await makeTiny(3);
    f16 = halfCopy(tiny);
  });

  it('opens each part with the NCHWc layout done by its expansion: no saved graph, the same bits as ORT’s own layout, cold and warm', async () => {
    const dim = tiny.cfg.unet.contextDim;
    const blocked = join(tiny.dir, 'cache-nchwc');
    const saved = join(tiny.dir, 'cache-saved');
    process.env.WEFT_NCHWC = '0';
    let want: Float32Array[];
    try {
      want = await outputs(f16, saved, true, dim);
    } finally {
      delete process.env.WEFT_NCHWC;
    }
    for (const run of [await outputs(f16, blocked, true, dim), await outputs(f16, blocked, true, dim)])
      run.forEach((a, i) => expect(Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(want[i].buffer, want[i].byteOffset, want[i].byteLength))).toBe(0));
    const files = (cache: string, part: string): string[] => readdirSync(join(cache, readdirSync(cache).find((d) => d.startsWith(`${part}-`))!));
    // ORT's layout pass saved an optimised graph for every part; the expansion's layout leaves none to save.
    for (const part of ['clip', 'unet', 'vae_decoder', 'vae_encoder']) {
      expect(files(saved, part)).toContain('optimized.onnx');
      expect(files(blocked, part)).not.toContain('optimized.onnx');
    }
    // Nothing reordered is stored: the cache holds what the build wrote.
    expect(ownBytes(blocked)).toBeLessThan(ownBytes(saved));
  });

  it('gives bit-identical outputs to float32 storage, built and found in the cache, and takes the bytes it claims', async () => {
    const dim = tiny.cfg.unet.contextDim;
    // The saved optimised graphs' storage is what this checks (ORT's own NCHWc layout, saved at the first load).
    process.env.WEFT_NCHWC = '0';
    onTestFinished(() => {
      delete process.env.WEFT_NCHWC;
    });
    const wide = join(tiny.dir, 'cache-float32');
    const compact = join(tiny.dir, 'cache-compact');
    const reference = await outputs(f16, wide, false, dim);
    const runs = [await outputs(f16, wide, false, dim), await outputs(f16, compact, true, dim), await outputs(f16, compact, true, dim)];
    for (const run of runs) {
      run.forEach((a, i) => {
        expect(a.length).toBe(reference[i].length);
        expect(Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(reference[i].buffer, reference[i].byteOffset, reference[i].byteLength))).toBe(0);
      });
    }

    const parts = readdirSync(compact).filter((d) => d !== 'hashes');
    expect(parts.map((d) => d.split('-')[0]).sort()).toEqual(['clip', 'unet', 'vae_decoder', 'vae_encoder']);
    const opt = { wide: 0, all: 0 };
    for (const d of parts) {
      const dir = join(compact, d);
      // Each weight is either the checkpoint's own bytes (through the hard link) or float16 in weights.bin.
      const link = readdirSync(dir).find((f) => f.startsWith('src-'));
      expect(link).toBeDefined();
      expect(statSync(join(dir, link!)).ino).toBe(statSync(f16).ino);
      let weightBytes = 0;
      for (const [name, p] of storedLayout(join(dir, 'model.onnx'))) {
        if (p === 'inline' || p.location === link) continue;
        expect(p.location).toBe('weights.bin');
        // Checkpoint tensors are float16 here; only constants the builder computes may need 32 bits.
        if (/\.(weight|bias)$/.test(name)) expect({ name, half: p.half }).toEqual({ name, half: true });
        weightBytes += p.length + 64;
      }
      expect(statSync(join(dir, 'weights.bin')).size).toBeLessThanOrEqual(weightBytes);
      // What ORT's saved graph changed (the reordered convs) is kept in 16 bits too, but for tensors the
      // builder computes from several weights (such as the VAE decoder's optional fused upsampling convs), not exact in 16 bits.
      for (const [name, p] of storedLayout(join(dir, 'optimized.onnx'))) {
        if (p === 'inline') continue;
        // ORT changes no CLIP weight on CPU: its saved graph reads them all where the build keeps them.
        if (d.startsWith('clip-')) expect({ name, location: p.location }).toEqual({ name, location: expect.not.stringMatching(/^optimized-shared-/) });
        opt.all += p.half ? 2 * p.length : p.length;
        if (!p.half && p.location !== link && p.location !== 'weights.bin') opt.wide += p.length;
      }
    }
    expect(opt.wide).toBeLessThan(0.25 * opt.all);
    // The float32 cache holds the weights twice in 32 bits (weights.bin and the reordered convs); the compact one in 16 bits, once.
    const ckpt = statSync(f16).size;
    expect(ownBytes(wide)).toBeGreaterThan(2.5 * ckpt);
    expect(ownBytes(compact)).toBeLessThan(1.5 * ckpt);
    // The linked checkpoint tensors are not copied: the compact cache holds well under one checkpoint of its own.
    expect(ownBytes(compact)).toBeLessThan(1.1 * ckpt);
    console.log(`tiny float16 checkpoint ${ckpt} B: float32 cache ${ownBytes(wide)} B, compact ${ownBytes(compact)} B; optimised graphs ${opt.wide} of ${opt.all} B in 32 bits`);
  });
});
