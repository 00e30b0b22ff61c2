import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Executor } from '../../engine/executor/executor.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { silentLogger } from '../../engine/core/log.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import { startServer, type RunningServer } from '../../server/server.ts';
import { writeInputImage } from '../server/helpers.ts';

/**
 * Property-based fuzzing of a real server: multipart uploads (whole, truncated, cut off on the
 * socket), WebSocket messages, and API prompts over HTTP. The properties: no answer is a 5xx, and
 * the server keeps answering. Each property stops after its time budget.
 */
const BUDGET_MS = 6000;
const opts = { numRuns: 300, interruptAfterTimeLimit: BUDGET_MS, markInterruptAsFailure: false } as const;
let base: string;
let s: RunningServer;
let port: number;
const registry = createBuiltinRegistry();

beforeAll(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-fuzz-srv-'));
  const paths = new FolderPaths({ baseDir: base });
  await writeInputImage(paths.inputDir);
  s = await startServer({
    port: 0,
    paths,
    registry,
    executor: new Executor(registry, { paths }),
    log: silentLogger,
    stateDir: path.join(base, 'state'),
    maxUploadSize: 64 * 1024,
  });
  port = Number(new URL(s.url).port);
});
afterAll(async () => {
  await s.close();
  fs.rmSync(base, { recursive: true, force: true });
});

async function alive(): Promise<void> {
  expect((await fetch(`${s.url}/system_stats`)).status).toBe(200);
}

const token = fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/);
const headerValue = fc.oneof(
  token,
  fc.string({ maxLength: 40 }),
  fc.constantFrom(
    'form-data; name="image"; filename="a.png"',
    'form-data; name="image"; filename*=UTF-8\'\'%E7%8C%AB.png',
    'form-data; name="subfolder"',
    'form-data; name="original_ref"',
    'form-data; name="type"',
  ),
);
const part = fc.record({
  disposition: headerValue,
  type: fc.option(fc.constantFrom('image/png', 'text/plain', '')),
  body: fc.oneof(
    fc.uint8Array({ maxLength: 2000 }),
    fc.string({ maxLength: 200 }).map((x) => new TextEncoder().encode(x)),
  ),
});

function multipart(boundary: string, parts: { disposition: string; type: string | null; body: Uint8Array }[], closing: boolean): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(
      Buffer.from(`--${boundary}\r\nContent-Disposition: ${p.disposition}\r\n${p.type !== null ? `Content-Type: ${p.type}\r\n` : ''}\r\n`),
    );
    chunks.push(Buffer.from(p.body));
    chunks.push(Buffer.from('\r\n'));
  }
  if (closing) chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

