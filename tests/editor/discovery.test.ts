/**
 * Discovery in the editor (issue 19, item 5), in Chromium: Notes and MarkdownNotes of ComfyUI files
 * show their text, notes and primitives are added from the search, which opens at the cursor, finds
 * nodes by Chinese names, and after a link drop offers only nodes that take the link; zh-CN names the
 * node's sockets and widgets and the help panel.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { center, drag, openTemplate, shot, startEditorHarness, viewSettled, type EditorHarness, eventually } from './harness.ts';

let h: EditorHarness;

beforeAll(async () => {
  h = await startEditorHarness();
}, 120_000);

afterAll(async () => {
  await h?.close();
});

const NOTE = 'Load the checkpoint first.\nThen queue.';
const MARKDOWN = '# Read me\nUse **euler** with `20` steps.\n- one\n- two';

/** A ComfyUI-written file with a Note and a MarkdownNote (their text is widgets_values[0]). */
function notesFile(): string {
  const node = (id: number, type: string, text: string) => ({
    id,
    type,
    pos: [100 + 350 * (id - 1), 100],
    size: [320, 160],
    flags: {},
    order: id - 1,
    mode: 0,
    properties: { text: '' },
    widgets_values: [text],
    color: '#432',
    bgcolor: '#653',
  });
  const wf = {
    last_node_id: 2,
    last_link_id: 0,
    nodes: [node(1, 'Note', NOTE), node(2, 'MarkdownNote', MARKDOWN)],
    links: [],
    groups: [],
    config: {},
    extra: {},
    version: 0.4,
  };
  const file = path.join(h.base, 'notes.json');
  fs.writeFileSync(file, JSON.stringify(wf));
  return file;
}

async function searchFromCanvas(page: Page, at: { x: number; y: number }, query: string): Promise<void> {
  await viewSettled(page);
  const input = page.getByTestId('node-search-input');
  // On a loaded machine the two clicks can arrive too far apart to be a double click: try again, a few times.
  for (let i = 0; i < 3 && !(await input.isVisible()); i++) {
    await page.locator('.react-flow__pane').dblclick({ position: at });
    await input.waitFor({ timeout: 10_000 }).catch(() => undefined);
  }
  await input.fill(query);
}

