/**
 * Render paths that keep a big graph fast (issue 19's speed targets; timings are in bench/editor.ts):
 * opening draws each node once, in a view already fitted, and panning or zooming creates no node
 * elements, the level of detail following the zoom without React drawing nodes again.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gridWorkflow, NODE_ELEMENTS_WATCH } from '../../bench/editor-graph.ts';
import { eventually, shot, startEditorHarness, viewportOf, viewSettled, type EditorHarness } from './harness.ts';

// 25 columns by 6 rows: at zoom 1 a corner of it fills the window, fitted it is a band across it.
const COUNT = 150;
let h: EditorHarness;

beforeAll(async () => {
  h = await startEditorHarness();
}, 180_000);

afterAll(async () => {
  await h?.close();
});

/** Opens the grid through the file picker and waits until its fitted view has settled. */
async function openGrid(page: Page): Promise<void> {
  const file = path.join(h.base, `grid-${COUNT}.json`);
  fs.writeFileSync(file, JSON.stringify(gridWorkflow(COUNT)));
  await page.evaluate(NODE_ELEMENTS_WATCH);
  // The zoom at the moment the grid's last node is first attached.
  await page.evaluate(
    `new MutationObserver((_, obs) => { if (document.querySelector('[data-testid="node-${COUNT}"]')) { window.__zoomAtDraw = new DOMMatrix(getComputedStyle(document.querySelector('.react-flow__viewport')).transform).a; obs.disconnect(); } }).observe(document.body, { subtree: true, childList: true })`,
  );
  await page.getByTestId('file-input').setInputFiles(file);
  await page.getByTestId(`node-${COUNT}`).waitFor({ state: 'attached' });
  await viewSettled(page);
}

/**
 * The lowest point of empty canvas in the middle column of the window (pressing there pans, where on a
 * node it would drag the node); for a wheel, which zooms over nodes too, the window's middle will do.
 */
async function emptyCanvasPoint(page: Page, forWheel = false): Promise<{ x: number; y: number }> {
  const box = (await page.locator('.react-flow__pane').boundingBox())!;
  const x = Math.round(box.x + box.width / 2);
  const y = Number(
    await page.evaluate(
      `(() => { const top = ${Math.round(box.y + 10)}, bottom = ${Math.round(box.y + box.height - 10)}; for (let y = bottom; y > top; y--) if (document.elementFromPoint(${x}, y)?.classList.contains('react-flow__pane')) return y; return -1; })()`,
    ),
  );
  if (y >= 0) return { x, y };
  if (forWheel) return { x, y: Math.round(box.y + box.height / 2) };
  throw new Error('no empty canvas in the middle column');
}

/** Zooms by wheel steps, each applied before the next, until `past` holds for the zoom (20 steps at most); the zoom reached. */
async function wheelZoomUntil(page: Page, past: (z: number) => boolean, deltaY: number): Promise<number> {
  for (let step = 0; step < 20 && !past((await viewportOf(page))[2]); step++) {
    const before = (await viewportOf(page))[2];
    const at = await emptyCanvasPoint(page, true);
    await page.mouse.move(at.x, at.y);
    await page.mouse.wheel(0, deltaY);
    await eventually(async () => (await viewportOf(page))[2]).not.toBe(before);
  }
  return (await viewportOf(page))[2];
}

/** Elements a node puts in the page (its React Flow wrapper included), and its drawn size. */
const nodeBox = (page: Page, id: number) =>
  page.evaluate(
    `(() => { const e = document.querySelector('.react-flow__node[data-id="${id}"]'); return { elements: e.querySelectorAll('*').length + 1, width: e.offsetWidth, height: e.offsetHeight }; })()`,
  ) as Promise<{ elements: number; width: number; height: number }>;

const detailClasses = (page: Page) =>
  page
    .locator('.weft-canvas')
    .getAttribute('class')
    .then((c) =>
      (c ?? '')
        .split(' ')
        .filter((x) => x.endsWith('-detail'))
        .sort(),
    );

