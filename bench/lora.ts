/**
 * LoRA on the full-size random SD1.5: a generated rank-32 LoRA over every attention, MLP and conv
 * layer of the UNet and text encoder. Times, through the same code LoraLoader uses: applying it (patch
 * tensors computed and written, patched session created, up to the first UNet step), changing its
 * strength, swapping to another LoRA, and a step with the patched model against the unpatched one;
 * with RSS and the bytes written next to the unpatched build.
 *
 * Run: [WEFT_LORA_MODE=branch|merge] npx tsx bench/lora.ts [sd15-checkpoint] [rank=32] [scope=attention+conv|attention]
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeAdapter } from '../engine/models/generate/demo-adapters.ts';
import type { ModelHandle } from '../engine/models/handles.ts';
import { ModelManager } from '../engine/models/manager.ts';
import { resolveCacheDir } from '../engine/onnx/cache-dir.ts';
import type { NodeContext } from '../engine/registry/context.ts';
import { applyLora } from '../nodes/model/lora.ts';
import '../nodes/model/services.ts';

const file = path.resolve(process.argv[2] ?? 'models/checkpoints/weft-random-sd15.safetensors');
const RANK = Number(process.argv[3] ?? 32);
const SCOPE = (process.argv[4] ?? 'attention+conv') as 'attention' | 'attention+conv';
if (SCOPE !== 'attention' && SCOPE !== 'attention+conv') throw new Error(`scope must be attention or attention+conv, got ${SCOPE}`);
const tag = SCOPE === 'attention' ? '-attn' : '';
if (!existsSync(file)) throw new Error(`${file} not found: run npm run weft -- make-model sd15 --out ${file}`);
const dir = path.join(path.dirname(file), '..', 'loras');
const loraA = path.join(dir, `bench-lora-r${RANK}${tag}-a.safetensors`);
const loraB = path.join(dir, `bench-lora-r${RANK}${tag}-b.safetensors`);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
console.log(
  `machine: ${os.cpus()[0]?.model} ×${os.cpus().length}, ${mib(os.totalmem())}; node ${process.version}; date ${new Date().toISOString()}`,
);
for (const [f, seed] of [
  [loraA, 1],
  [loraB, 2],
] as const) {
  if (existsSync(f)) continue;
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
  const t = performance.now();
  const n = makeAdapter(file, f, { kind: 'lora', rank: RANK, seed, scope: SCOPE, textEncoder: true, dtype: 'F16' });
  console.log(`made ${path.basename(f)}: ${n} weights in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}

const log = {
  info: (m: string) => console.log(`  [log] ${m}`),
  warn: (m: string) => console.log(`  [warn] ${m}`),
  error: (m: string) => console.log(`  [error] ${m}`),
};
const MODE = (process.env.WEFT_LORA_MODE ?? 'branch') as 'branch' | 'merge';
const m = new ModelManager({ cacheDir: resolveCacheDir(), log, loraMode: MODE });
console.log(`LoRA mode: ${MODE} (WEFT_LORA_MODE=branch|merge)`);
const ctx = { services: { models: m }, log } as unknown as NodeContext;
const parts = await m.loadCheckpoint(file);
const S = 32;
const x = { shape: [2, 4, S, S], data: new Float32Array(2 * 4 * S * S).map((_, i) => Math.sin(i * 0.37)) };
const context = { shape: [2, 77, 768], data: new Float32Array(2 * 77 * 768).map((_, i) => Math.cos(i * 0.011) * 0.5) };
const timesteps = new Float32Array([500, 500]);
const step = async (model: ModelHandle): Promise<number> => {
  const t = performance.now();
  await model.unet.run({ x, timesteps, context });
  return performance.now() - t;
};
const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];

await step(parts.model);
const plain = median([await step(parts.model), await step(parts.model), await step(parts.model)]);
const rss0 = process.memoryUsage().rss;
await parts.clip.encodeText('warm-up');
const tEnc = performance.now();
await parts.clip.encodeText('a photograph of an astronaut riding a horse');
const plainEncode = performance.now() - tEnc;
console.log(`unpatched UNet 256² batch 2: ${(plain / 1000).toFixed(2)} s/step; RSS ${mib(rss0)}`);

async function measure(label: string, model: ModelHandle, clip: { encodeText(t: string): Promise<unknown> }): Promise<void> {
  m.lastPatch = undefined;
  const loads = m.stats().loads;
  const t0 = performance.now();
  const first = await step(model);
  const unetPatch = m.lastPatch as ModelManager['lastPatch'];
  const unetSession = m.stats().loads > loads ? m.stats().lastLoad?.ms : undefined;
  m.lastPatch = undefined;
  const t1 = performance.now();
  await clip.encodeText('a photograph of an astronaut riding a horse');
  const clipMs = performance.now() - t1;
  const clipPatch = m.lastPatch as ModelManager['lastPatch'];
  const steady = median([await step(model), await step(model), await step(model)]);
  // The first step and the encode each include one run of the model itself: that is taken out, leaving what applying cost.
  const total = performance.now() - t0 - 4 * steady - plainEncode;
  console.log(
    `${label}: UNet patch build ${unetPatch ? `${(unetPatch.ms / 1000).toFixed(2)} s (${unetPatch.tensorsComputed} weights merged, ${unetPatch.branches} with LoRA branches, ${mib(unetPatch.written)} written)` : 'none (same session)'}, ` +
      `first step ${(first / 1000).toFixed(2)} s → patching + session ≈ ${((first - steady) / 1000).toFixed(2)} s (session created in ${unetSession === undefined ? '— (none)' : `${(unetSession / 1000).toFixed(2)} s`}); CLIP patch + encode ${(clipMs / 1000).toFixed(2)} s (${clipPatch?.part === 'clip' ? `rebuilt: ${clipPatch.branches} branched, ${clipPatch.tensorsComputed} merged` : 'same session'}); ` +
      `apply in all (patching, sessions, less the runs themselves): ${(total / 1000).toFixed(2)} s; patched step ${(steady / 1000).toFixed(2)} s (${(((steady - plain) / plain) * 100).toFixed(1)}% vs unpatched); RSS ${mib(process.memoryUsage().rss)}, peak ${mib(process.resourceUsage().maxRSS * 1024)}`,
  );
}

const [a1, c1] = applyLora(ctx, loraA, 'lora A', parts.model, parts.clip, 1, 1);
await measure('apply LoRA A at 1.0', a1!, c1!);
const [a2, c2] = applyLora(ctx, loraA, 'lora A', parts.model, parts.clip, 0.5, 0.5);
await measure('strength 1.0 → 0.5', a2!, c2!);
const [b1, d1] = applyLora(ctx, loraB, 'lora B', parts.model, parts.clip, 1, 1);
await measure('swap to LoRA B', b1!, d1!);
const [a3, c3] = applyLora(ctx, loraA, 'lora A', parts.model, parts.clip, 0.8, 0.8);
await measure('swap back to LoRA A at 0.8', a3!, c3!);
console.log(
  `sessions: ${m
    .stats()
    .loaded.map((l) => `${l.key.split('-').slice(0, 2).join('-')}${l.key.includes('-p') ? '+patch' : ''} ${mib(l.bytes)}`)
    .join(', ')}`,
);
