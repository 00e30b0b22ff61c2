import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor/executor.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { silentLogger } from '../../engine/core/log.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import { LogBuffer } from '../../server/jobs.ts';
import { startServer, type RunningServer } from '../../server/server.ts';
import { postJson, queuePrompt, waitForHistory } from './helpers.ts';

let base: string;
let server: RunningServer;
let open: () => void = () => {};
let gate = new Promise<void>((r) => (open = r));

// A node that holds the queue until the test lets it go, one that fails, and one with a UI output.
const testNodes = [
  defineNode({
    name: 'JobGate',
    inputs: { required: { tag: { type: 'STRING', default: '' } } },
    outputs: [],
    outputNode: true,
    run: async () => {
      await gate;
      return {
        ui: {
          images: [
            { filename: 'x.png', subfolder: '', type: 'temp' },
            { filename: 'y.png', subfolder: '', type: 'output' },
          ],
          text: ['hi'],
        },
      };
    },
  }),
  defineNode({
    name: 'JobPrint',
    inputs: { required: { text: { type: 'STRING', default: '' } } },
    outputs: [],
    outputNode: true,
    run: ({ text }) => {
      process.stdout.write(`${text}\n`);
      return [];
    },
  }),
  defineNode({
    name: 'JobFail',
    inputs: { required: { tag: { type: 'STRING', default: '' } } },
    outputs: [],
    outputNode: true,
    run: () => {
      throw new Error('this job fails on purpose');
    },
  }),
];

beforeAll(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-jobs-'));
  const paths = new FolderPaths({ baseDir: base });
  const state = path.join(base, 'state');
  fs.mkdirSync(state, { recursive: true });
  // A corrupt journal line makes the queue log a warning at start-up, which /internal/logs must show.
  const registry = createBuiltinRegistry();
  registry.registerAll(testNodes, 'tests');
  server = await startServer({ port: 0, paths, registry, executor: new Executor(registry, { paths }), log: silentLogger, stateDir: state });
  await server.close();
  const journal = fs.readdirSync(state).find((f) => f.endsWith('.jsonl')) ?? 'queue.jsonl';
  fs.appendFileSync(path.join(state, journal), '{"op": "put", "item": [not json\n');
  server = await startServer({ port: 0, paths, registry, executor: new Executor(registry, { paths }), log: silentLogger, stateDir: state });
});
afterAll(async () => {
  open();
  await server.close();
  fs.rmSync(base, { recursive: true, force: true });
});

type JobList = { jobs: Record<string, unknown>[]; pagination: { offset: number; limit: number | null; total: number; has_more: boolean } };
const get = async (route: string): Promise<{ status: number; body: unknown }> => {
  const r = await fetch(`${server.url}${route}`);
  return { status: r.status, body: await r.json() };
};
const list = async (q = ''): Promise<JobList> => (await get(`/api/jobs${q}`)).body as JobList;

