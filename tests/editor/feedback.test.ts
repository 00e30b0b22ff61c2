/**
 * Run feedback in the editor (issue 19, item 4), in Chromium: progress in the tab title and a top
 * bar, the latent preview scaled to the node, the queue panel with names, times and thumbnails, the
 * gallery rebuilt from /history after a reload (previous / next / download), and a run-time error
 * that stays on screen in a dialog showing no server file-system paths.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineNode } from '../../engine/registry/types.ts';
import { shot, eventually, openTemplate, startEditorHarness, type EditorHarness } from './harness.ts';

/** A path outside every folder the server knows, so only the editor can keep it off the screen. */
const FOREIGN = '/srv/private-cache/weights/secret-7f3a.bin';

let h: EditorHarness;
let base: string;

beforeAll(async () => {
  h = await startEditorHarness({
    demoModel: true,
    // A node failing as a library would: its message names files by absolute path, one the server
    // knows (the input folder, which it redacts itself) and one it does not.
    prepare: (env) => {
      const inputDir = env.paths.inputDir;
      env.registry.register(
        defineNode({
          name: 'WeftTestFailWithPath',
          displayName: 'Fail With Path',
          category: 'testing',
          inputs: { required: { image: { type: 'IMAGE' } } },
          outputs: [],
          outputNode: true,
          run() {
            throw new Error(`cannot map ${FOREIGN} (while reading ${path.join(inputDir, 'example.png')}): permission denied`);
          },
        }),
        'tests',
      );
    },
  });
  base = h.base;
}, 120_000);

afterAll(async () => {
  await h?.close();
});

const openPage = (): Promise<Page> => h.openPage([], undefined, { acceptDownloads: true });

async function setWidget(page: Page, node: number, widget: string, value: string): Promise<void> {
  await page.getByTestId(`node-${node}`).getByTestId(`widget-${widget}`).locator('input[type=number]').fill(value);
}

/** LoadImage into the failing node. */
const failingWorkflow = {
  last_node_id: 2,
  last_link_id: 1,
  nodes: [
    {
      id: 1,
      type: 'LoadImage',
      pos: [0, 0],
      size: [300, 300],
      flags: {},
      order: 0,
      mode: 0,
      inputs: [],
      outputs: [
        { name: 'IMAGE', type: 'IMAGE', links: [1] },
        { name: 'MASK', type: 'MASK', links: [] },
      ],
      properties: {},
      widgets_values: ['example.png', 'image'],
    },
    {
      id: 2,
      type: 'WeftTestFailWithPath',
      pos: [400, 0],
      size: [300, 80],
      flags: {},
      order: 1,
      mode: 0,
      inputs: [{ name: 'image', type: 'IMAGE', link: 1 }],
      outputs: [],
      properties: {},
      widgets_values: [],
    },
  ],
  links: [[1, 1, 0, 2, 0, 'IMAGE']],
  groups: [],
  config: {},
  extra: {},
  version: 0.4,
};

function outputsOnDisk(): string[] {
  return fs.existsSync(path.join(base, 'output')) ? fs.readdirSync(path.join(base, 'output')).filter((f) => f.endsWith('.png')) : [];
}

