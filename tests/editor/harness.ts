/**
 * What the editor's end-to-end tests share: one built editor, a server over a temporary base folder
 * (with the tiny demo model when asked), headless Chromium, and pages that collect console errors.
 *
 * The editor is built once for all test files. `WEFT_EDITOR_DIST` names a built folder to use as is
 * (for working on the editor beside others without touching editor/dist). Otherwise editor/dist is
 * rebuilt when a source is newer than it: under a lock, into a temporary folder renamed into place,
 * so two test files running in parallel never build into one folder or serve a half-written one.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Locator, Page } from 'playwright-core';
import { launchChromium } from './chromium.ts';
import { expect } from 'vitest';
import { createEnvironment, type Environment } from '../../cli/environment.ts';
import { convertOrThrow } from '../../engine/graph/convert.ts';
import { silentLogger } from '../../engine/core/log.ts';
import { makeDemoAdapters } from '../../engine/models/generate/demo-adapters.ts';
import { makeTinyCheckpoint } from '../../engine/models/make-model.ts';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import { startServer, type RunningServer } from '../../server/server.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'editor');
const DIST = path.join(ROOT, 'editor/dist');
const LOCK = path.join(ROOT, 'editor/.dist-lock');
// A build takes seconds; a lock this old belongs to a test process that died mid-build.
const STALE_LOCK_MS = 120_000;

function newestMtime(p: string): number {
  if (!fs.existsSync(p)) return 0;
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(0, ...fs.readdirSync(p).map((e) => newestMtime(path.join(p, e))));
}

/** The newest source the bundle is made of: the editor and the engine modules it imports. */
function sourcesMtime(): number {
  return Math.max(
    newestMtime(path.join(ROOT, 'editor/src')),
    newestMtime(path.join(ROOT, 'editor/index.html')),
    newestMtime(path.join(ROOT, 'editor/vite.config.ts')),
    newestMtime(path.join(ROOT, 'engine/graph')),
    newestMtime(path.join(ROOT, 'engine/registry')),
  );
}

function isFresh(): boolean {
  const index = path.join(DIST, 'index.html');
  return fs.existsSync(index) && fs.statSync(index).mtimeMs >= sourcesMtime();
}

