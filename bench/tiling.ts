/**
 * TiledDiffusion on a full-size random SD1.5: one CFG model evaluation (cond + uncond) of a large
 * latent through the TiledDiffusion wrapper (Mixture of Diffusers), with each tile_batch_size given
 * interleaved (ABBA order over the repeats): its wall time against the sum of the UNet calls it made
 * (the wrapper's own cost is the difference: cutting tiles, blending, the guider), the time per tile
 * and per UNet row of each batch size, and the peak RSS above the loaded model.
 *
 * Every UNet input shape the timed runs use is run once first ("first call" below): ORT's first run
 * of a new shape plans its memory and grows its arena (fresh pages), which an unprimed batch size
 * would pay inside its timed evaluation while the other reused the warm-up's shape.
 *
 * Run: npx tsx bench/tiling.ts [checkpoint] [latent side=128] [tile px=512] [overlap px=64] [repeats=1] [batch sizes=4,1]
 * (make the checkpoint with `npm run weft -- make-model sd15 --out <ckpt>`; heavy: run it under
 * `flock /tmp/weft-heavy.lock timeout 900 …` on a shared machine)
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Tensor } from '../engine/core/tensor.ts';
import type { ModelHandle, UNetRunArgs } from '../engine/models/handles.ts';
import { ModelManager } from '../engine/models/manager.ts';
import { addModelWrapper } from '../engine/models/model-wrappers.ts';
import { resolveCacheDir } from '../engine/onnx/cache-dir.ts';
import type { Conditioning } from '../engine/sampling/conditioning.ts';
import { cfgGuider } from '../engine/sampling/guider.ts';
import { tileGrid } from '../engine/sampling/tiled-diffusion/grid.ts';
import { tiledDiffusionWrapper } from '../engine/sampling/tiled-diffusion/wrapper.ts';
import { bundledVocabularyDir } from '../engine/text/clip-tokenizer.ts';

const file = path.resolve(process.argv[2] ?? 'models/checkpoints/weft-random-sd15.safetensors');
const SIDE = Number(process.argv[3] ?? 128);
const TILE = Number(process.argv[4] ?? 512);
const OVERLAP = Number(process.argv[5] ?? 64);
const REPEATS = Number(process.argv[6] ?? 1);
const SIZES = (process.argv[7] ?? '4,1').split(',').map(Number);
if (!existsSync(file)) throw new Error(`${file} not found (see the header of bench/tiling.ts)`);
const tokDir = `${file.replace(/\.safetensors$/, '')}.tokenizer`;
if (!existsSync(path.join(tokDir, 'vocab.json'))) {
  const shared = bundledVocabularyDir('clip-vit-large-patch14');
  mkdirSync(tokDir, { recursive: true });
  for (const f of ['vocab.json', 'merges.txt']) copyFileSync(path.join(shared, f), path.join(tokDir, f));
}
const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;
/** Peak RSS of this process so far (VmHWM), bytes. */
const peakRss = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;

console.log(
  `machine: ${os.cpus()[0]?.model} ×${os.cpus().length}, ${mib(os.totalmem())}; load average ${os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ')}; node ${process.version}`,
);
console.log(
  `date: ${new Date().toISOString()}; checkpoint ${file}; latent ${SIDE}² (${SIDE * 8}² px); tiles ${TILE} px, overlap ${OVERLAP} px; repeats ${REPEATS}; tile_batch_size ${SIZES.join(', ')}`,
);

const quiet = { info: () => {}, warn: (m: string) => console.log(`  [warn] ${m}`), error: (m: string) => console.log(`  [error] ${m}`) };
const m = new ModelManager({ cacheDir: resolveCacheDir(), log: quiet });
const parts = await m.loadCheckpoint(file);
const positive: Conditioning = [await parts.clip.encodeText('a mountain village at dawn, detailed')];
const negative: Conditioning = [await parts.clip.encodeText('blurry')];

/** The model with its UNet calls timed (ms per call, rows per call). */
function timed(model: ModelHandle, calls: { ms: number; rows: number }[]): ModelHandle {
  const inner = model.unet;
  return {
    ...model,
    unet: {
      inChannels: inner.inChannels,
      contextDim: inner.contextDim,
      run: async (a: UNetRunArgs): Promise<Tensor> => {
        const t = performance.now();
        const out = await inner.run(a);
        calls.push({ ms: performance.now() - t, rows: a.x.shape[0] });
        return out;
      },
    },
  };
}

const shape = [1, 4, SIDE, SIDE];
const x: Tensor = { shape, data: Float32Array.from({ length: 4 * SIDE * SIDE }, (_, i) => Math.sin(i * 12.9898) * 4) };
const sigma = 4.0;
const grid = (bs: number) =>
  tileGrid({ w: SIDE, h: SIDE, tileW: TILE / 8, tileH: TILE / 8, overlap: OVERLAP / 8, tileBatchSize: bs, method: 'Mixture of Diffusers' });
