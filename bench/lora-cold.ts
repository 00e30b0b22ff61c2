/**
 * A fresh process's first UNet step and text encode on the full-size random SD1.5, without and with a
 * LoRA (the rank-32 one bench/lora.ts makes), to compare what a LoRA adds to a start-up. Run it after
 * emptying the page cache to see a cold start, as root: `sync; echo 1 > /proc/sys/vm/drop_caches`.
 *
 * `then-lora` runs the plain model first, then applies the LoRA and times only the apply: the case of
 * a user who adds a LoRA after plain generations, whose patched UNet reads weights the unpatched one
 * (ORT's saved graph, with reordered convs) did not.
 *
 * `--no-prefetch` turns off reading a patched model's files ahead of ORT (ModelManagerOptions.prefetch).
 *
 * Run: npx tsx bench/lora-cold.ts plain|lora|then-lora [sd15-checkpoint] [lora-file] [--no-prefetch]
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ModelManager } from '../engine/models/manager.ts';
import { resolveCacheDir } from '../engine/onnx/cache-dir.ts';
import type { NodeContext } from '../engine/registry/context.ts';
import { applyLora } from '../nodes/model/lora.ts';
import '../nodes/model/services.ts';

const mode = process.argv[2];
if (mode !== 'plain' && mode !== 'lora' && mode !== 'then-lora') throw new Error('first argument: plain, lora or then-lora');
const args = process.argv.slice(3).filter((a) => !a.startsWith('--'));
const file = path.resolve(args[0] ?? 'models/checkpoints/weft-random-sd15.safetensors');
const lora = path.resolve(args[1] ?? path.join(path.dirname(file), '..', 'loras', 'bench-lora-r32-a.safetensors'));
for (const f of [file, lora]) if (!existsSync(f)) throw new Error(`${f} not found: run bench/lora.ts first`);
const log = { info: () => {}, warn: (m: string) => console.log(`  [warn] ${m}`), error: (m: string) => console.log(`  [error] ${m}`) };
const prefetch = !process.argv.includes('--no-prefetch');
const m = new ModelManager({ cacheDir: resolveCacheDir(), log, prefetch });
const ctx = { services: { models: m }, log } as unknown as NodeContext;
const t0 = performance.now();
const parts = await m.loadCheckpoint(file);
const S = 32;
const x = { shape: [2, 4, S, S], data: new Float32Array(2 * 4 * S * S).map((_, i) => Math.sin(i * 0.37)) };
const context = { shape: [2, 77, 768], data: new Float32Array(2 * 77 * 768).map((_, i) => Math.cos(i * 0.011) * 0.5) };
if (mode === 'then-lora') {
  await parts.clip.encodeText('a photograph of an astronaut riding a horse');
  for (let i = 0; i < 2; i++) await parts.model.unet.run({ x, timesteps: new Float32Array([500, 500]), context });
}
const tApply = performance.now();
const [model, clip] = mode !== 'plain' ? applyLora(ctx, lora, 'lora', parts.model, parts.clip, 1, 1) : [parts.model, parts.clip];
const tEnc = performance.now();
await clip!.encodeText('a photograph of an astronaut riding a horse');
const encode = performance.now() - tEnc;
const tStep = performance.now();
await model!.unet.run({ x, timesteps: new Float32Array([500, 500]), context });
const first = performance.now() - tStep;
const tSecond = performance.now();
await model!.unet.run({ x, timesteps: new Float32Array([500, 500]), context });
const second = performance.now() - tSecond;
if (mode === 'then-lora') {
  console.log(
    `then-lora${prefetch ? '' : ' (no prefetch)'}: apply, from LoraLoader to a patched step and encode, less the step itself: ${((performance.now() - tApply - 2 * second) / 1000).toFixed(2)} s (encode ${(encode / 1000).toFixed(2)} s, first step ${(first / 1000).toFixed(2)} s, a later step ${(second / 1000).toFixed(2)} s)`,
  );
  process.exit(0);
}
console.log(
  `${mode}: load + first encode + first UNet step ${((performance.now() - t0 - second) / 1000).toFixed(2)} s ` +
    `(encode ${(encode / 1000).toFixed(2)} s, first step ${(first / 1000).toFixed(2)} s, a later step ${(second / 1000).toFixed(2)} s); ` +
    `so start-up less the step itself: ${((performance.now() - t0 - 2 * second) / 1000).toFixed(2)} s`,
);
