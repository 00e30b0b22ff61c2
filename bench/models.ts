/**
 * Models on ONNX Runtime with a full-size random SD1.5 checkpoint: graph build time (cold cache),
 * warm load (built graphs on disk: new manager, header + hash record, session creation), RSS, CLIP
 * encode, VAE decode, and one CFG-batch UNet step (batch 2) at 256² and 512², each timed through
 * Weft's UNet handle and through a bare ORT session on the same model file with the same inputs,
 * interleaved in one process, so the ratio is Weft's overhead.
 *
 * Run: npx tsx bench/models.ts [checkpoint] [repeats=3] [sizes=256,512]
 * (make the checkpoint with `npm run weft -- make-model sd15 --out <file>`; the CLIP vocabulary is
 * the project's copy in engine/text/vocab/clip-vit-large-patch14)
 */
import { existsSync, mkdirSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelManager } from '../engine/models/manager.ts';
import { bundledVocabularyDir } from '../engine/text/clip-tokenizer.ts';
import { sessionOptions, chooseProvider } from '../engine/onnx/runtime.ts';
import { BuildCache } from '../engine/onnx/build-cache.ts';
import { resolveCacheDir } from '../engine/onnx/cache-dir.ts';
import { expandHalfWeights } from '../engine/onnx/expand-half.ts';
import { controlAfterInputName, controlInputName, unetSkipCount } from '../engine/models/families/sd1/graphs/unet-graph.ts';

const file = path.resolve(process.argv[2] ?? 'models/checkpoints/weft-random-sd15.safetensors');
const REPEATS = Number(process.argv[3] ?? 3);
const SIZES = (process.argv[4] ?? '256,512').split(',').map(Number);
if (!existsSync(file)) throw new Error(`${file} not found: run npm run weft -- make-model sd15 --out ${file}`);
const tokDir = `${file.replace(/\.safetensors$/, '')}.tokenizer`;
if (!existsSync(path.join(tokDir, 'vocab.json'))) {
  const shared = bundledVocabularyDir('clip-vit-large-patch14');
  mkdirSync(tokDir, { recursive: true });
  for (const f of ['vocab.json', 'merges.txt']) copyFileSync(path.join(shared, f), path.join(tokDir, f));
}
// The user's model cache, as the CLI and server use it (--cache-dir / WEFT_CACHE_DIR move it).
const cacheDir = resolveCacheDir();
const log = {
  info: (m: string) => console.log(`  [log] ${m}`),
  warn: (m: string) => console.log(`  [warn] ${m}`),
  error: (m: string) => console.log(`  [error] ${m}`),
};
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const time = async (f: () => Promise<unknown>) => {
  const t = performance.now();
  await f();
  return performance.now() - t;
};

console.log(
  `machine: ${os.cpus()[0]?.model} ×${os.cpus().length}, ${mib(os.totalmem())}; node ${process.version}; onnxruntime-node 1.30.0`,
);
console.log(`date: ${new Date().toISOString()}; checkpoint ${file}`);

