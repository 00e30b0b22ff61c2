/**
 * Issue 19 item 2 (canvas habits) in Chromium: the node context menu, Alt+C, Ctrl+O, the batch count,
 * Ctrl+Shift+Enter (queue to front), Ctrl+Alt+Enter (interrupt), R (node definitions reloaded).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  drag,
  openTemplate,
  readWorkflow,
  shot,
  startEditorHarness,
  type ApiBody,
  type EditorHarness,
  eventually,
  settledBox,
  viewSettled,
} from './harness.ts';

let h: EditorHarness;

beforeAll(async () => {
  h = await startEditorHarness();
}, 120_000);

afterAll(async () => {
  await h?.close();
});

async function exportUi(page: Page): Promise<{
  nodes: {
    id: number;
    title?: string;
    color?: string;
    flags?: Record<string, unknown>;
    mode: number;
    properties: Record<string, unknown>;
  }[];
}> {
  const dl = page.waitForEvent('download');
  await page.getByTestId('btn-export').click();
  return JSON.parse(fs.readFileSync((await (await dl).path())!, 'utf8'));
}

async function menu(page: Page, id: number): Promise<void> {
  await page.getByTestId(`node-${id}`).locator('.weft-node-title').click({ button: 'right' });
  await page.getByTestId('node-menu').waitFor();
}

describe('canvas habits', () => {
  it('node context menu: rename, colour, collapse, pin, bypass, mute, properties, remove', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'invert-image.json');
    await menu(page, 3);
    await shot(page, 'canvas-1-context-menu');
    page.once('dialog', (d) => void d.accept('Flip colours'));
    await page.getByTestId('menu-title').click();
    await eventually(() => page.getByTestId('node-3').locator('.weft-node-title').textContent()).toBe('Flip colours');
    await menu(page, 3);
    await page.getByTestId('menu-color').click();
    await page.getByTestId('menu-color-green').click();
    await eventually(() => page.getByTestId('node-3').locator('.weft-node-title').getAttribute('style')).toMatch(
      /background: rgb\(34, 51, 34\)/,
    );
    await menu(page, 3);
    await page.getByTestId('menu-collapse').click();
    await eventually(() => page.locator('.react-flow__node.collapsed').count()).toBe(1);
    // Links still meet the collapsed node.
    await eventually(() => page.locator('[aria-label="Edge from 2 to 3"]').count()).toBe(1);
    await menu(page, 3);
    await page.getByTestId('menu-pin').click();
    await menu(page, 3);
    await page.getByTestId('menu-bypass').click();
    await eventually(() => page.getByTestId('node-3').getAttribute('class')).toContain('bypassed');
    await menu(page, 2);
    await page.getByTestId('menu-mute').click();
    await eventually(() => page.getByTestId('node-2').getAttribute('class')).toContain('muted');
    await menu(page, 1);
    page.once('dialog', (d) => void d.accept('Source image'));
    await page.getByTestId('menu-properties').click();
    let ui = await exportUi(page);
    const n3 = ui.nodes.find((n) => n.id === 3)!;
    expect(n3).toMatchObject({ title: 'Flip colours', color: '#232', bgcolor: '#353', mode: 4, flags: { collapsed: true, pinned: true } });
    expect(ui.nodes.find((n) => n.id === 2)!.mode).toBe(2);
    expect(ui.nodes.find((n) => n.id === 1)!.properties['Node name for S&R']).toBe('Source image');
    await shot(page, 'canvas-2-menu-applied');
    // A pinned node does not move when dragged (the drag may pan the canvas: compare with another node).
    const before = (await page.getByTestId('node-3').boundingBox())!;
    const other = (await page.getByTestId('node-2').boundingBox())!;
    await page.mouse.move(before.x + 20, before.y + 8);
    await page.mouse.down();
    await page.mouse.move(before.x + 120, before.y + 80, { steps: 6 });
    await page.mouse.up();
    const after = await settledBox(page.getByTestId('node-3'));
    const other2 = await settledBox(page.getByTestId('node-2'));
    expect(Math.abs(after.x - other2.x - (before.x - other.x))).toBeLessThan(1);
    expect(Math.abs(after.y - other2.y - (before.y - other.y))).toBeLessThan(1);
    await menu(page, 4);
    await page.getByTestId('menu-remove').click();
    await page.getByTestId('node-4').waitFor({ state: 'detached' });
    ui = await exportUi(page);
    expect(ui.nodes.map((n) => n.id)).toEqual([1, 2, 3]);
    await page.close();
  });

  it('Alt+C collapses the selection and expands it again', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'invert-image.json');
    await page.getByTestId('node-2').locator('.weft-node-title').click();
    const open = (await page.getByTestId('node-2').boundingBox())!;
    await page.keyboard.press('Alt+c');
    await eventually(() => page.locator('.react-flow__node.collapsed').count()).toBe(1);
    const folded = (await page.getByTestId('node-2').boundingBox())!;
    expect(folded.height).toBeLessThan(open.height / 2);
    await page.keyboard.press('Alt+c');
    await eventually(() => page.locator('.react-flow__node.collapsed').count()).toBe(0);
    await page.close();
  });

  it('Ctrl+drag draws a selection box', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'invert-image.json');
    const b2 = (await page.getByTestId('node-2').boundingBox())!;
    const b3 = (await page.getByTestId('node-3').boundingBox())!;
    const left = Math.min(b2.x, b3.x) - 15;
    const top = Math.min(b2.y, b3.y) - 15;
    await page.keyboard.down('Control');
    await page.mouse.move(left, top);
    await page.mouse.down();
    await page.mouse.move(left + 60, top + 40, { steps: 4 });
    await page.mouse.move(Math.max(b2.x + b2.width, b3.x + b3.width) + 15, Math.max(b2.y + b2.height, b3.y + b3.height) + 15, { steps: 6 });
    await page.mouse.up();
    await page.keyboard.up('Control');
    await eventually(() =>
      page.locator('.weft-node.selected').evaluateAll((els) => els.map((e) => e.getAttribute('data-testid')).sort()),
    ).toEqual(['node-2', 'node-3']);
    await page.close();
  });

  it('Ctrl+O opens the file picker', async () => {
    const page = await h.openPage();
    const chooser = page.waitForEvent('filechooser');
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+o');
    await expect(chooser.then((c) => c.isMultiple())).resolves.toBe(false);
    await page.close();
  });

  it('batch count queues that many runs; Ctrl+Shift+Enter queues to the front; Ctrl+Alt+Enter interrupts', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'invert-image.json');
    await page.getByTestId('batch-count').fill('3');
    const bodies: (ApiBody & { front?: boolean })[] = [];
    page.on('request', (r) => r.url().endsWith('/api/prompt') && r.method() === 'POST' && bodies.push(r.postDataJSON()));
    await page.getByTestId('btn-queue').click();
    await expect.poll(() => bodies.length).toBe(3);
    expect(bodies.every((b) => !b.front)).toBe(true);
    await page.getByTestId('batch-count').fill('1');
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+Shift+Enter');
    await expect.poll(() => bodies.length).toBe(4);
    expect(bodies[3].front).toBe(true);
    const interrupted = page.waitForRequest((r) => r.url().endsWith('/api/interrupt') && r.method() === 'POST');
    await page.keyboard.press('Control+Alt+Enter');
    await interrupted;
    await page.close();
  });

  it('R reloads the node definitions (a new input file appears in LoadImage)', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'invert-image.json');
    fs.copyFileSync(path.join(h.base, 'input/example.png'), path.join(h.base, 'input/added-later.png'));
    const reloaded = page.waitForResponse((r) => r.url().endsWith('/api/object_info'));
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('r');
    await reloaded;
    const widget = page.getByTestId('node-1').getByTestId('widget-image');
    await widget.getByTestId('combo-value').click();
    await eventually(() => widget.locator('li').allTextContents()).toContain('added-later.png');
    await page.close();
  });

  it('inputs, widgets and outputs show their /object_info descriptions on hover', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'txt2img.json');
    const info = (await (await fetch(`${h.server.url}/object_info/KSampler`)).json()) as Record<
      string,
      { input: { required: Record<string, [unknown, { tooltip?: string }?]> }; output_tooltips?: string[] }
    >;
    const ks = info.KSampler;
    const node = page.getByTestId('node-3');
    await eventually(() => node.getByTestId('widget-steps').locator('.w-label').getAttribute('title')).toBe(
      ks.input.required.steps[1]?.tooltip,
    );
    await eventually(() => node.locator('.weft-inputs .socket-row span').first().getAttribute('title')).toBe(
      ks.input.required.model[1]?.tooltip,
    );
    expect(ks.input.required.steps[1]?.tooltip).toMatch(/steps/);
    const outTip = ks.output_tooltips?.[0];
    await eventually(() => node.locator('.weft-outputs .socket-row span').first().getAttribute('title')).toBe(outTip || null);
    await page.close();
  });

  it('a selected node resizes by its corner (width), as one undo step', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'txt2img.json');
    const node = page.getByTestId('node-3');
    const handle = page.locator('.react-flow__node[data-id="3"] .weft-node-resize');
    // The handle shows on a selected node. A click while the template is still being fitted can land beside
    // the moving node (a CI run under load waited 30 s for a handle that never came): wait for the fit, and
    // click again until the node is selected (a click on a selected node keeps it so).
    await viewSettled(page);
    await eventually(async () => {
      if ((await handle.count()) === 0) await node.locator('.weft-node-title').click();
      return handle.count();
    }).toBe(1);
    const before = await settledBox(node);
    const c = (await handle.boundingBox())!;
    await drag(page, { x: c.x + c.width / 2, y: c.y + c.height / 2 }, { x: c.x + c.width / 2 + 90, y: c.y + c.height / 2 });
    const after = await settledBox(node);
    expect(after.width - before.width).toBeGreaterThan(60);
    // The document keeps the new width (canvas units: 90 screen pixels are at least 60 at any zoom ≤ 1.5).
    const saved = (await exportUi(page)).nodes.find((n) => n.id === 3) as { size?: number[] } | undefined;
    const original = readWorkflow('txt2img.json').nodes.find((n) => n.id === 3) as { size?: number[] } | undefined;
    expect(saved!.size![0]).toBeGreaterThan(original!.size![0] + 40);
    await page.keyboard.press('Control+z');
    await expect.poll(async () => (await node.boundingBox())!.width).toBeCloseTo(before.width, 0);
    await shot(page, 'canvas-node-resize');
    await page.close();
  });

  it('produced no console errors', () => {
    expect(h.consoleErrors).toEqual([]);
  });
});
