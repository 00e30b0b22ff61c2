import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { RedisClient } from '../../server/queue-redis/redis-client.ts';

/**
 * The scale-out tests' pieces: a real redis-server on a free port in a temp folder, a custom node
 * package with test-only nodes (sleep with per-step progress, kill the process), and `weft worker`
 * child processes kept running by a small supervisor, as systemd would.
 */
export const REPO = path.resolve(import.meta.dirname, '../..');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface TestRedis {
  port: number;
  dir: string;
  url: string;
  password?: string;
  /** kill -9 (nothing flushed beyond what appendfsync wrote), then start again on the same port and folder. */
  crashAndRestart(): Promise<void>;
  stop(): Promise<void>;
}

/** redis-server with `appendonly yes` and `appendfsync always`, so an acknowledged write survives kill -9. */
export async function startRedis(opts: { password?: string; extra?: string[] } = {}): Promise<TestRedis> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-redis-'));
  let proc: ChildProcess;
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    'always',
    ...(opts.password ? ['--requirepass', opts.password] : []),
    ...(opts.extra ?? []),
  ];
  const launch = async (): Promise<void> => {
    proc = spawn('redis-server', args, { stdio: 'ignore' });
    const missing = new Promise<never>((_, reject) =>
      proc.once('error', (e) => reject(new Error(`cannot start redis-server (${e.message}): apt-get install redis-server (.ci/run does)`))),
    );
    await Promise.race([waitForRedis({ host: '127.0.0.1', port, password: opts.password }), missing]);
  };
  await launch();
  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : '';
  return {
    port,
    dir,
    url: `redis://${auth}127.0.0.1:${port}`,
    password: opts.password,
    crashAndRestart: async () => {
      const dead = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await dead;
      await launch();
    },
    stop: async () => {
      const dead = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await dead;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function waitForRedis(t: { host: string; port: number; password?: string; tls?: boolean; caFile?: string }): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const c = new RedisClient({ ...t, db: 0, tls: t.tls ?? false, retryDelayMs: () => 50 });
    c.on('error', () => undefined);
    try {
      const ok = await Promise.race([c.send(['PING']), new Promise((r) => setTimeout(() => r('timeout'), 500))]);
      if (ok === 'PONG') return;
    } catch {
      // not up yet
    } finally {
      c.disconnect();
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${t.port} did not answer within 20 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A custom node package (outside the repository, as a user's would be) with the test-only nodes. */
export function writeTestNodes(dir: string): string {
  const pkg = path.join(dir, 'weft_scaleout_test');
  fs.mkdirSync(pkg, { recursive: true });
  // ESM, or tsx loads index.ts as CommonJS in the execution threads and the import fails.
  fs.writeFileSync(path.join(pkg, 'package.json'), '{"type":"module"}');
  fs.writeFileSync(
    path.join(pkg, 'index.ts'),
    // By absolute path: vitest (in-process front) does not resolve the package name 'weft/api' from a temp folder.
    `import { defineNode } from ${JSON.stringify(path.join(REPO, 'engine/api.ts'))};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const nodes = [
  defineNode({
    name: 'WeftTestSleep',
    description: 'Stands for GPU work: sleeps steps × step_ms, reporting progress and checking for interrupts after each step.',
    inputs: { required: { image: { type: 'IMAGE' }, steps: { type: 'INT', default: 1, min: 1, max: 100000 }, step_ms: { type: 'INT', default: 100, min: 0, max: 600000 } } },
    outputs: [{ type: 'IMAGE' }],
    // Always runs (ComfyUI's IS_CHANGED = NaN): a cached sleep would not stand for GPU work.
    fingerprint: () => NaN,
    run: async ({ image, steps, step_ms }, ctx) => {
      for (let i = 1; i <= steps; i++) {
        await sleep(step_ms);
        ctx.checkInterrupted();
        ctx.progress(i, steps);
      }
      return [image];
    },
  }),
  defineNode({
    name: 'WeftTestKill',
    description: 'Ends the whole process, as a native crash in a node would.',
    inputs: { required: { image: { type: 'IMAGE' } } },
    outputs: [{ type: 'IMAGE' }],
    run: ({ image }) => {
      process.kill(process.pid, 'SIGKILL');
      return [image];
    },
  }),
];
`,
  );
  return dir;
}

/** EmptyImage → WeftTestSleep → SaveImage with its own prefix (one file per execution). */
export function sleepPrompt(prefix: string, steps: number, stepMs: number): Record<string, unknown> {
  return {
    '1': { class_type: 'EmptyImage', inputs: { width: 4, height: 4, batch_size: 1, color: 0 } },
    '2': { class_type: 'WeftTestSleep', inputs: { image: ['1', 0], steps, step_ms: stepMs } },
    '9': { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: prefix } },
  };
}

/** The tiny SD1 checkpoint, 8×8 latent, 1 step: a real model prompt that stays cheap. */
export function tinyPrompt(prefix: string, seed: number): Record<string, unknown> {
  return {
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'weft-tiny-sd1.safetensors' } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a cat', clip: ['4', 1] } },
    '7': { class_type: 'CLIPTextEncode', inputs: { text: '', clip: ['4', 1] } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
    '3': {
      class_type: 'KSampler',
      inputs: {
        model: ['4', 0],
        positive: ['6', 0],
        negative: ['7', 0],
        latent_image: ['5', 0],
        seed,
        steps: 1,
        cfg: 2,
        sampler_name: 'euler',
        scheduler: 'normal',
        denoise: 1,
      },
    },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': { class_type: 'SaveImage', inputs: { images: ['8', 0], filename_prefix: prefix } },
  };
}

/** `weft worker` processes, each restarted when it exits (a crash, kill -9) until `stop`. */
export class WorkerFarm {
  readonly procs: ChildProcess[] = [];
  private stopping = false;
  exits = 0;

  constructor(
    private readonly args: string[],
    /** Per worker (by index): e.g. its own model cache folder. */
    private readonly env: (i: number) => NodeJS.ProcessEnv,
  ) {
    // Workers left behind by a test process that ended without afterAll would wait for their Redis forever.
    process.once('exit', () => this.procs.forEach((p) => p.kill('SIGKILL')));
  }

  start(n: number): void {
    for (let i = 0; i < n; i++) this.spawnAt(i);
  }

  private spawnAt(i: number): void {
    const p = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'cli/main.ts'), 'worker', ...this.args], {
      cwd: REPO,
      env: { ...process.env, ...this.env(i) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    p.stderr?.on('data', (d: Buffer) => {
      if (process.env.WEFT_TEST_VERBOSE) process.stderr.write(`[worker ${i}] ${d.toString()}`);
    });
    this.procs[i] = p;
    p.once('exit', () => {
      this.exits++;
      if (!this.stopping && this.procs[i] === p) this.spawnAt(i);
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.procs.map((p) =>
        p.exitCode !== null || p.signalCode !== null
          ? undefined
          : new Promise((r) => {
              p.once('exit', r);
              p.kill('SIGKILL');
            }),
      ),
    );
  }
}