describe('fuzz: a running server', () => {
  it('multipart bodies, complete, truncated or with a wrong boundary, never get a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('/upload/image', '/upload/mask'),
        token,
        fc.array(part, { maxLength: 4 }),
        fc.boolean(),
        fc.nat({ max: 3000 }),
        fc.option(token),
        async (route, boundary, parts, closing, cut, otherBoundary) => {
          const body = multipart(boundary, parts, closing);
          const sent = body.subarray(0, Math.max(0, body.length - cut));
          const r = await fetch(`${s.url}${route}`, {
            method: 'POST',
            headers: { 'content-type': `multipart/form-data; boundary=${otherBoundary ?? boundary}` },
            body: new Uint8Array(sent),
          });
          expect(r.status).toBeLessThan(500);
          await r.arrayBuffer();
        },
      ),
      opts,
    );
    await alive();
  });

  it('multipart bodies cut off on the socket leave the server answering', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('/upload/image', '/upload/mask'),
        token,
        fc.array(part, { minLength: 1, maxLength: 3 }),
        fc.nat({ max: 2000 }),
        fc.boolean(),
        async (route, boundary, parts, cut, chunked) => {
          const body = multipart(boundary, parts, true);
          const sock = net.connect(port, '127.0.0.1');
          sock.on('error', () => {});
          await new Promise((r) => sock.on('connect', r));
          const framing = chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${body.length + 10}`;
          sock.write(
            `POST ${route} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\n${framing}\r\n\r\n`,
          );
          const payload = body.subarray(0, Math.max(0, body.length - cut));
          sock.write(chunked ? Buffer.concat([Buffer.from(`${(body.length + 10).toString(16)}\r\n`), payload]) : payload);
          await new Promise((r) => setTimeout(r, 5));
          sock.destroy();
        },
      ),
      { ...opts, numRuns: 100 },
    );
    await new Promise((r) => setTimeout(r, 200));
    await alive();
  });

  it('WebSocket messages of any shape are ignored or answered, and the connection keeps working', async () => {
    const ws = new WebSocket(`${s.url.replace('http', 'ws')}/ws?clientId=fuzz`);
    const replies: unknown[] = [];
    ws.on('message', (d, bin) => !bin && replies.push(JSON.parse(String(d))));
    await new Promise((r) => ws.on('open', r));
    const message = fc.oneof(
      fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? 'null'),
      fc
        .record(
          {
            type: fc.oneof(
              fc.constantFrom(
                'feature_flags',
                'workflow_list',
                'workflow_load',
                'workflow_save',
                'workflow_rename',
                'workflow_delete',
                'workflow_x',
              ),
              fc.string(),
            ),
            id: fc.jsonValue({ maxDepth: 1 }),
            data: fc.jsonValue({ maxDepth: 3 }),
          },
          { requiredKeys: [] },
        )
        .map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 100 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(message, { maxLength: 10 }), async (msgs) => {
        for (const m of msgs) ws.send(m);
      }),
      { ...opts, numRuns: 100 },
    );
    const marker = replies.length;
    ws.send(JSON.stringify({ type: 'workflow_list', id: 'last', data: {} }));
    for (let i = 0; i < 200 && !replies.slice(marker).some((r) => (r as { data?: { id?: unknown } }).data?.id === 'last'); i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(replies.slice(marker).some((r) => (r as { data?: { id?: unknown } }).data?.id === 'last')).toBe(true);
    ws.close();
    await alive();
  });

  it('API prompts and request bodies over HTTP get 200 or 4xx, never 5xx', async () => {
    const names = Object.keys(registry.objectInfo({ paths: new FolderPaths({ baseDir: base }) }));
    const value = fc.oneof(fc.tuple(fc.constantFrom('1', '2', '3'), fc.integer({ min: -1, max: 3 })), fc.jsonValue({ maxDepth: 2 }));
    const node = fc.record(
      {
        class_type: fc.oneof(fc.constantFrom(...names), fc.string()),
        inputs: fc.dictionary(fc.constantFrom('image', 'images', 'filename_prefix', 'width', 'height', 'x'), value, { maxKeys: 4 }),
      },
      { requiredKeys: [] },
    );
    const body = fc.record(
      {
        prompt: fc.oneof(fc.dictionary(fc.constantFrom('1', '2', '3'), node, { maxKeys: 3 }), fc.jsonValue({ maxDepth: 2 })),
        client_id: fc.oneof(fc.string(), fc.jsonValue({ maxDepth: 1 })),
        prompt_id: fc.oneof(fc.uuid(), fc.string(), fc.jsonValue({ maxDepth: 1 })),
        extra_data: fc.jsonValue({ maxDepth: 4 }),
        number: fc.oneof(fc.integer(), fc.double(), fc.string()),
        front: fc.jsonValue({ maxDepth: 1 }),
        partial_execution_targets: fc.jsonValue({ maxDepth: 2 }),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('/prompt', '/queue', '/history', '/interrupt', '/settings', '/free'),
        fc.oneof(
          body.map((b) => JSON.stringify(b)),
          fc.string({ maxLength: 200 }),
        ),
        async (route, text) => {
          const r = await fetch(`${s.url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text });
          expect(r.status).toBeLessThan(500);
          await r.arrayBuffer();
        },
      ),
      opts,
    );
    const get = fc.tuple(
      fc.constantFrom('/view', '/history', '/userdata', '/view_metadata/checkpoints', '/object_info', '/models'),
      fc.dictionary(
        fc.constantFrom('filename', 'type', 'subfolder', 'channel', 'preview', 'dir', 'max_items', 'offset'),
        fc.string({ maxLength: 30 }),
        { maxKeys: 4 },
      ),
      fc.string({ maxLength: 40 }),
    );
    await fc.assert(
      fc.asyncProperty(get, async ([route, query, tail]) => {
        const url = `${s.url}${route}${route === '/history' || route === '/object_info' || route === '/models' ? `/${encodeURIComponent(tail)}` : ''}?${new URLSearchParams(query)}`;
        const r = await fetch(url);
        expect(r.status).toBeLessThan(500);
        await r.arrayBuffer();
      }),
      opts,
    );
    await alive();
  });
});
