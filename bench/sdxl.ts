/**
 * SDXL on ONNX Runtime with the full-size random SDXL checkpoint (`weft make-model sdxl`): cold build and
 * first load, warm load (new manager, all sessions with one tiny run each), one CFG step (UNet batch 2)
 * through Weft's handle against the FLOP floor at ORT's measured fp32 GEMM rate, the same step on a bare
 * ORT session of the same built UNet file, VAE decode, and peak RSS. The fp32 SDXL UNet holds ~10 GB, so
 * the handle's session is released before the bare one is created: the two are timed in blocks, not
 * interleaved, on the 24 GB machine (never two runs at once: run it under flock).
 *
 * Run: flock /tmp/weft-heavy.lock timeout 900 npx tsx bench/sdxl.ts <checkpoint> [repeats=2] [sizes=512]
 *      (WEFT_CACHE_DIR=<dir> to build into a throw-away cache; BENCH_COLD=1 to drop this file's builds first)
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { UNetConfig } from '../engine/models/families/sd1/config.ts';
import { controlAfterInputName, controlInputName, UNET_IO } from '../engine/models/families/sd1/graphs/unet-graph.ts';
import { unetPlan } from '../engine/models/families/sd1/unet-plan.ts';
import type { SdxlConfig } from '../engine/models/families/sdxl/config.ts';
import { Rng } from '../engine/models/generate/rng.ts';
import { ModelManager } from '../engine/models/manager.ts';
import { BuildCache } from '../engine/onnx/build-cache.ts';
import { resolveCacheDir } from '../engine/onnx/cache-dir.ts';
import { expandHalfWeights } from '../engine/onnx/expand-half.ts';
import { GraphBuilder } from '../engine/onnx/graph.ts';
import { chooseProvider, sessionOptions } from '../engine/onnx/runtime.ts';
import { bundledVocabularyDir } from '../engine/text/clip-tokenizer.ts';

const file = path.resolve(process.argv[2] ?? 'models/checkpoints/weft-random-sdxl.safetensors');
const REPEATS = Number(process.argv[3] ?? 2);
const SIZES = (process.argv[4] ?? '512').split(',').map(Number);
if (!existsSync(file)) throw new Error(`${file} not found: run npm run weft -- make-model sdxl --out ${file}`);
const tokDir = `${file.replace(/\.safetensors$/, '')}.tokenizer`;
if (!existsSync(path.join(tokDir, 'vocab.json'))) {
  mkdirSync(tokDir, { recursive: true });
  for (const f of ['vocab.json', 'merges.txt'])
    copyFileSync(path.join(bundledVocabularyDir('clip-vit-large-patch14'), f), path.join(tokDir, f));
}
const cacheDir = resolveCacheDir();
const log = {
  info: (m: string) => console.log(`  [log] ${m}`),
  warn: (m: string) => console.log(`  [warn] ${m}`),
  error: (m: string) => console.log(`  [error] ${m}`),
};
const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const peak = () => process.resourceUsage().maxRSS * 1024;
const time = async (f: () => Promise<unknown>): Promise<number> => {
  const t = performance.now();
  await f();
  return performance.now() - t;
};

/**
 * The UNet's multiply-add FLOPs for one sample at a latent of h×w, counted from the plan: every conv
 * (2·Cout·Cin·k²·pixels), every linear (2·in·out·rows) and attention's two products (2·2·T·T'·C).
 * Norms, activations, softmax and the timestep/label embeddings' elementwise work are left out.
 */
