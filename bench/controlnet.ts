/**
 * ControlNet on a full-size random SD1.5 and a full-size random SD1.5 ControlNet: one CFG step at
 * 512² (the guider's call: cond + uncond in one batch of 2) with no, one and two chained ControlNets,
 * interleaved, against the ControlNet's share of the multiply-adds (counted from the UNet plan) and
 * against bare ORT on the same two graphs; how often the hint encoder ran; RSS with one ControlNet
 * loaded; the warm load of the cached ControlNet sessions.
 *
 * Run: npx tsx bench/controlnet.ts [checkpoint] [controlnet] [repeats=2]
 * (make them with `npm run weft -- make-model sd15 --out <ckpt>` and
 * `npm run weft -- make-model controlnet --checkpoint <ckpt> --out <controlnet>`)
 */
import { existsSync, mkdirSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Tensor } from '../engine/core/tensor.ts';
import { ControlNetControl } from '../engine/models/controlnet/control.ts';
import { ControlNetLoader } from '../engine/models/controlnet/loader.ts';
import { controlNetParts } from '../engine/models/controlnet/model.ts';
import { readControlNet } from '../engine/models/controlnet/load.ts';
import { HINT_CONVS } from '../engine/models/controlnet/layout.ts';
import { controlAfterInputName, controlInputName, UNET_IO } from '../engine/models/families/sd1/graphs/unet-graph.ts';
import { CONTROLNET_IO, HINT_IO, controlOutputName } from '../engine/models/controlnet/graph.ts';
import { unetPlan, type ResBlockPlan, type TransformerPlan, type UnetPlan } from '../engine/models/families/sd1/unet-plan.ts';
import { ModelManager } from '../engine/models/manager.ts';
import { detectCheckpoint } from '../engine/models/families/sd1/detect.ts';
import { sd1Parts } from '../engine/models/families/sd1/parts.ts';
import { sd1Weights } from '../engine/models/families/sd1/weight-views.ts';
import { SafetensorsFile } from '../engine/formats/safetensors.ts';
import { resolveCacheDir } from '../engine/onnx/cache-dir.ts';
import { bundledVocabularyDir } from '../engine/text/clip-tokenizer.ts';
import type { Conditioning, Control } from '../engine/sampling/conditioning.ts';
import { cfgDenoiser } from '../engine/sampling/guider.ts';
import { modelSamplingFromConfig } from '../engine/sampling/model-sampling-advanced.ts';

const file = path.resolve(process.argv[2] ?? 'models/checkpoints/weft-random-sd15.safetensors');
const cnFile = path.resolve(process.argv[3] ?? path.join(path.dirname(file), '../controlnet/weft-random-sd15-controlnet.safetensors'));
const REPEATS = Number(process.argv[4] ?? 2);
for (const f of [file, cnFile]) if (!existsSync(f)) throw new Error(`${f} not found (see the header of bench/controlnet.ts)`);
const tokDir = `${file.replace(/\.safetensors$/, '')}.tokenizer`;
if (!existsSync(path.join(tokDir, 'vocab.json'))) {
  const shared = bundledVocabularyDir('clip-vit-large-patch14');
  mkdirSync(tokDir, { recursive: true });
  for (const f of ['vocab.json', 'merges.txt']) copyFileSync(path.join(shared, f), path.join(tokDir, f));
}
const cacheDir = resolveCacheDir();
const log = {
  info: (m: string) => console.log(`  [log] ${m}`),
  warn: (m: string) => console.log(`  [warn] ${m}`),
  error: (m: string) => console.log(`  [error] ${m}`),
};
const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const secs = (a: number[]): string => a.map((v) => (v / 1000).toFixed(2)).join(', ');
const time = async (f: () => Promise<unknown>): Promise<number> => {
  const t = performance.now();
  await f();
  return performance.now() - t;
};

console.log(
  `machine: ${os.cpus()[0]?.model} ×${os.cpus().length}, ${mib(os.totalmem())}; load average ${os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ')}; node ${process.version}`,
);
console.log(`date: ${new Date().toISOString()}; checkpoint ${file}; ControlNet ${cnFile}; repeats ${REPEATS}`);

