import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor/executor.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { silentLogger } from '../../engine/core/log.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import { startServer, type RunningServer } from '../../server/server.ts';

let base: string;
let server: RunningServer;
const warnings: string[] = [];

beforeAll(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-limits-'));
  const paths = new FolderPaths({ baseDir: base });
  fs.mkdirSync(paths.inputDir, { recursive: true });
  await sharp({ create: { width: 512, height: 512, channels: 3, background: { r: 10, g: 20, b: 30 } } })
    .png()
    .toFile(path.join(paths.inputDir, 'big.png'));
  const registry = createBuiltinRegistry();
  const log = { ...silentLogger, warn: (m: string) => warnings.push(m) };
  server = await startServer({
    port: 0,
    paths,
    registry,
    executor: new Executor(registry, { paths }),
    log,
    stateDir: path.join(base, 'state'),
    maxUploadSize: 1024,
  });
});
afterAll(async () => {
  await server.close();
  fs.rmSync(base, { recursive: true, force: true });
});

describe('server limits', () => {
  it('refuses uploads over the size limit and files of other types', async () => {
    const big = new FormData();
    big.append('image', new Blob([new Uint8Array(4096)]), 'big.png');
    expect((await fetch(`${server.url}/upload/image`, { method: 'POST', body: big })).status).toBe(413);
    const exe = new FormData();
    exe.append('image', new Blob([new Uint8Array(10)]), 'tool.exe');
    expect((await fetch(`${server.url}/upload/image`, { method: 'POST', body: exe })).status).toBe(400);
  });

  it('keeps executing while a WebSocket client never reads', async () => {
    // A raw socket that completes the WebSocket handshake and then never reads a byte.
    const port = Number(new URL(server.url).port);
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.on('connect', r));
    sock.write(
      `GET /ws?clientId=stuck HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await new Promise((r) => setTimeout(r, 200));
    sock.pause();
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const prompt = {
        '1': { class_type: 'LoadImage', inputs: { image: 'big.png' } },
        '2': { class_type: 'ImageInvert', inputs: { image: ['1', 0] } },
        '3': { class_type: 'PreviewImage', inputs: { images: ['2', 0] } },
        [`x${i}`]: { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: `stuck${i}` } },
      };
      const r = (await (
        await fetch(`${server.url}/prompt`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ prompt, client_id: 'stuck' }),
        })
      ).json()) as { prompt_id: string };
      ids.push(r.prompt_id);
    }
    const deadline = Date.now() + 60_000;
    let done = 0;
    while (Date.now() < deadline) {
      const h = (await (await fetch(`${server.url}/history`)).json()) as Record<string, { status: { status_str: string } }>;
      done = ids.filter((id) => h[id]?.status.status_str === 'success').length;
      if (done === ids.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(done).toBe(ids.length);
    sock.destroy();
  }, 90_000);
});
