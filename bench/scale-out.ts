/**
 * Scale-out: throughput of `weft serve --queue` with 1, 2, 4 and 8 `weft worker` processes on
 * prompts whose node sleeps a fixed time (GPU work without using the CPU), and queue-to-start
 * latency p50/p99 when 10 clients queue 200 prompts at once; the embedded queue (`weft serve`
 * alone) for comparison. Needs redis-server on PATH; everything runs in a temp folder.
 * Run: npx tsx bench/scale-out.ts [prompts=32] [sleep_ms=500] [rounds=1]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KEYS } from '../server/queue-redis/layout.ts';
import { RedisClient } from '../server/queue-redis/redis-client.ts';
import { freePort, REPO, sleepPrompt, startRedis, writeTestNodes } from '../tests/scale-out/harness.ts';

const PROMPTS = Number(process.argv[2] ?? 32);
const SLEEP_MS = Number(process.argv[3] ?? 500);
const ROUNDS = Number(process.argv[4] ?? 1);
const LATENCY_PROMPTS = 200;
const CLIENTS = 10;

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bench-scale-'));
const nodes = writeTestNodes(path.join(base, 'custom'));
const redis = await startRedis();
const probe = new RedisClient({ host: '127.0.0.1', port: redis.port, db: 0, tls: false });
const common = ['--base', base, '--custom-nodes', nodes, '--device', 'cpu', '--quiet'];

function weft(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'cli/main.ts'), ...args], {
    cwd: REPO,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function stop(procs: ChildProcess[]): Promise<void> {
  await Promise.all(
    procs.map((p) =>
      p.exitCode !== null
        ? undefined
        : new Promise((r) => {
            p.once('exit', r);
            p.kill('SIGKILL');
          }),
    ),
  );
}

async function until(what: string, fn: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 180_000;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 180 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startFront(queue: boolean): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort();
  const proc = weft(['serve', '--port', String(port), ...common, ...(queue ? ['--queue', redis.url] : [])]);
  const url = `http://127.0.0.1:${port}`;
  await until('front up', async () => (await fetch(`${url}/queue`)).ok);
  return { url, proc };
}

let serial = 0;
/** Queues `n` sleep prompts from `clients` concurrent clients; returns each prompt's queue time (ms since epoch). */
async function queueAll(url: string, n: number, clients: number, sleepMs: number): Promise<Map<string, number>> {
  const queued = new Map<string, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < n) {
        next++;
        const t = Date.now();
        const r = await fetch(`${url}/prompt`, {
          method: 'POST',
          body: JSON.stringify({ prompt: sleepPrompt(`b${serial++}`, 1, sleepMs) }),
        });
        const body = (await r.json()) as { prompt_id?: string };
        if (!body.prompt_id) throw new Error(`refused: ${JSON.stringify(body)}`);
        queued.set(body.prompt_id, t);
      }
    }),
  );
  return queued;
}

interface Entry {
  status: { status_str: string; messages: [string, { timestamp?: number }][] };
}
/** Waits for all prompts; returns their execution_start times. */
async function finished(url: string, ids: Iterable<string>): Promise<Map<string, number>> {
  const want = [...ids];
  let h: Record<string, Entry> = {};
  await until('all prompts done', async () => {
    h = (await (await fetch(`${url}/history`)).json()) as Record<string, Entry>;
    return want.every((id) => h[id]);
  });
  const starts = new Map<string, number>();
  for (const id of want) {
    if (h[id].status.status_str !== 'success') throw new Error(`prompt ${id} failed`);
    starts.set(id, Number(h[id].status.messages.find((m) => m[0] === 'execution_start')?.[1].timestamp));
  }
  return starts;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function measure(url: string): Promise<{ throughput: number; p50: number; p99: number }> {
  // Throughput: all queued first, clock from the first start to the last history entry.
  const q = await queueAll(url, PROMPTS, 1, SLEEP_MS);
  const t0 = Math.min(...(await finished(url, q.keys())).values());
  const seconds = (Date.now() - t0) / 1000;
  // Latency: 10 clients queue 200 short prompts at once; queue-to-start includes the wait behind earlier ones.
  const lq = await queueAll(url, LATENCY_PROMPTS, CLIENTS, 10);
  const ls = await finished(url, lq.keys());
  const lat = [...lq].map(([id, t]) => ls.get(id)! - t);
  return { throughput: PROMPTS / seconds, p50: pct(lat, 50), p99: pct(lat, 99) };
}

const rows: string[] = [];
const report = (label: string, r: { throughput: number; p50: number; p99: number }, ideal: number): void => {
  const line = `| ${label} | ${r.throughput.toFixed(2)} | ${(r.throughput / ideal).toFixed(2)} | ${r.p50.toFixed(0)} | ${r.p99.toFixed(0)} |`;
  rows.push(line);
  console.log(line);
};
console.log(
  `${PROMPTS} prompts sleeping ${SLEEP_MS} ms (ideal: workers × ${(1000 / SLEEP_MS).toFixed(2)}/s); latency: ${LATENCY_PROMPTS} prompts of 10 ms from ${CLIENTS} clients`,
);
console.log('| queue | prompts/s | of ideal | queue→start p50 ms | p99 ms |\n| --- | --- | --- | --- | --- |');
try {
  for (let round = 0; round < ROUNDS; round++) {
    {
      const front = await startFront(false);
      // The embedded queue's execution thread starts with the server; one warm-up prompt.
      await finished(front.url, (await queueAll(front.url, 1, 1, 0)).keys());
      report('embedded (weft serve)', await measure(front.url), 1000 / SLEEP_MS);
      await stop([front.proc]);
    }
    const front = await startFront(true);
    for (const n of [1, 2, 4, 8]) {
      await probe.del(KEYS.workers);
      const workers = Array.from({ length: n }, () => weft(['worker', '--queue', redis.url, ...common]));
      await until(`${n} workers up`, async () => Object.keys(await probe.hgetall(KEYS.workers)).length === n);
      await finished(front.url, (await queueAll(front.url, n, n, 0)).keys());
      report(`redis, ${n} worker${n > 1 ? 's' : ''}`, await measure(front.url), (n * 1000) / SLEEP_MS);
      await stop(workers);
    }
    await stop([front.proc]);
  }
} finally {
  probe.disconnect();
  await redis.stop();
  fs.rmSync(base, { recursive: true, force: true });
}
