/**
 * Part 1 (with an SD1.5 checkpoint): the 20-step euler txt2img workflow at 256² through the executor
 * and the real nodes (CheckpointLoaderSimple → CLIPTextEncode ×2 → EmptyLatentImage → KSampler →
 * VAEDecode → PreviewImage), its wall time split into text encode, UNet steps and VAE decode (time
 * inside ORT session runs, measured around every run) and everything else (the engine's overhead).
 *
 * Part 2: sampling-loop cost around the UNet: for each sampler, a KSampler run's wall time against the time
 * spent inside UNet calls (measured by wrapping the UNet handle), on the tiny demo model (where
 * Weft's own per-step work — CFG guider, sampler maths, noise, previews — is most visible) and on the
 * full-size random SD1.5 at 256² (a real CFG step). Also ComfyUI's bar for the latter: 3.6 s/step.
 *
 * Run: npx tsx bench/sampling.ts [sd15-checkpoint] [steps=20]
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ModelHandle } from '../engine/models/handles.ts';
import { makeTinyCheckpoint } from '../engine/models/make-model.ts';
import { ModelManager } from '../engine/models/manager.ts';
import { resolveCacheDir } from '../engine/onnx/cache-dir.ts';
import { ksample } from '../engine/sampling/ksampler.ts';

const sd15 = process.argv[2] ? path.resolve(process.argv[2]) : undefined;
const STEPS = Number(process.argv[3] ?? 20);
const tiny = path.resolve('models/checkpoints/weft-tiny-sd1.safetensors');
if (!existsSync(tiny)) await makeTinyCheckpoint(tiny, { seed: 0 });
const quiet = { info: () => {}, warn: (m: string) => console.log(m), error: (m: string) => console.log(m) };
console.log(`machine: ${os.cpus()[0]?.model} ×${os.cpus().length}; node ${process.version}; date ${new Date().toISOString()}`);

async function bench(label: string, file: string, size: number, steps: number, samplers: string[]): Promise<void> {
  const m = new ModelManager({ cacheDir: resolveCacheDir(), log: quiet });
  const parts = await m.loadCheckpoint(file);
  const pos = [await parts.clip.encodeText('a photograph of an astronaut riding a horse')];
  const neg = [await parts.clip.encodeText('blurry')];
  let unetMs = 0;
  let calls = 0;
  const model: ModelHandle = {
    ...parts.model,
    unet: {
      inChannels: parts.model.unet.inChannels,
      contextDim: parts.model.unet.contextDim,
      run: async (a) => {
        const t = performance.now();
        const r = await parts.model.unet.run(a);
        unetMs += performance.now() - t;
        calls++;
        return r;
      },
    },
  };
  const latent = { samples: { shape: [1, 4, size / 8, size / 8], data: new Float32Array(4 * (size / 8) ** 2) } };
  await ksample({ model, seed: 1n, steps: 1, cfg: 7, samplerName: 'euler', scheduler: 'normal', positive: pos, negative: neg, latent });
  console.log(`\n${label}, ${size}², ${steps} steps, cfg 7 (cond+uncond batched):`);
  console.log('sampler              total s   UNet s  UNet calls  s/step  outside UNet');
  for (const s of samplers) {
    unetMs = 0;
    calls = 0;
    const t = performance.now();
    await ksample({
      model,
      seed: 1n,
      steps,
      cfg: 7,
      samplerName: s,
      scheduler: 'karras',
      positive: pos,
      negative: neg,
      latent,
      onStep: () => {},
    });
    const total = performance.now() - t;
    console.log(
      `${s.padEnd(20)} ${(total / 1000).toFixed(2).padStart(7)} ${(unetMs / 1000).toFixed(2).padStart(8)} ${String(calls).padStart(11)} ${(total / 1000 / steps).toFixed(3).padStart(7)} ${(((total - unetMs) / total) * 100).toFixed(1).padStart(11)}%`,
    );
  }
  await m.pool.clear();
}

async function txt2img(file: string, steps: number): Promise<void> {
  const { Executor } = await import('../engine/executor/executor.ts');
  const { FolderPaths } = await import('../engine/paths/folders.ts');
  const { createBuiltinRegistry } = await import('../nodes/index.ts');
  const m = new ModelManager({ cacheDir: resolveCacheDir(), log: quiet });
  const ort = new Map<string, number>();
  const use = m.pool.use.bind(m.pool);
  m.pool.use = (key, bytes, create, fn) =>
    use(key, bytes, create, async (sess) => {
      const t = performance.now();
      try {
        return await fn(sess);
      } finally {
        const part = key.split('-')[0];
        ort.set(part, (ort.get(part) ?? 0) + performance.now() - t);
      }
    });
  const paths = new FolderPaths({ baseDir: path.dirname(path.dirname(file)), modelsDir: path.dirname(path.dirname(file)) });
  const ex = new Executor(createBuiltinRegistry(), { paths, services: { models: m }, log: quiet });
  const prompt = (seed: number) => ({
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: path.basename(file) } },
    '6': { class_type: 'CLIPTextEncode', inputs: { clip: ['4', 1], text: `a photograph of an astronaut riding a horse ${seed}` } },
    '7': { class_type: 'CLIPTextEncode', inputs: { clip: ['4', 1], text: `blurry ${seed}` } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 256, height: 256, batch_size: 1 } },
    '3': {
      class_type: 'KSampler',
      inputs: {
        model: ['4', 0],
        positive: ['6', 0],
        negative: ['7', 0],
        latent_image: ['5', 0],
        seed,
        steps,
        cfg: 7,
        sampler_name: 'euler',
        scheduler: 'normal',
        denoise: 1,
      },
    },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': { class_type: 'PreviewImage', inputs: { images: ['8', 0] } },
  });
  // Warm-up: sessions loaded and optimised graphs on disk, as a server that has run once.
  await ex.execute({ ...prompt(0), '3': { ...prompt(0)['3'], inputs: { ...prompt(0)['3'].inputs, steps: 1 } } }, { promptId: 'warm' });
  ort.clear();
  const t = performance.now();
  const r = await ex.execute(prompt(1), { promptId: 'run' });
  const total = performance.now() - t;
  if (r.status !== 'success') throw new Error(JSON.stringify(r.error));
  const clip = ort.get('clip') ?? 0;
  const unet = ort.get('unet') ?? 0;
  const vae = ort.get('vae_decoder') ?? 0;
  const other = total - clip - unet - vae;
  const pct = (v: number) => ((v / total) * 100).toFixed(2);
  console.log(
    `\ntxt2img through the executor, random SD1.5, 256², euler/normal, ${steps} steps, cfg 7: total ${(total / 1000).toFixed(2)} s`,
  );
  console.log(
    `  text encode ${(clip / 1000).toFixed(3)} s (${pct(clip)}%), UNet ${(unet / 1000).toFixed(2)} s (${pct(unet)}%, ${(unet / 1000 / steps).toFixed(3)} s/step), VAE decode ${(vae / 1000).toFixed(3)} s (${pct(vae)}%), engine outside ORT ${(other / 1000).toFixed(3)} s (${pct(other)}%)`,
  );
  console.log(`  node timings (ms): ${JSON.stringify(r.timingsMs)}`);
  await m.pool.clear();
}

if (sd15) await txt2img(sd15, STEPS);
await bench('tiny demo model', tiny, 256, STEPS, [
  'euler',
  'euler_ancestral',
  'heun',
  'dpmpp_2m',
  'dpmpp_2m_sde',
  'dpmpp_sde',
  'uni_pc',
  'lms',
]);
if (sd15) await bench('random SD1.5', sd15, 256, STEPS, ['euler', 'dpmpp_2m_sde']);
