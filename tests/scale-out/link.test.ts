import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnvironment } from '../../cli/environment.ts';
import { silentLogger } from '../../engine/core/log.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { RedisFront } from '../../server/queue-redis/front.ts';
import { RedisClient } from '../../server/queue-redis/redis-client.ts';
import { parseRedisUrl, redactUrl } from '../../server/queue-redis/redis-url.ts';
import { startQueueWorker } from '../../server/queue-redis/worker.ts';
import { startServer } from '../../server/server.ts';
import { freePort, startRedis, waitForRedis, type TestRedis } from './harness.ts';

/** The worker↔Redis link (password, TLS, reconnection) and outputs streamed to the front. */
let tmp: string;
let redis: TestRedis;
const PASSWORD = 'p@ss word';

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-link-'));
  redis = await startRedis({ password: PASSWORD });
}, 60_000);
afterAll(async () => {
  await redis?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const client = (extra: { password?: string } = {}): RedisClient => {
  const c = new RedisClient({ host: '127.0.0.1', port: redis.port, db: 0, tls: false, retryDelayMs: () => 50, ...extra });
  c.on('error', () => undefined);
  return c;
};

describe('queue URLs', () => {
  it('reads host, port, database, user and password; the password may come from WEFT_REDIS_PASSWORD', () => {
    expect(parseRedisUrl('redis://u:p%40ss@db.example:7000/3', {})).toMatchObject({
      host: 'db.example',
      port: 7000,
      db: 3,
      username: 'u',
      password: 'p@ss',
      tls: false,
    });
    expect(parseRedisUrl('rediss://[::1]', { WEFT_REDIS_PASSWORD: 'env' })).toMatchObject({
      host: '::1',
      port: 6379,
      db: 0,
      password: 'env',
      tls: true,
    });
    expect(() => parseRedisUrl('http://x', {})).toThrow(/expected a redis:\/\/ or rediss:\/\/ URL/);
    expect(() => parseRedisUrl('redis://x/abc', {})).toThrow(/database 'abc'/);
    expect(redactUrl('redis://u:secret@h:1/2')).toBe('redis://u:***@h:1/2');
  });
});

describe('the Redis client', () => {
  it('authenticates with the password and reports a wrong one as a refused connection', async () => {
    const good = client({ password: PASSWORD });
    expect(await good.send(['PING'])).toBe('PONG');
    good.disconnect();
    const bad = new RedisClient({ host: '127.0.0.1', port: redis.port, db: 0, tls: false, password: 'wrong' });
    const err = await new Promise<Error>((resolve) => bad.on('error', resolve));
    expect(err.message).toMatch(/Redis refused the connection: WRONGPASS/);
    expect(bad.status).toBe('end');
  });

  it('waits through a Redis crash and restart: commands given meanwhile complete afterwards', async () => {
    const c = client({ password: PASSWORD });
    await c.set('k', 'before');
    const down = redis.crashAndRestart();
    const later = new Promise((r) => setTimeout(r, 50)).then(() => c.get('k'));
    await down;
    // appendfsync always: the acknowledged SET survived the kill -9.
    expect(await later).toBe('before');
    expect(await c.send(['INCR', 'n'])).toBe(1);
    c.disconnect();
  }, 60_000);

  it('speaks TLS (rediss://) to a redis-server with a certificate from a private CA, and refuses an unknown CA', async () => {
    const dir = path.join(tmp, 'tls');
    fs.mkdirSync(dir);
    const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=weft test CA');
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
    fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
    ssl(
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.crt',
      '-days',
      '2',
      '-extfile',
      'san.ext',
    );
    const port = await freePort();
    const proc = spawn(
      'redis-server',
      ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--requirepass', PASSWORD].concat([
        '--tls-cert-file',
        'server.crt',
        '--tls-key-file',
        'server.key',
        '--tls-ca-cert-file',
        'ca.crt',
        '--tls-auth-clients',
        'no',
      ]),
      { cwd: dir, stdio: 'ignore' },
    );
    try {
      const ca = path.join(dir, 'ca.crt');
      await waitForRedis({ host: '127.0.0.1', port, password: PASSWORD, tls: true, caFile: ca });
      const url = `rediss://:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}?ca=${encodeURIComponent(ca)}`;
      const c = new RedisClient(parseRedisUrl(url, {}));
      c.on('error', () => undefined);
      // BullMQ's scripts over the TLS link.
      const q = new Queue('tls-check', { connection: c });
      await q.add('x', { v: 1 }, { jobId: 'j1' });
      expect((await q.getJob('j1'))?.data).toEqual({ v: 1 });
      await q.close();
      c.disconnect();
      const untrusted = new RedisClient({ ...parseRedisUrl(url, {}), caFile: undefined });
      const err = await new Promise<Error>((resolve) => untrusted.on('error', resolve));
      untrusted.disconnect();
      expect(err.message).toMatch(/self[- ]signed|unable to (get|verify)/i);
    } finally {
      proc.kill('SIGKILL');
    }
  }, 60_000);
});

