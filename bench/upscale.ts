/**
 * An upscale model (full-size random ones: `weft make-model realesrgan-x4plus`, `realesr-general-x4v3`) upscaling one
 * image through ImageUpscaleWithModel's path (UpscaleModelLoader, the `upscaler` part built into the
 * cache, padding/clamp, tiled_scale) against bare ORT on the same model.onnx, each in its own child
 * process so peak RSS (VmHWM) is per variant, interleaved weft/bare `repeats` times.
 *
 * Run: npx tsx bench/upscale.ts [model] [size=512] [repeats=1] [tile=512]
 * (under `flock /tmp/weft-heavy.lock`: a 512² input is ~4.7 T multiply-adds and a few GB of activations)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelManager } from '../engine/models/manager.ts';
import { readUpscaleWeights, UpscaleModelLoader } from '../engine/models/upscale/loader.ts';
import { openWeights } from '../engine/formats/open-weights.ts';
import { chooseUpscaleTile, availableForActivations, upscalerPart } from '../engine/models/upscale/model.ts';
import { UPSCALE_IO } from '../engine/models/upscale/graph.ts';
import { resolveCacheDir } from '../engine/onnx/cache-dir.ts';
import { FolderPaths } from '../engine/paths/folders.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const peakRss = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;

function image(size: number): Float32Array {
  const d = new Float32Array(size * size * 3);
  for (let i = 0; i < d.length; i++) d[i] = ((i * 2654435761) % 997) / 997;
  return d;
}

async function child(kind: string, file: string, size: number, tile: number): Promise<void> {
  const cacheDir = resolveCacheDir();
  const m = new ModelManager({ cacheDir, device: 'cpu', log: quiet, paths: new FolderPaths({ baseDir: '.' }) });
  const loader = new UpscaleModelLoader(m.runtime, { cacheDir });
  const model = loader.load(file);
  const t0 = performance.now();
  let runMs: number;
  let loadMs: number;
  if (kind === 'weft') {
    // A 16² tile builds (or finds) the graph and creates the session: the load.
    await model.forward({ shape: [1, 3, 16, 16], data: new Float32Array(768) });
    loadMs = performance.now() - t0;
    const t1 = performance.now();
    await model.upscale({ shape: [1, size, size, 3], data: image(size) }, { tile });
    runMs = performance.now() - t1;
  } else {
    // The same build the weft child uses (same part, hash and cache key): its model.onnx, as ORT loads a file.
    const { weights } = readUpscaleWeights(openWeights(file), file);
    const b = await m.runtime.ensureBuilt(upscalerPart(model.arch, weights, model.id.slice('upscaler:'.length), file));
    const s = await ort.InferenceSession.create(b.file, { executionProviders: ['cpu'] });
    loadMs = performance.now() - t0;
    const x = new Float32Array(size * size * 3);
    const src = image(size);
    for (let i = 0; i < size * size; i++) for (let c = 0; c < 3; c++) x[c * size * size + i] = src[i * 3 + c];
    const t1 = performance.now();
    await s.run({ [UPSCALE_IO.input]: new ort.Tensor('float32', x, [1, 3, size, size]) });
    runMs = performance.now() - t1;
  }
  console.log(
    JSON.stringify({
      kind,
      loadMs,
      runMs,
      peakRss: peakRss(),
      chosenTile: chooseUpscaleTile(model.arch, availableForActivations(m.runtime)),
      arch: `${model.arch.kind} ×${model.arch.scale}`,
    }),
  );
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return child(process.argv[3], process.argv[4], Number(process.argv[5]), Number(process.argv[6]));
  const file = path.resolve(process.argv[2] ?? 'models/upscale_models/weft-random-RealESRGAN_x4plus.safetensors');
  const size = Number(process.argv[3] ?? 512);
  const repeats = Number(process.argv[4] ?? 1);
  const tile = Number(process.argv[5] ?? 512);
  if (!existsSync(file)) throw new Error(`${file} not found: make it with \`npx tsx cli/main.ts make-model realesrgan-x4plus\``);
  console.log(`${path.basename(file)} on a ${size}² image, tile ${tile}, ${repeats} interleaved repeat(s)`);
  const rows: Record<string, { loadMs: number; runMs: number; peakRss: number; chosenTile: number; arch: string }[]> = {
    weft: [],
    bare: [],
  };
  for (let r = 0; r < repeats; r++)
    for (const kind of ['weft', 'bare']) {
      const p = spawnSync(process.execPath, ['--import', 'tsx', import.meta.filename, '--child', kind, file, String(size), String(tile)], {
        encoding: 'utf8',
      });
      if (p.status !== 0) throw new Error(`${kind} child failed: ${p.stderr}`);
      const res = JSON.parse(p.stdout.trim().split('\n').pop()!) as (typeof rows)['weft'][number];
      rows[kind].push(res);
      console.log(
        `  ${kind} (${res.arch}): load ${(res.loadMs / 1000).toFixed(2)} s, run ${(res.runMs / 1000).toFixed(2)} s, peak RSS ${mib(res.peakRss)} (tile the memory rule picks now: ${res.chosenTile})`,
      );
    }
  const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const w = med(rows.weft.map((r) => r.runMs));
  const b = med(rows.bare.map((r) => r.runMs));
  console.log(
    `run weft/bare ${(w / b).toFixed(2)}×; peak RSS weft ${mib(med(rows.weft.map((r) => r.peakRss)))}, bare ${mib(med(rows.bare.map((r) => r.peakRss)))}`,
  );
}

await main();