export function unetFlops(cfg: UNetConfig, h: number, w: number, contextTokens = 77): number {
  const plan = unetPlan(cfg);
  const emb = plan.embDim;
  let f = 2 * cfg.modelChannels * emb + 2 * emb * emb + (plan.admInChannels ? 2 * plan.admInChannels * emb + 2 * emb * emb : 0);
  const px = (level: number) => Math.ceil(h / 2 ** level) * Math.ceil(w / 2 ** level);
  const conv = (cin: number, cout: number, k: number, pixels: number) => 2 * cout * cin * k * k * pixels;
  const res = (cin: number, cout: number, pixels: number) =>
    conv(cin, cout, 3, pixels) + conv(cout, cout, 3, pixels) + (cin !== cout ? conv(cin, cout, 1, pixels) : 0) + 2 * emb * cout;
  const transformer = (c: number, depth: number, t: number) => {
    const lin = (i: number, o: number, rows: number) => 2 * i * o * rows;
    const block =
      4 * lin(c, c, t) +
      2 * 2 * t * t * c +
      2 * lin(c, c, t) +
      2 * lin(cfg.contextDim, c, contextTokens) +
      2 * 2 * t * contextTokens * c +
      lin(c, 8 * c, t) +
      lin(4 * c, c, t);
    return 2 * lin(c, c, t) + depth * block;
  };
  for (const b of plan.input) {
    if (b.kind === 'conv_in') f += conv(cfg.inChannels, cfg.modelChannels, 3, px(0));
    else if (b.kind === 'downsample') f += conv(b.channels, b.channels, 3, px(b.level + 1));
    else {
      f += res(b.res!.inChannels, b.res!.outChannels, px(b.level));
      if (b.transformer) f += transformer(b.transformer.channels, b.transformer.depth, px(b.level));
    }
  }
  const last = cfg.channelMult.length - 1;
  for (const r of plan.middle.res) f += res(r.inChannels, r.outChannels, px(last));
  if (plan.middle.transformer) f += transformer(plan.middle.transformer.channels, plan.middle.transformer.depth, px(last));
  for (const b of plan.output) {
    f += res(b.res.inChannels, b.res.outChannels, px(b.level));
    if (b.transformer) f += transformer(b.transformer.channels, b.transformer.depth, px(b.level));
    if (b.upsample) f += conv(b.res.outChannels, b.res.outChannels, 3, px(b.level - 1));
  }
  return f + conv(cfg.modelChannels, cfg.outChannels, 3, px(0));
}

/** One large fp32 GEMM of the UNet's own shape: the level-2 feed-forward (1280 → 5120) over 2048 tokens. */
async function gemmRate(opts: ort.InferenceSession.SessionOptions): Promise<{ gflops: number; runs: number[] }> {
  const [M, K, N] = [2048, 1280, 5120];
  const g = new GraphBuilder('gemm');
  const x = g.input('x', 'float32', [M, K]);
  const rng = new Rng(7);
  const wt = g.floats('w', [K, N], () => rng.normal(new Float32Array(K * N), 1 / Math.sqrt(K)));
  g.output(g.op1('MatMul', [x, wt]), 'y', 'float32', [M, N]);
  const session = await ort.InferenceSession.create(g.toBuffer(), opts);
  const feed = { x: new ort.Tensor('float32', new Rng(8).normal(new Float32Array(M * K), 1), [M, K]) };
  await session.run(feed);
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) runs.push(await time(() => session.run(feed)));
  await session.release();
  return { gflops: (2 * M * K * N) / (median(runs) / 1000) / 1e9, runs };
}

console.log(
  `machine: ${os.cpus()[0]?.model} ×${os.cpus().length}, ${gib(os.totalmem())}, free ${gib(os.freemem())}; node ${process.version}; onnxruntime-node ${ort.env.versions.common}`,
);
console.log(
  `date: ${new Date().toISOString()}; load average ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}; checkpoint ${file}; cache ${cacheDir}`,
);
if (process.env.BENCH_COLD === '1') new BuildCache(cacheDir).prune({ source: file });

const choice = await chooseProvider({ device: 'auto' });
const rate = await gemmRate(sessionOptions(choice));
console.log(`fp32 GEMM 2048×1280·1280×5120: ${rate.gflops.toFixed(1)} GFLOP/s (runs ${rate.runs.map((r) => s(r)).join(', ')})`);

let cfg: SdxlConfig;
{
  const m = new ModelManager({ cacheDir, log });
  const t0 = performance.now();
  const parts = await m.loadCheckpoint(file);
  cfg = parts.config as SdxlConfig;
  const tClip = await time(() => parts.clip.encodeText('warm'));
  const tVae = await time(() => parts.vae.decode({ shape: [1, 4, 8, 8], data: new Float32Array(256) }));
  const y = parts.model.extraConds!(
    { cond: { shape: [1, 77, 2048], data: new Float32Array(77 * 2048) }, pooled: { shape: [1, 1280], data: new Float32Array(1280) } },
    { batch: 1, height: 8, width: 8 },
  ).y;
  const tUnet = await time(() =>
    parts.model.unet.run({
      x: { shape: [1, 4, 8, 8], data: new Float32Array(256) },
      timesteps: new Float32Array([1]),
      context: { shape: [1, 77, 2048], data: new Float32Array(77 * 2048) },
      extra: { y },
    }),
  );
  console.log(
    `first load (builds: ${m.stats().builds}): ${s(performance.now() - t0)} (CLIP ${s(tClip)}, VAE decoder ${s(tVae)}, UNet ${s(tUnet)}); peak RSS ${gib(peak())}`,
  );
  await m.pool.clear();
}

