/**
 * Editor performance in Debian's Chromium: time to open and draw a 500-node workflow (file picker →
 * every node of the fitted view rendered), and frames per second while panning and zooming it.
 * Run: npx tsx bench/editor.ts [nodes=500]   (builds the editor first if editor/dist is missing)
 * WEFT_EDITOR_DIR=<dir> benches another build of the editor (to compare before/after a change);
 * WEFT_EDITOR_DIRS=<old>,<new> benches two builds interleaved (old, new, then new, old: WEFT_BENCH_PAIRS pairs,
 * default 1) and prints each measure's new/old ratio of the means, for a loaded machine where only ratios
 * mean something; WEFT_BENCH_SCREENSHOT=<file.png> saves the opened graph as drawn.
 * The open's main-thread CPU time (Chromium's ThreadTime) is printed beside its wall time: other processes
 * stretch the wall time, much less the CPU time.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchChromium } from '../tests/editor/chromium.ts';
import { createEnvironment } from '../cli/environment.ts';
import { silentLogger } from '../engine/core/log.ts';
import { startServer } from '../server/server.ts';
import { gridWorkflow, NODE_ELEMENTS_WATCH } from './editor-graph.ts';

const N = Number(process.argv[2] ?? 500);
const ROOT = path.resolve(import.meta.dirname, '..');
if (!process.env.WEFT_EDITOR_DIR && !process.env.WEFT_EDITOR_DIRS && !fs.existsSync(path.join(ROOT, 'editor/dist/index.html')))
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', 'editor'], { cwd: ROOT, stdio: 'ignore' });
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bench-editor-'));
const env = await createEnvironment({ baseDir: base, log: silentLogger, disableCustomNodes: true });

// A 25×20 grid of ImageScaleBy → ImageInvert chains: 500 nodes, 480 links.
const workflow = gridWorkflow(N);
const { links } = workflow;
const file = path.join(base, `big-${N}.json`);
fs.writeFileSync(file, JSON.stringify(workflow));

interface Summary {
  nodes: number;
  links: number;
  open_and_draw_ms: number;
  open_main_thread_cpu_ms: number;
  nodes_in_dom: number;
  elements_in_dom: number;
  pan_fps: number;
  zoom_fps: number;
  close_zoom: number;
  close_pan_fps: number;
  open_node_elements_discarded: number;
  pan_zoom_node_elements_created: number;
}

/** One open, pan, zoom and close-up pan of the grid in a fresh browser, against the editor build in `editorDir` (undefined: editor/dist). */
async function benchOnce(editorDir: string | undefined, breakdown: string[]): Promise<Summary> {
  const server = await startServer({
    port: 0,
    paths: env.paths,
    registry: env.registry,
    executor: env.executor,
    log: silentLogger,
    editorDir,
  });

  const browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(server.url);
  await page.getByTestId('connection').filter({ hasText: 'connected' }).waitFor();
  // Node elements React Flow creates: one created while opening and thrown away again (a node drawn
  // twice), or any created while the view only moves, is React work the timings below pay for.
  await page.evaluate(NODE_ELEMENTS_WATCH);
  const discardedNodes = () => page.evaluate('[...window.__nodeElements.created].filter((e) => !e.isConnected).length') as Promise<number>;
  const createdNodes = () => page.evaluate('window.__nodeElements.created.size') as Promise<number>;
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  async function metrics(): Promise<Record<string, number>> {
    const { metrics: m } = await cdp.send('Performance.getMetrics');
    return Object.fromEntries(m.map((x) => [x.name, x.value]));
  }
  const threadBefore = (await metrics()).ThreadTime ?? 0;
  const t0 = Date.now();
  await page.getByTestId('file-input').setInputFiles(file);
  await page.getByTestId(`node-${N}`).waitFor({ state: 'attached', timeout: 60_000 });
  // Drawn = the fitted view has settled: two animation frames with no layout change.
  await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
  const openMs = Date.now() - t0;
  const openCpuMs = Math.round(((await metrics()).ThreadTime - threadBefore) * 1000);
  const drawn = await page.locator('.react-flow__node').count();
  const elements = (await page.evaluate('document.querySelectorAll("*").length')) as number;
  const openDiscarded = await discardedNodes();
  await page.evaluate('window.__nodeElements.restart()');
  if (process.env.WEFT_BENCH_SCREENSHOT) await page.screenshot({ path: process.env.WEFT_BENCH_SCREENSHOT });

  /** Frames per second during the action, and where the main thread spent its time (ms per frame). */
  async function fps(label: string, action: (i: number) => Promise<void>, frames = 60): Promise<number> {
    // A string, not a function: tsx's name helpers do not exist in the page.
    await page.evaluate('window.__frames = 0; (function tick() { window.__frames++; requestAnimationFrame(tick); })();');
    const before = await metrics();
    const start = Date.now();
    for (let i = 0; i < frames; i++) await action(i);
    const secs = (Date.now() - start) / 1000;
    const after = await metrics();
    const n = (await page.evaluate('window.__frames')) as number;
    const per = (k: string) => (((after[k] ?? 0) - (before[k] ?? 0)) * 1000) / Math.max(1, n);
    const task = per('TaskDuration');
    const script = per('ScriptDuration');
    const layout = per('LayoutDuration') + per('RecalcStyleDuration');
    breakdown.push(
      `  ${label}: main thread ${task.toFixed(1)} ms/frame (script ${script.toFixed(1)}, style+layout ${layout.toFixed(1)}, paint and other ${(task - script - layout).toFixed(1)})`,
    );
    return n / secs;
  }
  const pane = page.locator('.react-flow__pane');
  const box = (await pane.boundingBox())!;
  const cx = box.x + box.width / 2;
  /** The first point of empty canvas below the middle: pressing there pans, where pressing on a node would drag it. */
  async function grabPoint(): Promise<number> {
    const y = Number(
      await page.evaluate(
        `(() => { for (let y = ${Math.round(box.y + box.height / 2)}; y < ${Math.round(box.y + box.height)}; y++) { if (document.elementFromPoint(${cx}, y)?.classList.contains('react-flow__pane')) return y; } return -1; })()`,
      ),
    );
    if (y < 0) throw new Error('no empty canvas to grab for panning');
    return y;
  }
  function viewportX(): Promise<number> {
    return page.evaluate(`new DOMMatrix(getComputedStyle(document.querySelector('.react-flow__viewport')).transform).e`) as Promise<number>;
  }
  let grabY = await grabPoint();
  let x0 = await viewportX();
  await page.mouse.move(cx, grabY);
  await page.mouse.down();
  const panFps = await fps('pan', async (i) => page.mouse.move(cx + (i % 40) * 8 - 160, grabY + 10));
  await page.mouse.up();
  if (Math.abs((await viewportX()) - x0) < 1) throw new Error('the pan did not move the view');
  const zoomFps = await fps('zoom', async (i) => page.mouse.wheel(0, i % 20 < 10 ? -60 : 60));
  const panZoomCreated = await createdNodes();
  // Close up, most nodes are outside the view and painting is cheap: a different cost.
  for (let i = 0; i < 5; i++) await page.mouse.wheel(0, -300);
  await page.evaluate('new Promise((r) => setTimeout(r, 300))');
  const closeZoom = (await page.evaluate(
    `new DOMMatrix(getComputedStyle(document.querySelector('.react-flow__viewport')).transform).a`,
  )) as number;
  grabY = await grabPoint();
  x0 = await viewportX();
  await page.mouse.move(cx, grabY);
  await page.mouse.down();
  const closePanFps = await fps('pan close up', async (i) => page.mouse.move(cx - i * 12, grabY - (i % 20) * 4));
  await page.mouse.up();
  if (Math.abs((await viewportX()) - x0) < 1) throw new Error('the close-up pan did not move the view');
  await browser.close();
  await server.close();
  return {
    nodes: N,
    links: links.length,
    open_and_draw_ms: openMs,
    open_main_thread_cpu_ms: openCpuMs,
    nodes_in_dom: drawn,
    elements_in_dom: elements,
    pan_fps: +panFps.toFixed(1),
    zoom_fps: +zoomFps.toFixed(1),
    close_zoom: +closeZoom.toFixed(2),
    close_pan_fps: +closePanFps.toFixed(1),
    open_node_elements_discarded: openDiscarded,
    pan_zoom_node_elements_created: panZoomCreated,
  };
}

