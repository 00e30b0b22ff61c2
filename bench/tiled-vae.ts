/**
 * The Tiled VAE (ComfyUI-TiledDiffusion's nodes) on the full-size SD1.5 VAE: one tiled encode of a
 * side² image and one tiled decode of its latent, each timed in wall and CPU time (user and system
 * apart: system time here is mostly the kernel faulting in fresh pages), with the process's minor
 * page faults and its peak RSS. The layer builds must be in the cache (a first run builds them; it is
 * reported as "first").
 *
 * WEFT_TREE (default: this checkout) is the tree whose engine runs, so two commits are compared with
 * the same script: run them in turns (A B B A) on a quiet machine.
 *
 * Run: [WEFT_TREE=<checkout>] npx tsx bench/tiled-vae.ts [checkpoint] [side=1024] [tile=512] [repeats=1]
 * (make the checkpoint with `npm run weft -- make-model sd15 --out <ckpt>`)
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const file = path.resolve(process.argv[2] ?? 'models/checkpoints/weft-random-sd15.safetensors');
const SIDE = Number(process.argv[3] ?? 1024);
const TILE = Number(process.argv[4] ?? 512);
const REPEATS = Number(process.argv[5] ?? 1);
const tree = path.resolve(process.env.WEFT_TREE ?? path.join(import.meta.dirname, '..'));
if (!existsSync(file)) throw new Error(`${file} not found (see the header of bench/tiled-vae.ts)`);

interface T {
  shape: number[];
  data: Float32Array;
}
interface TiledVaeLike {
  encodeRaw(x: T, o: object): Promise<T>;
  decodeRaw(x: T, o: object): Promise<T>;
}
const { ModelManager } = (await import(path.join(tree, 'engine/models/manager.ts'))) as {
  ModelManager: new (o: object) => {
    runtime: object;
    loadCheckpoint(f: string): Promise<{ vae: { cfg: object; weights?: object; id: string } }>;
  };
};
const { TiledVae } = (await import(path.join(tree, 'engine/models/tiled-vae/tiled-vae.ts'))) as {
  TiledVae: new (r: object, s: object) => TiledVaeLike;
};
const { resolveCacheDir } = (await import(path.join(tree, 'engine/onnx/cache-dir.ts'))) as { resolveCacheDir: () => string };

/** Minor faults, user and system seconds of this process so far (/proc/self/stat). */
function counters(): { faults: number; user: number; sys: number } {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  const tick = 100;
  return { faults: Number(f[7]), user: Number(f[11]) / tick, sys: Number(f[12]) / tick };
}
const peakRss = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 2 ** 20;

console.log(
  `machine: ${os.cpus()[0]?.model} ×${os.cpus().length}; load average ${os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ')}; node ${process.version}`,
);
console.log(`date: ${new Date().toISOString()}; tree ${tree}; checkpoint ${file}; image ${SIDE}², tile ${TILE}`);

const m = new ModelManager({
  cacheDir: resolveCacheDir(),
  log: { info: () => {}, warn: (s: string) => console.log(`[warn] ${s}`), error: () => {} },
});
const vae = (await m.loadCheckpoint(file)).vae;
const t = new TiledVae(m.runtime, { cfg: vae.cfg, weights: vae.weights, hash: vae.id.slice(4) });
const img: T = { shape: [1, 3, SIDE, SIDE], data: new Float32Array(3 * SIDE * SIDE).map((_, i) => Math.sin(i * 0.001) * 0.9) };

async function timed(what: string, f: () => Promise<T>): Promise<T> {
  const a = counters();
  const t0 = performance.now();
  const out = await f();
  const b = counters();
  console.log(
    `${what}: ${((performance.now() - t0) / 1000).toFixed(1)} s wall, CPU user ${(b.user - a.user).toFixed(1)} s + system ${(b.sys - a.sys).toFixed(1)} s, ${((b.faults - a.faults) / 1000).toFixed(0)}k minor faults; peak RSS so far ${peakRss().toFixed(2)} GiB`,
  );
  return out;
}

for (let r = 0; r <= REPEATS; r++) {
  const tag = r === 0 ? 'first' : `run ${r}`;
  const z = await timed(`${tag} encode ${SIDE}²`, () => t.encodeRaw(img, { tileSize: TILE, fast: true, colorFix: true }));
  await timed(`${tag} decode ${SIDE}²`, () => t.decodeRaw(z, { tileSize: TILE, fast: true }));
}