// Cold: only this checkpoint's builds go (and its hash record stays: hashing is timed by bench/cache.ts).
if (process.env.BENCH_COLD === '1') new BuildCache(cacheDir).prune({ source: file });
{
  const m = new ModelManager({ cacheDir, log });
  const t0 = performance.now();
  const parts = await m.loadCheckpoint(file);
  await parts.clip.encodeText('warm');
  await parts.vae.decode({ shape: [1, 4, 8, 8], data: new Float32Array(256) });
  await parts.model.unet.run({
    x: { shape: [1, 4, 8, 8], data: new Float32Array(256) },
    timesteps: new Float32Array([1]),
    context: { shape: [1, 77, 768], data: new Float32Array(77 * 768) },
  });
  console.log(
    `first load (builds: ${m.stats().builds}) incl. hashing, building, session creation and saving optimised graphs: ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  await m.pool.clear();
}

const m = new ModelManager({ cacheDir, log });
const rss0 = process.memoryUsage().rss;
const t0 = performance.now();
const parts = await m.loadCheckpoint(file);
const tLoad = performance.now() - t0;
const tClip1 = await time(() => parts.clip.encodeText('a photograph of an astronaut riding a horse'));
console.log(
  `warm load: checkpoint ${tLoad.toFixed(0)} ms + CLIP session and first encode ${tClip1.toFixed(0)} ms (builds ${m.stats().builds})`,
);
const clipRuns: number[] = [];
for (let i = 0; i < 5; i++) clipRuns.push(await time(() => parts.clip.encodeText(`a photograph of an astronaut riding a horse ${i}`)));
console.log(`CLIP encode (1 chunk): median ${median(clipRuns).toFixed(0)} ms`);
const tUnetLoad = await time(() =>
  parts.model.unet.run({
    x: { shape: [1, 4, 8, 8], data: new Float32Array(256) },
    timesteps: new Float32Array([1]),
    context: { shape: [1, 77, 768], data: new Float32Array(77 * 768) },
  }),
);
const tVaeLoad = await time(() => parts.vae.decode({ shape: [1, 4, 8, 8], data: new Float32Array(256) }));
console.log(
  `warm load total (checkpoint + CLIP + UNet + VAE sessions, one tiny run each): ${((tLoad + tClip1 + tUnetLoad + tVaeLoad) / 1000).toFixed(2)} s (UNet ${(tUnetLoad / 1000).toFixed(2)} s); RSS ${mib(process.memoryUsage().rss)} (${mib(rss0)} before)`,
);

const choice = await chooseProvider({ device: 'auto' });
const unetKey = m.stats().loaded.length; // sessions so far
void unetKey;
for (const size of SIZES) {
  const h = size / 8;
  const B = 2;
  const x = { shape: [B, 4, h, h], data: new Float32Array(B * 4 * h * h).map((_, i) => Math.sin(i)) };
  const ctx = { shape: [B, 77, 768], data: new Float32Array(B * 77 * 768).map((_, i) => Math.cos(i) * 0.5) };
  const ts = new Float32Array([500, 500]);
  const tFirst = await time(() => parts.model.unet.run({ x, timesteps: ts, context: ctx }));
  // The bare session: same model file, same options, inputs prepared once outside the timing.
  const unetDir = m.cache.list().find((e) => e.part === 'unet' && e.source === file)!.dir;
  // The cache keeps float16 weights in 16 bits; ORT gets them expanded, as the runtime gives them.
  const expanded = expandHalfWeights(path.join(unetDir, 'model.onnx'));
  const bare = await ort.InferenceSession.create(expanded?.file ?? path.join(unetDir, 'model.onnx'), sessionOptions(choice));
  expanded?.dispose();
  const zero = new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]);
  const feeds: Record<string, ort.Tensor> = {
    x: new ort.Tensor('float32', x.data, x.shape),
    timesteps: new ort.Tensor('float32', ts, [B]),
    context: new ort.Tensor('float32', ctx.data, ctx.shape),
    control_mid: zero,
  };
  for (let i = 0; i < 12; i++) feeds[controlInputName(i)] = zero;
  // The model's UNet part also has the T2I-Adapter inputs (older builds do not).
  for (let i = 0; i < 12; i++) if (bare.inputNames.includes(controlAfterInputName(i))) feeds[controlAfterInputName(i)] = zero;
  void unetSkipCount;
  await bare.run(feeds);
  const weft: number[] = [];
  const raw: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    raw.push(await time(() => bare.run(feeds)));
    weft.push(await time(() => parts.model.unet.run({ x, timesteps: ts, context: ctx })));
  }
  await bare.release();
  const w = median(weft);
  const b = median(raw);
  console.log(
    `UNet ${size}² batch 2 (one CFG step): first ${(tFirst / 1000).toFixed(2)} s; Weft median ${(w / 1000).toFixed(2)} s, bare ORT ${(b / 1000).toFixed(2)} s, overhead ${(((w - b) / b) * 100).toFixed(1)}%; runs weft [${weft.map((v) => (v / 1000).toFixed(2)).join(', ')}] bare [${raw.map((v) => (v / 1000).toFixed(2)).join(', ')}]`,
  );
  console.log(`  RSS now ${mib(process.memoryUsage().rss)} (was ${mib(rss0)} before load)`);
}
for (const size of SIZES) {
  const h = size / 8;
  const lat = { shape: [1, 4, h, h], data: new Float32Array(4 * h * h).map((_, i) => Math.sin(i * 0.1)) };
  await parts.vae.decode(lat);
  const t = await time(() => parts.vae.decode(lat));
  console.log(`VAE decode ${size}²: ${(t / 1000).toFixed(2)} s; RSS ${mib(process.memoryUsage().rss)}`);
}
console.log(
  `sessions: ${m
    .stats()
    .loaded.map((l) => `${l.key.split('-')[0]} ${mib(l.bytes)}`)
    .join(', ')}`,
);
