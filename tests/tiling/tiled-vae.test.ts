import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { MapWeightSource } from '../../engine/core/weights.ts';
import type { VaeConfig } from '../../engine/models/families/sd1/config.ts';
import { vaeLayout } from '../../engine/models/families/sd1/layout.ts';
import { attention, conv2d, fromTokens, resizeNearest, silu, toTokens } from '../../engine/models/families/sd1/reference/layers.ts';
import { vaeDecodeRef, vaeEncodeRef } from '../../engine/models/families/sd1/reference/vae.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { bestTileSize, splitTiles } from '../../engine/models/tiled-vae/split.ts';
import { nearestExact, TiledVae } from '../../engine/models/tiled-vae/tiled-vae.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';

/*
 * The A1111 Tiled VAE against a reference written here in plain loops, in lockstep over all tiles
 * (each layer maps over the tiles; each GroupNorm takes every tile's statistics, averages them by
 * pixels and normalises every tile), with fast mode's shrunk input and the colour fix written out
 * again. A micro VAE (8–16 channels, 4 groups, random weights) keeps the plain loops fast; the
 * one-tile case on the tiny SD1 VAE is in tiled-vae-sd1.test.ts.
 */

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const micro: VaeConfig = {
  inChannels: 3,
  outChannels: 3,
  ch: 8,
  chMult: [1, 2, 2, 2],
  numResBlocks: 1,
  zChannels: 4,
  embedDim: 4,
  normGroups: 4,
};
let manager: ModelManager;
let ws: MapWeightSource;
let tvae: TiledVae;

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-tiled-vae-'));
  manager = new ModelManager({ cacheDir: join(dir, 'cache'), device: 'cpu', log: quiet });
  const map = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  let seed = 1;
  for (const [name, shape] of vaeLayout(micro, '')) {
    const n = shape.reduce((a, b) => a * b, 1);
    const fanIn = shape.length === 4 ? shape[1] * shape[2] * shape[3] : 1;
    const isNormWeight = shape.length === 1 && /norm.*\.weight$/.test(name);
    const data = lcg(n, seed++, isNormWeight ? 0.3 : shape.length === 1 ? 0.1 : 1.6 / Math.sqrt(fanIn));
    if (isNormWeight) for (let i = 0; i < n; i++) data[i] += 1;
    map.set(name, { shape, data });
  }
  ws = new MapWeightSource(map);
  tvae = new TiledVae(manager.runtime, { cfg: micro, weights: ws, hash: 'micro-vae-test-1' });
});

// ---- the reference ----

type Mode = 'sync' | 'fast' | 'colorfix';
type Bbox = [number, number, number, number];

function cropRef(x: Tensor, b: Bbox): Tensor {
  const [n, c, H, W] = x.shape;
  const [x1, x2, y1, y2] = b;
  const out = new Float32Array(n * c * (y2 - y1) * (x2 - x1));
  let k = 0;
  for (let p = 0; p < n * c; p++) for (let y = y1; y < y2; y++) for (let xx = x1; xx < x2; xx++) out[k++] = x.data[(p * H + y) * W + xx];
  return { shape: [n, c, y2 - y1, x2 - x1], data: out };
}

interface Stats {
  mean: number[];
  variance: number[];
}

function statsOf(x: Tensor, g: number): Stats {
  const [n, c, h, w] = x.shape;
  const per = (c / g) * h * w;
  const mean: number[] = [];
  const variance: number[] = [];
  for (let i = 0; i < n * g; i++) {
    const d = Array.from(x.data.subarray(i * per, (i + 1) * per));
    const m = d.reduce((a, b) => a + b, 0) / per;
    mean.push(m);
    variance.push(d.reduce((a, b) => a + (b - m) ** 2, 0) / per);
  }
  return { mean, variance };
}

function normWith(x: Tensor, key: string, s: Stats, g: number): Tensor {
  const [n, c, h, w] = x.shape;
  const gamma = ws.get(`${key}.weight`);
  const beta = ws.get(`${key}.bias`);
  const out = new Float32Array(x.data.length);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++) {
      const gi = b * g + Math.floor(ch / (c / g));
      for (let k = 0; k < h * w; k++) {
        const i = (b * c + ch) * h * w + k;
        out[i] = ((x.data[i] - s.mean[gi]) / Math.sqrt(s.variance[gi] + 1e-6)) * gamma[ch] + beta[ch];
      }
    }
  return { shape: x.shape, data: out };
}