describe('discovery', () => {
  it("shows the text of a ComfyUI file's Note and MarkdownNote, and edits it", async () => {
    const page = await h.openPage();
    await page.getByTestId('file-input').setInputFiles(notesFile());
    await page.getByTestId('node-2').waitFor();
    // The double-click below lands where the settled view puts the note.
    await viewSettled(page);
    await eventually(() => page.getByTestId('missing-dialog').count()).toBe(0);
    await eventually(() => page.getByTestId('note-text-1').inputValue()).toBe(NOTE);
    const md = page.getByTestId('note-text-2');
    await eventually(() => md.locator('h3').textContent()).toBe('Read me');
    await eventually(() => md.locator('strong').textContent()).toBe('euler');
    await eventually(() => md.locator('li').allTextContents()).toEqual(['one', 'two']);
    await shot(page, 'discovery-1-notes');
    // Double-click edits the Markdown source; the text is the node's widget value (what is saved).
    await md.dblclick();
    await page.getByTestId('note-text-2').fill('## Changed');
    await page.getByTestId('note-text-1').click();
    await eventually(() => page.getByTestId('note-text-2').locator('h4').textContent()).toBe('Changed');
    const exported = page.waitForEvent('download');
    await page.getByTestId('btn-export').click();
    const saved = JSON.parse(fs.readFileSync((await (await exported).path())!, 'utf8')) as {
      nodes: { id: number; widgets_values: unknown[] }[];
    };
    expect(saved.nodes.find((n) => n.id === 2)?.widgets_values).toEqual(['## Changed']);
    await page.close();
  });

  it('adds a Note and a PrimitiveNode from the search, which opens at the cursor', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'invert-image.json');
    const pane = (await page.locator('.react-flow__pane').boundingBox())!;
    await searchFromCanvas(page, { x: 600, y: 200 }, 'note');
    const box = (await page.getByTestId('node-search').boundingBox())!;
    expect([Math.round(box.x), Math.round(box.y)]).toEqual([Math.round(pane.x + 600), Math.round(pane.y + 200)]);
    await page.getByTestId('search-result-Note').click();
    const note = page.locator('.weft-node[data-node-type="Note"]');
    await note.waitFor();
    const nb = (await note.boundingBox())!;
    // The node's top-left lands where the search was opened.
    expect(Math.abs(nb.x - (pane.x + 600))).toBeLessThan(3);
    expect(Math.abs(nb.y - (pane.y + 200))).toBeLessThan(3);
    await note.locator('textarea').fill('remember the seed');
    // Near the window's right edge the box moves inside it.
    await searchFromCanvas(page, { x: 1150, y: 150 }, 'primitive');
    const edge = (await page.getByTestId('node-search').boundingBox())!;
    expect(edge.x + edge.width).toBeLessThanOrEqual(1280);
    expect(edge.y + edge.height).toBeLessThanOrEqual(720);
    await page.getByTestId('search-result-PrimitiveNode').click();
    const prim = page.locator('.weft-node[data-node-type="PrimitiveNode"]');
    await prim.waitFor();
    await eventually(() => prim.locator('.socket-row.out').textContent()).toBe('connect to widget input');
    await eventually(() => prim.evaluate((el) => el.classList.contains('missing'))).toBe(false);
    await shot(page, 'discovery-2-added');
    await page.close();
  });

  it('a link dropped in empty space offers only nodes taking its type', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'invert-image.json');
    // LoadImage's IMAGE output: ImageInvert takes an IMAGE; LoadImage itself only gives one.
    const out = await center(page, '[data-testid="node-1"] [data-handleid="out-0"]');
    await drag(page, out, { x: out.x + 120, y: out.y + 160 });
    await eventually(() => page.getByTestId('node-search').locator('.filter').textContent()).toBe('IMAGE');
    await page.getByTestId('node-search-input').fill('image');
    const offered = await page
      .locator('[data-testid^="search-result-"]')
      .evaluateAll((els) => els.map((e) => e.getAttribute('data-testid')!.slice(14)));
    expect(offered).toContain('ImageInvert');
    expect(offered).toContain('SaveImage');
    expect(offered).not.toContain('LoadImage');
    expect(offered).not.toContain('EmptyImage');
    await page.close();
  });

  it('in Simplified Chinese: search by Chinese name, node sockets and widgets, categories and the help panel', async () => {
    const page = await h.openPage();
    await page.getByTestId('lang').selectOption('zh');
    await openTemplate(page, 'invert-image.json');
    await searchFromCanvas(page, { x: 600, y: 450 }, '反转图像');
    const first = page.locator('[data-testid^="search-result-"]').first();
    await eventually(() => first.getAttribute('data-testid')).toBe('search-result-ImageInvert');
    await eventually(() => first.textContent()).toBe('反转图像 图像/颜色');
    await page.getByTestId('node-search-input').fill('缩放');
    await eventually(() => page.locator('[data-testid^="search-result-"]').first().getAttribute('data-testid')).toMatch(/ImageScale/);
    await page.getByTestId('node-search-input').press('Escape');
    // The template's LoadImage node: title, output and widget names in Chinese.
    const load = page.getByTestId('node-1');
    await eventually(() => load.locator('.weft-node-title').textContent()).toBe('加载图像');
    await eventually(() => load.locator('.socket-row.out span').allTextContents()).toEqual(['图像', '遮罩']);
    await eventually(() => load.getByTestId('widget-image').locator('.w-label').textContent()).toBe('图像');
    await eventually(() => load.getByTestId('upload-button').textContent()).toBe('选择文件上传');
    await page.getByTestId('btn-help').click();
    const help = await page.getByTestId('panel-help').textContent();
    expect(help).toContain('快捷键');
    expect(help).toContain('撤销 / 重做');
    expect(help).toContain('适应视图');
    for (const zh of ['排队到最前', '全选节点', '粘贴并保留连线', '框选', '折叠', '刷新节点定义', '将其连线移到另一个插槽', '平移画布'])
      expect(help).toContain(zh);
    expect(help).not.toMatch(/undo|fit view|mute|bypass/);
    await shot(page, 'discovery-3-zh');
    await page.close();
  });

  it('produced no console errors', () => {
    expect(h.consoleErrors).toEqual([]);
  });
});