// ---- multiply-adds of one UNet / ControlNet evaluation at a latent of S × S, batch 1 (from the plan) ----
function macs(plan: UnetPlan, S: number, ctxTokens = 77): { unet: number; encoder: number; hint: number; zeroConvs: number } {
  const C = plan.config;
  const res = (level: number): number => S / 2 ** level;
  const conv = (cout: number, cin: number, k: number, hw: number): number => cout * cin * k * k * hw * hw;
  const resBlock = (r: ResBlockPlan, hw: number): number =>
    conv(r.outChannels, r.inChannels, 3, hw) +
    conv(r.outChannels, r.outChannels, 3, hw) +
    (r.inChannels !== r.outChannels ? conv(r.outChannels, r.inChannels, 1, hw) : 0);
  const transformer = (t: TransformerPlan, hw: number): number => {
    const T = hw * hw;
    const c = t.channels;
    const block = 4 * c * c * T + 2 * T * T * c + 2 * c * c * T + 2 * C.contextDim * c * ctxTokens + 2 * T * ctxTokens * c + 12 * c * c * T;
    return 2 * c * c * T + t.depth * block;
  };
  let encoder = 0;
  for (const b of plan.input) {
    if (b.kind === 'conv_in') encoder += conv(b.channels, C.inChannels, 3, res(0));
    else if (b.kind === 'downsample') encoder += conv(b.channels, b.channels, 3, res(b.level + 1));
    else encoder += resBlock(b.res!, res(b.level)) + (b.transformer ? transformer(b.transformer, res(b.level)) : 0);
  }
  const deepest = res(C.channelMult.length - 1);
  encoder +=
    plan.middle.res.reduce((a, r) => a + resBlock(r, deepest), 0) +
    (plan.middle.transformer ? transformer(plan.middle.transformer, deepest) : 0);
  let decoder = 0;
  for (const b of plan.output) {
    decoder += resBlock(b.res, res(b.level)) + (b.transformer ? transformer(b.transformer, res(b.level)) : 0);
    if (b.upsample) decoder += conv(b.res.outChannels, b.res.outChannels, 3, res(b.level - 1));
  }
  decoder += conv(C.outChannels, C.modelChannels, 3, res(0));
  let hint = 0;
  let ch = 3;
  let hw = S * 8;
  for (const h of HINT_CONVS) {
    hw /= h.stride;
    const out = h.channels || C.modelChannels;
    hint += conv(out, ch, 3, hw);
    ch = out;
  }
  const zeroConvs =
    plan.input.reduce((a, b) => a + conv(b.channels, b.channels, 1, res(b.kind === 'downsample' ? b.level + 1 : b.level)), 0) +
    conv(plan.skipChannels.at(-1)!, plan.skipChannels.at(-1)!, 1, deepest);
  return { unet: encoder + decoder, encoder, hint, zeroConvs };
}

const m = new ModelManager({ cacheDir, log });
const rss0 = process.memoryUsage().rss;
const parts = await m.loadCheckpoint(file);
const model = parts.model;
const ms = modelSamplingFromConfig(model.sampling);
const positive: Conditioning = [await parts.clip.encodeText('a photograph of a lighthouse on a cliff at dawn')];
const negative: Conditioning = [await parts.clip.encodeText('blurry, watermark')];
const S = 64;
const x: Tensor = { shape: [1, 4, S, S], data: new Float32Array(4 * S * S).map((_, i) => Math.sin(i * 0.37)) };
const sigma = 6.0;
const hintImage = (seed: number): Tensor => ({
  shape: [1, 3, 8 * S, 8 * S],
  data: new Float32Array(3 * 64 * S * S).map((_, i) => (Math.sin(i * 0.013 + seed) + 1) / 2),
});

const step = (pos: Conditioning, neg: Conditioning): Promise<Tensor> =>
  cfgDenoiser({ model, modelSampling: ms, positive: pos, negative: neg, cfg: 7 }, x.shape)(x, sigma);
// Plain first: the UNet session (built into the cache on the first run) and the plain RSS.
const tFirstPlain = await time(() => step(positive, negative));
const rssPlain = process.memoryUsage().rss;
console.log(
  `UNet first CFG step (session load${m.stats().builds ? ' and build' : ''}): ${(tFirstPlain / 1000).toFixed(1)} s; RSS ${mib(rssPlain)} (${mib(rss0)} before the checkpoint)`,
);

