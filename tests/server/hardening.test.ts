import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Executor } from '../../engine/executor/executor.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { Logger } from '../../engine/core/log.ts';
import { startServer, type RunningServer } from '../../server/server.ts';
import { redactArgv, tokenMatches } from '../../server/security.ts';
import { faultRegistry } from './fixtures/fault-nodes.ts';
import { chain, errorMessage, postJson, queuePrompt, rawRequest, waitForHistory, writeInputImage } from './helpers.ts';

/** The probes, each of which used to crash, wedge or mislead the server (in-process executor). */
let base: string;
let paths: FolderPaths;
let s: RunningServer;
let port: number;
const registry = faultRegistry();
const logs: string[] = [];
const log: Logger = { info: () => {}, warn: (m) => logs.push(m), error: (m) => logs.push(m) };

async function open(opts: Partial<Parameters<typeof startServer>[0]> = {}, state = 'state'): Promise<RunningServer> {
  return startServer({
    port: 0,
    paths,
    registry,
    executor: new Executor(registry, { paths, log }),
    log,
    stateDir: path.join(base, state),
    ...opts,
  });
}

async function alive(server = s): Promise<void> {
  expect((await fetch(`${server.url}/system_stats`)).status).toBe(200);
}

/** Sends `head` + `body` on a raw socket and cuts the connection before the body is complete. */
async function cutOff(head: string, body: Buffer): Promise<void> {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((r) => sock.on('connect', r));
  sock.on('error', () => {});
  sock.write(head);
  sock.write(body);
  await new Promise((r) => setTimeout(r, 100));
  sock.destroy();
  await new Promise((r) => setTimeout(r, 100));
}

beforeAll(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-hard-'));
  paths = new FolderPaths({ baseDir: base });
  await writeInputImage(paths.inputDir);
  s = await open();
  port = Number(new URL(s.url).port);
});
afterAll(async () => {
  await s.close();
  fs.rmSync(base, { recursive: true, force: true });
});

describe('requests that used to take the server down', () => {
  it('survives multipart uploads cut off inside the file part, on /upload/image and /upload/mask, with and without chunking', async () => {
    const boundary = 'XyZ';
    const part = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n${'x'.repeat(5000)}`,
    );
    for (const route of ['/upload/image', '/upload/mask']) {
      await cutOff(
        `POST ${route} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: 100000\r\n\r\n`,
        part,
      );
      await cutOff(
        `POST ${route} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nTransfer-Encoding: chunked\r\n\r\n`,
        Buffer.concat([Buffer.from(`${(part.length + 50000).toString(16)}\r\n`), part]),
      );
      await alive();
    }
    // A complete body that ends inside the file part (no closing boundary) is answered 400.
    const r = await fetch(`${s.url}/upload/image`, {
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: part,
    });
    expect(r.status).toBe(400);
    await alive();
  });

  it('ignores WebSocket text messages that are not {type, data} objects', async () => {
    const ws = new WebSocket(`${s.url.replace('http', 'ws')}/ws?clientId=junk`);
    const replies: { type: string; data: { ok?: boolean } }[] = [];
    ws.on('message', (d, bin) => !bin && replies.push(JSON.parse(String(d))));
    await new Promise((r) => ws.on('open', r));
    for (const m of [
      'null',
      '5',
      '"x"',
      '[]',
      '{"type":null}',
      '{"type":{"a":1}}',
      '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]',
      `{"type":"workflow_load","data":${'['.repeat(5000)}${']'.repeat(5000)}}`,
    ])
      ws.send(m);
    ws.send(JSON.stringify({ type: 'workflow_list', id: 7, data: {} }));
    for (let i = 0; i < 100 && !replies.some((r) => r.type === 'workflow_result'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(replies.find((r) => r.type === 'workflow_result')?.data.ok).toBe(true);
    ws.close();
    await alive();
  });

  it('fails a node whose UI output is not JSON with an execution_error naming it, and does not replay it after a restart', async () => {
    const own = await open({}, 'state-bigint');
    let id: string;
    try {
      id = await queuePrompt(own, {
        '1': { class_type: 'LoadImage', inputs: { image: 'in.png' } },
        '2': { class_type: 'TestBigIntUi', inputs: { image: ['1', 0] } },
      });
      const h = await waitForHistory(own, id);
      expect(h.status.status_str).toBe('error');
      expect(errorMessage(h)).toMatch(/node 2 \(TestBigIntUi\) returned a UI output that cannot be sent as JSON/);
      await alive(own);
    } finally {
      await own.close();
    }
    const again = await open({}, 'state-bigint');
    try {
      expect(again.queue.pendingItems).toEqual([]);
      expect(again.queue.history.get(id)?.status.status_str).toBe('error');
    } finally {
      await again.close();
    }
  });
});

describe('journal and history bounds', () => {
  it('refuses a duplicate prompt_id with 409 and deep or huge extra_data with 400; history keeps answering', async () => {
    const id = '0b6c3e9a-1d2f-4a5b-8c7d-9e0f1a2b3c4d';
    const prompt = chain({ '2': { class_type: 'ImageInvert', inputs: { image: ['1', 0] } } }, '2', 'dup');
    expect((await postJson(s, '/prompt', { prompt, prompt_id: id })).status).toBe(200);
    expect((await postJson(s, '/prompt', { prompt, prompt_id: id })).status).toBe(409);
    await waitForHistory(s, id);
    expect((await postJson(s, '/prompt', { prompt, prompt_id: id })).status).toBe(409);
    let deep: unknown = 1;
    for (let i = 0; i < 4100; i++) deep = { d: deep };
    const r = await fetch(`${s.url}/prompt`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"prompt":${JSON.stringify(prompt)},"extra_data":${JSON.stringify(deep)}}`,
    });
    expect(r.status).toBe(400);
    expect((await postJson(s, '/prompt', { prompt, extra_data: { big: 'x'.repeat(17 * 1024 * 1024) } })).status).toBe(400);
    expect((await fetch(`${s.url}/history`)).status).toBe(200);
  });
});

