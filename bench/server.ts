/**
 * Server throughput: 200 prompts of a cheap workflow (LoadImage → ImageInvert → SaveImage on a
 * 64×64 image, each with its own prefix so nothing is served from cache) queued by 10 concurrent
 * WebSocket clients; queue-to-done latency percentiles, RSS before and after, and a check that every
 * prompt finished with its image on disk. `host` picks where prompts run: the worker thread `weft
 * serve` uses, or the server's own event loop (`inprocess`).
 * Run: npx tsx bench/server.ts [prompts=200] [clients=10] [host=worker|inprocess]
 *
 * Responsiveness: `latency [seconds=10] [host]` queues one prompt whose node runs JavaScript that
 * never yields for that long, and requests /system_stats every 20 ms meanwhile; prints p50/p99/max.
 * Run: npx tsx bench/server.ts latency 10 worker
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import WebSocket from 'ws';
import { Executor } from '../engine/executor/executor.ts';
import { FolderPaths } from '../engine/paths/folders.ts';
import { silentLogger } from '../engine/core/log.ts';
import { startServer, type RunningServer } from '../server/server.ts';
import { WorkerHost } from '../server/worker-host.ts';
import { benchRegistry } from './server-nodes.ts';

/** Requests /system_stats every 20 ms from 0.5 s after start until 0.5 s before `duration`; prints the times. */
const REQUESTER = `
const [url, duration] = process.argv.slice(1);
const t0 = performance.now();
const times = [];
(async () => {
  await new Promise((r) => setTimeout(r, 500));
  while (performance.now() - t0 < Number(duration) - 500) {
    const t = performance.now();
    await (await fetch(url + '/system_stats')).arrayBuffer();
    times.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 20));
  }
  console.log(JSON.stringify(times));
})();
`;
const LATENCY = process.argv[2] === 'latency';
const args = LATENCY ? process.argv.slice(3) : process.argv.slice(2);
const PROMPTS = LATENCY ? 0 : Number(args[0] ?? 200);
const CLIENTS = LATENCY ? 0 : Number(args[1] ?? 10);
const SPIN_S = LATENCY ? Number(args[0] ?? 10) : 0;
const HOST = (LATENCY ? args[1] : args[2]) ?? 'worker';
if (HOST !== 'worker' && HOST !== 'inprocess') throw new Error(`host must be worker or inprocess, got ${HOST}`);
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bench-server-'));
const paths = new FolderPaths({ baseDir: base });
fs.mkdirSync(paths.inputDir, { recursive: true });
const px = Buffer.alloc(64 * 64 * 3);
for (let i = 0; i < px.length; i++) px[i] = (i * 7) % 256;
await sharp(px, { raw: { width: 64, height: 64, channels: 3 } })
  .png()
  .toFile(path.join(paths.inputDir, 'b.png'));
const registry = benchRegistry();
const host =
  HOST === 'worker'
    ? new WorkerHost({
        setup: {
          module: new URL('./server-nodes.ts', import.meta.url).href,
          exportName: 'createBenchExecutor',
          options: { baseDir: base },
        },
        log: silentLogger,
      })
    : undefined;
await host?.start();
const server: RunningServer = await startServer({
  port: 0,
  paths,
  registry,
  ...(host ? { executionHost: host } : { executor: new Executor(registry, { paths }) }),
  log: silentLogger,
  stateDir: path.join(base, 'state'),
});

if (LATENCY) {
  const prompt = {
    '1': { class_type: 'LoadImage', inputs: { image: 'b.png' } },
    '2': { class_type: 'BenchSpin', inputs: { image: ['1', 0], ms: SPIN_S * 1000 } },
    '3': { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: 'spin' } },
  };
  // The requests come from another process: one sharing the server's event loop would be blocked
  // with it (for the in-process host) and measure nothing.
  const child = spawn(process.execPath, ['-e', REQUESTER, server.url, String(SPIN_S * 1000)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += String(d)));
  const exited = new Promise((r) => child.on('exit', r));
  const queued = fetch(`${server.url}/prompt`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt }),
  });
  const { prompt_id } = (await (await queued).json()) as { prompt_id: string };
  await exited;
  for (;;) {
    const h = (await (await fetch(`${server.url}/history/${prompt_id}`)).json()) as Record<string, unknown>;
    if (h[prompt_id]) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await server.close();
  fs.rmSync(base, { recursive: true, force: true });
  const times = (JSON.parse(out) as number[]).sort((a, b) => a - b);
  const q = (p: number): number => +times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))].toFixed(1);
  const res = {
    host: HOST,
    spin_s: SPIN_S,
    requests: times.length,
    p50_ms: q(50),
    p99_ms: q(99),
    max_ms: +times[times.length - 1].toFixed(1),
  };
  console.log(
    `/system_stats during a ${SPIN_S} s never-yielding node (${HOST}): ${res.requests} requests, p50 ${res.p50_ms} ms, p99 ${res.p99_ms} ms, max ${res.max_ms} ms`,
  );
  console.log(JSON.stringify(res));
  process.exit(0);
}

