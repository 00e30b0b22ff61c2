/**
 * Issue 19 item 2, the last canvas habits, in Chromium: Shift+drag moves a socket's links (every link of
 * an output, the link of an input) as one undo step; Space+mouse move pans the canvas by the mouse's
 * movement; the node menu converts widgets to input sockets and back, and a ComfyUI file holding
 * converted widgets (`inputs[].widget`) opens and saves as it was.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  center,
  drag,
  eventually,
  shot,
  startEditorHarness,
  viewportOf,
  viewSettled,
  type ApiBody,
  type EditorHarness,
  type UiWorkflow,
} from './harness.ts';

let h: EditorHarness;

beforeAll(async () => {
  h = await startEditorHarness();
}, 120_000);

afterAll(async () => {
  await h?.close();
});

type FileInput = { name: string; type: string; link: number | null; widget?: { name: string } };
type FileNode = { id: number; type: string; inputs: FileInput[]; outputs: { name: string; type: string; links: number[] }[] } & Record<
  string,
  unknown
>;

function node(
  id: number,
  type: string,
  pos: [number, number],
  inputs: FileInput[],
  outputs: FileNode['outputs'],
  widgets: unknown[],
): FileNode {
  return { id, type, pos, size: [260, 120], flags: {}, order: id - 1, mode: 0, inputs, outputs, properties: {}, widgets_values: widgets };
}

async function openFile(page: Page, name: string, wf: Record<string, unknown>): Promise<void> {
  const file = path.join(h.base, name);
  fs.writeFileSync(file, JSON.stringify(wf));
  await page.getByTestId('file-input').setInputFiles(file);
  const first = (wf.nodes as FileNode[])[0];
  await page.getByTestId(`node-${first.id}`).waitFor();
  await viewSettled(page);
}

async function exportUi(page: Page): Promise<Omit<UiWorkflow, 'nodes'> & { nodes: FileNode[] }> {
  const dl = page.waitForEvent('download');
  await page.getByTestId('btn-export').click();
  return JSON.parse(fs.readFileSync((await (await dl).path())!, 'utf8')) as Omit<UiWorkflow, 'nodes'> & { nodes: FileNode[] };
}

/** Each edge as "from>to", sorted. */
async function edges(page: Page): Promise<string[]> {
  const labels = await page.locator('.react-flow__edge').evaluateAll((els) => els.map((e) => e.getAttribute('aria-label') ?? ''));
  return labels.map((l) => l.replace(/^Edge from (\d+) to (\d+)$/, '$1>$2')).sort();
}

/** Two images, the first feeding two inverts, the second one: links to move around. */
function imagesFile(): Record<string, unknown> {
  const img = (id: number, links: number[], y: number) =>
    node(
      id,
      'LoadImage',
      [0, y],
      [],
      [
        { name: 'IMAGE', type: 'IMAGE', links },
        { name: 'MASK', type: 'MASK', links: [] },
      ],
      ['example.png', 'image'],
    );
  const inv = (id: number, link: number, y: number) =>
    node(id, 'ImageInvert', [420, y], [{ name: 'image', type: 'IMAGE', link }], [{ name: 'IMAGE', type: 'IMAGE', links: [] }], []);
  return {
    last_node_id: 5,
    last_link_id: 3,
    nodes: [img(1, [1, 2], 0), img(2, [3], 420), inv(3, 1, 0), inv(4, 2, 200), inv(5, 3, 420)],
    links: [
      [1, 1, 0, 3, 0, 'IMAGE'],
      [2, 1, 0, 4, 0, 'IMAGE'],
      [3, 2, 0, 5, 0, 'IMAGE'],
    ],
    groups: [],
    config: {},
    extra: {},
    version: 0.4,
  };
}

async function shiftDrag(page: Page, from: string, to: string): Promise<void> {
  await page.keyboard.down('Shift');
  await drag(page, await center(page, from), await center(page, to));
  await page.keyboard.up('Shift');
}

