/**
 * Regression tests for the bugs listed in issue 19 (item 7), one per bug, in Chromium against a real
 * server. Opening a workflow over unsaved edits is tested with the tabs (workflows-tabs.test.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  openTemplate,
  readWorkflow,
  shot,
  startEditorHarness,
  viewSettled,
  type ApiBody,
  type EditorHarness,
  eventually,
  frames,
} from './harness.ts';

let h: EditorHarness;

beforeAll(async () => {
  h = await startEditorHarness();
}, 120_000);

afterAll(async () => {
  await h?.close();
});

/** The canvas transform: [x, y, zoom]. */
async function viewport(page: Page): Promise<[number, number, number]> {
  const style = (await page.locator('.react-flow__viewport').getAttribute('style')) ?? '';
  const m = /translate\(([-\d.]+)px, ([-\d.]+)px\) scale\(([-\d.]+)\)/.exec(style);
  if (!m) throw new Error(`no transform in viewport style '${style}'`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

async function addBySearch(page: Page, at: { x: number; y: number }, query: string, classType: string): Promise<void> {
  await viewSettled(page);
  await page.locator('.react-flow__pane').dblclick({ position: at });
  await page.getByTestId('node-search-input').fill(query);
  await page.getByTestId(`search-result-${classType}`).click();
}

function writeWorkflow(name: string, nodes: Record<string, unknown>[]): string {
  const file = path.join(h.base, name);
  fs.writeFileSync(
    file,
    JSON.stringify({ last_node_id: nodes.length, last_link_id: 0, nodes, links: [], groups: [], config: {}, extra: {}, version: 0.4 }),
  );
  return file;
}

describe('issue 19 bugs', () => {
  it('the first node added to an empty canvas leaves the zoom at 1 (no pending fitView)', async () => {
    const page = await h.openPage();
    await page.getByTestId('btn-new').click();
    await eventually(() => page.locator('.weft-node').count()).toBe(0);
    const before = await viewport(page);
    await addBySearch(page, { x: 400, y: 300 }, 'invert', 'ImageInvert');
    // A pending fitView runs when the new node is measured (React Flow shows it then), within the frames that follow.
    await page.locator('.weft-node').first().waitFor({ state: 'visible' });
    await frames(page);
    expect(await viewport(page)).toEqual(before);
    expect(before[2]).toBeLessThanOrEqual(1);
    await shot(page, 'bugs-1-first-node-no-zoom');
    await page.close();
  });

  it('deleting a connected node is one undo step, links included', async () => {
    const page = await h.openPage();
    const wf = readWorkflow('invert-image.json');
    await openTemplate(page, 'invert-image.json');
    const exportApi = async (): Promise<ApiBody['prompt']> => {
      const dl = page.waitForEvent('download');
      await page.getByTestId('btn-export-api').click();
      return JSON.parse(fs.readFileSync((await (await dl).path())!, 'utf8')) as ApiBody['prompt'];
    };
    const before = await exportApi();
    await page.getByTestId('node-3').locator('.weft-node-title').click();
    await page.keyboard.press('Delete');
    await page.getByTestId('node-3').waitFor({ state: 'detached' });
    await eventually(() => page.locator('.react-flow__edge').count()).toBe(wf.links.length - 2);
    await page.keyboard.press('Control+z');
    await page.getByTestId('node-3').waitFor();
    await eventually(() => page.locator('.weft-node').count()).toBe(wf.nodes.length);
    await eventually(() => page.locator('.react-flow__edge').count()).toBe(wf.links.length);
    // The document itself (not only the drawing) has every link back: the exported prompt is the one before.
    expect(await exportApi()).toEqual(before);
    await page.close();
  });

  it('pastes land at the cursor, each further paste shifted; Ctrl+Shift+V keeps the incoming links', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'invert-image.json');
    await page.getByTestId('node-3').locator('.weft-node-title').click();
    await page.keyboard.press('Control+c');
    await page.mouse.move(700, 560);
    await page.keyboard.press('Control+v');
    await page.keyboard.press('Control+v');
    await page.getByTestId('node-6').waitFor();
    const zoom = (await viewport(page))[2];
    const a = (await page.getByTestId('node-5').boundingBox())!;
    const b = (await page.getByTestId('node-6').boundingBox())!;
    // The first copy's corner is at the cursor; the second is one step (20 canvas units) further.
    expect(Math.abs(a.x - 700)).toBeLessThan(3);
    expect(Math.abs(a.y - 560)).toBeLessThan(3);
    expect(Math.abs(b.x - a.x - 20 * zoom)).toBeLessThan(2);
    expect(Math.abs(b.y - a.y - 20 * zoom)).toBeLessThan(2);
    // Plain pastes have no links from outside; with Shift the copy keeps the link from node 2.
    await eventually(() => page.locator('[aria-label="Edge from 2 to 5"]').count()).toBe(0);
    await page.mouse.move(300, 600);
    await page.keyboard.press('Control+Shift+v');
    await page.getByTestId('node-7').waitFor();
    await eventually(() => page.locator('[aria-label="Edge from 2 to 7"]').count()).toBe(1);
    await shot(page, 'bugs-3-pastes');
    await page.close();
  });

  it('POST /history, /queue, /interrupt and /free answer an empty body, as ComfyUI does', async () => {
    for (const [route, body] of [
      ['/history', { clear: true }],
      ['/queue', { clear: true }],
      ['/interrupt', {}],
      ['/free', {}],
      ['/api/history', { delete: ['nothing'] }],
    ] as const) {
      const r = await fetch(`${h.server.url}${route}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect([route, r.status, await r.text()]).toEqual([route, 200, '']);
    }
    // The editor's history panel clears without a console error (checked at the end).
    const page = await h.openPage();
    await page.getByTestId('btn-queue-panel').click();
    await page.getByTestId('panel-queue').waitFor();
    const cleared = page.waitForResponse((r) => r.url().endsWith('/api/history') && r.request().method() === 'POST');
    await page.getByTestId('panel-queue').getByRole('button', { name: /clear/i }).last().click();
    expect((await cleared).status()).toBe(200);
    await page.close();
  });

  it('Ctrl+A selects every node and no page text', async () => {
    const page = await h.openPage();
    const wf = readWorkflow('invert-image.json');
    await openTemplate(page, 'invert-image.json');
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+a');
    await eventually(() => page.locator('.weft-node.selected').count()).toBe(wf.nodes.length);
    await eventually(() => page.evaluate('String(window.getSelection())')).toBe('');
    await shot(page, 'bugs-5-select-all');
    await page.close();
  });

  it("LoadImageMask's channel in a file from before the upload value was saved reads as saved, not '(missing)'", async () => {
    const page = await h.openPage();
    const file = writeWorkflow('old-mask.json', [
      {
        id: 1,
        type: 'LoadImageMask',
        pos: [100, 100],
        size: [315, 82],
        flags: {},
        order: 0,
        mode: 0,
        outputs: [{ name: 'MASK', type: 'MASK', links: [], slot_index: 0 }],
        properties: {},
        widgets_values: ['example.png', 'red'],
      },
    ]);
    await page.getByTestId('file-input').setInputFiles(file);
    const channel = page.getByTestId('node-1').getByTestId('widget-channel');
    await channel.waitFor();
    await eventually(() => channel.getByTestId('combo-value').textContent()).toBe('red');
    const dl = page.waitForEvent('download');
    await page.getByTestId('btn-export-api').click();
    const api = JSON.parse(fs.readFileSync((await (await dl).path())!, 'utf8')) as ApiBody['prompt'];
    expect(api['1'].inputs).toEqual({ image: 'example.png', channel: 'red' });
    await shot(page, 'bugs-6-loadimagemask-channel');
    await page.close();
  });

  it('widgets stay inside a narrow node (VAE Encode for Inpainting at ComfyUI’s 210 px)', async () => {
    const page = await h.openPage();
    const file = writeWorkflow('narrow.json', [
      {
        id: 1,
        type: 'VAEEncodeForInpaint',
        pos: [100, 100],
        size: [210, 98],
        flags: {},
        order: 0,
        mode: 0,
        inputs: [
          { name: 'pixels', type: 'IMAGE', link: null },
          { name: 'vae', type: 'VAE', link: null },
          { name: 'mask', type: 'MASK', link: null },
        ],
        outputs: [{ name: 'LATENT', type: 'LATENT', links: [], slot_index: 0 }],
        properties: {},
        widgets_values: [6],
      },
    ]);
    await page.getByTestId('file-input').setInputFiles(file);
    const node = page.getByTestId('node-1');
    await node.getByTestId('widget-grow_mask_by').waitFor();
    // The node's box and its widgets' edges are read at one zoom, after the fit.
    await viewSettled(page);
    const box = (await node.boundingBox())!;
    const rights = await node.evaluate((el) =>
      [...el.querySelectorAll('.widget, .widget *')].map((c) => (c as HTMLElement).getBoundingClientRect().right),
    );
    expect(rights.length).toBeGreaterThan(1);
    for (const r of rights) expect(r).toBeLessThanOrEqual(box.x + box.width + 0.5);
    await shot(page, 'bugs-7-narrow-node');
    await page.close();
  });

  it('Save Image and Preview Image show no output, as ComfyUI’s', async () => {
    const page = await h.openPage();
    await page.getByTestId('btn-new').click();
    await addBySearch(page, { x: 300, y: 300 }, 'save image', 'SaveImage');
    await addBySearch(page, { x: 700, y: 300 }, 'preview image', 'PreviewImage');
    await page.getByTestId('node-2').waitFor();
    for (const id of [1, 2]) {
      await eventually(() => page.getByTestId(`node-${id}`).locator('[data-handleid^="out-"]').count()).toBe(0);
      await eventually(() => page.getByTestId(`node-${id}`).locator('[data-handleid="in-0"]').count()).toBe(1);
    }
    const dl = page.waitForEvent('download');
    await page.getByTestId('btn-export').click();
    const ui = JSON.parse(fs.readFileSync((await (await dl).path())!, 'utf8')) as { nodes: { type: string; outputs: unknown[] }[] };
    expect(ui.nodes.map((n) => [n.type, n.outputs])).toEqual([
      ['SaveImage', []],
      ['PreviewImage', []],
    ]);
    await page.close();
  });

  it('VAE Decode and VAE Encode are in ComfyUI’s category (latent)', async () => {
    const info = (await (await fetch(`${h.server.url}/object_info`)).json()) as Record<string, { category: string }>;
    expect([info.VAEDecode.category, info.VAEEncode.category, info.VAEEncodeForInpaint.category]).toEqual([
      'latent',
      'latent',
      'latent/inpaint',
    ]);
  });

  it('produced no console errors', () => {
    expect(h.consoleErrors).toEqual([]);
  });
});