async function withLock<T>(fn: () => T): Promise<T> {
  for (;;) {
    try {
      fs.mkdirSync(LOCK);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (Date.now() - fs.statSync(LOCK).mtimeMs > STALE_LOCK_MS) fs.rmSync(LOCK, { recursive: true, force: true });
      } catch {
        // Released between the two calls: try again.
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(LOCK, { recursive: true, force: true });
  }
}

/** The folder holding the built editor, built or rebuilt first when needed. */
export async function ensureEditorBuild(): Promise<string> {
  const given = process.env.WEFT_EDITOR_DIST;
  if (given) {
    const dir = path.resolve(given);
    if (!fs.existsSync(path.join(dir, 'index.html'))) throw new Error(`WEFT_EDITOR_DIST=${given}: no index.html in ${dir}`);
    return dir;
  }
  if (isFresh()) return DIST;
  return withLock(() => {
    // Another file may have built it while this one waited for the lock.
    if (isFresh()) return DIST;
    // Beside editor/dist, so the renames stay on one file system.
    const tmp = path.join(ROOT, 'editor', `.dist-build-${process.pid}-${Date.now()}`);
    const old = `${tmp}-old`;
    try {
      execFileSync(
        process.execPath,
        [path.join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', 'editor', '--outDir', tmp, '--emptyOutDir'],
        {
          cwd: ROOT,
          stdio: 'ignore',
        },
      );
      if (fs.existsSync(DIST)) fs.renameSync(DIST, old);
      fs.renameSync(tmp, DIST);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.rmSync(old, { recursive: true, force: true });
    }
    return DIST;
  });
}

export interface HarnessOptions {
  /** Write the tiny demo checkpoint and adapters into the base folder (what the templates name). */
  demoModel?: boolean;
  /** Called with the environment before the server starts (to register a test's own nodes). */
  prepare?: (env: Environment) => void;
}

export interface EditorHarness {
  base: string;
  server: RunningServer;
  browser: Browser;
  /** Console errors and page errors of every page opened, less the expected ones. */
  consoleErrors: string[];
  /**
   * A page on the editor, connected to the server; console errors matching `expectedErrors` are not
   * collected. `beforeLoad` runs on the new page before it loads the editor (to route its requests).
   */
  openPage(
    expectedErrors?: RegExp[],
    viewport?: { width: number; height: number },
    opts?: { acceptDownloads?: boolean; beforeLoad?: (page: Page) => Promise<void> },
  ): Promise<Page>;
  close(): Promise<void>;
}

export async function startEditorHarness(opts: HarnessOptions = {}): Promise<EditorHarness> {
  const editorDir = await ensureEditorBuild();
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-e2e-'));
  if (opts.demoModel) {
    // The demo model the templates name, as `weft make-model tiny` writes it.
    const ckpt = path.join(base, 'models/checkpoints/weft-tiny-sd1.safetensors');
    await makeTinyCheckpoint(ckpt, { seed: 0 });
    makeDemoAdapters(ckpt, path.join(base, 'models'), 0);
  }
  const env = await createEnvironment({ baseDir: base, log: silentLogger });
  fs.mkdirSync(env.paths.inputDir, { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'input/example.png'), path.join(env.paths.inputDir, 'example.png'));
  opts.prepare?.(env);
  const server = await startServer({
    port: 0,
    paths: env.paths,
    registry: env.registry,
    executor: env.executor,
    log: silentLogger,
    workflowTemplatesDir: path.join(ROOT, 'workflows'),
    customNodes: env.customNodes,
    editorDir,
  });
  const browser = await launchChromium();
  const consoleErrors: string[] = [];
  return {
    base,
    server,
    browser,
    consoleErrors,
    async openPage(expectedErrors = [], viewport = { width: 1280, height: 720 }, opts = {}) {
      const page = await browser.newPage({ viewport, acceptDownloads: opts.acceptDownloads });
      await opts.beforeLoad?.(page);
      page.on('console', (m) => m.type() === 'error' && !expectedErrors.some((r) => r.test(m.text())) && consoleErrors.push(m.text()));
      page.on('pageerror', (e) => consoleErrors.push(String(e)));
      await page.goto(server.url);
      await page.getByTestId('connection').filter({ hasText: 'connected' }).waitFor();
      return page;
    },
    async close() {
      await browser.close();
      await server.close();
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}

export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

export interface UiWorkflow {
  nodes: { id: number; type: string; widgets_values?: unknown[]; title?: string; flags?: Record<string, unknown> }[];
  links: [number, number, number, number, number, string][];
  groups?: { title: string; bounding: number[]; color?: string }[];
}
export type ApiBody = { prompt: Record<string, { class_type: string; inputs: Record<string, unknown> }> };

export function readWorkflow(file: string): UiWorkflow {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'workflows', file), 'utf8')) as UiWorkflow;
}

export async function openTemplate(page: Page, file: string): Promise<void> {
  await clickWorkflowEntry(page, `wf-template-${file}`);
  await page.getByTestId(`node-${readWorkflow(file).nodes[0].id}`).waitFor();
  await viewSettled(page);
}

/** A widget edit, `node.widget = value`: typed into the canvas, and applied alike to the expected prompt. */
export type WidgetEdit = [node: number, widget: string, value: number];

/**
 * Types the edits into the open template's number widgets, queues it with the Queue button, and checks
 * that the posted prompt is what convert.ts makes of the template with the same edits.
 */
export async function queueTemplateWithEdits(page: Page, server: RunningServer, file: string, edits: readonly WidgetEdit[]): Promise<void> {
  for (const [node, widget, value] of edits) {
    const field = page.getByTestId(`node-${node}`).getByTestId(`widget-${widget}`).locator('input[type=number]');
    await field.fill(String(value));
    await eventually(() => field.inputValue()).toBe(String(value));
  }
  const posted = page.waitForRequest((r) => r.url().endsWith('/api/prompt') && r.method() === 'POST');
  await page.getByTestId('btn-queue').click();
  const body = (await posted).postDataJSON() as ApiBody;
  const info = (await (await fetch(`${server.url}/object_info`)).json()) as ObjectInfo;
  const expected = JSON.parse(JSON.stringify(convertOrThrow(readWorkflow(file), info))) as ApiBody['prompt'];
  for (const [node, widget, value] of edits) expected[String(node)].inputs[widget] = value;
  expect(body.prompt).toEqual(expected);
}

/**
 * Opens the workflows menu and clicks one of its entries. The menu can close again under the click when
 * the first document (the default graph) opens just then (CI once waited 30 s for a template that was
 * never shown): open it until the entry shows.
 */
export async function clickWorkflowEntry(page: Page, testId: string): Promise<void> {
  const entry = page.getByTestId(testId);
  for (let attempt = 0; attempt < 6 && !(await entry.isVisible()); attempt++) {
    await page.getByTestId('btn-workflows').click();
    await entry.waitFor({ timeout: 5_000 }).catch(() => undefined);
  }
  await entry.click();
}

/** Waits for the fit that follows opening a document, so a click lands where the settled view puts it. */
export async function viewSettled(page: Page): Promise<void> {
  await page.locator('body:not([data-fitting])').waitFor({ state: 'attached' });
}

/**
 * Polls a reading until the matcher holds (30 s at most). State that follows an action (a React render,
 * React Flow measuring nodes before it draws their edges, a dialog's answer) may land after the call
 * that caused it returned, later still on a loaded machine: read it this way, not once.
 */
export function eventually<T>(read: () => Promise<T> | T) {
  return expect.poll(read, { timeout: 30_000, interval: 50 });
}

/** Waits for two animation frames: whatever the page had pending (a render, a measure) has run. */
export async function frames(page: Page): Promise<void> {
  await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
}

/**
 * A box once it has stopped moving (two readings two frames apart agree): after a drag React may still
 * be drawing its last moves when the mouse-up returns.
 */
export async function settledBox(locator: Locator): Promise<{ x: number; y: number; width: number; height: number }> {
  let prev = await locator.boundingBox();
  for (;;) {
    await frames(locator.page());
    const next = await locator.boundingBox();
    if (prev && next && prev.x === next.x && prev.y === next.y && prev.width === next.width && prev.height === next.height) return next;
    prev = next;
  }
}

/** The canvas transform: [x, y, zoom]. */
export async function viewportOf(page: Page): Promise<[number, number, number]> {
  const style = (await page.locator('.react-flow__viewport').getAttribute('style')) ?? '';
  const m = /translate\(([-\d.]+)px, ([-\d.]+)px\) scale\(([-\d.]+)\)/.exec(style);
  if (!m) throw new Error(`no transform in viewport style '${style}'`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** The nodes and links the canvas draws: node types by id, and each edge's endpoints. */
export async function expectDrawn(page: Page, wf: UiWorkflow): Promise<void> {
  for (const n of wf.nodes) await expect(page.getByTestId(`node-${n.id}`).getAttribute('data-node-type')).resolves.toBe(n.type);
  await eventually(() => page.locator('.weft-node').count()).toBe(wf.nodes.length);
  // Edges are drawn once both ends are measured, a step after the nodes appear.
  await eventually(() => page.locator('.react-flow__edge').count()).toBe(wf.links.length);
  for (const [id, from, , to] of wf.links)
    await expect(page.getByTestId(`rf__edge-${id}`).getAttribute('aria-label')).resolves.toBe(`Edge from ${from} to ${to}`);
}

export async function center(page: Page, selector: string): Promise<{ x: number; y: number }> {
  const b = (await page.locator(selector).boundingBox())!;
  return { x: b.x + b.width / 2, y: b.y + b.height / 2 };
}

export async function drag(page: Page, from: { x: number; y: number }, to: { x: number; y: number }): Promise<void> {
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  await page.mouse.move((from.x + to.x) / 2, (from.y + to.y) / 2, { steps: 5 });
  await page.mouse.move(to.x, to.y, { steps: 5 });
  await page.mouse.up();
}