describe('headers on served files', () => {
  it('serves names that are not Latin-1 or hold a newline, and keeps UTF-8 upload names', async () => {
    fs.mkdirSync(paths.outputDir, { recursive: true });
    for (const name of ['猫 cat😀.png', 'line\nbreak.png', 'quote".png']) {
      fs.copyFileSync(path.join(paths.inputDir, 'in.png'), path.join(paths.outputDir, name));
      const r = await fetch(`${s.url}/view?filename=${encodeURIComponent(name)}&type=output`);
      expect(r.status).toBe(200);
      const cd = r.headers.get('content-disposition') ?? '';
      expect(cd).toContain(`filename*=UTF-8''${encodeURIComponent(name).replace(/'/g, '%27')}`);
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    }
    const form = new FormData();
    form.append('image', new Blob([fs.readFileSync(path.join(paths.inputDir, 'in.png'))]), 'ねこ.png');
    const up = (await (await fetch(`${s.url}/upload/image`, { method: 'POST', body: form })).json()) as { name: string };
    expect(up.name).toBe('ねこ.png');
    expect(fs.existsSync(path.join(paths.inputDir, 'ねこ.png'))).toBe(true);
  });

  it('serves stored HTML and SVG as downloads, with nosniff and a CSP', async () => {
    expect((await fetch(`${s.url}/userdata/evil.html`, { method: 'POST', body: '<script>alert(1)</script>' })).status).toBe(200);
    const r = await fetch(`${s.url}/userdata/evil.html`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-disposition')).toMatch(/^attachment/);
    expect(r.headers.get('content-type')).toMatch(/octet-stream/);
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('content-security-policy')).toMatch(/sandbox/);
    fs.writeFileSync(path.join(paths.outputDir, 'x.svg'), '<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>');
    const v = await fetch(`${s.url}/view?filename=x.svg&type=output`);
    expect(v.headers.get('content-disposition')).toMatch(/^attachment/);
    expect(v.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    // A workflow stays inline (the editor reads it).
    await fetch(`${s.url}/userdata/workflows%2Fa.json`, { method: 'POST', body: '{}' });
    expect((await fetch(`${s.url}/userdata/workflows%2Fa.json`)).headers.get('content-disposition') ?? 'inline').not.toMatch(/attachment/);
  });
});

describe('host, origin and token', () => {
  it('refuses Host names the server does not listen as (DNS rebinding), for HTTP and WebSocket', async () => {
    const get = (host: string, origin?: string) =>
      rawRequest(port, { path: '/system_stats', headers: { host, ...(origin ? { origin } : {}) } });
    expect((await get(`127.0.0.1:${port}`)).status).toBe(200);
    expect((await get(`localhost:${port}`, `http://localhost:${port}`)).status).toBe(200);
    expect((await get(`0.0.0.0:${port}`, 'http://evil.example')).status).toBe(403);
    expect((await get(`[::ffff:7f00:1]:${port}`, 'http://evil.example')).status).toBe(403);
    expect((await get(`evil.example:${port}`, `http://evil.example:${port}`)).status).toBe(403);
    expect((await get(`evil.example:${port}`)).status).toBe(403);
    expect((await get(`127.0.0.1:${port}`, 'http://evil.example')).status).toBe(403);
    const upgrade = await rawRequest(port, {
      path: '/ws',
      headers: {
        host: `evil.example:${port}`,
        origin: `http://evil.example:${port}`,
        upgrade: 'websocket',
        connection: 'Upgrade',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-version': '13',
      },
    }).catch(() => ({ status: 0 }));
    expect(upgrade.status).not.toBe(101);
    const allowed = await open({ allowedHosts: ['evil.example'] }, 'state-hosts');
    try {
      const p = Number(new URL(allowed.url).port);
      expect(
        (await rawRequest(p, { path: '/system_stats', headers: { host: `evil.example:${p}`, origin: `http://evil.example:${p}` } })).status,
      ).toBe(200);
    } finally {
      await allowed.close();
    }
  });

  it('takes the auth token as a bearer in any case, a query or the cookie the editor gets, and hides it from argv', async () => {
    const locked = await open({ authToken: 'sekrit-token' }, 'state-auth');
    try {
      const get = (headers: Record<string, string> = {}, q = '') => fetch(`${locked.url}/system_stats${q}`, { headers });
      expect((await get()).status).toBe(401);
      expect((await get({ authorization: 'Bearer wrong' })).status).toBe(401);
      expect((await get({ authorization: 'bearer sekrit-token' })).status).toBe(200);
      expect((await get({ authorization: 'BEARER sekrit-token' })).status).toBe(200);
      const withQuery = await get({}, '?token=sekrit-token');
      expect(withQuery.status).toBe(200);
      const cookie = (withQuery.headers.get('set-cookie') ?? '').split(';')[0];
      expect(cookie).toMatch(/^weft_token=/);
      expect((await get({ cookie })).status).toBe(200);
      const ws = new WebSocket(`${locked.url.replace('http', 'ws')}/ws`, { headers: { cookie } });
      await new Promise((res, rej) => {
        ws.on('open', res);
        ws.on('error', rej);
      });
      ws.close();
    } finally {
      await locked.close();
    }
    expect(tokenMatches('a', 'a')).toBe(true);
    expect(tokenMatches('a', 'ab')).toBe(false);
    expect(tokenMatches(undefined, 'a')).toBe(false);
    expect(redactArgv(['serve', '--auth-token', 'x1', '--auth-token=x2', '--port', '1'])).toEqual([
      'serve',
      '--auth-token',
      '***',
      '--auth-token=***',
      '--port',
      '1',
    ]);
  });
});

describe('minor probes', () => {
  it('answers a 5,000-node chain with a validation error 400, not 500', async () => {
    const prompt: Record<string, unknown> = { '0': { class_type: 'LoadImage', inputs: { image: 'missing.png' } } };
    for (let i = 1; i < 5000; i++) prompt[String(i)] = { class_type: 'ImageInvert', inputs: { image: [String(i - 1), 0] } };
    prompt.out = { class_type: 'SaveImage', inputs: { images: ['4999', 0], filename_prefix: 'chain' } };
    const r = await postJson(s, '/prompt', { prompt });
    expect(r.status).toBe(400);
    const body = (await r.json()) as { node_errors: Record<string, unknown> };
    expect(Object.keys(body.node_errors)).toContain('0');
  });

  it('answers over-long names and malformed escapes with 4xx, and never shows server paths', async () => {
    const long = 'a'.repeat(300);
    expect((await fetch(`${s.url}/userdata/${long}.json`, { method: 'POST', body: '{}' })).status).toBe(400);
    expect((await fetch(`${s.url}/userdata/${long}.json`)).status).toBe(404);
    expect((await fetch(`${s.url}/userdata/%25ZZ.json`)).status).toBe(400);
    expect((await fetch(`${s.url}/view?filename=${long}.png`)).status).toBe(404);
    const r = await postJson(s, '/prompt', { prompt: chain({ '2': { class_type: 'ImageInvert', inputs: { image: ['1', 0] } } }, '2') });
    expect(r.status).toBe(200);
    const bad = await postJson(s, '/prompt', {
      prompt: {
        '1': { class_type: 'LoadImage', inputs: { image: '../../../../etc/passwd' } },
        '9': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'x' } },
      },
    });
    expect(bad.status).toBe(400);
    const text = await bad.text();
    expect(text).not.toContain(base);
  });

  it('warns naming the node when a latent turns NaN or infinite', async () => {
    const seen: string[] = [];
    const ex = new Executor(registry, { paths, log: { info: () => {}, error: () => {}, warn: (m) => seen.push(m) } });
    const r = await ex.execute({ '5': { class_type: 'TestNaNLatent', inputs: { width: 8 } } }, { promptId: 'nan', outputs: ['5'] });
    expect(r.status).toBe('success');
    expect(seen.some((m) => /node 5 \(TestNaNLatent\).*NaN or infinite/.test(m))).toBe(true);
  });

  it('extracts the alpha channel in libvips and refuses images over the pixel limit', async () => {
    const a = await fetch(`${s.url}/view?filename=in.png&type=input&channel=a`);
    expect(a.status).toBe(200);
    const { data, info } = await sharp(Buffer.from(await a.arrayBuffer()))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect(info.channels).toBe(4);
    expect([...data.subarray(0, 4)]).toEqual([0, 0, 0, 128]);
    const small = await open({ maxImagePixels: 3 }, 'state-px');
    try {
      expect((await fetch(`${small.url}/view?filename=in.png&type=input&channel=rgb`)).status).toBe(400);
    } finally {
      await small.close();
    }
  });
});