describe('weft worker --upload-to', () => {
  it('sends outputs to the front, which stores them without overwriting; the front refuses uploads without its token', async () => {
    const frontBase = path.join(tmp, 'front');
    const workerBase = path.join(tmp, 'worker');
    const env = await createEnvironment({ baseDir: frontBase, disableCustomNodes: true, log: silentLogger, device: 'cpu' });
    const token = 'front-token';
    const scaleOut = await RedisFront.open({ url: redis.url, log: silentLogger });
    const front = await startServer({
      port: 0,
      paths: env.paths,
      registry: env.registry,
      executor: env.executor,
      log: silentLogger,
      scaleOut,
      authToken: token,
    });
    const workerPaths = new FolderPaths({ baseDir: workerBase });
    const worker = await startQueueWorker({
      url: redis.url,
      paths: workerPaths,
      setup: {
        module: new URL('../../cli/serve-worker.ts', import.meta.url).href,
        exportName: 'createServeExecutor',
        options: { baseDir: workerBase, disableCustomNodes: true, device: 'cpu', quiet: true },
      },
      uploadTo: { url: front.url, token },
      lockMs: 5000,
    });
    try {
      const prompt = (color: number): Record<string, unknown> => ({
        '1': { class_type: 'EmptyImage', inputs: { width: 8, height: 8, batch_size: 1, color } },
        '9': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'up' } },
      });
      const post = (body: unknown): Promise<Response> =>
        fetch(`${front.url}/prompt`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
      const ids: string[] = [];
      for (const color of [0xff0000, 0x0000ff])
        ids.push(((await (await post({ prompt: prompt(color) })).json()) as { prompt_id: string }).prompt_id);
      const names: string[] = [];
      for (const id of ids) {
        const deadline = Date.now() + 60_000;
        let h: Record<string, { outputs: Record<string, { images: { filename: string }[] }>; status: { status_str: string } }> = {};
        while (!h[id] && Date.now() < deadline) {
          h = await (await fetch(`${front.url}/history/${id}`, { headers: { authorization: `Bearer ${token}` } })).json();
          await new Promise((r) => setTimeout(r, 100));
        }
        expect(h[id]?.status.status_str).toBe('success');
        names.push(h[id].outputs['9'].images[0].filename);
      }
      // The worker counts from 00001 each time (it removes its copy after the upload): the second is renamed.
      expect(names).toEqual(['up_00001_.png', 'up_00001_-2.png']);
      expect(fs.readdirSync(workerPaths.outputDir)).toEqual([]);
      const colors = await Promise.all(
        names.map(async (n) => [...(await sharp(path.join(env.paths.outputDir, n)).raw().toBuffer()).subarray(0, 3)]),
      );
      expect(colors).toEqual([
        [255, 0, 0],
        [0, 0, 255],
      ]);
      const anonymous = await fetch(`${front.url}/internal/upload`, {
        method: 'POST',
        body: JSON.stringify({ type: 'output', subfolder: '', filename: 'x.png', data: '' }),
      });
      expect(anonymous.status).toBe(401);
    } finally {
      await worker.close();
      await front.close();
    }
    // A front without a token takes no uploads at all.
    const open = await startServer({
      port: 0,
      paths: env.paths,
      registry: env.registry,
      executor: env.executor,
      log: silentLogger,
      scaleOut: await RedisFront.open({ url: redis.url, log: silentLogger }),
    });
    const r = await fetch(`${open.url}/internal/upload`, {
      method: 'POST',
      body: JSON.stringify({ type: 'output', subfolder: '', filename: 'x.png', data: '' }),
    });
    expect(r.status).toBe(403);
    await open.close();
  }, 120_000);
});