const loader = new ControlNetLoader(m.runtime, { cacheDir, log });
const net = loader.load(cnFile);
const with1 = (c: Conditioning, ctl: Control): Conditioning => c.map((e) => ({ ...e, control: ctl }));
const cn1 = new ControlNetControl(net, { hint: hintImage(1), strength: 1, startPercent: 0, endPercent: 1 });
const cn2 = new ControlNetControl(net, { hint: hintImage(2), strength: 0.7, startPercent: 0, endPercent: 1 }, cn1);
const tFirstCn = await time(() => step(with1(positive, cn1), with1(negative, cn1)));
const rssCn = process.memoryUsage().rss;
const cnWeights = readControlNet(cnFile).weights;
const cnParams = cnWeights.names().reduce((a, n) => a + cnWeights.shape(n).reduce((q, d) => q * d, 1), 0);
console.log(
  `ControlNet first CFG step (sessions load${m.stats().builds ? ' and build' : ''}): ${(tFirstCn / 1000).toFixed(1)} s; RSS ${mib(rssCn)}: +${mib(rssCn - rssPlain)} over plain; its fp32 weights ${mib(cnParams * 4)} (${(cnParams / 1e6).toFixed(0)} M parameters); limit plain + fp32 weights + 10% = ${mib((rssPlain + cnParams * 4) * 1.1)}`,
);

// ---- interleaved: plain, one ControlNet, two chained ----
const hintBefore = net.runs.hint;
const netBefore = net.runs.net;
const runs = { plain: [] as number[], one: [] as number[], two: [] as number[] };
await step(with1(positive, cn2), with1(negative, cn2)); // the second hint's encoder run, outside the timing
for (let r = 0; r < REPEATS; r++) {
  runs.plain.push(await time(() => step(positive, negative)));
  runs.one.push(await time(() => step(with1(positive, cn1), with1(negative, cn1))));
  runs.two.push(await time(() => step(with1(positive, cn2), with1(negative, cn2))));
}
const calls = net.runs.net - netBefore;
console.log(
  `hint encoder runs over ${calls} ControlNet evaluations in ${1 + 3 * REPEATS} guider calls: ${net.runs.hint - hintBefore} (one per hint: cn2's, before the timed loop); total since load ${net.runs.hint} for 2 hints`,
);
const [p, o, t] = [median(runs.plain), median(runs.one), median(runs.two)];
console.log(
  `CFG step 512² (batch 2), Weft: plain ${(p / 1000).toFixed(2)} s [${secs(runs.plain)}], 1 ControlNet ${(o / 1000).toFixed(2)} s [${secs(runs.one)}] = ${(o / p).toFixed(2)}×, 2 ControlNets ${(t / 1000).toFixed(2)} s [${secs(runs.two)}] = ${(t / p).toFixed(2)}×`,
);

const plan = unetPlan(net.config.unet);
const mc = macs(plan, S);
const cnMacs = mc.encoder + mc.zeroConvs;
console.log(
  `multiply-adds per image at 512²: UNet ${(mc.unet / 1e9).toFixed(0)} G, ControlNet ${(cnMacs / 1e9).toFixed(0)} G per step (+ hint encoder ${(mc.hint / 1e9).toFixed(1)} G once) = ${((cnMacs / mc.unet) * 100).toFixed(0)}% of the UNet: expected ratios ${(1 + cnMacs / mc.unet).toFixed(2)}× and ${(1 + (2 * cnMacs) / mc.unet).toFixed(2)}×`,
);