describe('run feedback', () => {
  it('shows progress in the tab title and a top bar, the preview scaled to the node, and names in the queue panel', async () => {
    const page = await openPage();
    await openTemplate(page, 'txt2img.json');
    await eventually(() => page.title()).toBe('untitled - Weft');
    await setWidget(page, 3, 'steps', '20');
    await page.getByTestId('btn-queue-panel').click();
    // The tiny model runs in a second or two: what the page shows meanwhile is recorded as it changes.
    await page.evaluate(() => {
      const seen = {
        titles: [] as string[],
        bars: [] as string[],
        running: [] as string[],
        names: [] as string[],
        previews: [] as number[][],
      };
      (window as unknown as { seen: typeof seen }).seen = seen;
      const add = (list: string[], v: string | null | undefined) => v && list.at(-1) !== v && list.push(v);
      const look = () => {
        add(seen.titles, document.title);
        add(seen.bars, document.querySelector('[data-testid="top-progress-label"]')?.textContent);
        add(seen.running, document.querySelector('[data-testid="queue-running-node"]')?.textContent);
        add(seen.names, document.querySelector('[data-testid="queue-item-running"] [data-testid="queue-names"]')?.textContent);
      };
      new MutationObserver(look).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
      document.addEventListener(
        'load',
        (e) => {
          const img = e.target as HTMLImageElement;
          if (img.dataset?.testid !== 'preview-3') return;
          const body = img.closest('.weft-node-body') as HTMLElement;
          seen.previews.push([img.offsetWidth, body.clientWidth, img.naturalWidth]);
        },
        true,
      );
    });
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    // Two prompts: the second waits while the first runs.
    await page.keyboard.press('Control+Enter');
    await setWidget(page, 3, 'seed', '43');
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+Enter');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="history-item"]').length === 2, undefined, {
      timeout: 240_000,
    });
    await page.waitForFunction(() => document.title === 'untitled - Weft');
    const seen = await page.evaluate(
      () =>
        (window as unknown as { seen: { titles: string[]; bars: string[]; running: string[]; names: string[]; previews: number[][] } })
          .seen,
    );
    // The title counts the steps in percent, with the queue size while one waits: `[45%][2] untitled - Weft`.
    const percents = seen.titles.flatMap((t) => /^\[(\d+)%\](?:\[\d+\])? untitled - Weft$/.exec(t)?.[1] ?? []).map(Number);
    expect(percents.length).toBeGreaterThan(2);
    // Steps of 1/20 are 5% each (React may fold the last one into the next node's start).
    for (const pc of percents) expect(pc % 5).toBe(0);
    expect(Math.max(...percents)).toBeGreaterThanOrEqual(50);
    // While prompts are queued the title counts them too.
    expect(seen.titles.some((t) => /\[[12]\] untitled - Weft$/.test(t))).toBe(true);
    expect(seen.bars.length).toBeGreaterThan(2);
    // The bar names whichever node runs, with its steps when it has some.
    const names = ['Load Checkpoint', 'CLIP Text Encode (Prompt)', 'Empty Latent Image', 'KSampler', 'VAE Decode', 'Save Image'];
    for (const b of seen.bars) expect(names).toContain(b.replace(/ \d+\/20$/, ''));
    expect(seen.bars.some((b) => /^KSampler \d+\/20$/.test(b))).toBe(true);
    // The running prompt names its running node and its output node, not ids.
    expect(seen.running).toContain('▶ KSampler');
    // Names only, never prompt ids ('…' while the queue's content is fetched).
    expect(seen.names.length).toBeGreaterThan(0);
    for (const n of seen.names) expect(['…', 'Save Image']).toContain(n);
    expect(seen.names).toContain('Save Image');
    // The latent preview (32×32 here) spans the node body less its 8 px margins, whatever its own size.
    expect(seen.previews.length).toBeGreaterThan(0);
    for (const [shown, body, natural] of seen.previews) {
      expect(natural).toBe(32);
      expect(shown).toBe(body - 16);
    }
    // Both done: the title is plain again; the history lists each with a thumbnail, a time and the output's name.
    await eventually(() => page.getByTestId('top-progress').count()).toBe(0);
    for (const item of await page.getByTestId('history-item').all()) {
      expect(await item.getByTestId('history-time').textContent()).toMatch(/^done · \d+\.\d s · /);
      expect(await item.locator('.history-id').textContent()).toMatch(/^#\d+ Save Image$/);
      const src = await item.getByTestId('history-thumb').getAttribute('src');
      expect(src).toMatch(/filename=weft-txt2img_0000[12]_\.png/);
    }
    await shot(page, 'feedback-1-queue-panel');
    await page.close();
  }, 300_000);

  it('the gallery survives a reload (from /history), steps with previous/next and downloads the image shown', async () => {
    const page = await openPage();
    await page.getByTestId('btn-gallery').click();
    const files = outputsOnDisk().sort();
    expect(files.length).toBe(2);
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="gallery-image"]').length === n, files.length);
    await page.getByTestId('gallery-image').first().click();
    await eventually(() => page.getByTestId('viewer-position').textContent()).toBe(`1 / ${files.length}`);
    await eventually(() => page.getByTestId('viewer-prev').isDisabled()).toBe(true);
    const first = await page.getByTestId('image-viewer').locator('img').getAttribute('src');
    await page.getByTestId('viewer-next').click();
    await eventually(() => page.getByTestId('viewer-position').textContent()).toBe(`2 / ${files.length}`);
    const second = await page.getByTestId('image-viewer').locator('img').getAttribute('src');
    expect(second).not.toBe(first);
    expect(await page.getByTestId('viewer-next').isDisabled()).toBe(true);
    await page.keyboard.press('ArrowLeft');
    await eventually(() => page.getByTestId('viewer-position').textContent()).toBe(`1 / ${files.length}`);
    const download = page.waitForEvent('download');
    await page.getByTestId('viewer-download').click();
    const d = await download;
    const name = new URL(first!, h.server.url).searchParams.get('filename')!;
    expect(d.suggestedFilename()).toBe(name);
    expect(fs.readFileSync((await d.path())!).equals(fs.readFileSync(path.join(base, 'output', name)))).toBe(true);
    await shot(page, 'feedback-2-gallery-viewer');
    await page.close();
  }, 300_000);

  it('a run-time failure opens a dialog that stays until closed, names the node and shows no server paths', async () => {
    const page = await openPage();
    const file = path.join(base, 'fails.json');
    fs.writeFileSync(file, JSON.stringify(failingWorkflow));
    await page.getByTestId('file-input').setInputFiles(file);
    await page.getByTestId('node-2').waitFor();
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+Enter');
    const dialog = page.getByTestId('error-dialog');
    await dialog.waitFor({ timeout: 30_000 });
    const text = (await dialog.textContent()) ?? '';
    expect(await page.getByTestId('error-node').textContent()).toBe('Fail With Path #2');
    expect(await page.getByTestId('error-message').textContent()).toBe(
      'Error: cannot map …/secret-7f3a.bin (while reading <input>/example.png): permission denied',
    );
    // Neither the foreign path, nor the server's base folder, nor any absolute path is on screen.
    expect(text).not.toContain('/srv/');
    expect(text).not.toContain(base);
    expect(text).not.toMatch(/(^|[\s'"(])\/[a-z]/i);
    await shot(page, 'feedback-3-error-dialog');
    // It stays while the user does other things (a notice would have gone), until closed.
    await page.getByTestId('btn-queue-panel').click({ force: true });
    await page.getByTestId('node-2').locator('.node-error').waitFor();
    expect(await dialog.count()).toBe(1);
    await page.getByTestId('error-close').click();
    expect(await dialog.count()).toBe(0);
    await page.close();
  });

  it('keeps the error on its node when the answer to the prompt arrives after the failure', async () => {
    // The race of a run that fails at once, made certain: the answer to POST /prompt is held back
    // until the execution_error has come over the socket and opened the dialog.
    const page = await openPage();
    await page.route('**/prompt', async (route) => {
      if (route.request().method() !== 'POST') return route.fallback();
      const answer = await route.fetch();
      await page.getByTestId('error-dialog').waitFor({ timeout: 30_000 });
      await route.fulfill({ response: answer });
    });
    const file = path.join(base, 'fails-late-answer.json');
    fs.writeFileSync(file, JSON.stringify(failingWorkflow));
    await page.getByTestId('file-input').setInputFiles(file);
    await page.getByTestId('node-2').waitFor();
    const answered = page.waitForResponse((r) => r.url().endsWith('/prompt') && r.request().method() === 'POST');
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+Enter');
    await answered;
    // The editor has had the answer; its handling must not have wiped the node's error.
    await page.evaluate(() => new Promise((r) => setTimeout(r, 300)));
    expect(await page.getByTestId('node-2').locator('.node-error').count()).toBe(1);
    await page.getByTestId('error-close').click();
    await page.close();
  });

  it('produced no console errors', () => {
    expect(h.consoleErrors).toEqual([]);
  });
});