const tiles = grid(1).batches.length;

// Warm-up: the UNet session loaded (and built if not cached) by one plain CFG evaluation of a small latent.
{
  const t = performance.now();
  const g = cfgGuider({ model: parts.model, positive, negative, cfg: 7 });
  const small = [1, 4, 8, 8];
  await g.denoiser(small, { sigmas: [sigma, 0] })({ shape: small, data: x.data.subarray(0, 4 * 64) }, sigma);
  console.log(`warm-up (UNet session load, one plain CFG evaluation at 64²): ${((performance.now() - t) / 1000).toFixed(1)} s`);
}
const rssLoaded = process.memoryUsage().rss;
console.log(`RSS with the model loaded and warm: ${mib(rssLoaded)} (peak so far ${mib(peakRss())}); ${tiles} tiles per evaluation`);

// Each tile-batch shape once (cond + uncond rows per tile), timed as "first call".
{
  const [cond, uncond] = [positive[0].cond, negative[0].cond];
  const T = cond.shape[1];
  const D = cond.shape[2];
  const th = Math.min(TILE / 8, SIDE);
  for (const rows of new Set(SIZES.flatMap((bs) => grid(bs).batches.map((b) => 2 * b.length)))) {
    const context = new Float32Array(rows * T * D);
    for (let r = 0; r < rows; r++) context.set((r % 2 ? uncond : cond).data.subarray(0, T * D), r * T * D);
    const t = performance.now();
    await parts.model.unet.run({
      x: { shape: [rows, 4, th, th], data: Float32Array.from({ length: rows * 4 * th * th }, (_, i) => x.data[i % x.data.length]) },
      timesteps: new Float32Array(rows).fill(500),
      context: { shape: [rows, T, D], data: context },
    });
    console.log(`first call at [${rows}, 4, ${th}, ${th}]: ${((performance.now() - t) / 1000).toFixed(1)} s; peak RSS ${mib(peakRss())}`);
  }
}

const results: Record<number, { wall: number[]; unet: number[]; calls: number[]; rows: number[] }> = {};
for (const bs of SIZES) results[bs] = { wall: [], unet: [], calls: [], rows: [] };
for (let r = 0; r < REPEATS; r++) {
  for (const bs of r % 2 === 0 ? SIZES : [...SIZES].reverse()) {
    const calls: { ms: number; rows: number }[] = [];
    const model = addModelWrapper(
      timed(parts.model, calls),
      tiledDiffusionWrapper({ method: 'Mixture of Diffusers', tileWidth: TILE, tileHeight: TILE, tileOverlap: OVERLAP, tileBatchSize: bs }),
    );
    const d = cfgGuider({ model, positive, negative, cfg: 7 }).denoiser(shape, { sigmas: [sigma, 0], seed: 1n });
    const t = performance.now();
    await d(x, sigma);
    const wall = performance.now() - t;
    const unet = calls.reduce((s, c) => s + c.ms, 0);
    results[bs].wall.push(wall);
    results[bs].unet.push(unet);
    results[bs].calls.push(calls.length);
    results[bs].rows.push(calls.reduce((s, c) => s + c.rows, 0));
    console.log(
      `tile_batch_size ${bs}: ${(wall / 1000).toFixed(1)} s for ${tiles} tiles (${(wall / tiles / 1000).toFixed(2)} s/tile); ${calls.length} UNet calls of ${calls.map((c) => c.rows).join('/')} rows, ${(unet / 1000).toFixed(1)} s; wrapper + guider overhead ${(((wall - unet) / unet) * 100).toFixed(1)}%`,
    );
  }
}
const sum = (a: number[]): number => a.reduce((s, v) => s + v, 0);
const perTile = (bs: number): number => sum(results[bs].wall) / results[bs].wall.length / tiles;
const perRow = (bs: number): number => sum(results[bs].unet) / sum(results[bs].rows);
for (const bs of SIZES)
  console.log(`tile_batch_size ${bs}: ${(perTile(bs) / 1000).toFixed(2)} s per tile, UNet ${(perRow(bs) / 1000).toFixed(2)} s per row`);
if (SIZES.length === 2) {
  const [a, b] = SIZES;
  console.log(`per tile, ratio ${b}/${a} = ${(perTile(b) / perTile(a)).toFixed(2)}× (above 1: tile_batch_size ${a} faster)`);
}
console.log(`peak RSS ${mib(peakRss())}: +${mib(peakRss() - rssLoaded)} above the loaded, warm model`);