// ---- bare ORT: the same two graphs' pooled sessions, run with prepared feeds (no guider, no residual scaling) ----
const zero = new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]);
const B = 2;
const xs = new ort.Tensor(
  'float32',
  new Float32Array(B * 4 * S * S).map((_, i) => Math.sin(i * 0.37) / Math.sqrt(sigma * sigma + 1)),
  [B, 4, S, S],
);
const ts = new ort.Tensor('float32', new Float32Array(B).fill(ms.timestep(sigma)), [B]);
const ctx = new ort.Tensor(
  'float32',
  new Float32Array(B * 77 * 768).map((_, i) => Math.cos(i) * 0.5),
  [B, 77, 768],
);
const sf = SafetensorsFile.open(file);
const runUnet = m.runtime.runner(sd1Parts(detectCheckpoint(sf), sd1Weights(sf), { file, hash: model.id.split(':')[1] }).unet);
const cnSpecs = controlNetParts(readControlNet(cnFile), net.id.slice('controlnet:'.length));
const runNet = m.runtime.runner(cnSpecs.net);
const runHint = m.runtime.runner(cnSpecs.hint);
const feats = (await runHint({ [HINT_IO.hint]: new ort.Tensor('float32', hintImage(1).data, [1, 3, 8 * S, 8 * S]) }))[HINT_IO.out];
const plainFeeds: Record<string, ort.Tensor> = {
  [UNET_IO.x]: xs,
  [UNET_IO.timesteps]: ts,
  [UNET_IO.context]: ctx,
  [UNET_IO.controlMid]: zero,
};
for (let i = 0; i < plan.input.length; i++) {
  plainFeeds[controlInputName(i)] = zero;
  plainFeeds[controlAfterInputName(i)] = zero;
}
const cnFeeds = { [CONTROLNET_IO.x]: xs, [CONTROLNET_IO.timesteps]: ts, [CONTROLNET_IO.context]: ctx, [CONTROLNET_IO.hintFeatures]: feats };
const bare = { plain: [] as number[], one: [] as number[] };
for (let r = 0; r < REPEATS; r++) {
  bare.plain.push(await time(() => runUnet(plainFeeds)));
  bare.one.push(
    await time(async () => {
      const out = await runNet(cnFeeds);
      const feeds: Record<string, ort.Tensor> = { ...plainFeeds, [UNET_IO.controlMid]: out[CONTROLNET_IO.outMiddle] };
      for (let i = 0; i < plan.input.length; i++) feeds[controlInputName(i)] = out[controlOutputName(i)];
      await runUnet(feeds);
    }),
  );
}
const [bp, bo] = [median(bare.plain), median(bare.one)];
const bc = bo - bp;
console.log(
  `bare ORT (same sessions), batch 2: UNet ${(bp / 1000).toFixed(2)} s [${secs(bare.plain)}], ControlNet + UNet ${(bo / 1000).toFixed(2)} s [${secs(bare.one)}] = ${(bo / bp).toFixed(2)}×, so the ControlNet ≈ ${(bc / 1000).toFixed(2)} s = ${((bc / bp) * 100).toFixed(0)}% of the UNet; Weft's 1-ControlNet step over bare: ${(((o - bo) / bo) * 100).toFixed(1)}%`,
);

// ---- warm load of the cached ControlNet sessions: a fresh manager (the builds are on disk) ----
await m.pool.clear();
const m2 = new ModelManager({ cacheDir, log });
const l2 = new ControlNetLoader(m2.runtime, { cacheDir, log });
const tLoad = await time(async () => {
  const n2 = l2.load(cnFile);
  const f = await n2.encodeHint({ shape: [1, 3, 64, 64], data: new Float32Array(3 * 64 * 64) });
  await n2.run({
    x: { shape: [1, 4, 8, 8], data: new Float32Array(256) },
    timesteps: new Float32Array([500]),
    context: { shape: [1, 77, 768], data: new Float32Array(77 * 768) },
    hintFeatures: f,
  });
});
const n3 = l2.load(cnFile);
const tRun = await time(async () => {
  const f = await n3.encodeHint({ shape: [1, 3, 64, 64], data: new Float32Array(3 * 64 * 64) });
  await n3.run({
    x: { shape: [1, 4, 8, 8], data: new Float32Array(256) },
    timesteps: new Float32Array([500]),
    context: { shape: [1, 77, 768], data: new Float32Array(77 * 768) },
    hintFeatures: f,
  });
});
console.log(
  `warm load of the cached ControlNet (file header + hash record + both sessions, one 64² run): ${(tLoad / 1000).toFixed(2)} s; the same run loaded: ${(tRun / 1000).toFixed(2)} s; load alone ≈ ${((tLoad - tRun) / 1000).toFixed(2)} s`,
);
await m2.pool.clear();
