import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import sharp from 'sharp';
import type { RunningServer } from '../../server/server.ts';

export interface HistoryItem {
  status: { status_str: string; completed: boolean; messages: [string, Record<string, unknown>][] };
  outputs: Record<string, unknown>;
}

export function postJson(s: RunningServer, route: string, body: unknown): Promise<Response> {
  return fetch(`${s.url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

export async function queuePrompt(s: RunningServer, prompt: unknown, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await postJson(s, '/prompt', { prompt, ...extra });
  const body = (await r.json()) as { prompt_id?: string };
  if (r.status !== 200 || !body.prompt_id) throw new Error(`prompt refused: ${r.status} ${JSON.stringify(body)}`);
  return body.prompt_id;
}

export async function waitForHistory(s: RunningServer, id: string, ms = 30_000): Promise<HistoryItem> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const h = (await (await fetch(`${s.url}/history/${id}`)).json()) as Record<string, HistoryItem>;
    if (h[id]) return h[id];
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`prompt ${id} did not finish within ${ms} ms`);
}

export function errorMessage(h: HistoryItem): string {
  const e = h.status.messages.find((m) => m[0] === 'execution_error');
  return e ? String(e[1].exception_message) : '';
}

/** A raw HTTP request, so tests can send any Host header (fetch may not). */
export function rawRequest(
  port: number,
  opts: { method?: string; path: string; headers?: Record<string, string>; body?: Buffer | string },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path,
        headers: opts.headers,
        setHost: !opts.headers?.host && !opts.headers?.Host,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    if (opts.body) req.write(opts.body);
    req.end();
  });
}

export async function writeInputImage(dir: string, name = 'in.png', size = 2): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  await sharp({ create: { width: size, height: size, channels: 4, background: { r: 10, g: 20, b: 30, alpha: 0.5 } } })
    .png()
    .toFile(path.join(dir, name));
}

/** LoadImage → node(s) → SaveImage. */
export function chain(
  middle: Record<string, { class_type: string; inputs: Record<string, unknown> }>,
  last: string,
  prefix = 't',
): Record<string, unknown> {
  return {
    '1': { class_type: 'LoadImage', inputs: { image: 'in.png' } },
    ...middle,
    '9': { class_type: 'SaveImage', inputs: { images: [last, 0], filename_prefix: prefix } },
  };
}
