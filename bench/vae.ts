/**
 * VAE decode against its FLOP floor. Builds only the SD1.5 VAE decoder, with random weights in
 * memory (no checkpoint needed), and in the same process and on the same threads measures the
 * FLOP rate ORT reaches on a large fp32 GEMM and on the decoder's 512→512 3×3 conv. Rounds are
 * interleaved (GEMM, conv, decode at each size), so each round's time/floor ratio compares runs
 * a few seconds apart on this noisy shared machine.
 *
 * The decoder's FLOPs are counted from the ops ORT ran (its profile's Conv/MatMul/attention nodes
 * and their shapes), and cross-checked against the count from the configuration.
 *
 * The decoder with the upsampling fused into its conv (what Weft builds) is run beside the decoder
 * as the checkpoint has it (nearest resize, then the 3×3 conv), interleaved: the A/B of that change.
 * The FLOP count, and so the floor, is the checkpoint's layers' (the unfused decoder's) for both.
 *
 * Run: npx tsx bench/vae.ts [repeats=3] [sizes=256,512] [--profile] [--threads N] [--no-ab]
 *   --profile also prints where the decode's time goes, per op type, from ORT's profiler.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { MapWeightSource } from '../engine/core/weights.ts';
import { GraphBuilder } from '../engine/onnx/graph.ts';
import { sessionOptions } from '../engine/onnx/runtime.ts';
import { buildVaeDecoderGraph, VAE_IO } from '../engine/models/families/sd1/graphs/vae-graph.ts';
import { SD15_CONFIG, vaeLayout } from '../engine/models/families/sd1/layout.ts';
import { Rng } from '../engine/models/generate/rng.ts';
import type { VaeConfig } from '../engine/models/families/sd1/config.ts';

const args = process.argv.slice(2);
const flag = (name: string): boolean => args.includes(name);
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const positional = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1] === '--threads'));
const REPEATS = Number(positional[0] ?? 3);
const SIZES = (positional[1] ?? '256,512').split(',').map(Number);
const THREADS = Number(option('--threads') ?? 0);

const cfg: VaeConfig = SD15_CONFIG.vae;
const cpu = { provider: 'cpu', dtype: 'float32', reason: 'bench' } as const;
const opts = (): ort.InferenceSession.SessionOptions => sessionOptions(cpu, { threads: THREADS });
const median = (a: readonly number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const range = (a: readonly number[], f: (v: number) => string): string => `${f(Math.min(...a))}–${f(Math.max(...a))}`;
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

/** The decoder's tensors with make-model's initialisation: norms 1/0, biases 0, weights N(0, 1/fan_in). */
function randomDecoderWeights(seed: number): MapWeightSource {
  const rng = new Rng(seed);
  const map = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [name, shape] of vaeLayout(cfg, '')) {
    if (!name.startsWith('decoder.') && !name.startsWith('post_quant_conv.')) continue;
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (shape.length === 1) data.fill(name.endsWith('.bias') ? 0 : 1);
    else rng.normal(data, 1 / Math.sqrt(shape.slice(1).reduce((a, b) => a * b, 1)));
    map.set(name, { shape, data });
  }
  return new MapWeightSource(map);
}

function randomTensor(shape: number[], seed: number): ort.Tensor {
  const rng = new Rng(seed);
  return new ort.Tensor('float32', rng.normal(new Float32Array(shape.reduce((a, b) => a * b, 1)), 1), shape);
}

/** One large fp32 GEMM: the im2col shape of the decoder's 512→512 3×3 conv at 64² (M 4096, K 4608, N 512). */
function gemmModel(): { model: Uint8Array; feed: Record<string, ort.Tensor>; flops: number } {
  const [M, K, N] = [4096, 4608, 512];
  const g = new GraphBuilder('gemm');
  const x = g.input('x', 'float32', [M, K]);
  const rng = new Rng(7);
  const w = g.floats('w', [K, N], () => rng.normal(new Float32Array(K * N), 1 / Math.sqrt(K)));
  g.output(g.op1('MatMul', [x, w]), 'y', 'float32', [M, N]);
  return { model: g.toBuffer(), feed: { x: randomTensor([M, K], 8) }, flops: 2 * M * K * N };
}