/** The network over a list of tiles at once; `norm` sees all tiles at each GroupNorm. */
function lockstep(
  part: 'encoder' | 'decoder',
  xs: Tensor[],
  norm: (key: string, xs: Tensor[]) => Tensor[],
  onDownsample?: () => void,
): Tensor[] {
  const conv = (key: string, ts: Tensor[], o: { stride?: number; pad?: number | [number, number, number, number] } = {}): Tensor[] =>
    ts.map((t) => {
      const shape = ws.shape(`${key}.weight`);
      return conv2d(t, ws.get(`${key}.weight`), shape, ws.get(`${key}.bias`), {
        stride: o.stride ?? 1,
        pad: o.pad ?? Math.floor(shape[2] / 2),
      });
    });
  const add = (a: Tensor[], b: Tensor[]): Tensor[] => a.map((t, i) => ({ shape: t.shape, data: t.data.map((v, k) => v + b[i].data[k]) }));
  const act = (ts: Tensor[]): Tensor[] => ts.map(silu);
  const res = (key: string, ts: Tensor[]): Tensor[] => {
    const skip = ws.has(`${key}.nin_shortcut.weight`) ? conv(`${key}.nin_shortcut`, ts) : ts;
    let h = conv(`${key}.conv1`, act(norm(`${key}.norm1`, ts)));
    h = conv(`${key}.conv2`, act(norm(`${key}.norm2`, h)));
    return add(h, skip);
  };
  const attn = (key: string, ts: Tensor[]): Tensor[] => {
    const h = norm(`${key}.norm`, ts);
    const o = h.map((t) => {
      const [, , H, W] = t.shape;
      const q = toTokens(conv(`${key}.q`, [t])[0]);
      const k = toTokens(conv(`${key}.k`, [t])[0]);
      const v = toTokens(conv(`${key}.v`, [t])[0]);
      return conv(`${key}.proj_out`, [fromTokens(attention(q, k, v, 1), H, W)])[0];
    });
    return add(o, ts);
  };
  const mid = (key: string, ts: Tensor[]): Tensor[] => res(`${key}.block_2`, attn(`${key}.attn_1`, res(`${key}.block_1`, ts)));
  let h = conv(`${part}.conv_in`, xs);
  const L = micro.chMult.length;
  if (part === 'decoder') {
    h = mid('decoder.mid', h);
    for (let i = L - 1; i >= 0; i--) {
      for (let j = 0; j <= micro.numResBlocks; j++) h = res(`decoder.up.${i}.block.${j}`, h);
      if (i > 0)
        h = conv(
          `decoder.up.${i}.upsample.conv`,
          h.map((t) => resizeNearest(t, t.shape[2] * 2, t.shape[3] * 2)),
        );
    }
  } else {
    for (let i = 0; i < L; i++) {
      for (let j = 0; j < micro.numResBlocks; j++) h = res(`encoder.down.${i}.block.${j}`, h);
      if (i < L - 1) {
        onDownsample?.();
        h = conv(`encoder.down.${i}.downsample.conv`, h, { stride: 2, pad: [0, 0, 1, 1] });
      }
    }
    h = mid('encoder.mid', h);
  }
  return conv(`${part}.conv_out`, act(norm(`${part}.norm_out`, h)));
}

/** Fast mode's input, written out again: nearest-exact by the scale factor, per-channel mean/std (unbiased) restored, clamped. */
function shrinkRef(z: Tensor, tile: number): Tensor {
  const [, c, H, W] = z.shape;
  const s = tile / Math.max(H, W);
  const d = nearestExact(z, s);
  const hw = (t: Tensor) => t.shape[2] * t.shape[3];
  const ms = (t: Tensor, ch: number) => {
    const v: number[] = [];
    for (let b = 0; b < t.shape[0]; b++) v.push(...t.data.subarray((b * c + ch) * hw(t), (b * c + ch + 1) * hw(t)));
    const m = v.reduce((a, x) => a + x, 0) / v.length;
    return { m, s: Math.sqrt(v.reduce((a, x) => a + (x - m) ** 2, 0) / (v.length - 1)) };
  };
  const lo = z.data.reduce((a, v) => Math.min(a, v), Infinity);
  const hi = z.data.reduce((a, v) => Math.max(a, v), -Infinity);
  const before = Array.from({ length: c }, (_, ch) => ms(z, ch));
  const after = Array.from({ length: c }, (_, ch) => ms(d, ch));
  const out = new Float32Array(d.data.length);
  for (let i = 0; i < out.length; i++) {
    const ch = Math.floor(i / hw(d)) % c;
    const [a, b] = [before[ch], after[ch]];
    out[i] = Math.min(hi, Math.max(lo, ((d.data[i] - b.m) / b.s) * a.s + a.m));
  }
  return { shape: d.shape, data: out };
}