// Issue 19's targets: a 500-node workflow opens in under a second, pan and zoom above 50 fps.
const OPEN_TARGET_MS = 1000;
const FPS_TARGET = 50;
const verdict = (ok: boolean) => (ok ? 'ok' : 'MISSED');

function report(summary: Summary, breakdown: string[]): void {
  const openMs = summary.open_and_draw_ms;
  const panFps = summary.pan_fps;
  const zoomFps = summary.zoom_fps;
  const drawn = summary.nodes_in_dom;
  console.log(`editor benchmark: ${N} nodes, ${links.length} links`);
  console.log(
    `  open + draw ${openMs} ms (target < ${OPEN_TARGET_MS}: ${verdict(openMs < OPEN_TARGET_MS)}; main-thread CPU ${summary.open_main_thread_cpu_ms} ms), ${drawn} nodes and ${summary.elements_in_dom} elements in the DOM`,
  );
  console.log(
    `  pan ${summary.pan_fps} fps, zoom ${summary.zoom_fps} fps (target > ${FPS_TARGET}: ${verdict(panFps > FPS_TARGET && zoomFps > FPS_TARGET)}); pan at zoom ${summary.close_zoom}: ${summary.close_pan_fps} fps`,
  );
  console.log(
    `  node elements: ${summary.open_node_elements_discarded} created and thrown away while opening, ${summary.pan_zoom_node_elements_created} created by the pan and zoom at the fitted view`,
  );
  for (const line of breakdown) console.log(line);
  console.log(JSON.stringify(summary));
}