describe('a big graph on the canvas', () => {
  it('opens with each node drawn once, in a view fitted before drawing', async () => {
    const page = await h.openPage();
    await openGrid(page);
    await shot(page, 'render-paths-grid-fitted');
    expect(await page.locator('.weft-node').count()).toBe(COUNT);
    // Every node element created while opening is still the one drawn: none was removed and drawn again.
    expect(await page.evaluate('[...window.__nodeElements.created].filter((e) => !e.isConnected).length')).toBe(0);
    // The first drawing already had about the fitted zoom (from the saved positions; the fit after
    // drawing corrects for drawn heights), not the zoom of the graph shown before.
    const [, , zoom] = await viewportOf(page);
    const zoomAtDraw = (await page.evaluate('window.__zoomAtDraw')) as number;
    expect(zoom).toBeLessThan(0.3);
    expect(zoomAtDraw / zoom).toBeGreaterThan(0.8);
    expect(zoomAtDraw / zoom).toBeLessThan(1.25);
    await page.close();
  });

  it('pans and zooms without creating node elements; the level of detail follows the zoom', async () => {
    const page = await h.openPage();
    await openGrid(page);
    await page.evaluate('window.__nodeElements.restart()');
    const [x0, y0, fitted] = await viewportOf(page);
    expect(fitted).toBeLessThan(0.2);
    await eventually(() => detailClasses(page)).toEqual(['low-detail', 'minimal-detail']);

    const grab = await emptyCanvasPoint(page);
    await page.mouse.move(grab.x, grab.y);
    await page.mouse.down();
    for (let i = 1; i <= 5; i++) await page.mouse.move(grab.x - i * 20, grab.y - i * 4);
    await page.mouse.up();
    await eventually(async () => (await viewportOf(page))[0]).toBeCloseTo(x0 - 100, 0);
    expect((await viewportOf(page))[1]).toBeCloseTo(y0 - 20, 0);

    // Zoom in step by step (each wheel step applied before the next) past both levels, then out again.
    const zoomTo = (past: (z: number) => boolean, deltaY: number) => wheelZoomUntil(page, past, deltaY);
    const low = await zoomTo((z) => z >= 0.2, -150);
    if (low < 0.4) await eventually(() => detailClasses(page)).toEqual(['low-detail']);
    expect(await zoomTo((z) => z >= 0.4, -150)).toBeGreaterThanOrEqual(0.4);
    await eventually(() => detailClasses(page)).toEqual([]);
    await shot(page, 'render-paths-grid-zoomed');
    expect(await zoomTo((z) => z < 0.2, 150)).toBeLessThan(0.2);
    await eventually(() => detailClasses(page)).toEqual(['low-detail', 'minimal-detail']);

    expect(await page.evaluate('window.__nodeElements.created.size')).toBe(0);
    expect(await page.locator('.weft-node').count()).toBe(COUNT);
    expect(h.consoleErrors).toEqual([]);
    await page.close();
  });

  it('opened zoomed out, draws blank rows for the widgets, then the widgets once zoomed in, at the same node sizes', async () => {
    const page = await h.openPage();
    await openGrid(page);
    await page.evaluate('window.__nodeElements.restart()');
    expect((await viewportOf(page))[2]).toBeLessThan(0.4);
    // Node 1 is an ImageScaleBy (a combo and a number with a slider), node 2 an ImageInvert (no widgets).
    const scale = page.getByTestId('node-1');
    expect(await scale.locator('.widget').count()).toBe(0);
    expect(await scale.locator('.widget-rows-blank').count()).toBe(1);
    const blank = [await nodeBox(page, 1), await nodeBox(page, 2)];
    // The element budget of a zoomed-out node: wrapper, frame, title, body, socket rows with their handles and
    // labels, one blank for all widgets (drawn, the ImageScaleBy has 8 more elements).
    expect(blank[0].elements).toBeLessThanOrEqual(15);
    expect(blank[1].elements).toBeLessThanOrEqual(14);

    expect(await wheelZoomUntil(page, (z) => z >= 0.4, -150)).toBeGreaterThanOrEqual(0.4);
    await eventually(() => scale.getByTestId('widget-scale_by').locator('input[type="number"]').inputValue()).toBe('1.5');
    expect(await scale.getByTestId('widget-upscale_method').getByTestId('combo-value').textContent()).toBe('bilinear');
    expect(await scale.locator('.widget-rows-blank').count()).toBe(0);
    // Drawn widgets take exactly the blank rows' place: nothing moves, React Flow measures no new size.
    const drawn = [await nodeBox(page, 1), await nodeBox(page, 2)];
    expect(drawn.map((b) => [b.width, b.height])).toEqual(blank.map((b) => [b.width, b.height]));
    expect(drawn[0].elements).toBeGreaterThan(blank[0].elements);
    // Zooming out again keeps them drawn (no React work on zoom), and no node element was made anew.
    expect(await wheelZoomUntil(page, (z) => z < 0.2, 150)).toBeLessThan(0.2);
    expect(await scale.locator('.widget').count()).toBe(2);
    expect(await page.evaluate('window.__nodeElements.created.size')).toBe(0);
    expect(h.consoleErrors).toEqual([]);
    await page.close();
  });
});
