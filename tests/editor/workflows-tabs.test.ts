/**
 * Issue 19 items 3 and 6 in Chromium: the default graph on a first open, document tabs, the unsaved
 * marker, no edit lost to an open or a close, saving over an existing file only when confirmed, a
 * restored draft keeping its file name, and undo steps for a deletion and for typing into a widget.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTemplate, readWorkflow, shot, startEditorHarness, type EditorHarness, type UiWorkflow, eventually } from './harness.ts';

let h: EditorHarness;
const WORKFLOWS = () => path.join(h.base, 'user/default/workflows');

beforeAll(async () => {
  h = await startEditorHarness();
}, 120_000);

afterAll(async () => {
  await h?.close();
});

async function tabNames(page: Page): Promise<string[]> {
  return page.locator('[data-testid^="tab-"] .tab-name').allTextContents();
}

function scaleInput(page: Page) {
  return page.getByTestId('node-2').getByTestId('widget-scale_by').locator('input[type=number]');
}

describe('workflows: default graph, tabs, unsaved changes', () => {
  it("a first open shows ComfyUI's default txt2img graph", async () => {
    const page = await h.openPage();
    await page.getByTestId('node-9').waitFor();
    const types = await page.locator('.weft-node').evaluateAll((els) => els.map((e) => e.getAttribute('data-node-type')).sort());
    expect(types).toEqual([
      'CLIPTextEncode',
      'CLIPTextEncode',
      'CheckpointLoaderSimple',
      'EmptyLatentImage',
      'KSampler',
      'SaveImage',
      'VAEDecode',
    ]);
    await eventually(() => page.locator('.react-flow__edge').count()).toBe(9);
    for (const [from, to] of [
      [4, 3],
      [5, 3],
      [4, 6],
      [6, 3],
      [4, 7],
      [7, 3],
      [3, 8],
      [4, 8],
      [8, 9],
    ])
      await eventually(() => page.locator(`[aria-label="Edge from ${from} to ${to}"]`).count()).toBe(1);
    await eventually(() => page.getByTestId('node-6').locator('textarea').inputValue()).toContain('purple galaxy bottle');
    await eventually(() => page.getByTestId('unsaved-marker').count()).toBe(0);
    await shot(page, 'tabs-1-default-graph');
    await page.close();
  });

  it('opening a workflow over unsaved edits opens it in a new tab; closing the edited tab asks first', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'invert-image.json');
    // Unchanged, the template is replaced by the next one: still one tab.
    await eventually(() => tabNames(page)).toEqual(['untitled']);
    await scaleInput(page).fill('3');
    await page.getByTestId('unsaved-marker').waitFor();
    await page.getByTestId('tab-dirty-0').waitFor();
    await openTemplate(page, 'txt2img.json');
    await eventually(() => page.locator('[data-testid^="tab-close-"]').count()).toBe(2);
    await eventually(() => page.getByTestId('tab-1').getAttribute('data-active')).toBe('true');
    await eventually(() => page.locator('.weft-node').count()).toBe(readWorkflow('txt2img.json').nodes.length);
    await shot(page, 'tabs-2-two-tabs');
    // The edit is still there in the first tab.
    await page.getByTestId('tab-0').click();
    await eventually(() => scaleInput(page).inputValue()).toBe('3');
    // Closing it asks; dismissed, nothing closes.
    page.once('dialog', (d) => {
      expect(d.type()).toBe('confirm');
      expect(d.message()).toContain('unsaved');
      void d.dismiss();
    });
    await page.getByTestId('tab-close-0').click();
    await eventually(() => page.locator('[data-testid^="tab-close-"]').count()).toBe(2);
    await eventually(() => scaleInput(page).inputValue()).toBe('3');
    // Accepted, the tab closes and the other one shows.
    page.once('dialog', (d) => void d.accept());
    await page.getByTestId('tab-close-0').click();
    await eventually(() => page.locator('[data-testid^="tab-close-"]').count()).toBe(1);
    await page.getByTestId('node-9').waitFor();
    // A clean tab closes without asking (an unexpected dialog would be dismissed and keep it).
    await page.getByTestId('tab-new').click();
    await eventually(() => page.locator('[data-testid^="tab-close-"]').count()).toBe(2);
    await page.getByTestId('tab-close-1').click();
    await eventually(() => page.locator('[data-testid^="tab-close-"]').count()).toBe(1);
    await page.close();
  });

  it('saving under an existing name asks before overwriting it; saving clears the unsaved marker', async () => {
    fs.mkdirSync(WORKFLOWS(), { recursive: true });
    fs.writeFileSync(path.join(WORKFLOWS(), 'taken.json'), JSON.stringify({ nodes: [], links: [], marker: 'old' }));
    const page = await h.openPage();
    await openTemplate(page, 'invert-image.json');
    await scaleInput(page).fill('4');
    // Refused: the prompt names the file, the confirmation is dismissed, the file stays.
    const dialogs: string[] = [];
    const answer = (accept: boolean) => (d: import('playwright-core').Dialog) => {
      dialogs.push(d.type());
      void (d.type() === 'prompt' ? d.accept('taken.json') : accept ? d.accept() : d.dismiss());
    };
    let handler = answer(false);
    page.on('dialog', handler);
    await page.getByTestId('btn-save-as').click();
    await page.getByTestId('toast').filter({ hasText: 'exists' }).waitFor();
    expect(dialogs).toEqual(['prompt', 'confirm']);
    expect(JSON.parse(fs.readFileSync(path.join(WORKFLOWS(), 'taken.json'), 'utf8'))).toMatchObject({ marker: 'old' });
    await eventually(() => page.getByTestId('unsaved-marker').count()).toBe(1);
    page.off('dialog', handler);
    // Confirmed: saved over, named, clean.
    handler = answer(true);
    page.on('dialog', handler);
    await page.getByTestId('btn-save-as').click();
    await page.getByTestId('doc-name').filter({ hasText: 'taken.json' }).waitFor();
    page.off('dialog', handler);
    const saved = JSON.parse(fs.readFileSync(path.join(WORKFLOWS(), 'taken.json'), 'utf8')) as UiWorkflow;
    expect(saved.nodes.find((n) => n.id === 2)!.widgets_values).toEqual(['bilinear', 4]);
    await eventually(() => page.getByTestId('unsaved-marker').count()).toBe(0);
    await eventually(() => page.getByTestId('tab-dirty-0').count()).toBe(0);
    // Undo to before the save makes it unsaved again; redo back to the saved document is clean.
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+z');
    await page.getByTestId('unsaved-marker').waitFor();
    await page.keyboard.press('Control+y');
    await page.getByTestId('unsaved-marker').waitFor({ state: 'detached' });
    await shot(page, 'tabs-3-saved-over');
    await page.close();
  });

  it('a restored draft keeps its file name and saves over its file', async () => {
    const page = await h.openPage();
    page.once('dialog', (d) => void d.accept('drafted.json'));
    await openTemplate(page, 'invert-image.json');
    await page.getByTestId('btn-save-as').click();
    await page.getByTestId('doc-name').filter({ hasText: 'drafted.json' }).waitFor();
    await scaleInput(page).fill('5');
    await page.reload();
    await page.getByTestId('draft-yes').click();
    await page.getByTestId('doc-name').filter({ hasText: 'drafted.json' }).waitFor();
    await eventually(() => scaleInput(page).inputValue()).toBe('5');
    await page.getByTestId('unsaved-marker').waitFor();
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+s');
    await page.getByTestId('unsaved-marker').waitFor({ state: 'detached' });
    const saved = JSON.parse(fs.readFileSync(path.join(WORKFLOWS(), 'drafted.json'), 'utf8')) as UiWorkflow;
    expect(saved.nodes.find((n) => n.id === 2)!.widgets_values).toEqual(['bilinear', 5]);
    await page.close();
  });

  it('typing into a widget is one undo step', async () => {
    const page = await h.openPage();
    await page.getByTestId('node-6').waitFor();
    const text = page.getByTestId('node-6').locator('textarea');
    const before = await text.inputValue();
    await text.click();
    await text.press('End');
    await text.pressSequentially(' more words', { delay: 5 });
    await eventually(() => text.inputValue()).toBe(`${before} more words`);
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+z');
    await eventually(() => text.inputValue()).toBe(before);
    await page.close();
  });

  it('produced no console errors', () => {
    expect(h.consoleErrors).toEqual([]);
  });
});