/** The decoder's 512→512 3×3 conv at 64² (its mid and up.3 blocks at 512²), as ORT runs it (NCHWc). */
function convModel(): { model: Uint8Array; feed: Record<string, ort.Tensor>; flops: number } {
  const [C, H] = [512, 64];
  const g = new GraphBuilder('conv');
  const x = g.input('x', 'float32', [1, C, H, H]);
  const rng = new Rng(9);
  const w = g.floats('w', [C, C, 3, 3], () => rng.normal(new Float32Array(C * C * 9), 1 / Math.sqrt(C * 9)));
  const b = g.floats('b', [C], () => new Float32Array(C));
  g.output(g.op1('Conv', [x, w, b], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }), 'y', 'float32', [1, C, H, H]);
  return { model: g.toBuffer(), feed: { x: randomTensor([1, C, H, H], 10) }, flops: 2 * H * H * C * C * 9 };
}

/**
 * The decoder's FLOPs counted from its configuration: every conv (2·out pixels·Cout·Cin·k²)
 * and the mid-block attention's two T×T products. Elementwise work, norms and softmax are left out.
 */
export function decoderFlops(c: VaeConfig, latentH: number, latentW: number, fusedUpsample = false): number {
  let px = latentH * latentW;
  let ch = c.ch * c.chMult[c.chMult.length - 1];
  const conv = (cin: number, cout: number, k: number): number => 2 * px * cout * cin * k * k;
  let f = conv(c.embedDim, c.embedDim, 1) + conv(c.embedDim, ch, 3);
  const resnet = (cin: number, cout: number): number => conv(cin, cout, 3) + conv(cout, cout, 3) + (cin !== cout ? conv(cin, cout, 1) : 0);
  f += 2 * resnet(ch, ch) + 4 * conv(ch, ch, 1) + 2 * 2 * px * px * ch;
  for (let i = c.chMult.length - 1; i >= 0; i--) {
    const out = c.ch * c.chMult[i];
    for (let j = 0; j <= c.numResBlocks; j++) {
      f += resnet(ch, out);
      ch = out;
    }
    if (i > 0) {
      // Fused, each upsampled pixel sees a 2×2 window of the input instead of 3×3.
      px *= 4;
      f += fusedUpsample ? (conv(ch, ch, 3) * 4) / 9 : conv(ch, ch, 3);
    }
  }
  return f + conv(ch, c.outChannels, 3);
}

interface ProfileEvent {
  cat?: string;
  name?: string;
  dur?: number;
  args?: { op_name?: string; input_type_shape?: Record<string, number[]>[]; output_type_shape?: Record<string, number[]>[] };
}

const dims = (shapes: Record<string, number[]>[] | undefined, i: number): number[] => Object.values(shapes?.[i] ?? {})[0] ?? [];
const prod = (a: readonly number[]): number => a.reduce((x, y) => x * y, 1);

/** FLOPs of one profiled node from its shapes: convs (plain, fused, NCHWc), MatMuls and attention. */
function nodeFlops(e: ProfileEvent): number {
  const op = e.args?.op_name ?? '';
  const ins = e.args?.input_type_shape;
  const outs = e.args?.output_type_shape;
  if (op === 'Conv' || op === 'FusedConv' || op === 'NchwcConv') {
    const w = dims(ins, 1);
    return 2 * prod(dims(outs, 0)) * prod(w.slice(1));
  }
  if (op === 'MatMul' || op === 'FusedMatMul') {
    const a = dims(ins, 0);
    return 2 * prod(dims(outs, 0)) * a[a.length - 1];
  }
  if (op === 'MultiHeadAttention') {
    const [B, T, C] = dims(ins, 0);
    const Tk = dims(ins, 1)[1];
    return 2 * 2 * B * T * Tk * C;
  }
  return 0;
}

