import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Executor } from '../../engine/executor/executor.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { readPngTextChunks } from '../../engine/image/png-text.ts';
import { silentLogger } from '../../engine/core/log.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import { startServer, type RunningServer } from '../../server/server.ts';

let base: string;
let paths: FolderPaths;
const registry = createBuiltinRegistry();
registry.register(
  defineNode({
    name: 'TestSlow',
    inputs: { required: { image: { type: 'IMAGE' }, ms: { type: 'INT', default: 2000, min: 0, max: 60000 } } },
    outputs: [{ type: 'IMAGE' }],
    run: async ({ image, ms }, ctx) => {
      const steps = Math.max(1, Math.round(ms / 20));
      for (let i = 0; i < steps; i++) {
        await new Promise((r) => setTimeout(r, 20));
        ctx.progress(i + 1, steps);
      }
      return [image];
    },
  }),
);

const invert = (prefix = 'srv', slowMs?: number) => ({
  '1': { class_type: 'LoadImage', inputs: { image: 'in.png' } },
  ...(slowMs !== undefined ? { '5': { class_type: 'TestSlow', inputs: { image: ['1', 0], ms: slowMs } } } : {}),
  '2': { class_type: 'ImageInvert', inputs: { image: [slowMs !== undefined ? '5' : '1', 0] } },
  '3': { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: prefix } },
});

async function start(): Promise<RunningServer> {
  const executor = new Executor(registry, { paths });
  return startServer({
    port: 0,
    paths,
    registry,
    executor,
    log: silentLogger,
    stateDir: path.join(base, 'state'),
    workflowTemplatesDir: path.resolve(import.meta.dirname, '../../workflows'),
  });
}

function post(s: RunningServer, route: string, body: unknown): Promise<Response> {
  return fetch(`${s.url}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

function connect(
  s: RunningServer,
  clientId: string,
): Promise<{
  ws: WebSocket;
  messages: { type: string; data: Record<string, unknown> }[];
  waitFor: (pred: (m: { type: string; data: Record<string, unknown> }) => boolean, ms?: number) => Promise<void>;
}> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${s.url.replace('http', 'ws')}/ws?clientId=${clientId}`);
    const messages: { type: string; data: Record<string, unknown> }[] = [];
    const waiters: [(m: { type: string; data: Record<string, unknown> }) => boolean, () => void][] = [];
    ws.on('message', (d, bin) => {
      if (bin) return;
      const m = JSON.parse(String(d)) as { type: string; data: Record<string, unknown> };
      messages.push(m);
      for (const w of [...waiters])
        if (w[0](m)) {
          waiters.splice(waiters.indexOf(w), 1);
          w[1]();
        }
    });
    ws.on('open', () =>
      resolve({
        ws,
        messages,
        waitFor: (pred, ms = 20000) =>
          new Promise<void>((res, rej) => {
            if (messages.some(pred)) return res();
            const t = setTimeout(() => rej(new Error(`timed out; got ${messages.map((m) => m.type).join(',')}`)), ms);
            waiters.push([
              pred,
              () => {
                clearTimeout(t);
                res();
              },
            ]);
          }),
      }),
    );
    ws.on('error', reject);
  });
}

beforeAll(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-srv-'));
  paths = new FolderPaths({ baseDir: base });
  fs.mkdirSync(paths.inputDir, { recursive: true });
  await sharp(Buffer.from([10, 20, 30, 200, 100, 0]), { raw: { width: 2, height: 1, channels: 3 } })
    .png()
    .toFile(path.join(paths.inputDir, 'in.png'));
});
afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