describe('canvas habits: links, pan, widget inputs', () => {
  it('Shift+drag from an output moves all its links to the output it is dropped on, as one undo step', async () => {
    const page = await h.openPage();
    await openFile(page, 'links.json', imagesFile());
    const original = ['1>3', '1>4', '2>5'];
    await eventually(() => edges(page)).toEqual(original);
    await shiftDrag(page, '[data-testid="node-1"] [data-handleid="out-0"]', '[data-testid="node-2"] [data-handleid="out-0"]');
    await eventually(() => edges(page)).toEqual(['2>3', '2>4', '2>5']);
    await shot(page, 'canvas-links-1-moved');
    // No selection box was drawn by the Shift+drag, and the document holds the moved links.
    await eventually(() => page.locator('.weft-node.selected').count()).toBe(0);
    const ui = await exportUi(page);
    expect(ui.links.map((l) => [l[1], l[2], l[3], l[4]]).sort()).toEqual([
      [2, 0, 3, 0],
      [2, 0, 4, 0],
      [2, 0, 5, 0],
    ]);
    expect(ui.nodes.find((n) => n.id === 1)!.outputs[0].links).toEqual([]);
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+z');
    await eventually(() => edges(page)).toEqual(original);
    await page.close();
  });

  it('Shift+drag from a linked input moves its link to the input it is dropped on', async () => {
    const page = await h.openPage();
    await openFile(page, 'links.json', imagesFile());
    await eventually(() => edges(page)).toEqual(['1>3', '1>4', '2>5']);
    await shiftDrag(page, '[data-testid="node-3"] [data-handleid="in-0"]', '[data-testid="node-5"] [data-handleid="in-0"]');
    // Node 5's own link is replaced, as any link dropped on a taken input.
    await eventually(() => edges(page)).toEqual(['1>4', '1>5']);
    const dl = page.waitForEvent('download');
    await page.getByTestId('btn-export-api').click();
    const api = JSON.parse(fs.readFileSync((await (await dl).path())!, 'utf8')) as ApiBody['prompt'];
    expect(api['5'].inputs.image).toEqual(['1', 0]);
    expect(api['3']?.inputs.image).toBeUndefined();
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+z');
    await eventually(() => edges(page)).toEqual(['1>3', '1>4', '2>5']);
    await page.close();
  });

  it('Space+mouse move pans the canvas by the mouse movement; moving without Space does not', async () => {
    const page = await h.openPage();
    await openFile(page, 'links.json', imagesFile());
    const pane = (await page.locator('.react-flow__pane').boundingBox())!;
    const start = { x: pane.x + pane.width / 2, y: pane.y + pane.height - 40 };
    await page.mouse.move(start.x, start.y);
    const before = await viewportOf(page);
    await page.keyboard.down('Space');
    await page.locator('body[data-space-pan]').waitFor({ state: 'attached' });
    await page.mouse.move(start.x + 130, start.y - 70, { steps: 8 });
    await page.keyboard.up('Space');
    await page.locator('body:not([data-space-pan])').waitFor({ state: 'attached' });
    const [x, y, zoom] = before;
    await eventually(async () => {
      const v = await viewportOf(page);
      return [Math.round(v[0] - x), Math.round(v[1] - y), v[2]];
    }).toEqual([130, -70, zoom]);
    const panned = await viewportOf(page);
    await page.mouse.move(start.x - 100, start.y - 100, { steps: 4 });
    // The moves above were handled (the window saw them) without moving the view.
    await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
    expect(await viewportOf(page)).toEqual(panned);
    await shot(page, 'canvas-links-2-space-pan');
    await page.close();
  });

  it('a ComfyUI file with converted widgets opens and saves as it was; the node menu converts widgets to inputs and back', async () => {
    const page = await h.openPage();
    // KSampler as a frontend before 1.16 saved it, seed converted to an input (unlinked); EmptyLatentImage
    // as the frontend saves nodes since 1.16, every widget listed (none converted).
    const latentInputs: FileInput[] = ['width', 'height', 'batch_size'].map((n) => ({
      name: n,
      type: 'INT',
      widget: { name: n },
      link: null,
    }));
    const samplerInputs: FileInput[] = [
      { name: 'model', type: 'MODEL', link: null },
      { name: 'positive', type: 'CONDITIONING', link: null },
      { name: 'negative', type: 'CONDITIONING', link: null },
      { name: 'latent_image', type: 'LATENT', link: 1 },
      { name: 'seed', type: 'INT', widget: { name: 'seed' }, link: null },
    ];
    const wf = {
      last_node_id: 2,
      last_link_id: 1,
      nodes: [
        node(
          1,
          'KSampler',
          [420, 0],
          samplerInputs,
          [{ name: 'LATENT', type: 'LATENT', links: [] }],
          [77, 'fixed', 9, 6.5, 'euler', 'normal', 1],
        ),
        node(2, 'EmptyLatentImage', [0, 0], latentInputs, [{ name: 'LATENT', type: 'LATENT', links: [1] }], [320, 192, 1]),
      ],
      links: [[1, 2, 0, 1, 3, 'LATENT']],
      groups: [],
      config: {},
      extra: {},
      version: 0.4,
    };
    await openFile(page, 'converted.json', wf);
    const sampler = page.getByTestId('node-1');
    const latent = page.getByTestId('node-2');
    // The converted seed is a socket and no widget; the 1.16-style node keeps every widget.
    await eventually(() => sampler.locator('.weft-inputs .socket-row span').allTextContents()).toEqual([
      'model',
      'positive',
      'negative',
      'latent_image',
      'seed',
    ]);
    await eventually(() => sampler.getByTestId('widget-seed').count()).toBe(0);
    await eventually(() => latent.locator('.weft-inputs .socket-row').count()).toBe(0);
    await eventually(() => latent.getByTestId('widget-width').count()).toBe(1);
    let ui = await exportUi(page);
    expect(ui.nodes.find((n) => n.id === 1)!.inputs).toEqual(samplerInputs);
    expect(ui.nodes.find((n) => n.id === 2)!.inputs).toEqual(latentInputs);
    expect(ui.links).toEqual(wf.links);
    await shot(page, 'canvas-links-3-converted-widgets');

    // Back to a widget: the seed input goes, its widget shows the saved value.
    await sampler.locator('.weft-node-title').click({ button: 'right' });
    await page.getByTestId('menu-toWidget').click();
    await page.getByTestId('menu-toWidget-seed').click();
    await sampler.getByTestId('widget-seed').waitFor();
    await eventually(() => sampler.getByTestId('widget-seed').locator('input[type=number]').inputValue()).toBe('77');
    // A widget to an input on the 1.16-style node: width becomes a socket; its link keeps pointing at the right slot.
    await latent.locator('.weft-node-title').click({ button: 'right' });
    await page.getByTestId('menu-toInput').click();
    await page.getByTestId('menu-toInput-width').click();
    await latent.getByTestId('widget-width').waitFor({ state: 'detached' });
    await eventually(() => latent.locator('.weft-inputs .socket-row span').allTextContents()).toEqual(['width']);
    ui = await exportUi(page);
    expect(ui.nodes.find((n) => n.id === 1)!.inputs).toEqual(samplerInputs.slice(0, 4));
    expect(ui.nodes.find((n) => n.id === 2)!.inputs).toEqual([{ name: 'width', type: 'INT', widget: { name: 'width' }, link: null }]);
    expect(ui.links).toEqual(wf.links);
    // An unlinked converted widget still gives its value to the prompt, as in ComfyUI.
    const dl = page.waitForEvent('download');
    await page.getByTestId('btn-export-api').click();
    const api = JSON.parse(fs.readFileSync((await (await dl).path())!, 'utf8')) as ApiBody['prompt'];
    expect(api['2'].inputs).toEqual({ width: 320, height: 192, batch_size: 1 });
    expect(api['1'].inputs.seed).toBe(77);
    await shot(page, 'canvas-links-4-menu-converted');
    await page.close();
  });

  it('a file opened before the node classes have arrived waits for them instead of calling every node missing', async () => {
    let answered = false;
    const page = await h.openPage([], undefined, {
      beforeLoad: async (p) => {
        await p.route('**/object_info', async (route) => {
          await new Promise((r) => setTimeout(r, 1500));
          answered = true;
          await route.continue();
        });
      },
    });
    const wf = {
      last_node_id: 1,
      last_link_id: 0,
      nodes: [node(1, 'EmptyLatentImage', [0, 0], [], [{ name: 'LATENT', type: 'LATENT', links: [] }], [320, 192, 1])],
      links: [],
      groups: [],
      config: {},
      extra: {},
      version: 0.4,
    };
    const file = path.join(h.base, 'early.json');
    fs.writeFileSync(file, JSON.stringify(wf));
    await page.getByTestId('file-input').setInputFiles(file);
    expect(answered).toBe(false);
    await page.getByTestId('node-1').getByTestId('widget-width').waitFor();
    expect(answered).toBe(true);
    expect(await page.getByTestId('missing-dialog').count()).toBe(0);
    await eventually(() => page.getByTestId('node-1').getByTestId('widget-width').locator('input[type=number]').inputValue()).toBe('320');
    await page.close();
  });

  it('produced no console errors', () => {
    expect(h.consoleErrors).toEqual([]);
  });
});
