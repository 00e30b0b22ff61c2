/**
 * Editor performance in Debian's Chromium: time to open and draw a 500-node workflow (file picker →
 * every node of the fitted view rendered), and frames per second while panning and zooming it.
 * Run: npx tsx bench/editor.ts [nodes=500]   (builds the editor first if editor/dist is missing)
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { createEnvironment } from '../cli/environment.ts';
import { silentLogger } from '../engine/registry/context.ts';
import { startServer } from '../server/server.ts';

const N = Number(process.argv[2] ?? 500);
const ROOT = path.resolve(import.meta.dirname, '..');
if (!fs.existsSync(path.join(ROOT, 'editor/dist/index.html'))) execFileSync(process.execPath, [path.join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', 'editor'], { cwd: ROOT, stdio: 'ignore' });
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bench-editor-'));
const env = await createEnvironment({ baseDir: base, log: silentLogger, disableCustomNodes: true });
const server = await startServer({ port: 0, paths: env.paths, registry: env.registry, executor: env.executor, log: silentLogger });

// A 25×20 grid of ImageScaleBy → ImageInvert chains: 500 nodes, 480 links.
const nodes: unknown[] = [];
const links: unknown[] = [];
for (let i = 0; i < N; i++) {
  const col = i % 25;
  const row = Math.floor(i / 25);
  const id = i + 1;
  const isScale = col % 2 === 0;
  const inLink = col > 0 ? links.length + 1 : null;
  if (col > 0) links.push([links.length + 1, id - 1, 0, id, 0, 'IMAGE']);
  nodes.push({
    id,
    type: isScale ? 'ImageScaleBy' : 'ImageInvert',
    pos: [col * 340, row * 160],
    size: [300, 100],
    flags: {},
    order: i,
    mode: 0,
    inputs: [{ name: 'image', type: 'IMAGE', link: inLink }],
    outputs: [{ name: 'IMAGE', type: 'IMAGE', links: col < 24 ? [links.length + 1] : [] }],
    properties: {},
    widgets_values: isScale ? ['bilinear', 1.5] : [],
  });
}
const file = path.join(base, `big-${N}.json`);
fs.writeFileSync(file, JSON.stringify({ last_node_id: N, last_link_id: links.length, nodes, links, groups: [], config: {}, extra: {}, version: 0.4 }));

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
await page.goto(server.url);
await page.getByTestId('connection').filter({ hasText: 'connected' }).waitFor();
const t0 = Date.now();
await page.getByTestId('file-input').setInputFiles(file);
await page.getByTestId(`node-${N}`).waitFor({ state: 'attached', timeout: 60_000 });
// Drawn = the fitted view has settled: two animation frames with no layout change.
await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
const openMs = Date.now() - t0;
const drawn = await page.locator('.react-flow__node').count();

async function fps(action: (i: number) => Promise<void>, frames = 60): Promise<number> {
  // A string, not a function: tsx's name helpers do not exist in the page.
  await page.evaluate('window.__frames = 0; (function tick() { window.__frames++; requestAnimationFrame(tick); })();');
  const start = Date.now();
  for (let i = 0; i < frames; i++) await action(i);
  const secs = (Date.now() - start) / 1000;
  const n = (await page.evaluate('window.__frames')) as number;
  return n / secs;
}
const pane = page.locator('.react-flow__pane');
const box = (await pane.boundingBox())!;
await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
await page.mouse.down();
const panFps = await fps(async (i) => page.mouse.move(box.x + box.width / 2 + (i % 40) * 8 - 160, box.y + box.height / 2 + 40));
await page.mouse.up();
const zoomFps = await fps(async (i) => page.mouse.wheel(0, i % 20 < 10 ? -60 : 60));
await browser.close();
await server.close();
fs.rmSync(base, { recursive: true, force: true });
const summary = { nodes: N, links: links.length, open_and_draw_ms: openMs, nodes_in_dom: drawn, pan_fps: +panFps.toFixed(1), zoom_fps: +zoomFps.toFixed(1) };
console.log(`editor benchmark: ${N} nodes, ${links.length} links`);
console.log(`  open + draw ${openMs} ms (target < 2000), ${drawn} nodes in the DOM`);
console.log(`  pan ${summary.pan_fps} fps, zoom ${summary.zoom_fps} fps (target > 30)`);
console.log(JSON.stringify(summary));
