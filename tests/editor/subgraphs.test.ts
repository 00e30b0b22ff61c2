import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './chromium.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../engine/core/log.ts';
import { EXECUTION_ID_PROPERTY, flattenForEditor } from '../../engine/graph/convert-expand.ts';
import { convertWorkflowToPrompt } from '../../engine/graph/convert.ts';
import { Executor } from '../../engine/executor/executor.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import { startServer, type RunningServer } from '../../server/server.ts';
import { ensureEditorBuild, eventually } from './harness.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const FIXTURES = path.join(ROOT, 'tests/fixtures/subgraphs');
let base: string;
let server: RunningServer;
let browser: Browser;

beforeAll(async () => {
  const editorDir = await ensureEditorBuild();
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-subgraph-e2e-'));
  const paths = new FolderPaths({ baseDir: base });
  const registry = createBuiltinRegistry();
  server = await startServer({ port: 0, paths, registry, executor: new Executor(registry, { paths }), log: silentLogger, editorDir });
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (base) fs.rmSync(base, { recursive: true, force: true });
});

async function open(file: string): Promise<{ page: Page; errors: string[] }> {
  const errors: string[] = [];
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(server.url);
  await page.getByTestId('connection').filter({ hasText: 'connected' }).waitFor();
  await page.getByTestId('file-input').setInputFiles(path.join(FIXTURES, file));
  return { page, errors };
}

describe('the editor opens subgraph and group-node workflows flattened', () => {
  for (const file of ['subgraph_nested.workflow.json', 'group_node.workflow.json']) {
    it(`${file}: draws every inner node and link, and queues the prompt the frontend would send (up to node ids)`, async () => {
      const raw = JSON.parse(fs.readFileSync(path.join(FIXTURES, file), 'utf8')) as Record<string, unknown>;
      const info = (await (await fetch(`${server.url}/object_info`)).json()) as Parameters<typeof flattenForEditor>[1];
      const flat = flattenForEditor(raw, info) as {
        nodes: { id: number; type: string; properties?: Record<string, unknown> }[];
        links: unknown[][];
      };
      const { page, errors } = await open(file);
      for (const n of flat.nodes) await eventually(() => page.getByTestId(`node-${n.id}`).getAttribute('data-node-type')).toBe(n.type);
      await eventually(() => page.locator('.weft-node').count()).toBe(flat.nodes.length);
      await eventually(() => page.locator('.react-flow__edge').count()).toBe(flat.links.length);

      // A muted or bypassed instance stays a node of its subgraph's type, which the editor lists as missing.
      await page.getByTestId('missing-dialog').waitFor({ timeout: 30_000 });
      await page.getByTestId('missing-close').click();
      const posted = page.waitForRequest((r) => r.url().endsWith('/api/prompt') && r.method() === 'POST');
      await page.getByTestId('btn-queue').click();
      const body = (await posted).postDataJSON() as { prompt: Record<string, { class_type: string; inputs: Record<string, unknown> }> };
      // Map the editor's numeric ids back to execution ids: then the prompt is the frontend's.
      const execId = new Map(flat.nodes.map((n) => [String(n.id), String(n.properties?.[EXECUTION_ID_PROPERTY] ?? n.id)]));
      const renamed = Object.fromEntries(
        Object.entries(body.prompt).map(([id, n]) => [
          execId.get(id) ?? id,
          {
            class_type: n.class_type,
            inputs: Object.fromEntries(
              Object.entries(n.inputs).map(([k, v]) => [
                k,
                Array.isArray(v) && v.length === 2 ? [execId.get(String(v[0])) ?? v[0], v[1]] : v,
              ]),
            ),
          },
        ]),
      );
      const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, file.replace('.workflow.json', '.prompt.json')), 'utf8')) as unknown;
      expect(renamed).toEqual(expected);
      // And the engine's own conversion of the original file agrees.
      expect(Object.keys(convertWorkflowToPrompt(raw, info).prompt).sort()).toEqual(Object.keys(renamed).sort());
      expect(errors).toEqual([]);
      await page.close();
    });
  }
});
