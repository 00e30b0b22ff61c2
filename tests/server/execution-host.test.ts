import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { Logger } from '../../engine/core/log.ts';
import { startServer, type RunningServer } from '../../server/server.ts';
import { WorkerHost } from '../../server/worker-host.ts';
import { faultRegistry } from './fixtures/fault-nodes.ts';
import { chain, errorMessage, postJson, queuePrompt, waitForHistory, writeInputImage } from './helpers.ts';

/**
 * The execution worker (what `weft serve` uses): the server answers while nodes compute, and no
 * node can wedge the queue, stop an interrupt, keep the process from shutting down, or crash it.
 */
let base: string;
const registry = faultRegistry();
const logs: string[] = [];
const log: Logger = { info: (m) => logs.push(m), warn: (m) => logs.push(m), error: (m) => logs.push(m) };

async function start(
  opts: { graceMs?: number; nodeTimeoutMs?: number; promptTimeoutMs?: number; state?: string } = {},
): Promise<{ s: RunningServer; host: WorkerHost }> {
  const paths = new FolderPaths({ baseDir: base });
  const host = new WorkerHost({
    setup: {
      module: new URL('./fixtures/fault-nodes.ts', import.meta.url).href,
      exportName: 'createFaultExecutor',
      options: { baseDir: base, nodeTimeoutMs: opts.nodeTimeoutMs },
    },
    log,
    graceMs: opts.graceMs ?? 500,
    promptTimeoutMs: opts.promptTimeoutMs,
  });
  await host.start();
  const s = await startServer({
    port: 0,
    paths,
    registry,
    executionHost: host,
    log,
    stateDir: path.join(base, opts.state ?? 'state'),
    shutdownGraceMs: 1000,
  });
  return { s, host };
}

const invert = (prefix: string) => chain({ '2': { class_type: 'ImageInvert', inputs: { image: ['1', 0] } } }, '2', prefix);

beforeAll(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-host-'));
  await writeInputImage(path.join(base, 'input'));
});
afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