const gc = (globalThis as { gc?: () => void }).gc;
async function round(tag: string): Promise<{ total: number; latencies: number[] }> {
  const latencies: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, c) => {
      const clientId = `bench${c}`;
      const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws?clientId=${clientId}`);
      await new Promise((r) => ws.on('open', r));
      const queuedAt = new Map<string, number>();
      const finished = new Map<string, () => void>();
      ws.on('message', (d, bin) => {
        if (bin) return;
        const m = JSON.parse(String(d)) as { type: string; data: { node?: string | null; prompt_id?: string } };
        if (m.type === 'executing' && m.data.node === null && m.data.prompt_id) {
          const t = queuedAt.get(m.data.prompt_id);
          if (t !== undefined) latencies.push(performance.now() - t);
          finished.get(m.data.prompt_id)?.();
        }
      });
      const mine = Math.floor(PROMPTS / CLIENTS) + (c < PROMPTS % CLIENTS ? 1 : 0);
      const waits: Promise<void>[] = [];
      for (let i = 0; i < mine; i++) {
        const prompt = {
          '1': { class_type: 'LoadImage', inputs: { image: 'b.png' } },
          '2': { class_type: 'ImageInvert', inputs: { image: ['1', 0] } },
          '3': { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: `${tag}_c${c}_p${i}` } },
        };
        const sent = performance.now();
        const r = (await (
          await fetch(`${server.url}/prompt`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ prompt, client_id: clientId }),
          })
        ).json()) as { prompt_id: string };
        queuedAt.set(r.prompt_id, sent);
        waits.push(new Promise<void>((res) => finished.set(r.prompt_id, res)));
      }
      await Promise.all(waits);
      ws.close();
    }),
  );
  const total = performance.now() - t0;
  // Drop cached node outputs (POST /free, as ComfyUI) so RSS shows what the server itself keeps.
  await fetch(`${server.url}/free`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"free_memory": true}' });
  await new Promise((r) => setTimeout(r, 300));
  gc?.();
  return { total, latencies };
}
// Warm-up round (JIT, sharp's thread pool, allocator), then the measured one.
await round('warm');
const rssBefore = process.memoryUsage().rss;
const { total, latencies } = await round('run');
const rssAfter = process.memoryUsage().rss;
const history = (await (await fetch(`${server.url}/history`)).json()) as Record<string, { status: { status_str: string } }>;
const ok = Object.values(history).filter((h) => h.status.status_str === 'success').length - PROMPTS;
const files = fs.readdirSync(paths.outputDir).filter((f) => f.startsWith('run_')).length;
await server.close();
fs.rmSync(base, { recursive: true, force: true });
latencies.sort((a, b) => a - b);
const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
const summary = {
  host: HOST,
  prompts: PROMPTS,
  clients: CLIENTS,
  total_s: +(total / 1000).toFixed(2),
  throughput_per_s: +(PROMPTS / (total / 1000)).toFixed(1),
  p50_ms: +pct(50).toFixed(1),
  p99_ms: +pct(99).toFixed(1),
  rss_before_mb: +(rssBefore / 2 ** 20).toFixed(1),
  rss_after_mb: +(rssAfter / 2 ** 20).toFixed(1),
  succeeded: ok,
  images_on_disk: files,
};
console.log(
  `server benchmark: ${PROMPTS} prompts from ${CLIENTS} WebSocket clients, executor ${HOST === 'worker' ? 'in a worker thread' : 'on the server thread'}`,
);
console.log(`  throughput ${summary.throughput_per_s}/s, queue-to-done p50 ${summary.p50_ms} ms, p99 ${summary.p99_ms} ms`);
console.log(`  RSS ${summary.rss_before_mb} → ${summary.rss_after_mb} MiB; ${ok}/${PROMPTS} succeeded, ${files} images written`);
console.log(JSON.stringify(summary));
if (ok !== PROMPTS || files !== PROMPTS) process.exit(1);