const pair = process.env.WEFT_EDITOR_DIRS?.split(',').map((d) => path.resolve(d));
if (pair && pair.length !== 2) throw new Error(`WEFT_EDITOR_DIRS names ${pair.length} builds; give two, old and new, separated by a comma`);
// A missing build would otherwise leave the page waiting for an editor that never loads.
for (const d of [...(pair ?? []), ...(process.env.WEFT_EDITOR_DIR ? [path.resolve(process.env.WEFT_EDITOR_DIR)] : [])])
  if (!fs.existsSync(path.join(d, 'index.html')))
    throw new Error(`${d} holds no editor build (no index.html): build it with npx vite build editor --outDir ${d}`);
if (!pair) {
  const breakdown: string[] = [];
  report(await benchOnce(process.env.WEFT_EDITOR_DIR ? path.resolve(process.env.WEFT_EDITOR_DIR) : undefined, breakdown), breakdown);
} else {
  const runs: Summary[][] = [[], []];
  const pairs = Number(process.env.WEFT_BENCH_PAIRS ?? 1);
  // Old, new, new, old, ...: a load that rises or falls during the runs weighs on both builds alike.
  for (let i = 0; i < 2 * pairs; i++)
    for (const which of i % 2 === 0 ? [0, 1] : [1, 0]) {
      const breakdown: string[] = [];
      const s = await benchOnce(pair[which], breakdown);
      console.log(`--- ${which === 0 ? 'old' : 'new'} (${pair[which]}), run ${runs[which].length + 1}`);
      report(s, breakdown);
      runs[which].push(s);
    }
  const mean = (xs: Summary[], k: keyof Summary) => xs.reduce((a, x) => a + x[k], 0) / xs.length;
  console.log(
    `\nnew / old, means of ${runs[0].length} runs each (load average now ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}):`,
  );
  for (const k of ['open_and_draw_ms', 'open_main_thread_cpu_ms', 'elements_in_dom', 'pan_fps', 'zoom_fps', 'close_pan_fps'] as const)
    console.log(
      `  ${k}: old ${mean(runs[0], k).toFixed(1)}, new ${mean(runs[1], k).toFixed(1)}, new/old ${(mean(runs[1], k) / mean(runs[0], k)).toFixed(2)}`,
    );
}
fs.rmSync(base, { recursive: true, force: true });