function tiledRef(part: 'encoder' | 'decoder', z: Tensor, tile: number, mode: Mode): Tensor {
  const dec = part === 'decoder';
  const pad = dec ? 11 : 32;
  const [N, , H, W] = z.shape;
  const split = splitTiles(H, W, tile, pad, dec);
  const g = micro.normGroups;
  const fixed: Stats[] = [];
  let recording = true;
  if (mode !== 'sync') {
    lockstep(
      part,
      [shrinkRef(z, tile)],
      (key, ts) => {
        const s = statsOf(ts[0], g);
        if (recording) fixed.push(s);
        return [normWith(ts[0], key, s, g)];
      },
      () => {
        if (mode === 'colorfix') recording = false;
      },
    );
  }
  let k = 0;
  const outs = lockstep(
    part,
    split.input.map((b) => cropRef(z, b)),
    (key, ts) => {
      const f = fixed[k++];
      if (f) return ts.map((t) => normWith(t, key, f, g));
      const all = ts.map((t) => ({ s: statsOf(t, g), px: t.shape[2] * t.shape[3] }));
      const total = all.reduce((a, t) => a + t.px, 0);
      const avg = (pick: (s: Stats) => number[]) => all[0].s.mean.map((_, i) => all.reduce((a, t) => a + (pick(t.s)[i] * t.px) / total, 0));
      const s = { mean: avg((q) => q.mean), variance: avg((q) => q.variance) };
      return ts.map((t) => normWith(t, key, s, g));
    },
  );
  const f = (v: number) => (dec ? v * 8 : Math.floor(v / 8));
  const c = outs[0].shape[1];
  const oh = f(H);
  const ow = f(W);
  const out = new Float32Array(N * c * oh * ow);
  outs.forEach((t, i) => {
    const inp = split.input[i].map(f);
    const tgt = split.output[i];
    for (let p = 0; p < N * c; p++)
      for (let y = tgt[2]; y < tgt[3]; y++)
        for (let x = tgt[0]; x < tgt[1]; x++) out[(p * oh + y) * ow + x] = t.data[(p * t.shape[2] + y - inp[2]) * t.shape[3] + x - inp[0]];
  });
  return { shape: [N, c, oh, ow], data: out };
}

/** post_quant_conv before the decoder; quant_conv and the mean after the encoder, as the untiled VAE. */
const postQuant = (lat: Tensor) =>
  conv2d(lat, ws.get('post_quant_conv.weight'), ws.shape('post_quant_conv.weight'), ws.get('post_quant_conv.bias'));
function meanOf(h: Tensor): Tensor {
  const m = conv2d(h, ws.get('quant_conv.weight'), ws.shape('quant_conv.weight'), ws.get('quant_conv.bias'));
  const [b, , lh, lw] = m.shape;
  const out = new Float32Array(b * 4 * lh * lw);
  for (let i = 0; i < b; i++) out.set(m.data.subarray(i * 8 * lh * lw, (i * 8 + 4) * lh * lw), i * 4 * lh * lw);
  return { shape: [b, 4, lh, lw], data: out };
}

// ---- the tests ----