const m = new ModelManager({ cacheDir, log });
const t0 = performance.now();
const parts = await m.loadCheckpoint(file);
const tLoad = performance.now() - t0;
const tClip = await time(() => parts.clip.encodeText('a photograph of an astronaut riding a horse'));
const ctx1 = { shape: [1, 77, 2048], data: new Float32Array(77 * 2048) };
const y1 = parts.model.extraConds!(
  { cond: ctx1, pooled: { shape: [1, 1280], data: new Float32Array(1280) } },
  { batch: 1, height: 8, width: 8 },
).y;
const tUnet = await time(() =>
  parts.model.unet.run({
    x: { shape: [1, 4, 8, 8], data: new Float32Array(256) },
    timesteps: new Float32Array([1]),
    context: ctx1,
    extra: { y: y1 },
  }),
);
const tVae = await time(() => parts.vae.decode({ shape: [1, 4, 8, 8], data: new Float32Array(256) }));
console.log(
  `warm load: checkpoint ${s(tLoad)} + CLIP-L/G sessions and first encode ${s(tClip)} + UNet ${s(tUnet)} + VAE ${s(tVae)} = ${s(tLoad + tClip + tUnet + tVae)}; RSS ${gib(process.memoryUsage().rss)}`,
);

const unetDir = m.cache.list().find((e) => e.part === 'unet' && e.source === file)!.dir;
for (const size of SIZES) {
  const h = size / 8;
  const B = 2;
  const flops = B * unetFlops(cfg.unet, h, h);
  const floor = (flops / (rate.gflops * 1e9)) * 1000;
  const x = { shape: [B, 4, h, h], data: new Float32Array(B * 4 * h * h).map((_, i) => Math.sin(i)) };
  const ctx = { shape: [B, 77, 2048], data: new Float32Array(B * 77 * 2048).map((_, i) => Math.cos(i) * 0.5) };
  const ts = new Float32Array([500, 500]);
  const y = parts.model.extraConds!(
    { cond: ctx, pooled: { shape: [1, 1280], data: new Float32Array(1280).map((_, i) => Math.sin(i)) } },
    { batch: B, height: h, width: h },
  ).y;
  const run = () => parts.model.unet.run({ x, timesteps: ts, context: ctx, extra: { y } });
  const tFirst = await time(run);
  const weft: number[] = [];
  for (let r = 0; r < REPEATS; r++) weft.push(await time(run));
  console.log(
    `UNet ${size}² batch 2 (one CFG step), Weft: first ${s(tFirst)}, runs [${weft.map(s).join(', ')}]; ${(flops / 1e12).toFixed(2)} TFLOP → floor ${s(floor)} at the GEMM rate: ${(median(weft) / floor).toFixed(2)}× the floor; peak RSS ${gib(peak())}`,
  );
  // Release Weft's UNet session before the bare one exists: two fp32 SDXL UNets do not fit beside the others on this box.
  await m.pool.clear();
  const expanded = expandHalfWeights(path.join(unetDir, 'model.onnx'));
  const bare = await ort.InferenceSession.create(expanded?.file ?? path.join(unetDir, 'model.onnx'), sessionOptions(choice));
  expanded?.dispose();
  const zero = new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]);
  const feeds: Record<string, ort.Tensor> = {
    [UNET_IO.x]: new ort.Tensor('float32', x.data, x.shape),
    [UNET_IO.timesteps]: new ort.Tensor('float32', ts, [B]),
    [UNET_IO.context]: new ort.Tensor('float32', ctx.data, ctx.shape),
    [UNET_IO.y]: new ort.Tensor('float32', y.data, y.shape),
    [UNET_IO.controlMid]: zero,
  };
  for (const name of bare.inputNames) if (name.startsWith('control_in_') || name.startsWith('control_after_input_')) feeds[name] = zero;
  void controlInputName;
  void controlAfterInputName;
  await bare.run(feeds);
  const raw: number[] = [];
  for (let r = 0; r < REPEATS; r++) raw.push(await time(() => bare.run(feeds)));
  await bare.release();
  console.log(
    `UNet ${size}² batch 2, bare ORT on the same model file: runs [${raw.map(s).join(', ')}]; Weft/bare ${(median(weft) / median(raw)).toFixed(3)}`,
  );
}
for (const size of SIZES) {
  const h = size / 8;
  const lat = { shape: [1, 4, h, h], data: new Float32Array(4 * h * h).map((_, i) => Math.sin(i * 0.1)) };
  const t = await time(() => parts.vae.decode(lat));
  console.log(`VAE decode ${size}²: ${s(t)}; peak RSS ${gib(peak())}`);
}
console.log(`peak RSS of the whole run: ${gib(peak())}`);