/** Runs one decode per size under ORT's profiler; prints time per op type and the FLOPs ORT ran. */
async function profile(model: Uint8Array): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-vae-profile-'));
  try {
    for (const size of SIZES) {
      const h = size / 8;
      const session = await ort.InferenceSession.create(model, {
        ...opts(),
        enableProfiling: true,
        profileFilePrefix: path.join(dir, `vae${size}`),
      });
      const feed = { [VAE_IO.latent]: randomTensor([1, cfg.embedDim, h, h], 3) };
      await session.run(feed); // warm-up: first-run allocations stay out of the profile's second run
      await session.run(feed);
      session.endProfiling();
      await session.release();
      const file = path.join(
        dir,
        readdirSync(dir).find((f) => f.startsWith(`vae${size}`))!,
      );
      const events = JSON.parse(readFileSync(file, 'utf8')) as ProfileEvent[];
      const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
      const last = runs[runs.length - 1];
      const nodes = events.filter((e) => e.cat === 'Node' && e.name?.endsWith('_kernel_time'));
      // The profile holds both runs; the second half of the node events is the measured run.
      const second = nodes.slice(nodes.length / 2);
      const byOp = new Map<string, { ms: number; n: number; flops: number }>();
      for (const e of second) {
        const op = e.args?.op_name ?? '?';
        const r = byOp.get(op) ?? { ms: 0, n: 0, flops: 0 };
        r.ms += (e.dur ?? 0) / 1000;
        r.n++;
        r.flops += nodeFlops(e);
        byOp.set(op, r);
      }
      const total = [...byOp.values()].reduce((a, r) => a + r.ms, 0);
      const flops = [...byOp.values()].reduce((a, r) => a + r.flops, 0);
      console.log(
        `profile ${size}²: run ${s((last?.dur ?? 0) / 1000)}, kernels ${s(total)}, ${second.length} nodes, ${(flops / 1e9).toFixed(1)} GFLOP run ` +
          `(configuration count ${(decoderFlops(cfg, h, h, true) / 1e9).toFixed(1)}; unfused ${(decoderFlops(cfg, h, h) / 1e9).toFixed(1)})`,
      );
      for (const [op, r] of [...byOp].sort((a, b) => b[1].ms - a[1].ms)) {
        const rate = r.flops ? `, ${(r.flops / r.ms / 1e6).toFixed(0)} GFLOP/s` : '';
        console.log(
          `  ${op.padEnd(28)} ${r.n.toString().padStart(4)} × ${s(r.ms).padStart(8)}  ${((100 * r.ms) / total).toFixed(1).padStart(5)}%${rate}`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Wall and CPU milliseconds (all of this process's threads) of one run. */
async function timed(session: ort.InferenceSession, feed: Record<string, ort.Tensor>): Promise<{ wall: number; cpu: number }> {
  const c = process.cpuUsage();
  const t = performance.now();
  await session.run(feed);
  const wall = performance.now() - t;
  const used = process.cpuUsage(c);
  return { wall, cpu: (used.user + used.system) / 1000 };
}

console.log(
  `machine: ${os.cpus()[0]?.model} ×${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; node ${process.version}; onnxruntime-node ${ort.env.versions.common}`,
);
console.log(
  `date: ${new Date().toISOString()}; intra-op threads: ${THREADS || 'ORT default'}; load average ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);

const t0 = performance.now();
const decoder = buildVaeDecoderGraph(cfg, randomDecoderWeights(1), { dtype: 'float32', fusedAttention: true }, { fuseUpsample: true });
const decoderModel = decoder.toBuffer();
console.log(
  `decoder graph: ${decoder.nodeCount} nodes, ${(decoder.weightBytes / 2 ** 20).toFixed(0)} MiB, built in ${s(performance.now() - t0)}`,
);

if (flag('--profile')) await profile(decoderModel);

const gemm = gemmModel();
const conv = convModel();
const gemmSession = await ort.InferenceSession.create(gemm.model, opts());
const convSession = await ort.InferenceSession.create(conv.model, opts());
const vaeSession = await ort.InferenceSession.create(decoderModel, opts());
// The decoder as the checkpoint has it (nearest resize, then the 3×3 conv at the high resolution): the A/B.
const unfusedSession = flag('--no-ab')
  ? undefined
  : await ort.InferenceSession.create(
      buildVaeDecoderGraph(cfg, randomDecoderWeights(1), { dtype: 'float32', fusedAttention: true }, { fuseUpsample: false }).toBuffer(),
      opts(),
    );
const feeds = SIZES.map((size) => ({ [VAE_IO.latent]: randomTensor([1, cfg.embedDim, size / 8, size / 8], 3) }));
// Warm-up: first runs allocate the arena and, for the decoder, plan the memory pattern per shape.
await timed(gemmSession, gemm.feed);
await timed(convSession, conv.feed);
for (const f of feeds) {
  await timed(vaeSession, f);
  if (unfusedSession) await timed(unfusedSession, f);
}

interface Sample {
  wall: number;
  cpu: number;
}
const rounds: { gemm: Sample; conv: Sample; fused: Sample[]; unfused: Sample[] }[] = [];
for (let r = 0; r < REPEATS; r++) {
  // Two GEMM runs per round, the faster kept: a single run can land on a busy moment of the machine.
  const g1 = await timed(gemmSession, gemm.feed);
  const g2 = await timed(gemmSession, gemm.feed);
  const round = {
    gemm: g1.wall < g2.wall ? g1 : g2,
    conv: await timed(convSession, conv.feed),
    fused: [] as Sample[],
    unfused: [] as Sample[],
  };
  for (const f of feeds) {
    // Alternate which decoder goes first, so neither always follows the GEMM.
    if (unfusedSession && r % 2 === 1) round.unfused.push(await timed(unfusedSession, f));
    round.fused.push(await timed(vaeSession, f));
    if (unfusedSession && r % 2 === 0) round.unfused.push(await timed(unfusedSession, f));
  }
  rounds.push(round);
}

const rate = (flops: number, ms: number): string => (flops / ms / 1e6).toFixed(0);
const per = <T>(f: (r: (typeof rounds)[number]) => T): T[] => rounds.map(f);
const gemmWall = per((r) => r.gemm.wall);
const gemmCpu = per((r) => r.gemm.cpu);
console.log(
  `GEMM ${(gemm.flops / 1e9).toFixed(1)} GFLOP: median ${(median(gemmWall) / 1000).toFixed(3)} s = ${rate(gemm.flops, median(gemmWall))} GFLOP/s ` +
    `(rounds ${range(
      gemmWall.map((m) => gemm.flops / m / 1e6),
      (v) => v.toFixed(0),
    )}); per CPU-second ${rate(gemm.flops, median(gemmCpu))} GFLOP/s`,
);
const convWall = per((r) => r.conv.wall);
console.log(
  `conv 512→512 3×3 @64²: median ${(median(convWall) / 1000).toFixed(3)} s = ${rate(conv.flops, median(convWall))} GFLOP/s (rounds ${range(
    convWall.map((m) => conv.flops / m / 1e6),
    (v) => v.toFixed(0),
  )})`,
);
// The achievable rate of a round: the faster of the GEMM and the conv (ORT's NCHWc conv kernel often
// beats its MatMul on these shapes, so the GEMM alone would give a floor too low).
const best = per((r) => Math.max(gemm.flops / r.gemm.wall, conv.flops / r.conv.wall));
const bestCpu = per((r) => Math.max(gemm.flops / r.gemm.cpu, conv.flops / r.conv.cpu));
const ratios = (samples: (r: (typeof rounds)[number]) => Sample, flops: number) => ({
  gemm: per((r) => samples(r).wall / ((flops * r.gemm.wall) / gemm.flops)),
  best: rounds.map((r, k) => samples(r).wall / (flops / best[k])),
  cpu: rounds.map((r, k) => samples(r).cpu / (flops / bestCpu[k])),
});
const fmt = (a: number[]): string => `${median(a).toFixed(2)} (${range(a, (v) => v.toFixed(2))})`;
SIZES.forEach((size, i) => {
  const flops = decoderFlops(cfg, size / 8, size / 8);
  const flopsFused = decoderFlops(cfg, size / 8, size / 8, true);
  const wall = per((r) => r.fused[i].wall);
  // Each round's decode against the floor at that round's rates, in wall time and in CPU time
  // (the CPU-time ratio does not count time other processes held the cores).
  const own = ratios((r) => r.fused[i], flopsFused);
  const ckpt = ratios((r) => r.fused[i], flops);
  console.log(
    `decode ${size}²: median ${s(median(wall))} (${range(wall, s)}); ${(flopsFused / 1e9).toFixed(0)} GFLOP run, ${(flops / 1e9).toFixed(0)} GFLOP in the checkpoint's layers`,
  );
  console.log(
    `  time/floor, its own FLOPs: at the GEMM rate ${fmt(own.gemm)}; at the best rate ${fmt(own.best)}; CPU time at the best rate ${fmt(own.cpu)}`,
  );
  console.log(
    `  time/floor, the checkpoint's FLOPs: at the GEMM rate ${fmt(ckpt.gemm)}; at the best rate ${fmt(ckpt.best)}; CPU time at the best rate ${fmt(ckpt.cpu)}`,
  );
  if (unfusedSession) {
    const un = ratios((r) => r.unfused[i], flops);
    const unfused = per((r) => r.unfused[i].wall);
    const ab = per((r) => r.fused[i].wall / r.unfused[i].wall);
    const abCpu = per((r) => r.fused[i].cpu / r.unfused[i].cpu);
    console.log(
      `  unfused upsampling (A/B): median ${s(median(unfused))} (${range(unfused, s)}); time/floor at the GEMM rate ${fmt(un.gemm)}, at the best rate ${fmt(un.best)}, CPU ${fmt(un.cpu)}`,
    );
    console.log(
      `  fused/unfused per round: wall ${ab.map((v) => v.toFixed(2)).join(' ')} (median ${median(ab).toFixed(2)}), CPU ${abCpu.map((v) => v.toFixed(2)).join(' ')} (median ${median(abCpu).toFixed(2)})`,
    );
  }
});
await Promise.all([gemmSession.release(), convSession.release(), vaeSession.release(), unfusedSession?.release()]);
