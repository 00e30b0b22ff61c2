/**
 * 16-bit weights on the CPU provider (`WEFT_WEIGHTS=half`, engine/onnx/resident-half.ts) against
 * today's float32 sessions, on a checkpoint's UNet: RSS after the UNet session is loaded, the load
 * itself, and one UNet call (batch 2, as a CFG step) at each latent size. Each mode runs in its own
 * process (RSS is per process), in the order float32, half, half, float32 (ABBA), so a drift of the
 * machine's load falls on both. The build must already be in the cache (run the checkpoint once):
 * the cold build is not what is measured here. Every call's output of the two modes is compared
 * bit for bit.
 *
 * Run: flock /tmp/weft-heavy.lock timeout 720 npx tsx bench/half-weights.ts <checkpoint> [sizes=256,512] [repeats=1]
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModelManager } from '../engine/models/manager.ts';
import { resolveCacheDir } from '../engine/onnx/cache-dir.ts';
import type { WeightsMode } from '../engine/onnx/resident-half.ts';

interface ChildResult {
  mode: WeightsMode;
  /** RSS (MiB) with the checkpoint open, before the UNet session. */
  rssBefore: number;
  /** RSS (MiB) after the UNet session's creation and one tiny call. */
  rssLoaded: number;
  loadMs: number;
  /** Per latent side (pixels): the timed calls' milliseconds, RSS after them and the output's hash. */
  steps: Record<string, { ms: number[]; rss: number; hash: string }>;
  /** Peak RSS (MiB) of the process. */
  peak: number;
}

/** VmRSS or VmHWM of this process, MiB. */
function status(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function child(mode: WeightsMode, file: string, sizes: number[], repeats: number): Promise<ChildResult> {
  const quiet = { info: () => {}, warn: (m: string) => console.error(m), error: (m: string) => console.error(m) };
  const m = new ModelManager({ cacheDir: resolveCacheDir(), device: 'cpu', log: quiet, weights: mode });
  const parts = await m.loadCheckpoint(file);
  const unet = parts.model.unet;
  const ctxDim = (parts.config as { unet: { contextDim: number } }).unet.contextDim;
  const context = { shape: [2, 77, ctxDim], data: new Float32Array(2 * 77 * ctxDim).map((_, i) => Math.cos(i * 0.01)) };
  // SDXL's UNet also takes the adm vector `y` (pooled output and size conditioning): the family's own, for a zero pooled vector.
  const pooledDim = (parts.config as { pooledDim?: number }).pooledDim;
  const y1 = pooledDim
    ? parts.model.extraConds?.(
        { cond: context, pooled: { shape: [1, pooledDim], data: new Float32Array(pooledDim) } },
        { batch: 1, height: 64, width: 64 },
      ).y
    : undefined;
  const extra = y1 ? { y: { shape: [2, y1.shape[1]], data: new Float32Array([...y1.data, ...y1.data]) } } : undefined;
  const call = (side: number) => {
    const n = 2 * 4 * (side / 8) ** 2;
    const x = { shape: [2, 4, side / 8, side / 8], data: new Float32Array(n).map((_, i) => Math.sin(i * 0.37)) };
    return unet.run({ x, timesteps: new Float32Array([700, 700]), context, extra });
  };
  const rssBefore = status('VmRSS');
  let t = performance.now();
  await call(64);
  const loadMs = performance.now() - t;
  const rssLoaded = status('VmRSS');
  const steps: ChildResult['steps'] = {};
  for (const side of sizes) {
    await call(side); // ORT plans the shape on its first call
    const ms: number[] = [];
    let hash = '';
    for (let r = 0; r < repeats; r++) {
      t = performance.now();
      const out = await call(side);
      ms.push(performance.now() - t);
      hash = createHash('sha256')
        .update(Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength))
        .digest('hex')
        .slice(0, 16);
    }
    steps[side] = { ms, rss: status('VmRSS'), hash };
  }
  return { mode, rssBefore, rssLoaded, loadMs, steps, peak: status('VmHWM') };
}

const args = process.argv.slice(2);
if (args[0] === '--child') {
  const [, mode, file, sizes, repeats] = args;
  const r = await child(mode as WeightsMode, file, sizes.split(',').map(Number), Number(repeats));
  console.log(JSON.stringify(r));
} else {
  const file = path.resolve(args[0] ?? '/work/sd15/models/checkpoints/weft-random-sd15.safetensors');
  const sizes = args[1] ?? '256,512';
  const repeats = args[2] ?? '1';
  if (!existsSync(file)) throw new Error(`${file} not found`);
  console.log(
    `machine: ${os.cpus()[0]?.model} ×${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; ${new Date().toISOString()}; load ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; checkpoint ${file}; cache ${resolveCacheDir()}; sizes ${sizes}, ${repeats} timed call(s) each`,
  );
  const results: ChildResult[] = [];
  for (const mode of ['float32', 'half', 'half', 'float32'] as const) {
    const p = spawnSync(process.execPath, ['--import', 'tsx', import.meta.filename, '--child', mode, file, sizes, repeats], {
      encoding: 'utf8',
    });
    if (p.status !== 0) throw new Error(`${mode} child failed: ${p.stderr}`);
    const r = JSON.parse(p.stdout.trim().split('\n').pop()!) as ChildResult;
    results.push(r);
    const per = Object.entries(r.steps)
      .map(([side, v]) => `${side}²: ${v.ms.map((x) => (x / 1000).toFixed(2)).join('/')} s, RSS ${v.rss.toFixed(0)} MiB`)
      .join('; ');
    console.log(
      `${mode}: RSS before UNet ${r.rssBefore.toFixed(0)} MiB, loaded ${r.rssLoaded.toFixed(0)} MiB (load + 64² call ${(r.loadMs / 1000).toFixed(2)} s); ${per}; peak ${r.peak.toFixed(0)} MiB (load ${os.loadavg()[0].toFixed(2)})`,
    );
  }
  const by = (mode: WeightsMode) => results.filter((r) => r.mode === mode);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const [f, h] = [by('float32'), by('half')];
  console.log(
    `half / float32: RSS loaded ${(mean(h.map((r) => r.rssLoaded - r.rssBefore)) / mean(f.map((r) => r.rssLoaded - r.rssBefore))).toFixed(3)} (UNet part, ${mean(h.map((r) => r.rssLoaded - r.rssBefore)).toFixed(0)} vs ${mean(f.map((r) => r.rssLoaded - r.rssBefore)).toFixed(0)} MiB), peak ${(mean(h.map((r) => r.peak)) / mean(f.map((r) => r.peak))).toFixed(3)}, load ${(mean(h.map((r) => r.loadMs)) / mean(f.map((r) => r.loadMs))).toFixed(3)}`,
  );
  for (const side of sizes.split(',')) {
    const ms = (rs: ChildResult[]) => mean(rs.flatMap((r) => r.steps[side].ms));
    const same = results.every((r) => r.steps[side].hash === results[0].steps[side].hash);
    console.log(
      `${side}² batch 2: half / float32 per call ${(ms(h) / ms(f)).toFixed(3)} (${(ms(h) / 1000).toFixed(2)} vs ${(ms(f) / 1000).toFixed(2)} s); outputs ${same ? 'bit-identical' : 'DIFFER'}`,
    );
  }
}