describe('ComfyUI-compatible server', () => {
  it('queues over HTTP, streams events over WebSocket, serves the image and the history', async () => {
    const s = await start();
    try {
      const c = await connect(s, 'client-a');
      await c.waitFor((m) => m.type === 'status' && m.data.sid === 'client-a');
      const wf = { nodes: [], marker: 'from-test' };
      const r = await post(s, '/prompt', { prompt: invert(), client_id: 'client-a', extra_data: { extra_pnginfo: { workflow: wf } } });
      expect(r.status).toBe(200);
      const { prompt_id, number, node_errors } = (await r.json()) as { prompt_id: string; number: number; node_errors: object };
      expect(prompt_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(typeof number).toBe('number');
      expect(node_errors).toEqual({});
      await c.waitFor((m) => m.type === 'executing' && m.data.node === null && m.data.prompt_id === prompt_id);
      const types = c.messages.filter((m) => m.data.prompt_id === prompt_id).map((m) => m.type);
      expect(types).toEqual([
        'execution_start',
        'execution_cached',
        'executing',
        'executing',
        'executing',
        'executed',
        'execution_success',
        'executing',
      ]);
      const hist = (await (await fetch(`${s.url}/history/${prompt_id}`)).json()) as Record<
        string,
        {
          outputs: Record<string, { images: { filename: string; subfolder: string; type: string }[] }>;
          status: { status_str: string; completed: boolean };
        }
      >;
      expect(hist[prompt_id].status).toMatchObject({ status_str: 'success', completed: true });
      const img = hist[prompt_id].outputs['3'].images[0];
      expect(img).toEqual({ filename: 'srv_00001_.png', subfolder: '', type: 'output' });
      const view = await fetch(`${s.url}/api/view?filename=${img.filename}&subfolder=&type=output`);
      expect(view.status).toBe(200);
      const png = Buffer.from(await view.arrayBuffer());
      const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
      // ComfyUI's clip(255·x) truncated: 1 − 200/255 in float32 is 54.99999… → 54.
      expect([...data]).toEqual([245, 235, 225, 54, 155, 255]);
      expect(JSON.parse(readPngTextChunks(png).workflow)).toEqual(wf);
      expect(
        ((await (await fetch(`${s.url}/prompt`)).json()) as { exec_info: { queue_remaining: number } }).exec_info.queue_remaining,
      ).toBe(0);
      c.ws.close();
    } finally {
      await s.close();
    }
  });

  it("answers bad prompts with ComfyUI's error shapes and keeps serving", async () => {
    const s = await start();
    try {
      const bad = await post(s, '/prompt', '{"prompt": ');
      expect(bad.status).toBe(400);
      const missing = await post(s, '/prompt', { prompt: { '1': { class_type: 'NoSuchNode', inputs: {} } } });
      expect(missing.status).toBe(400);
      expect(((await missing.json()) as { error: { type: string } }).error.type).toBe('missing_node_type');
      const noInput = await post(s, '/prompt', { prompt: { '3': { class_type: 'SaveImage', inputs: { filename_prefix: 'x' } } } });
      const body = (await noInput.json()) as {
        error: { type: string };
        node_errors: Record<string, { errors: { type: string }[]; class_type: string }>;
      };
      expect(noInput.status).toBe(400);
      expect(body.error.type).toBe('prompt_outputs_failed_validation');
      expect(body.node_errors['3']).toMatchObject({ class_type: 'SaveImage', errors: [{ type: 'required_input_missing' }] });
      expect((await post(s, '/prompt', {})).status).toBe(400);
      expect((await post(s, '/prompt', { prompt: invert(), prompt_id: 'not-a-uuid' })).status).toBe(400);
      expect((await fetch(`${s.url}/object_info/SaveImage`)).status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it('interrupts the running prompt, deletes and clears pending ones', async () => {
    const s = await start();
    try {
      const c = await connect(s, 'client-b');
      const ids: string[] = [];
      for (let i = 0; i < 3; i++)
        ids.push(
          ((await (await post(s, '/prompt', { prompt: invert(`q${i}`, 5000 + i), client_id: 'client-b' })).json()) as { prompt_id: string })
            .prompt_id,
        );
      await c.waitFor((m) => m.type === 'progress' && m.data.prompt_id === ids[0]);
      const q = (await (await fetch(`${s.url}/queue`)).json()) as { queue_running: unknown[][]; queue_pending: unknown[][] };
      expect(q.queue_running.map((i) => i[1])).toEqual([ids[0]]);
      expect(q.queue_pending.map((i) => i[1]).sort()).toEqual([ids[1], ids[2]].sort());
      await post(s, '/queue', { delete: [ids[1]] });
      await post(s, '/interrupt', {});
      await c.waitFor((m) => m.type === 'execution_interrupted' && m.data.prompt_id === ids[0]);
      await c.waitFor((m) => m.type === 'execution_start' && m.data.prompt_id === ids[2]);
      await post(s, '/interrupt', { prompt_id: ids[2] });
      await c.waitFor((m) => m.type === 'executing' && m.data.node === null && m.data.prompt_id === ids[2]);
      const h = (await (await fetch(`${s.url}/history`)).json()) as Record<string, { status: { status_str: string } }>;
      expect(h[ids[0]].status.status_str).toBe('error');
      expect(h[ids[1]]).toBeUndefined();
      c.ws.close();
    } finally {
      await s.close();
    }
  });

  it('runs prompts left pending by a previous process after a restart, and keeps history', async () => {
    const a = await start();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push(((await (await post(a, '/prompt', { prompt: invert(`restart${i}`, 600 + i) })).json()) as { prompt_id: string }).prompt_id);
    await a.close();
    const b = await start();
    try {
      const deadline = Date.now() + 60000;
      let h: Record<string, { status: { status_str: string } }> = {};
      while (Date.now() < deadline) {
        h = (await (await fetch(`${b.url}/history`)).json()) as typeof h;
        if (ids.every((id) => h[id] !== undefined)) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      // The one cut short by the shutdown and the two pending ones all ran, once, after the restart.
      expect(ids.map((id) => h[id]?.status.status_str)).toEqual(['success', 'success', 'success']);
      expect(
        fs
          .readdirSync(paths.outputDir)
          .filter((f) => f.startsWith('restart'))
          .sort(),
      ).toEqual(['restart0_00001_.png', 'restart1_00001_.png', 'restart2_00001_.png']);
    } finally {
      await b.close();
    }
  }, 90000);

  it('refuses every path escape on /view and /upload', async () => {
    const s = await start();
    try {
      for (const q of [
        'filename=../secret',
        'filename=%2e%2e/secret',
        'filename=/etc/passwd',
        'filename=x.png&subfolder=../..',
        'filename=x.png&type=bogus',
        'filename=a%00b',
      ]) {
        const r = await fetch(`${s.url}/view?${q}`);
        expect([400, 403, 404]).toContain(r.status);
        expect(r.status).not.toBe(200);
      }
      fs.symlinkSync('/etc', path.join(paths.inputDir, 'etclink'));
      expect((await fetch(`${s.url}/view?filename=passwd&subfolder=etclink&type=input`)).status).toBe(403);
      const form = new FormData();
      form.append('image', new Blob([Buffer.from('x')]), 'evil.png');
      form.append('subfolder', '../../outside');
      expect((await fetch(`${s.url}/upload/image`, { method: 'POST', body: form })).status).toBe(400);
    } finally {
      await s.close();
    }
  });

  it('uploads images with ComfyUI naming and composites masks into the alpha', async () => {
    const s = await start();
    try {
      const png = await sharp(Buffer.from([255, 0, 0, 0, 255, 0]), { raw: { width: 2, height: 1, channels: 3 } })
        .png()
        .toBuffer();
      const up = async (data: Buffer, name: string, extra: Record<string, string> = {}, route = '/upload/image') => {
        const form = new FormData();
        form.append('image', new Blob([new Uint8Array(data)]), name);
        for (const [k, v] of Object.entries(extra)) form.append(k, v);
        const r = await fetch(`${s.url}${route}`, { method: 'POST', body: form });
        return { status: r.status, body: (await r.json()) as { name: string; subfolder: string; type: string } };
      };
      expect((await up(png, 'a.png')).body).toEqual({ name: 'a.png', subfolder: '', type: 'input' });
      expect((await up(png, 'a.png')).body.name).toBe('a.png'); // same bytes: reused
      const other = await sharp(Buffer.from([0, 0, 0, 0, 0, 0]), { raw: { width: 2, height: 1, channels: 3 } })
        .png()
        .toBuffer();
      expect((await up(other, 'a.png')).body.name).toBe('a (1).png');
      const mask = await sharp(Buffer.from([0, 0, 0, 0, 0, 0, 0, 255]), { raw: { width: 2, height: 1, channels: 4 } })
        .png()
        .toBuffer();
      const m = await up(mask, 'a_mask.png', { original_ref: JSON.stringify({ filename: 'a.png', type: 'input' }) }, '/upload/mask');
      expect(m.status).toBe(200);
      const { data } = await sharp(path.join(paths.inputDir, m.body.name)).raw().toBuffer({ resolveWithObject: true });
      expect([...data]).toEqual([255, 0, 0, 0, 0, 255, 0, 255]);
    } finally {
      await s.close();
    }
  });

  it('saves, lists, loads, renames and deletes workflows over the WebSocket, with overwrite protection', async () => {
    const s = await start();
    try {
      const c = await connect(s, 'client-w');
      let n = 0;
      const op = async (type: string, data: unknown) => {
        const id = `r${++n}`;
        c.ws.send(JSON.stringify({ type, id, data }));
        await c.waitFor((m) => m.type === 'workflow_result' && m.data.id === id);
        return c.messages.find((m) => m.type === 'workflow_result' && m.data.id === id)!.data as {
          ok: boolean;
          result?: Record<string, unknown>;
          error?: string;
        };
      };
      const saved = await op('workflow_save', { name: 'mine.json', workflow: { nodes: [], v: 1 } });
      expect(saved.ok).toBe(true);
      expect((await op('workflow_save', { name: 'mine.json', workflow: { nodes: [] } })).error).toMatch(/exists/);
      expect(
        (await op('workflow_save', { name: 'mine.json', workflow: { nodes: [], v: 2 }, overwrite: true, expectedModified: 1 })).error,
      ).toMatch(/changed on disk/);
      expect(
        (
          await op('workflow_save', {
            name: 'mine.json',
            workflow: { nodes: [], v: 2 },
            overwrite: true,
            expectedModified: saved.result!.modified,
          })
        ).ok,
      ).toBe(true);
      const list = (await op('workflow_list', {})).result as unknown as { name: string; template?: boolean }[];
      expect(list.some((w) => w.name === 'mine.json' && !w.template)).toBe(true);
      expect(list.some((w) => w.name === 'txt2img.json' && w.template)).toBe(true);
      expect(((await op('workflow_load', { name: 'mine.json' })).result!.workflow as { v: number }).v).toBe(2);
      expect((await op('workflow_rename', { name: 'mine.json', to: 'renamed.json' })).ok).toBe(true);
      expect((await op('workflow_load', { name: '../../secret.json' })).error).toBe('path refused');
      expect((await op('workflow_delete', { name: 'renamed.json' })).ok).toBe(true);
      c.ws.close();
    } finally {
      await s.close();
    }
  });
});

describe('server extras', () => {
  it('serves userdata, settings, previews, channels, folder paths, and enforces an auth token', async () => {
    const s = await start();
    try {
      const put = await fetch(`${s.url}/api/userdata/${encodeURIComponent('workflows/a.json')}`, { method: 'POST', body: '{"x":1}' });
      expect(await put.json()).toBe('workflows/a.json');
      expect(
        (await fetch(`${s.url}/userdata/${encodeURIComponent('workflows/a.json')}?overwrite=false`, { method: 'POST', body: '{}' })).status,
      ).toBe(409);
      expect(await (await fetch(`${s.url}/userdata?dir=workflows`)).json()).toEqual(['a.json']);
      expect(await (await fetch(`${s.url}/userdata/${encodeURIComponent('workflows/a.json')}`)).text()).toBe('{"x":1}');
      expect(
        (
          await fetch(`${s.url}/userdata/${encodeURIComponent('workflows/a.json')}/move/${encodeURIComponent('workflows/b.json')}`, {
            method: 'POST',
          })
        ).status,
      ).toBe(200);
      expect((await fetch(`${s.url}/userdata/${encodeURIComponent('../../escape.json')}`, { method: 'POST', body: 'x' })).status).toBe(403);
      expect((await fetch(`${s.url}/userdata/${encodeURIComponent('workflows/b.json')}`, { method: 'DELETE' })).status).toBe(204);
      await post(s, '/settings', { 'Comfy.Theme': 'dark' });
      expect(await (await fetch(`${s.url}/settings/Comfy.Theme`)).json()).toBe('dark');
      const jpeg = await fetch(`${s.url}/view?filename=in.png&type=input&preview=jpeg;80`);
      expect(jpeg.headers.get('content-type')).toContain('image/jpeg');
      expect((await sharp(Buffer.from(await jpeg.arrayBuffer())).metadata()).format).toBe('jpeg');
      const rgb = await fetch(`${s.url}/view?filename=in.png&type=input&channel=rgb`);
      expect((await sharp(Buffer.from(await rgb.arrayBuffer())).metadata()).channels).toBe(3);
      const fp = (await (await fetch(`${s.url}/internal/folder_paths`)).json()) as Record<string, string[]>;
      expect(fp.checkpoints[0]).toBe(path.join(base, 'models', 'checkpoints'));
      expect((await (await fetch(`${s.url}/models`)).json()) as string[]).toContain('loras');
      expect((await fetch(`${s.url}/models/nonsense`)).status).toBe(404);
      expect(((await (await fetch(`${s.url}/system_stats`)).json()) as { system: { ram_total: number } }).system.ram_total).toBeGreaterThan(
        0,
      );
      expect((await fetch(`${s.url}/prompt`, { headers: { 'Sec-Fetch-Site': 'cross-site' } })).status).toBe(403);
      expect((await fetch(`${s.url}/prompt`, { headers: { Origin: 'http://evil.example' } })).status).toBe(403);
    } finally {
      await s.close();
    }
    const executor = new Executor(registry, { paths });
    const locked = await startServer({
      port: 0,
      paths,
      registry,
      executor,
      log: silentLogger,
      stateDir: path.join(base, 'state-auth'),
      authToken: 'sekrit',
    });
    try {
      expect((await fetch(`${locked.url}/prompt`)).status).toBe(401);
      expect((await fetch(`${locked.url}/prompt`, { headers: { Authorization: 'Bearer sekrit' } })).status).toBe(200);
      const refused = await new Promise<boolean>((resolve) => {
        const ws = new WebSocket(`${locked.url.replace('http', 'ws')}/ws`);
        ws.on('open', () => resolve(false));
        ws.on('error', () => resolve(true));
      });
      expect(refused).toBe(true);
    } finally {
      await locked.close();
    }
  });

  it('sends binary JPEG preview frames in both of ComfyUI layouts', async () => {
    const reg = createBuiltinRegistry();
    reg.register(
      defineNode({
        name: 'TestPreview',
        inputs: { required: { image: { type: 'IMAGE' } } },
        outputs: [{ type: 'IMAGE' }],
        run: ({ image }, ctx) => {
          ctx.progress(1, 1, { width: 2, height: 2, rgb: new Uint8Array(12).fill(200) });
          return [image];
        },
      }),
    );
    const ex2 = new Executor(reg, { paths });
    const s2 = await startServer({
      port: 0,
      paths,
      registry: reg,
      executor: ex2,
      log: silentLogger,
      stateDir: path.join(base, 'state-prev'),
    });
    try {
      for (const withMeta of [false, true]) {
        ex2.clearCache();
        const frames: Buffer[] = [];
        const ws = new WebSocket(`${s2.url.replace('http', 'ws')}/ws?clientId=prev${withMeta}`);
        await new Promise((r) => ws.on('open', r));
        if (withMeta) ws.send(JSON.stringify({ type: 'feature_flags', data: { supports_preview_metadata: true } }));
        const done = new Promise<void>((resolve) =>
          ws.on('message', (d, bin) => {
            if (bin) frames.push(d as Buffer);
            else if (JSON.parse(String(d)).type === 'executing' && JSON.parse(String(d)).data.node === null) resolve();
          }),
        );
        await new Promise((r) => setTimeout(r, 50));
        await post(s2, '/prompt', {
          client_id: `prev${withMeta}`,
          prompt: {
            '1': { class_type: 'LoadImage', inputs: { image: 'in.png' } },
            '2': { class_type: 'TestPreview', inputs: { image: ['1', 0] } },
            '3': { class_type: 'PreviewImage', inputs: { images: ['2', 0] } },
          },
        });
        await done;
        await new Promise((r) => setTimeout(r, 100));
        expect(frames.length).toBe(1);
        const f = frames[0];
        if (withMeta) {
          expect(f.readUInt32BE(0)).toBe(4);
          const len = f.readUInt32BE(4);
          expect(JSON.parse(f.subarray(8, 8 + len).toString())).toMatchObject({ node_id: '2', image_type: 'image/jpeg' });
          expect(f.subarray(8 + len, 8 + len + 2)).toEqual(Buffer.from([0xff, 0xd8]));
        } else {
          expect([f.readUInt32BE(0), f.readUInt32BE(4)]).toEqual([1, 1]);
          expect(f.subarray(8, 10)).toEqual(Buffer.from([0xff, 0xd8]));
        }
        ws.close();
      }
    } finally {
      await s2.close();
    }
  });
});
