import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnvironment } from '../../cli/environment.ts';
import { silentLogger } from '../../engine/registry/context.ts';
import { startServer, type RunningServer } from '../../server/server.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'editor');
let base: string;
let server: RunningServer;
let browser: Browser;
const consoleErrors: string[] = [];

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

async function openPage(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  await page.goto(server.url);
  await page.getByTestId('connection').filter({ hasText: 'connected' }).waitFor();
  return page;
}

beforeAll(async () => {
  if (!fs.existsSync(path.join(ROOT, 'editor/dist/index.html'))) execFileSync(process.execPath, [path.join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', 'editor'], { cwd: ROOT, stdio: 'ignore' });
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-e2e-'));
  const env = await createEnvironment({ baseDir: base, log: silentLogger });
  fs.mkdirSync(env.paths.inputDir, { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'input/example.png'), path.join(env.paths.inputDir, 'example.png'));
  server = await startServer({ port: 0, paths: env.paths, registry: env.registry, executor: env.executor, log: silentLogger, workflowTemplatesDir: path.join(ROOT, 'workflows'), customNodes: env.customNodes });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  fs.rmSync(base, { recursive: true, force: true });
});

describe('editor in Chromium', () => {
  it('loads a template, draws its nodes and links, queues it and shows the output image', async () => {
    const page = await openPage();
    await page.getByTestId('btn-workflows').click();
    await page.getByTestId('wf-template-invert-image.json').click();
    const wf = JSON.parse(fs.readFileSync(path.join(ROOT, 'workflows/invert-image.json'), 'utf8')) as { nodes: { id: number; type: string }[]; links: unknown[] };
    for (const n of wf.nodes) await expect(page.getByTestId(`node-${n.id}`).getAttribute('data-node-type')).resolves.toBe(n.type);
    await expect(page.locator('.react-flow__edge').count()).resolves.toBe(wf.links.length);
    await expect(page.getByTestId('group-Process').textContent()).resolves.toBe('Process');
    await expect(page.getByTestId('group-Process').isVisible()).resolves.toBe(true);
    await shot(page, '1-template-loaded');
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+Enter');
    await page.getByTestId('output-image-4').waitFor({ timeout: 30_000 });
    const src = await page.getByTestId('output-image-4').getAttribute('src');
    expect(src).toContain('weft-invert_00001_.png');
    expect(fs.existsSync(path.join(base, 'output', 'weft-invert_00001_.png'))).toBe(true);
    await shot(page, '2-queued-output');
    await page.close();
  });

  it('saves under a new name, and the saved workflow reopens after a reload', async () => {
    const page = await openPage();
    await page.getByTestId('btn-workflows').click();
    await page.getByTestId('wf-template-invert-image.json').click();
    await page.getByTestId('node-2').getByTestId('widget-scale_by').locator('input[type=number]').fill('3');
    page.once('dialog', (d) => void d.accept('my-invert.json'));
    await page.getByTestId('btn-save-as').click();
    await page.getByTestId('doc-name').filter({ hasText: 'my-invert.json' }).waitFor();
    const saved = JSON.parse(fs.readFileSync(path.join(base, 'user/default/workflows/my-invert.json'), 'utf8')) as { nodes: { id: number; widgets_values: unknown[] }[] };
    expect(saved.nodes.find((n) => n.id === 2)!.widgets_values).toEqual(['bilinear', 3]);
    await page.reload();
    await page.getByTestId('connection').filter({ hasText: 'connected' }).waitFor();
    const draft = page.getByTestId('draft-no');
    if (await draft.isVisible().catch(() => false)) await draft.click();
    await page.getByTestId('btn-workflows').click();
    await page.getByTestId('wf-user-my-invert.json').click();
    await expect(page.getByTestId('node-2').getByTestId('widget-scale_by').locator('input[type=number]').inputValue()).resolves.toBe('3');
    await shot(page, '3-reopened');
    await page.close();
  });

  it('opens a PNG written by Weft through the file picker', async () => {
    const page = await openPage();
    const png = path.join(base, 'output', 'weft-invert_00001_.png');
    expect(fs.existsSync(png)).toBe(true);
    await page.getByTestId('file-input').setInputFiles(png);
    await page.getByTestId('node-4').waitFor();
    await expect(page.getByTestId('node-4').getAttribute('data-node-type')).resolves.toBe('SaveImage');
    await shot(page, '4-png-opened');
    await page.close();
  });

  it('keeps nodes of missing classes on the canvas and lists them in a dialog', async () => {
    const page = await openPage();
    const wf = JSON.parse(fs.readFileSync(path.join(ROOT, 'workflows/invert-image.json'), 'utf8')) as { nodes: { type: string }[] };
    wf.nodes[2].type = 'SomeCustomPackNode';
    const file = path.join(base, 'missing.json');
    fs.writeFileSync(file, JSON.stringify(wf));
    await page.getByTestId('file-input').setInputFiles(file);
    await page.getByTestId('missing-dialog').waitFor();
    await expect(page.getByTestId('missing-dialog').textContent()).resolves.toContain('SomeCustomPackNode');
    await expect(page.locator('.weft-node.missing').count()).resolves.toBe(1);
    await shot(page, '5-missing-dialog');
    await page.getByTestId('missing-close').click();
    await page.close();
  });

  it('switches the interface and node names to Simplified Chinese', async () => {
    const page = await openPage();
    await page.getByTestId('btn-workflows').click();
    await page.getByTestId('wf-template-invert-image.json').click();
    await page.getByTestId('lang').selectOption('zh');
    await expect(page.getByTestId('btn-queue').textContent()).resolves.toBe('运行');
    await expect(page.getByTestId('node-1').locator('.weft-node-title').textContent()).resolves.toBe('加载图像');
    await shot(page, '6-chinese');
    await page.getByTestId('lang').selectOption('en');
    await expect(page.getByTestId('btn-queue').textContent()).resolves.toBe('Queue');
    await page.close();
  });

  it('produced no console errors', () => {
    expect(consoleErrors).toEqual([]);
  });
});
