/**
 * The model cache as a user meets it, on a full-size SD1.5 checkpoint: the first run of a new
 * checkpoint (content hash, each part's build, ORT's optimisation and the saved graph's sharing)
 * against a warm run (everything found on disk), the disk each part's cache folder takes, and the
 * time each part's session takes to load warm. One run is one process (`cold` empties its cache
 * folder first); interleave cold and warm runs of two trees to compare them:
 *
 *   WEFT_TREE=/path/to/other/checkout npx tsx bench/cache.ts cold <checkpoint> <cache-dir>
 *
 * WEFT_TREE (default: this checkout) is the tree whose ModelManager runs, so an older commit is
 * measured with the same script. Prints one JSON line last.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [mode = 'cold', fileArg = 'models/checkpoints/weft-random-sd15.safetensors', cacheArg] = process.argv.slice(2);
if (mode !== 'cold' && mode !== 'warm') throw new Error(`mode ${mode}: expected cold or warm`);
const file = path.resolve(fileArg);
if (!existsSync(file)) throw new Error(`${file} not found: npm run weft -- make-model sd15 --out ${file}`);
const tree = path.resolve(process.env.WEFT_TREE ?? path.join(import.meta.dirname, '..'));
const cacheDir = path.resolve(cacheArg ?? path.join(os.tmpdir(), 'weft-bench-cache'));
if (mode === 'cold') rmSync(cacheDir, { recursive: true, force: true });

interface Out {
  data: Float32Array;
}
interface Handles {
  clip: { encodeText(t: string): Promise<{ cond: Out }> };
  vae: { decode(l: { shape: number[]; data: Float32Array }): Promise<Out> };
  model: { unet: { readonly contextDim?: number; run(a: object): Promise<Out> } };
}
interface Manager {
  loadCheckpoint(f: string): Promise<Handles>;
  runtime?: { cache: { onProgress?: (p: { part: string; phase: string; done: number; total: number }) => void } };
}
const { ModelManager } = (await import(path.join(tree, 'engine/models/manager.ts'))) as { ModelManager: new (o: object) => Manager };

const t0 = performance.now();
const lines: string[] = [];
/** Wall and CPU seconds since the start, so the phases between two log lines can be told apart in both. */
const stamp = (): string => {
  const c = process.cpuUsage();
  return `${((performance.now() - t0) / 1000).toFixed(1)} s (CPU ${((c.user + c.system) / 1e6).toFixed(1)} s)`;
};
const log = {
  info: (m: string) => lines.push(`${stamp()} ${m}`),
  warn: (m: string) => lines.push(`warn ${m}`),
  error: (m: string) => lines.push(`error ${m}`),
};
const m = new ModelManager({ cacheDir, log, device: 'cpu' });
if (m.runtime)
  m.runtime.cache.onProgress = (p) => {
    if (p.phase !== 'write' || p.done === 0) log.info(`${p.part}: ${p.phase === 'write' ? 'writing' : p.phase}`);
  };
/** CPU seconds per phase (the process's user + system time, ORT's threads included): on a loaded machine wall times mostly measure the others. */
const cpu: Record<string, number> = {};
let phase = 'checkpoint';
/** SHA-256 of each part's output (first 16 hex digits): first and warm runs, and two trees, must give the same bits. */
const outputs: Record<string, string> = {};
const time = async (f: () => Promise<Out>): Promise<number> => {
  const t = performance.now();
  const c = process.cpuUsage();
  const out = await f();
  outputs[phase] = createHash('sha256')
    .update(new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength))
    .digest('hex')
    .slice(0, 16);
  const d = process.cpuUsage(c);
  cpu[phase] = (d.user + d.system) / 1e6;
  return (performance.now() - t) / 1000;
};
let parts: Handles | undefined;
const ms: Record<string, number> = {};
ms.checkpoint = await time(async () => {
  parts = await m.loadCheckpoint(file);
  return { data: new Float32Array(0) };
});
const p = parts!;
phase = 'clip';
ms.clip = await time(async () => (await p.clip.encodeText('a photograph of an astronaut riding a horse')).cond);
phase = 'unet';
const dim = p.model.unet.contextDim ?? 768;
ms.unet = await time(() =>
  p.model.unet.run({
    x: { shape: [1, 4, 8, 8], data: new Float32Array(256).map((_, i) => Math.sin(i * 0.7)) },
    timesteps: new Float32Array([1]),
    context: { shape: [1, 77, dim], data: new Float32Array(77 * dim).map((_, i) => Math.cos(i * 0.3)) },
  }),
);
phase = 'vae_decoder';
ms.vae_decoder = await time(() => p.vae.decode({ shape: [1, 4, 8, 8], data: new Float32Array(256).map((_, i) => Math.sin(i * 0.3)) }));
const total = (performance.now() - t0) / 1000;
const cpuTotal = (process.cpuUsage().user + process.cpuUsage().system) / 1e6;

/** Bytes per part folder, counting a hard link to the checkpoint apart (it costs no disk while the checkpoint exists). */
const disk: Record<string, { own: number; linked: number }> = {};
for (const d of readdirSync(cacheDir)) {
  const dir = path.join(cacheDir, d);
  if (!statSync(dir).isDirectory() || d === 'hashes') continue;
  const part = d.split('-')[0];
  const e = (disk[part] ??= { own: 0, linked: 0 });
  for (const f of readdirSync(dir)) {
    const st = statSync(path.join(dir, f));
    if (st.nlink > 1) e.linked += st.size;
    else e.own += st.size;
  }
}
for (const l of lines) console.log(`  [log] ${l}`);
const gb = (b: number): string => (b / 1e9).toFixed(2);
for (const [part, e] of Object.entries(disk))
  console.log(`${part}: ${gb(e.own)} GB own${e.linked ? `, ${gb(e.linked)} GB hard-linked to the checkpoint` : ''}`);
const own = Object.values(disk).reduce((s, e) => s + e.own, 0);
console.log(
  `${mode} run: ${total.toFixed(1)} s (checkpoint ${ms.checkpoint.toFixed(1)}, CLIP ${ms.clip.toFixed(1)}, UNet ${ms.unet.toFixed(1)}, VAE decoder ${ms.vae_decoder.toFixed(1)}); CPU ${cpuTotal.toFixed(1)} s (${Object.entries(
    cpu,
  )
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(', ')}); cache ${gb(own)} GB for a ${gb(statSync(file).size)} GB checkpoint (${(own / statSync(file).size).toFixed(2)}×)`,
);
console.log(
  JSON.stringify({
    outputs,
    tree,
    mode,
    total,
    ms,
    cpu,
    cpuTotal,
    loadavg: os.loadavg(),
    disk,
    checkpointBytes: statSync(file).size,
    machine: `${os.cpus()[0]?.model} ×${os.cpus().length}`,
    date: new Date().toISOString(),
  }),
);
