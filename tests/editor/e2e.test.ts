import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPngTextChunksAsync } from '../../engine/image/png-text.ts';
import {
  center,
  drag,
  expectDrawn,
  clickWorkflowEntry,
  openTemplate,
  readWorkflow,
  ROOT,
  shot,
  startEditorHarness,
  type ApiBody,
  type EditorHarness,
  type UiWorkflow,
  eventually,
  settledBox,
} from './harness.ts';

let h: EditorHarness;
let base: string;
let consoleErrors: string[];

function openPage(expectedErrors: RegExp[] = []): Promise<Page> {
  return h.openPage(expectedErrors);
}

beforeAll(async () => {
  h = await startEditorHarness({ demoModel: true });
  base = h.base;
  consoleErrors = h.consoleErrors;
}, 120_000);

afterAll(async () => {
  await h?.close();
});

describe('editor in Chromium', () => {
  it('loads a template, draws its nodes and links, queues it and shows the output image', async () => {
    const page = await openPage();
    await clickWorkflowEntry(page, 'wf-template-invert-image.json');
    const wf = JSON.parse(fs.readFileSync(path.join(ROOT, 'workflows/invert-image.json'), 'utf8')) as {
      nodes: { id: number; type: string }[];
      links: unknown[];
    };
    for (const n of wf.nodes) await eventually(() => page.getByTestId(`node-${n.id}`).getAttribute('data-node-type')).toBe(n.type);
    await eventually(() => page.locator('.react-flow__edge').count()).toBe(wf.links.length);
    await eventually(() => page.getByTestId('group-Process').textContent()).toBe('Process');
    await eventually(() => page.getByTestId('group-Process').isVisible()).toBe(true);
    await shot(page, '1-template-loaded');
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+Enter');
    await page.getByTestId('output-image-4').waitFor({ timeout: 90_000 });
    const src = await page.getByTestId('output-image-4').getAttribute('src');
    expect(src).toContain('weft-invert_00001_.png');
    expect(fs.existsSync(path.join(base, 'output', 'weft-invert_00001_.png'))).toBe(true);
    await shot(page, '2-queued-output');
    await page.close();
  });

  it('saves under a new name, and the saved workflow reopens after a reload', async () => {
    const page = await openPage();
    await clickWorkflowEntry(page, 'wf-template-invert-image.json');
    await page.getByTestId('node-2').getByTestId('widget-scale_by').locator('input[type=number]').fill('3');
    page.once('dialog', (d) => void d.accept('my-invert.json'));
    await page.getByTestId('btn-save-as').click();
    await page.getByTestId('doc-name').filter({ hasText: 'my-invert.json' }).waitFor();
    const saved = JSON.parse(fs.readFileSync(path.join(base, 'user/default/workflows/my-invert.json'), 'utf8')) as {
      nodes: { id: number; widgets_values: unknown[] }[];
    };
    expect(saved.nodes.find((n) => n.id === 2)!.widgets_values).toEqual(['bilinear', 3]);
    await page.reload();
    await page.getByTestId('connection').filter({ hasText: 'connected' }).waitFor();
    const draft = page.getByTestId('draft-no');
    if (await draft.isVisible().catch(() => false)) await draft.click();
    await clickWorkflowEntry(page, 'wf-user-my-invert.json');
    await eventually(() => page.getByTestId('node-2').getByTestId('widget-scale_by').locator('input[type=number]').inputValue()).toBe('3');
    await shot(page, '3-reopened');
    await page.close();
  });

  it('opens a PNG written by Weft through the file picker', async () => {
    const page = await openPage();
    const png = path.join(base, 'output', 'weft-invert_00001_.png');
    expect(fs.existsSync(png)).toBe(true);
    await page.getByTestId('file-input').setInputFiles(png);
    await page.getByTestId('node-4').waitFor();
    await eventually(() => page.getByTestId('node-4').getAttribute('data-node-type')).toBe('SaveImage');
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
    await eventually(() => page.getByTestId('missing-dialog').textContent()).toContain('SomeCustomPackNode');
    await eventually(() => page.locator('.weft-node.missing').count()).toBe(1);
    await shot(page, '5-missing-dialog');
    await page.getByTestId('missing-close').click();
    await page.close();
  });

  it('switches the interface and node names to Simplified Chinese', async () => {
    const page = await openPage();
    await clickWorkflowEntry(page, 'wf-template-invert-image.json');
    await page.getByTestId('lang').selectOption('zh');
    await eventually(() => page.getByTestId('btn-queue').textContent()).toBe('运行');
    await eventually(() => page.getByTestId('node-1').locator('.weft-node-title').textContent()).toBe('加载图像');
    await shot(page, '6-chinese');
    await page.getByTestId('lang').selectOption('en');
    await eventually(() => page.getByTestId('btn-queue').textContent()).toBe('Queue');
    await page.close();
  });

  it('lora-embedding template: two stacked LoRA loaders and an embedding in the prompt run from the editor', async () => {
    const page = await openPage();
    const wf = readWorkflow('lora-embedding.json');
    await openTemplate(page, 'lora-embedding.json');
    await expectDrawn(page, wf);
    await page.getByTestId('node-3').getByTestId('widget-steps').locator('input[type=number]').fill('3');
    const posted = page.waitForRequest((r) => r.url().endsWith('/api/prompt') && r.method() === 'POST');
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+Enter');
    const body = (await posted).postDataJSON() as ApiBody;
    expect(body.prompt['10'].inputs.lora_name).toBe('weft-tiny-lora.safetensors');
    expect(body.prompt['11'].inputs.lora_name).toBe('weft-tiny-loha.safetensors');
    expect(String(body.prompt['6'].inputs.text)).toContain('embedding:weft-tiny-style');
    await page.getByTestId('output-image-9').waitFor({ timeout: 150_000 });
    await eventually(() => page.getByTestId('output-image-9').getAttribute('src')).toContain('weft-lora-embedding_00001_.png');
    await page.waitForFunction(`document.querySelector('[data-testid="output-image-9"]')?.naturalWidth > 0`);
    await shot(page, 'lora-embedding-output');
    await page.close();
  }, 200_000);

  it('txt2img template: draws the file, queues with a changed seed, shows the output, saves, reloads and reopens it', async () => {
    const page = await openPage();
    const wf = readWorkflow('txt2img.json');
    await openTemplate(page, 'txt2img.json');
    await expectDrawn(page, wf);
    await shot(page, 'txt2img-1-template');
    const sampler = page.getByTestId('node-3');
    await sampler.getByTestId('widget-seed').locator('input[type=number]').fill('1234');
    // Few steps keep the run short on CPU; the seed is the change under test.
    await sampler.getByTestId('widget-steps').locator('input[type=number]').fill('3');
    const posted = page.waitForRequest((r) => r.url().endsWith('/api/prompt') && r.method() === 'POST');
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+Enter');
    const body = (await posted).postDataJSON() as ApiBody;
    expect(body.prompt['3'].inputs.seed).toBe(1234);
    expect(body.prompt['3'].inputs.steps).toBe(3);
    expect(Object.keys(body.prompt).sort()).toEqual(wf.nodes.map((n) => String(n.id)).sort());
    await page.getByTestId('output-image-9').waitFor({ timeout: 150_000 });
    await eventually(() => page.getByTestId('output-image-9').getAttribute('src')).toContain('weft-txt2img_00001_.png');
    const png = path.join(base, 'output', 'weft-txt2img_00001_.png');
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height]).toEqual([256, 256]);
    const embedded = JSON.parse((await readPngTextChunksAsync(new Uint8Array(fs.readFileSync(png)))).workflow!) as UiWorkflow;
    expect(embedded.nodes.find((n) => n.id === 3)!.widgets_values!.slice(0, 3)).toEqual([1234, 'fixed', 3]);
    await page.waitForFunction(`document.querySelector('[data-testid="output-image-9"]')?.naturalWidth > 0`);
    await shot(page, 'txt2img-2-output');

    page.once('dialog', (d) => void d.accept('my-txt2img.json'));
    await page.getByTestId('btn-save-as').click();
    await page.getByTestId('doc-name').filter({ hasText: 'my-txt2img.json' }).waitFor();
    const saved = JSON.parse(fs.readFileSync(path.join(base, 'user/default/workflows/my-txt2img.json'), 'utf8')) as UiWorkflow;
    expect(saved.links).toEqual(wf.links);
    expect(saved.nodes.find((n) => n.id === 3)!.widgets_values!.slice(0, 3)).toEqual([1234, 'fixed', 3]);
    await page.reload();
    await page.getByTestId('connection').filter({ hasText: 'connected' }).waitFor();
    const draft = page.getByTestId('draft-no');
    if (await draft.isVisible().catch(() => false)) await draft.click();
    await clickWorkflowEntry(page, 'wf-user-my-txt2img.json');
    await page.getByTestId('doc-name').filter({ hasText: 'my-txt2img.json' }).waitFor();
    await expectDrawn(page, saved);
    await eventually(() => page.getByTestId('node-3').getByTestId('widget-seed').locator('input[type=number]').inputValue()).toBe('1234');
    await eventually(() => page.getByTestId('node-3').getByTestId('widget-steps').locator('input[type=number]').inputValue()).toBe('3');
    await shot(page, 'txt2img-3-reopened');
    await page.close();
  }, 240_000);

  it('opens a Weft PNG dropped onto the canvas', async () => {
    const page = await openPage();
    const png = path.join(base, 'output', 'weft-txt2img_00001_.png');
    const b64 = fs.readFileSync(png).toString('base64');
    // A real drop: a DataTransfer holding the file, dispatched on the canvas as the browser would.
    const dt = await page.evaluateHandle(`(() => {
      const bin = atob(${JSON.stringify(b64)});
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'weft-txt2img_00001_.png', { type: 'image/png' }));
      return dt;
    })()`);
    const pane = page.locator('.react-flow__pane');
    await pane.dispatchEvent('dragenter', { dataTransfer: dt });
    await pane.dispatchEvent('dragover', { dataTransfer: dt });
    await pane.dispatchEvent('drop', { dataTransfer: dt });
    await page.getByTestId('node-9').waitFor();
    await expectDrawn(page, readWorkflow('txt2img.json'));
    await eventually(() => page.getByTestId('node-3').getByTestId('widget-seed').locator('input[type=number]').inputValue()).toBe('1234');
    await shot(page, '7-png-dropped');
    await page.close();
  });

  it('refuses a link between incompatible sockets and says why', async () => {
    const page = await openPage();
    await openTemplate(page, 'invert-image.json');
    await drag(
      page,
      await center(page, '[data-testid="node-1"] [data-handleid="out-1"]'),
      await center(page, '[data-testid="node-3"] [data-handleid="in-0"]'),
    );
    await eventually(() => page.getByTestId('toast').textContent()).toBe('MASK cannot connect to IMAGE (image)');
    await eventually(() => page.locator('.react-flow__edge').count()).toBe(3);
    await eventually(() => page.getByTestId('node-search').count()).toBe(0);
    await shot(page, '8-refused-link');
    await page.close();
  });

  it('inserts a reroute on a link, and the queued prompt links through it to the real source', async () => {
    const page = await openPage();
    await openTemplate(page, 'invert-image.json');
    await page.getByTestId('rf__edge-3').dblclick();
    const reroute = page.locator('[data-node-type="Reroute"]');
    await reroute.waitFor();
    const rid = (await reroute.getAttribute('data-testid'))!.slice('node-'.length);
    await eventually(() => page.locator('.react-flow__edge').count()).toBe(4);
    await eventually(() => page.locator(`[aria-label="Edge from 3 to ${rid}"]`).count()).toBe(1);
    await eventually(() => page.locator(`[aria-label="Edge from ${rid} to 4"]`).count()).toBe(1);
    await eventually(() => reroute.getAttribute('title')).toBe('IMAGE');
    // Move the reroute off the straight line, as one would to tidy links.
    const c = await center(page, `[data-testid="node-${rid}"]`);
    await drag(page, c, { x: c.x, y: c.y + 120 });
    await shot(page, '9-reroute');
    const posted = page.waitForRequest((r) => r.url().endsWith('/api/prompt') && r.method() === 'POST');
    await page.getByTestId('btn-queue').click();
    const body = (await posted).postDataJSON() as ApiBody;
    expect(Object.values(body.prompt).map((n) => n.class_type)).not.toContain('Reroute');
    expect(body.prompt['4'].inputs.images).toEqual(['3', 0]);
    await page.getByTestId('output-image-4').waitFor({ timeout: 90_000 });
    await shot(page, '10-reroute-queued');
    await page.close();
  });

  it('groups selected nodes; the group is renamed, recoloured, resized, and carries its nodes when moved', async () => {
    const page = await openPage();
    await openTemplate(page, 'txt2img.json');
    await page.getByTestId('node-6').locator('.weft-node-title').click();
    await page
      .getByTestId('node-7')
      .locator('.weft-node-title')
      .click({ modifiers: ['Shift'] });
    await page.getByTestId('btn-group').click();
    const group = page.getByTestId('group-Group');
    await group.waitFor();
    const gb = (await group.boundingBox())!;
    for (const id of [6, 7]) {
      const nb = (await page.getByTestId(`node-${id}`).boundingBox())!;
      expect(nb.x).toBeGreaterThan(gb.x);
      expect(nb.y).toBeGreaterThan(gb.y);
      expect(nb.x + nb.width).toBeLessThan(gb.x + gb.width);
      expect(nb.y + nb.height).toBeLessThan(gb.y + gb.height);
    }
    await shot(page, '11-group-created');
    await group.locator('.weft-group-title').dblclick();
    await page.getByTestId('group-title-input').fill('Prompts');
    await page.getByTestId('group-title-input').press('Enter');
    const renamed = page.getByTestId('group-Prompts');
    await renamed.waitFor();
    await page.getByTestId('group-color-#b06634').click();
    await eventually(() => renamed.getAttribute('style')).toMatch(/border-color: (rgb\(176, 102, 52\)|#b06634)/);
    const before = (await renamed.boundingBox())!;
    const corner = page.locator('.weft-group-node .react-flow__resize-control.handle.bottom.right');
    await drag(page, await center(page, '.weft-group-node .react-flow__resize-control.handle.bottom.right'), {
      x: before.x + before.width + 10,
      y: before.y + before.height + 30,
    });
    await corner.waitFor();
    const resized = await settledBox(renamed);
    expect(resized.width).toBeGreaterThan(before.width + 5);
    expect(resized.height).toBeGreaterThan(before.height + 20);
    expect(Math.abs(resized.x - before.x)).toBeLessThan(2);
    await shot(page, '12-group-renamed-recoloured-resized');
    const n6 = (await page.getByTestId('node-6').boundingBox())!;
    const n3 = (await page.getByTestId('node-3').boundingBox())!;
    const n5 = (await page.getByTestId('node-5').boundingBox())!;
    const g0 = (await renamed.boundingBox())!;
    const title = await center(page, '[data-testid="group-Prompts"] .weft-group-title');
    await drag(page, { x: title.x - 60, y: title.y }, { x: title.x - 60, y: title.y + 90 });
    const g1 = await settledBox(renamed);
    const m6 = await settledBox(page.getByTestId('node-6'));
    // The drag threshold eats the first few pixels; what matters is that the nodes follow the group exactly.
    expect(g1.y - g0.y).toBeGreaterThan(60);
    expect(Math.abs(m6.y - n6.y - (g1.y - g0.y))).toBeLessThan(2);
    expect(Math.abs(m6.x - n6.x - (g1.x - g0.x))).toBeLessThan(2);
    // Nodes outside the group stay, even the one the group passes over.
    await eventually(() => page.getByTestId('node-3').boundingBox()).toEqual(n3);
    await eventually(() => page.getByTestId('node-5').boundingBox()).toEqual(n5);
    const draft = JSON.parse((await page.evaluate('localStorage.getItem("weft.draft")')) as string) as UiWorkflow;
    expect(draft.groups).toHaveLength(1);
    expect(draft.groups![0]).toMatchObject({ title: 'Prompts', color: '#b06634' });
    await shot(page, '13-group-moved');
    await page.close();
  });

  it('picks a combo value by typing part of it', async () => {
    const page = await openPage();
    await openTemplate(page, 'txt2img.json');
    const widget = page.getByTestId('node-3').getByTestId('widget-sampler_name');
    await widget.getByTestId('combo-value').click();
    await widget.getByTestId('combo-filter').fill('ancestral');
    await eventually(() => widget.locator('li').first().textContent()).toBe('euler_ancestral');
    await shot(page, '14-combo-search');
    await widget.getByTestId('combo-filter').press('Enter');
    await eventually(() => widget.getByTestId('combo-value').textContent()).toBe('euler_ancestral');
    await page.close();
  });

  it('detaches a link dragged off its input, deletes a selected link, and undoes both', async () => {
    const page = await openPage();
    await openTemplate(page, 'invert-image.json');
    const input = await center(page, '[data-testid="node-4"] [data-handleid="in-0"]');
    await drag(page, input, { x: input.x + 40, y: input.y + 200 });
    await eventually(() => page.locator('.react-flow__edge').count()).toBe(2);
    await page.getByTestId('rf__edge-1').click();
    await page.keyboard.press('Delete');
    await eventually(() => page.locator('.react-flow__edge').count()).toBe(1);
    await shot(page, '15-links-removed');
    await page.keyboard.press('Control+z');
    await page.keyboard.press('Control+z');
    await eventually(() => page.locator('.react-flow__edge').count()).toBe(3);
    await page.close();
  });

  it('a primitive node drives the widget it is linked to, and the prompt carries its value', async () => {
    const page = await openPage();
    type EditableNode = { id: number; type: string; inputs?: unknown[]; widgets_values?: unknown[]; [k: string]: unknown };
    const wf = readWorkflow('txt2img.json') as unknown as {
      nodes: EditableNode[];
      links: UiWorkflow['links'];
      last_node_id: number;
      last_link_id: number;
    };
    const sampler = wf.nodes.find((n) => n.id === 3)!;
    const slot = sampler.inputs!.length;
    sampler.inputs!.push({ name: 'seed', type: 'INT', widget: { name: 'seed' }, link: 10 });
    sampler.widgets_values![2] = 3;
    wf.nodes.push({
      id: 10,
      type: 'PrimitiveNode',
      pos: [870, 450],
      size: [320, 100],
      flags: {},
      order: 7,
      mode: 0,
      inputs: [],
      outputs: [{ name: 'connect to widget input', type: 'INT', links: [10], slot_index: 0, widget: { name: 'seed' } }],
      properties: { 'Run widget replace on values': false },
      widgets_values: [555, 'fixed'],
    });
    wf.links.push([10, 10, 0, 3, slot, 'INT']);
    wf.last_node_id = 10;
    wf.last_link_id = 10;
    const file = path.join(base, 'primitive.json');
    fs.writeFileSync(file, JSON.stringify(wf));
    await page.getByTestId('file-input').setInputFiles(file);
    const prim = page.getByTestId('node-10');
    await prim.waitFor();
    await eventually(() => page.getByTestId('missing-dialog').count()).toBe(0);
    await eventually(() => page.getByTestId('node-3').getByTestId('widget-seed').count()).toBe(0);
    await prim.getByTestId('widget-seed').locator('input[type=number]').fill('4321');
    await shot(page, '16-primitive');
    const posted = page.waitForRequest((r) => r.url().endsWith('/api/prompt') && r.method() === 'POST');
    await page.getByTestId('btn-queue').click();
    const body = (await posted).postDataJSON() as ApiBody;
    expect(body.prompt['3'].inputs.seed).toBe(4321);
    expect(Object.values(body.prompt).map((n) => n.class_type)).not.toContain('PrimitiveNode');
    await page.getByTestId('output-image-9').waitFor({ timeout: 150_000 });
    await page.close();
  }, 200_000);

  it('finds nodes by double-clicking the canvas and by dropping a link in empty space (filtered by its type)', async () => {
    const page = await openPage();
    await openTemplate(page, 'invert-image.json');
    await page.locator('.react-flow__pane').dblclick({ position: { x: 500, y: 560 } });
    await page.getByTestId('node-search-input').fill('invert img');
    await eventually(() => page.locator('[data-testid^="search-result-"]').first().getAttribute('data-testid')).toBe(
      'search-result-ImageInvert',
    );
    await page.getByTestId('node-search-input').press('Enter');
    await page.getByTestId('node-5').waitFor();
    await eventually(() => page.getByTestId('node-5').getAttribute('data-node-type')).toBe('ImageInvert');
    const out = await center(page, '[data-testid="node-5"] [data-handleid="out-0"]');
    // Drop well inside the canvas: near its edge React Flow auto-pans while the link is dragged, which
    // can carry the drop point (where the new node goes) out of view.
    await drag(page, out, { x: out.x + 150, y: Math.min(out.y + 30, 560) });
    await eventually(() => page.getByTestId('node-search').locator('.filter').textContent()).toBe('IMAGE');
    await page.getByTestId('node-search-input').fill('preview');
    await shot(page, '17-search-from-link');
    await page.getByTestId('search-result-PreviewImage').click();
    await page.getByTestId('node-6').waitFor();
    await eventually(() => page.getByTestId('node-6').getAttribute('data-node-type')).toBe('PreviewImage');
    await eventually(() => page.locator('[aria-label="Edge from 5 to 6"]').count()).toBe(1);
    await page.close();
  });

  it('bypass and mute are shown and honoured when queueing', async () => {
    // With its only output muted the prompt has nothing to run, which the server refuses (a logged 400).
    const page = await openPage([/status of 400/]);
    await openTemplate(page, 'invert-image.json');
    await page.getByTestId('node-3').locator('.weft-node-title').click();
    await page.keyboard.press('Control+b');
    await eventually(() => page.getByTestId('node-3').getAttribute('class')).toContain('bypassed');
    let posted = page.waitForRequest((r) => r.url().endsWith('/api/prompt') && r.method() === 'POST');
    await page.keyboard.press('Control+Enter');
    let body = (await posted).postDataJSON() as ApiBody;
    expect(Object.keys(body.prompt).sort()).toEqual(['1', '2', '4']);
    expect(body.prompt['4'].inputs.images).toEqual(['2', 0]);
    await page.getByTestId('output-image-4').waitFor({ timeout: 90_000 });
    await page.keyboard.press('Control+b');
    await page.getByTestId('node-4').locator('.weft-node-title').click();
    await page.keyboard.press('Control+m');
    await eventually(() => page.getByTestId('node-4').getAttribute('class')).toContain('muted');
    await shot(page, '18-muted');
    posted = page.waitForRequest((r) => r.url().endsWith('/api/prompt') && r.method() === 'POST');
    await page.keyboard.press('Control+Enter');
    body = (await posted).postDataJSON() as ApiBody;
    expect(Object.keys(body.prompt).sort()).toEqual(['1', '2', '3']);
    await page.getByTestId('toast').waitFor();
    await page.close();
  });

  it('shows validation errors on the offending node and input', async () => {
    // The refused POST is the point of this test; Chromium logs every 400 as a console error.
    const page = await openPage([/status of 400/]);
    await openTemplate(page, 'invert-image.json');
    await page.getByTestId('rf__edge-1').click();
    await page.keyboard.press('Delete');
    await page.keyboard.press('Control+Enter');
    await page.getByTestId('node-error-2').waitFor();
    await eventually(() => page.getByTestId('node-error-2').textContent()).toContain('image: Required input is missing');
    await eventually(() => page.getByTestId('node-2').locator('.socket-error').textContent()).toBe('image');
    await eventually(() => page.getByTestId('node-2').getAttribute('class')).toContain('has-error');
    await shot(page, '19-validation-error');
    await page.close();
  });

  it('gallery shows outputs large with the workflow that made them; the queue panel lists history and reloads it', async () => {
    const page = await openPage();
    await openTemplate(page, 'invert-image.json');
    await page.getByTestId('btn-queue').click();
    await page.getByTestId('output-image-4').waitFor({ timeout: 90_000 });
    await page.getByTestId('btn-gallery').click();
    await page.getByTestId('gallery-image').first().click();
    await page.getByTestId('image-viewer').waitFor();
    await page.getByTestId('viewer-show-workflow').click();
    await eventually(() => page.getByTestId('workflow-json').textContent()).toContain('"ImageInvert"');
    await shot(page, '20-gallery-workflow');
    await page.keyboard.press('Escape');
    await eventually(() => page.getByTestId('image-viewer').count()).toBe(0);
    await page.getByTestId('btn-new').click();
    await eventually(() => page.locator('.weft-node').count()).toBe(0);
    await page.getByTestId('btn-queue-panel').click();
    await eventually(() => page.getByTestId('queue-history').locator('li').count()).toBeGreaterThan(0);
    await shot(page, '21-queue-history');
    await page.getByTestId('history-load').first().click();
    await page.getByTestId('node-4').waitFor();
    await page.close();
  });

  it('copies and pastes nodes, exports UI and API JSON, renames and deletes a saved workflow', async () => {
    const page = await openPage();
    await openTemplate(page, 'invert-image.json');
    await page.getByTestId('node-2').locator('.weft-node-title').click();
    await page
      .getByTestId('node-3')
      .locator('.weft-node-title')
      .click({ modifiers: ['Shift'] });
    await page.keyboard.press('Control+c');
    await page.keyboard.press('Control+v');
    await page.getByTestId('node-6').waitFor();
    await eventually(() => page.getByTestId('node-5').getAttribute('data-node-type')).toBe('ImageScaleBy');
    await eventually(() => page.locator('[aria-label="Edge from 5 to 6"]').count()).toBe(1);
    await eventually(() => page.getByTestId('node-6').getAttribute('class')).toContain('selected');
    await shot(page, '22-pasted');
    const read = async (button: string) => {
      const dl = page.waitForEvent('download');
      await page.getByTestId(button).click();
      return JSON.parse(fs.readFileSync((await (await dl).path())!, 'utf8')) as Record<string, unknown>;
    };
    const ui = (await read('btn-export')) as unknown as UiWorkflow;
    expect(ui.nodes.map((n) => n.id)).toEqual([1, 2, 3, 4, 5, 6]);
    const api = (await read('btn-export-api')) as ApiBody['prompt'];
    expect(api['6']).toMatchObject({ class_type: 'ImageInvert', inputs: { image: ['5', 0] } });

    page.once('dialog', (d) => void d.accept('wf-a'));
    await page.getByTestId('btn-save-as').click();
    await page.getByTestId('doc-name').filter({ hasText: 'wf-a.json' }).waitFor();
    await page.getByTestId('btn-workflows').click();
    page.once('dialog', (d) => void d.accept('wf-b.json'));
    await page.getByTestId('wf-rename-wf-a.json').click();
    await page.getByTestId('wf-user-wf-b.json').waitFor();
    await eventually(() => page.getByTestId('doc-name').textContent()).toBe('wf-b.json');
    expect(fs.existsSync(path.join(base, 'user/default/workflows/wf-b.json'))).toBe(true);
    await page.getByTestId('wf-delete-wf-b.json').click();
    await expect(page.getByTestId('wf-user-wf-b.json').waitFor({ state: 'detached' })).resolves.toBeUndefined();
    expect(fs.existsSync(path.join(base, 'user/default/workflows/wf-b.json'))).toBe(false);
    await page.close();
  });

  it('produced no console errors', () => {
    expect(consoleErrors).toEqual([]);
  });
});
