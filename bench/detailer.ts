/**
 * The detail pass on a full-size random SD1.5 (issue 16's speed item): a 512² picture, the demo
 * detector weft-tiny-face at a threshold that keeps one face, DetailerForEach with guide_size 512 (max_size 512),
 * 20 steps, denoise 0.5: time in the detector's session, the VAE encode and decode, the UNet
 * calls, and everything else (crop, lanczos resizes, mask blur, paste, sampler arithmetic, detector
 * pre/post-processing), as a share of the total. Then the batching question: two same-size crops
 * sampled as one batch of 2 against two runs of 1, interleaved, with `steps2` steps each.
 *
 * Run: flock /tmp/weft-heavy.lock timeout 900 npx tsx bench/detailer.ts [checkpoint] [repeats=1] [steps2=4] [latent side=64] [batch-only]
 * (make the checkpoint with `npm run weft -- make-model sd15 --out <ckpt>`)
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ImageTensor, Latent, Tensor } from '../engine/core/tensor.ts';
import { makeTinyFaceDetectors } from '../engine/models/detect/generate.ts';
import { YoloSegsDetector } from '../engine/models/detect/segs-detector.ts';
import { openYolo } from '../engine/models/detect/yolo.ts';
import type { ModelHandle, UNetRunArgs, VaeHandle } from '../engine/models/handles.ts';
import { ModelManager } from '../engine/models/manager.ts';
import type { RunSession } from '../engine/models/runtime/part.ts';
import { resolveCacheDir } from '../engine/onnx/cache-dir.ts';
import { bundledVocabularyDir } from '../engine/text/clip-tokenizer.ts';
import { detailForEach } from '../engine/sampling/detail/detail-for-each.ts';
import { impactSample } from '../engine/sampling/detail/impact-sample.ts';

const file = path.resolve(process.argv[2] ?? 'models/checkpoints/weft-random-sd15.safetensors');
const REPEATS = Number(process.argv[3] ?? 1);
const STEPS2 = Number(process.argv[4] ?? 4);
/** Latent side of the batching comparison (64 = 512² crops) and whether to skip the single-detection run. */
const SIDE2 = Number(process.argv[5] ?? 64);
const BATCH_ONLY = process.argv[6] === 'batch-only';
if (!existsSync(file)) throw new Error(`${file} not found (see the header of bench/detailer.ts)`);
const tokDir = `${file.replace(/\.safetensors$/, '')}.tokenizer`;
if (!existsSync(path.join(tokDir, 'vocab.json'))) {
  const shared = bundledVocabularyDir('clip-vit-large-patch14');
  mkdirSync(tokDir, { recursive: true });
  for (const f of ['vocab.json', 'merges.txt']) copyFileSync(path.join(shared, f), path.join(tokDir, f));
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
console.log(
  `machine: ${os.cpus()[0]?.model} ×${os.cpus().length}, ${mib(os.totalmem())}; load average ${os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ')}; node ${process.version}`,
);
console.log(`date: ${new Date().toISOString()}; checkpoint ${file}; repeats ${REPEATS}; batching steps ${STEPS2}`);

const quiet = { info: () => {}, warn: (m: string) => console.log(`  [warn] ${m}`), error: (m: string) => console.log(`  [error] ${m}`) };
const manager = new ModelManager({ cacheDir: resolveCacheDir(), device: 'cpu', log: quiet });
const parts = await manager.loadCheckpoint(file);
console.log(`checkpoint loaded (${new Date().toISOString()})`);
const pos = [await parts.clip.encodeText('a portrait photo, detailed face')];
const neg = [await parts.clip.encodeText('blurry')];

/** Time spent inside each session, by wrapping the handles (prototype kept, one method replaced). */
const clock = { unet: 0, unetCalls: 0, encode: 0, decode: 0, detector: 0 };
const timed = async <T>(key: 'unet' | 'encode' | 'decode' | 'detector', f: () => Promise<T>): Promise<T> => {
  const t = performance.now();
  try {
    return await f();
  } finally {
    clock[key] += performance.now() - t;
  }
};
const unet = Object.create(parts.model.unet, {
  run: { value: (a: UNetRunArgs) => (clock.unetCalls++, timed('unet', () => parts.model.unet.run(a))) },
});
const model: ModelHandle = Object.create(parts.model, { unet: { value: unet } });
const vae: VaeHandle = Object.create(parts.vae, {
  encode: { value: (x: ImageTensor, sig?: AbortSignal) => timed('encode', () => parts.vae.encode(x, sig)) },
  decode: { value: (x: Tensor, sig?: AbortSignal) => timed('decode', () => parts.vae.decode(x, sig)) },
});

const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-bench-detailer-'));
const [detFile] = makeTinyFaceDetectors(path.join(dir, 'ultralytics'));
const run = manager.runtime.fileRunner(detFile);
const timedRun: RunSession = (feeds) => timed('detector', () => run(feeds));
const detector = new YoloSegsDetector('bbox', openYolo(detFile), timedRun);

const H = 512;
const W = 512;
const img: ImageTensor = { shape: [1, H, W, 3], data: new Float32Array(H * W * 3) };
for (let i = 0; i < H * W; i++) for (let c = 0; c < 3; c++) img.data[i * 3 + c] = 0.5 + 0.4 * Math.sin(i * (0.001 + c * 0.0003));

// warm-up: sessions loaded, first-run allocations done
if (!BATCH_ONLY) await detector.detect(img, { threshold: 0.85, dilation: 10, cropFactor: 3, dropSize: 10 });
await impactSample({
  model,
  seed: 0n,
  steps: 1,
  cfg: 8,
  samplerName: 'euler',
  scheduler: 'normal',
  positive: pos,
  negative: neg,
  latent: { samples: { shape: [1, 4, 64, 64], data: new Float32Array(4 * 64 * 64) } },
  denoise: 1,
});
if (!BATCH_ONLY) await vae.decode({ shape: [1, 4, 64, 64], data: new Float32Array(4 * 64 * 64) });
console.log(`warmed up (${new Date().toISOString()})`);

for (let r = 0; r < (BATCH_ONLY ? 0 : REPEATS); r++) {
  for (const k of Object.keys(clock) as (keyof typeof clock)[]) clock[k] = 0;
  const t0 = performance.now();
  const segs = await detector.detect(img, { threshold: 0.85, dilation: 10, cropFactor: 3, dropSize: 10 });
  const tDetect = performance.now() - t0;
  const out = await detailForEach(img, segs, {
    model,
    vae,
    positive: pos,
    negative: neg,
    guideSize: 512,
    guideForBbox: true,
    maxSize: 512,
    seed: 1n,
    steps: 20,
    cfg: 8,
    samplerName: 'euler',
    scheduler: 'normal',
    denoise: 0.5,
    feather: 5,
    noiseMask: true,
    forceInpaint: true,
    cycle: 1,
    noiseMaskFeather: 20,
    log: (l) => console.log(`  [log] ${l}`),
  });
  const total = performance.now() - t0;
  const sessions = clock.unet + clock.encode + clock.decode + clock.detector;
  console.log(`one detection (${segs.segments.length}), crop ${out.cropped[0]?.shape.slice(1, 3).join('×')}:`);
  console.log(`  detection ${s(tDetect)} (detector session ${s(clock.detector)}); UNet ${s(clock.unet)} in ${clock.unetCalls} calls`);
  console.log(`  VAE encode ${s(clock.encode)}, decode ${s(clock.decode)}; total ${s(total)}`);
  console.log(
    `  outside the UNet/VAE/detector sessions: ${s(total - sessions)} = ${((100 * (total - sessions)) / total).toFixed(2)}% of the total`,
  );
}

// Batching: two crops of the same size sampled as a batch of 2, or one after the other.
const lat = (seed: number, n: number): Latent => {
  const data = new Float32Array(n * 4 * SIDE2 * SIDE2);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37 + seed);
  const mask = new Float32Array(n * SIDE2 * SIDE2).fill(1);
  return { samples: { shape: [n, 4, SIDE2, SIDE2], data }, noiseMask: { shape: [n, SIDE2, SIDE2], data: mask } };
};
const sample = (latent: Latent, seed: bigint) =>
  impactSample({
    model,
    seed,
    steps: STEPS2,
    cfg: 8,
    samplerName: 'euler',
    scheduler: 'normal',
    positive: pos,
    negative: neg,
    latent,
    denoise: 0.5,
  });
const seq: number[] = [];
const bat: number[] = [];
// Each figure is printed as it is measured, so a run cut short by the heavy-job limit keeps what it had.
for (let r = 0; r < REPEATS; r++) {
  let t = performance.now();
  await sample(lat(1, 1), 1n);
  await sample(lat(2, 1), 2n);
  seq.push(performance.now() - t);
  console.log(`  repeat ${r + 1}: two crops one after the other ${s(seq[r])} (load ${os.loadavg()[0].toFixed(1)})`);
  t = performance.now();
  await sample(lat(1, 2), 1n);
  bat.push(performance.now() - t);
  console.log(`  repeat ${r + 1}: the two as one batch ${s(bat[r])} (load ${os.loadavg()[0].toFixed(1)})`);
}
const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(
  `two ${SIDE2 * 8}² crops, ${STEPS2} steps: one after the other ${seq.map(s).join(', ')}; as one batch ${bat.map(s).join(', ')}; batch/sequential ${(med(bat) / med(seq)).toFixed(2)}×`,
);
rmSync(dir, { recursive: true, force: true });