describe('GET /api/jobs and /api/jobs/{id} (ComfyUI comfy_execution/jobs.py)', () => {
  const ids: Record<string, string> = {};

  it('lists the running prompt as in_progress and queued ones as pending, with priority, create_time and workflow_id', async () => {
    ids.a = await queuePrompt(server, { '1': { class_type: 'JobGate', inputs: { tag: 'a' } } });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await list('?status=in_progress')).jobs.length === 0) await new Promise((r) => setTimeout(r, 20));
    const before = Date.now();
    ids.b = await queuePrompt(
      server,
      { '1': { class_type: 'JobGate', inputs: { tag: 'b' } } },
      { extra_data: { extra_pnginfo: { workflow: { id: 'wf-b' } } } },
    );
    const all = await list();
    const a = all.jobs.find((j) => j.id === ids.a)!;
    const b = all.jobs.find((j) => j.id === ids.b)!;
    expect(a.status).toBe('in_progress');
    expect(b).toMatchObject({ id: ids.b, status: 'pending', outputs_count: 0, workflow_id: 'wf-b' });
    expect(typeof b.priority).toBe('number');
    expect(b.create_time as number).toBeGreaterThanOrEqual(before - 5);
    expect('workflow_id' in a).toBe(false); // None values are left out, as prune_dict does
    // Newest first by default.
    expect(all.jobs.map((j) => j.id)).toEqual([ids.b, ids.a]);
    expect((await list('?status=pending')).jobs.map((j) => j.id)).toEqual([ids.b]);
    expect((await get(`/api/jobs/${ids.b}`)).body).toEqual(b);
  });

  it('lists finished prompts as completed or failed, with outputs, preview and times; one job in full', async () => {
    open();
    await waitForHistory(server, ids.a);
    await waitForHistory(server, ids.b);
    ids.c = await queuePrompt(server, { '1': { class_type: 'JobFail', inputs: { tag: 'c' } } });
    await waitForHistory(server, ids.c);
    const all = await list();
    expect(all.jobs.map((j) => [j.id, j.status])).toEqual([
      [ids.c, 'failed'],
      [ids.b, 'completed'],
      [ids.a, 'completed'],
    ]);
    const a = all.jobs.find((j) => j.id === ids.a)!;
    // Two items: ComfyUI counts only dict items (the text string is not one); the preview is the saved output image, not the temp one.
    expect(a.outputs_count).toBe(2);
    expect(a.preview_output).toEqual({ filename: 'y.png', subfolder: '', type: 'output', nodeId: '1', mediaType: 'images' });
    expect(a.execution_end_time as number).toBeGreaterThanOrEqual(a.execution_start_time as number);
    expect('outputs' in a).toBe(false);
    const c = all.jobs.find((j) => j.id === ids.c)!;
    expect((c.execution_error as { exception_message: string }).exception_message).toContain('this job fails on purpose');
    const full = (await get(`/api/jobs/${ids.a}`)).body as Record<string, unknown>;
    expect(full).toMatchObject({ id: ids.a, status: 'completed', outputs_count: 2 });
    expect((full.workflow as { prompt: unknown }).prompt).toEqual({ '1': { class_type: 'JobGate', inputs: { tag: 'a' } } });
    expect((full.execution_status as { status_str: string }).status_str).toBe('success');
    expect((full.outputs as Record<string, unknown>)['1']).toBeDefined();
    expect((await list('?status=completed,failed&sort_order=asc')).jobs.map((j) => j.id)).toEqual([ids.a, ids.b, ids.c]);
    expect((await list('?workflow_id=wf-b')).jobs.map((j) => j.id)).toEqual([ids.b]);
  });

  it('paginates with limit and offset and says whether more follow', async () => {
    const page = await list('?limit=1&offset=1');
    expect(page.jobs.length).toBe(1);
    expect(page.pagination).toEqual({ offset: 1, limit: 1, total: 3, has_more: true });
    expect((await list('?offset=2')).pagination).toEqual({ offset: 2, limit: null, total: 3, has_more: false });
    expect((await list('?offset=-4')).pagination.offset).toBe(0);
  });

  it('answers 400 with ComfyUI’s messages for bad parameters, and 404 for an unknown job', async () => {
    expect(await get('/api/jobs?status=done')).toEqual({
      status: 400,
      body: { error: 'Invalid status value(s): done. Valid values: pending, in_progress, completed, failed' },
    });
    expect((await get('/api/jobs?sort_by=name')).status).toBe(400);
    expect((await get('/api/jobs?sort_order=up')).status).toBe(400);
    expect(await get('/api/jobs?limit=0')).toEqual({ status: 400, body: { error: 'limit must be a positive integer' } });
    expect(await get('/api/jobs?limit=ten')).toEqual({ status: 400, body: { error: 'limit must be an integer' } });
    expect(await get('/api/jobs/no-such-job')).toEqual({ status: 404, body: { error: 'Job not found' } });
  });
});

describe('/internal/logs', () => {
  it('gives the server log as text and as entries with the terminal size', async () => {
    const text = (await get('/internal/logs')).body as string;
    expect(text).toMatch(/^\d{4}-\d\d-\d\dT[^ ]+ - journal .*skipped 1 corrupt/m);
    const raw = (await get('/internal/logs/raw')).body as { entries: { t: string; m: string }[]; size: { cols: number; rows: number } };
    expect(raw.entries.some((e) => e.m.includes('skipped 1 corrupt') && e.m.endsWith('\n'))).toBe(true);
    expect(raw.size).toEqual({ cols: 80, rows: 24 });
  });

  it('streams new lines to a subscribed client as `logs` messages', async () => {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws?clientId=logger`);
    const got: { type: string; data: { entries: { m: string }[] } }[] = [];
    ws.on('message', (d, binary) => {
      if (!binary) got.push(JSON.parse(String(d)) as (typeof got)[number]);
    });
    await new Promise((r) => ws.on('open', r));
    const sub = await fetch(`${server.url}/internal/logs/subscribe`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ clientId: 'logger', enabled: true }),
    });
    expect(sub.status).toBe(200);
    // What a node prints reaches the log, as ComfyUI's interceptor of stdout and stderr keeps it.
    await waitForHistory(server, await queuePrompt(server, { '1': { class_type: 'JobPrint', inputs: { text: 'printed by a node' } } }));
    const deadline = Date.now() + 5000;
    const printed = () => got.some((m) => m.type === 'logs' && m.data.entries.some((e) => e.m === 'printed by a node\n'));
    while (Date.now() < deadline && !printed()) await new Promise((r) => setTimeout(r, 20));
    expect(printed()).toBe(true);
    expect(((await get('/internal/logs')).body as string).includes(' - printed by a node\n')).toBe(true);
    ws.close();
    expect((await postJson(server, '/internal/logs/subscribe', {})).status).toBe(404);
  });

  it('keeps the last 300 lines', () => {
    const b = new LogBuffer();
    for (let i = 0; i < 310; i++) b.add(`line ${i}`);
    expect(b.list().length).toBe(300);
    expect(b.list()[0].m).toBe('line 10\n');
  });
});