describe('tile layout', () => {
  it('get_best_tile_size: rounded up to a multiple of 32, 16, 8, … that still fits, else kept', () => {
    expect([
      bestTileSize(64, 64),
      bestTileSize(50, 64),
      bestTileSize(50, 60),
      bestTileSize(50, 55),
      bestTileSize(3, 3),
      bestTileSize(-6, 64),
    ]).toEqual([64, 64, 56, 52, 3, 0]);
  });

  it('split_tiles: padded inputs, outputs flush with the image borders (decoder: ×8, encoder: ÷8)', () => {
    // 26 latent rows, pad 11, tile 2: rows ceil(4/2) = 2 of 2, inputs padded by 11 and clipped.
    expect(splitTiles(26, 24, 2, 11, true)).toEqual({
      input: [
        [0, 24, 0, 24],
        [0, 24, 2, 26],
      ],
      output: [
        [0, 192, 0, 104],
        [0, 192, 104, 208],
      ],
    });
    const enc = splitTiles(160, 192, 64, 32, false);
    expect(enc.input.length).toBe(4);
    // 160×192 pixels, pad 32, tile 64: 2×2 tiles of 64 (ceil(96/2) = 48 rounds up to 64), outputs in latent pixels.
    expect(enc.output).toEqual([
      [0, 12, 0, 12],
      [12, 24, 0, 12],
      [0, 12, 12, 20],
      [12, 24, 12, 20],
    ]);
    expect(enc.input[3]).toEqual([64, 192, 64, 160]);
  });

  it('nearest-exact as torch: 10 → 5 reads 1, 3, 5, 7, 9; 4 → 6 reads 0, 1, 1, 2, 3, 3', () => {
    const x: Tensor = { shape: [1, 1, 2, 10], data: Float32Array.from({ length: 20 }, (_, i) => i) };
    expect(Array.from(nearestExact(x, 0.5).data)).toEqual([11, 13, 15, 17, 19]);
    const y: Tensor = { shape: [1, 1, 1, 4], data: Float32Array.from([0, 1, 2, 3]) };
    expect(Array.from(nearestExact(y, 1.5).data)).toEqual([0, 1, 1, 2, 3, 3]);
  });
});

describe('Tiled VAE on a micro VAE against the lockstep reference', () => {
  const lat: Tensor = { shape: [1, 4, 26, 12], data: lcg(4 * 26 * 12, 3, 1.5) };
  const img: Tensor = { shape: [1, 3, 160, 192], data: lcg(3 * 160 * 192, 5) };

  it('one tile is the untiled VAE (decoder and encoder)', async () => {
    const dec = await tvae.decodeRaw({ shape: [1, 4, 8, 8], data: lat.data.subarray(0, 256) }, { tileSize: 512, fast: false });
    expect(relErr(dec.data, vaeDecodeRef(micro, ws, { shape: [1, 4, 8, 8], data: lat.data.subarray(0, 256) }).data)).toBeLessThan(1e-5);
    const small: Tensor = { shape: [1, 3, 64, 64], data: img.data.subarray(0, 3 * 64 * 64) };
    const enc = await tvae.encodeRaw(small, { tileSize: 512, fast: false });
    expect(relErr(enc.data, vaeEncodeRef(micro, ws, small).data)).toBeLessThan(1e-5);
  }, 120_000);

  for (const mode of ['sync', 'fast'] as const) {
    it(`decoder, two tiles, ${mode === 'sync' ? 'GroupNorm statistics shared across tiles' : 'fast mode'}`, async () => {
      const got = await tvae.decodeRaw(lat, { tileSize: 24, fast: mode === 'fast' });
      const want = tiledRef('decoder', postQuant(lat), 3, mode);
      expect(relErr(got.data, want.data)).toBeLessThan(1e-4);
      // Not the untiled decode: attention is per tile and variances are averaged, not pooled.
      expect(relErr(got.data, vaeDecodeRef(micro, ws, lat).data)).toBeGreaterThan(1e-3);
      // Waiting tiles written to files (no memory budget) come back bit-identical.
      if (mode === 'sync') expect((await tvae.decodeRaw(lat, { tileSize: 24, fast: false, memoryBudget: 0 })).data).toEqual(got.data);
    }, 120_000);
  }

  for (const mode of ['sync', 'fast', 'colorfix'] as const) {
    it(`encoder, four tiles, ${mode}`, async () => {
      const got = await tvae.encodeRaw(img, { tileSize: 64, fast: mode !== 'sync', colorFix: mode === 'colorfix' });
      const want = meanOf(tiledRef('encoder', img, 64, mode));
      expect(relErr(got.data, want.data)).toBeLessThan(1e-4);
    }, 120_000);
  }
});