describe('execution in a worker', () => {
  it('answers HTTP while a node runs JavaScript that never yields, and interrupts it', async () => {
    const { s, host } = await start();
    try {
      const id = await queuePrompt(s, chain({ '2': { class_type: 'TestSpin', inputs: { image: ['1', 0], ms: 20_000 } } }, '2', 'spin'));
      // Wait until the spin has started (the worker reported the node).
      for (
        let i = 0;
        i < 100 && !((await (await fetch(`${s.url}/queue`)).json()) as { queue_running: unknown[] }).queue_running.length;
        i++
      )
        await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 300));
      // Twenty answers while the 20 s node still runs (on the server thread none would come before it
      // ends); how fast they come is measured in bench/server.ts, not here.
      for (let i = 0; i < 20; i++) expect((await fetch(`${s.url}/system_stats`)).status).toBe(200);
      const q = (await (await fetch(`${s.url}/queue`)).json()) as { queue_running: [number, string][] };
      expect(q.queue_running[0]?.[1]).toBe(id);
      expect((await postJson(s, '/interrupt', {})).status).toBe(200);
      // A node that ignores the interrupt is stopped by restarting the worker after the grace
      // period: the prompt ends long before its 20 s.
      const h = await waitForHistory(s, id, 12_000);
      expect(h.status.status_str).toBe('error');
      expect(h.status.messages.some((m) => m[0] === 'execution_interrupted')).toBe(true);
      expect(logs.some((l) => /restarting the execution worker.*lost/.test(l))).toBe(true);
      // The next prompt runs in a fresh worker.
      const next = await waitForHistory(s, await queuePrompt(s, invert('after-spin')));
      expect(next.status.status_str).toBe('success');
      expect(host.starts).toBe(2);
    } finally {
      await s.close();
    }
  }, 60_000);

  it('relays events and binary previews from the worker to the WebSocket client', async () => {
    const { s } = await start();
    try {
      const ws = new WebSocket(`${s.url.replace('http', 'ws')}/ws?clientId=viewer`);
      const types: string[] = [];
      let previews = 0;
      ws.on('message', (d, bin) => {
        if (bin) previews++;
        else types.push((JSON.parse(String(d)) as { type: string }).type);
      });
      await new Promise((r) => ws.on('open', r));
      const id = await queuePrompt(s, chain({ '2': { class_type: 'TestPreview', inputs: { image: ['1', 0] } } }, '2', 'preview'), {
        client_id: 'viewer',
      });
      expect((await waitForHistory(s, id)).status.status_str).toBe('success');
      for (let i = 0; i < 100 && !types.includes('execution_success'); i++) await new Promise((r) => setTimeout(r, 20));
      expect(types).toEqual(expect.arrayContaining(['execution_start', 'executing', 'progress', 'executed', 'execution_success']));
      expect(previews).toBe(1);
      ws.close();
    } finally {
      await s.close();
    }
  }, 60_000);

  it('interrupts a node whose promise never settles, and clearing the queue works meanwhile', async () => {
    const { s } = await start();
    try {
      const hang = await queuePrompt(s, chain({ '2': { class_type: 'TestHang', inputs: { image: ['1', 0] } } }, '2', 'hang'));
      const pending = await queuePrompt(s, invert('pending'));
      await new Promise((r) => setTimeout(r, 500));
      expect((await postJson(s, '/queue', { clear: true })).status).toBe(200);
      const q = (await (await fetch(`${s.url}/queue`)).json()) as { queue_pending: unknown[] };
      expect(q.queue_pending).toEqual([]);
      await postJson(s, '/interrupt', { prompt_id: hang });
      const h = await waitForHistory(s, hang, 10_000);
      expect(h.status.messages.some((m) => m[0] === 'execution_interrupted')).toBe(true);
      const h2 = (await (await fetch(`${s.url}/history/${pending}`)).json()) as Record<string, unknown>;
      expect(h2[pending]).toBeUndefined();
      expect((await waitForHistory(s, await queuePrompt(s, invert('after-hang')))).status.status_str).toBe('success');
    } finally {
      await s.close();
    }
  }, 60_000);

  it("fails only the running prompt on a node's stray rejection or throwing timer", async () => {
    const { s, host } = await start();
    try {
      for (const kind of ['rejection', 'timer']) {
        const id = await queuePrompt(
          s,
          chain({ '2': { class_type: 'TestStray', inputs: { image: ['1', 0], kind } } }, '2', `stray-${kind}`),
        );
        const h = await waitForHistory(s, id);
        expect(h.status.status_str).toBe('error');
        expect(errorMessage(h)).toMatch(
          kind === 'timer' ? /uncaught exception.*timer went off badly/ : /unhandled rejection.*stray rejection/,
        );
      }
      expect((await waitForHistory(s, await queuePrompt(s, invert('after-stray')))).status.status_str).toBe('success');
      expect(host.starts).toBe(1);
    } finally {
      await s.close();
    }
  }, 60_000);

  it('enforces a node time limit even on code that never yields', async () => {
    const { s } = await start({ nodeTimeoutMs: 400 });
    try {
      const id = await queuePrompt(s, chain({ '2': { class_type: 'TestSpin', inputs: { image: ['1', 0], ms: 30_000 } } }, '2', 'timeout'));
      // Ends long before the node's 30 s.
      const h = await waitForHistory(s, id, 20_000);
      expect(errorMessage(h)).toMatch(/node 2 \(TestSpin\) did not finish within/);
    } finally {
      await s.close();
    }
  }, 60_000);

  it('shuts down within a bounded time while a node hangs, and does not replay that prompt', async () => {
    const { s } = await start({ state: 'state-shutdown' });
    const id = await queuePrompt(s, chain({ '2': { class_type: 'TestSpin', inputs: { image: ['1', 0], ms: 120_000 } } }, '2', 'stuck'));
    await new Promise((r) => setTimeout(r, 800));
    // close() returns although the node would spin for two minutes (bounded by the shutdown grace).
    await s.close();
    const { s: again } = await start({ state: 'state-shutdown' });
    try {
      const h = await waitForHistory(again, id, 5000);
      expect(errorMessage(h)).toMatch(/abandoned/);
      expect(again.queue.pendingItems).toEqual([]);
    } finally {
      await again.close();
    }
  }, 60_000);
});
