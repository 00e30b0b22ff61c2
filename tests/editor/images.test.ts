/**
 * Images into the editor (issue 19, item 1), in Chromium: LoadImage's upload button, the preview on
 * the node, the combo refreshed, a run of img2img on the uploaded image; an image dropped on the
 * canvas or pasted becomes a LoadImage; the mask editor paints, saves through /upload/mask (into the
 * image's alpha, as ComfyUI's server stores it) and the inpaint workflow runs on the result.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTemplate, ROOT, shot, startEditorHarness, type ApiBody, type EditorHarness, eventually } from './harness.ts';

let h: EditorHarness;
let photo: Buffer;
const W = 96;
const H = 64;

/** A picture of our own: a colour gradient with a few pure-colour blocks, opaque. */
async function makePhoto(): Promise<Buffer> {
  const px = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const i = (y * W + x) * 3;
      px[i] = Math.round((255 * x) / (W - 1));
      px[i + 1] = Math.round((255 * y) / (H - 1));
      px[i + 2] = x < 16 && y < 16 ? 255 : 40;
    }
  return sharp(px, { raw: { width: W, height: H, channels: 3 } })
    .png()
    .toBuffer();
}

beforeAll(async () => {
  h = await startEditorHarness({ demoModel: true });
  photo = await makePhoto();
  // The inpaint template's own image, so opening it previews without a 404.
  fs.copyFileSync(path.join(ROOT, 'input/example-inpaint.png'), path.join(h.base, 'input/example-inpaint.png'));
}, 120_000);

afterAll(async () => {
  await h?.close();
});

/** A DataTransfer holding `bytes` as a file, in the page. */
async function transfer(page: Page, bytes: Buffer, name: string, type = 'image/png') {
  return page.evaluateHandle(
    ([b64, n, t]) => {
      const bin = atob(b64);
      const a = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) a[i] = bin.charCodeAt(i);
      const dt = new DataTransfer();
      dt.items.add(new File([a], n, { type: t }));
      return dt;
    },
    [bytes.toString('base64'), name, type] as const,
  );
}

async function imageValue(page: Page, nodeId: number): Promise<string> {
  return (await page.getByTestId(`node-${nodeId}`).getByTestId('widget-image').getByTestId('combo-value').getAttribute('title')) ?? '';
}

async function previewSize(page: Page, nodeId: number): Promise<[number, number]> {
  const img = page.getByTestId(`node-${nodeId}`).getByTestId('upload-preview');
  await img.waitFor();
  await page.waitForFunction(
    (el) => (el as HTMLImageElement).complete && (el as HTMLImageElement).naturalWidth > 0,
    await img.elementHandle(),
  );
  return img.evaluate((el) => [(el as HTMLImageElement).naturalWidth, (el as HTMLImageElement).naturalHeight] as [number, number]);
}

describe('images into the editor', () => {
  it('uploads through the LoadImage button, previews it on the node, refreshes the combo and runs img2img on it', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'img2img.json');
    const file = path.join(h.base, 'my-photo.png');
    fs.writeFileSync(file, photo);
    await page.getByTestId('node-10').getByTestId('upload-input').setInputFiles(file);
    await page.waitForFunction(
      () => document.querySelector('[data-testid="node-10"] [data-testid="combo-value"]')?.getAttribute('title') === 'my-photo.png',
    );
    // Stored byte for byte in the input folder, under the picked name.
    expect(fs.readFileSync(path.join(h.base, 'input', 'my-photo.png')).equals(photo)).toBe(true);
    await eventually(() => previewSize(page, 10)).toEqual([W, H]);
    // The combo lists the new file (object_info reloaded): not shown as missing, and offered in the list.
    await page.getByTestId('node-10').getByTestId('combo-value').filter({ hasNotText: '(missing)' }).waitFor();
    await page.getByTestId('node-10').getByTestId('combo-value').click();
    await eventually(() => page.getByTestId('combo-popup').locator('li', { hasText: 'my-photo.png' }).count()).toBe(1);
    await page.keyboard.press('Escape');
    await shot(page, 'images-1-uploaded');

    const sent = page.waitForRequest((r) => r.url().endsWith('/api/prompt') && r.method() === 'POST');
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+Enter');
    const body = (await sent).postDataJSON() as ApiBody;
    expect(body.prompt['10'].inputs.image).toBe('my-photo.png');
    await page.getByTestId('output-image-9').waitFor({ timeout: 240_000 });
    const out = fs.readdirSync(path.join(h.base, 'output')).filter((f) => f.startsWith('weft-img2img'));
    expect(out.length).toBe(1);
    expect((await sharp(path.join(h.base, 'output', out[0])).metadata()).width).toBe(256);
    await shot(page, 'images-2-img2img-ran');
    await page.close();
  }, 300_000);

  it('a PNG without a workflow dropped on the canvas becomes a LoadImage node; dropped on a LoadImage it replaces its image', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'img2img.json');
    const before = await page.locator('.weft-node').count();
    const dt = await transfer(page, photo, 'dropped.png');
    const pane = page.locator('.react-flow__pane');
    const box = (await pane.boundingBox())!;
    const at = { clientX: box.x + 40, clientY: box.y + box.height - 40 };
    await pane.dispatchEvent('dragover', { dataTransfer: dt, ...at });
    await pane.dispatchEvent('drop', { dataTransfer: dt, ...at });
    await page.waitForFunction((n) => document.querySelectorAll('.weft-node').length === n + 1, before);
    const added = page.locator('.weft-node[data-node-type="LoadImage"]').last();
    const id = Number((await added.getAttribute('data-testid'))!.slice(5));
    expect(id).toBeGreaterThan(12);
    await eventually(() => imageValue(page, id)).toBe('dropped.png');
    await eventually(() => previewSize(page, id)).toEqual([W, H]);
    // No workflow was opened and no error shown: the template's nodes are all still there.
    await eventually(() => page.getByTestId('node-3').count()).toBe(1);
    await eventually(() => page.getByTestId('toast').count()).toBe(0);

    const other = await sharp(photo).negate({ alpha: false }).png().toBuffer();
    const dt2 = await transfer(page, other, 'dropped-on-node.png');
    const node = page.getByTestId('node-10');
    await node.dispatchEvent('dragover', { dataTransfer: dt2 });
    await node.dispatchEvent('drop', { dataTransfer: dt2 });
    await page.waitForFunction(
      () => document.querySelector('[data-testid="node-10"] [data-testid="combo-value"]')?.getAttribute('title') === 'dropped-on-node.png',
    );
    expect(fs.readFileSync(path.join(h.base, 'input', 'dropped-on-node.png')).equals(other)).toBe(true);
    await eventually(() => page.locator('.weft-node').count()).toBe(before + 1);
    await shot(page, 'images-3-dropped');
    await page.close();
  });

  it('a pasted image goes into the selected LoadImage, or into a new LoadImage when none is selected', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'img2img.json');
    const paste = async (bytes: Buffer) => {
      const dt = await transfer(page, bytes, 'image.png');
      await page.evaluate((d) => window.dispatchEvent(new ClipboardEvent('paste', { clipboardData: d as DataTransfer })), dt);
    };
    // Selected LoadImage: its image is replaced by the pasted one (stored under a dated name).
    await page.getByTestId('node-10').locator('.weft-node-title').click();
    await paste(photo);
    await page.waitForFunction(() =>
      /^pasted-.*\.png$/.test(document.querySelector('[data-testid="node-10"] [data-testid="combo-value"]')?.getAttribute('title') ?? ''),
    );
    const name = await imageValue(page, 10);
    expect(fs.readFileSync(path.join(h.base, 'input', name)).equals(photo)).toBe(true);
    // Nothing selected: a new LoadImage appears.
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    const before = await page.locator('.weft-node').count();
    await page.mouse.move(300, 500);
    await paste(photo);
    await page.waitForFunction((n) => document.querySelectorAll('.weft-node').length === n + 1, before);
    await eventually(() => page.locator('.weft-node[data-node-type="LoadImage"]').count()).toBe(2);
    await page.close();
  });

  it('mask editor: paints, erases, inverts and zooms, saves into the image alpha through /upload/mask, and inpaint runs on it', async () => {
    const page = await h.openPage();
    await openTemplate(page, 'inpaint.json');
    const file = path.join(h.base, 'to-mask.png');
    fs.writeFileSync(file, photo);
    await page.getByTestId('node-10').getByTestId('upload-input').setInputFiles(file);
    await page.waitForFunction(
      () => document.querySelector('[data-testid="node-10"] [data-testid="combo-value"]')?.getAttribute('title') === 'to-mask.png',
    );
    await page.getByTestId('node-10').getByTestId('open-mask-editor').click();
    const canvas = page.getByTestId('mask-canvas');
    await page.waitForFunction(() => document.querySelector('[data-testid="mask-canvas"]')?.getAttribute('data-ready') === 'true');
    const zoom0 = await page.getByTestId('mask-zoom').textContent();
    await page.getByTestId('mask-zoom-in').click();
    expect(await page.getByTestId('mask-zoom').textContent()).not.toBe(zoom0);
    // Invert twice and clear leave nothing painted; then paint a brush of 10 px along a line at y = 32
    // from x = 20 to x = 70 (image pixels), and erase its middle.
    await page.getByTestId('mask-invert').click();
    await page.getByTestId('mask-invert').click();
    await page.getByTestId('mask-clear').click();
    await page.getByTestId('mask-size').fill('10');
    const b = (await canvas.boundingBox())!;
    const toScreen = (x: number, y: number) => ({ x: b.x + ((x + 0.5) * b.width) / W, y: b.y + ((y + 0.5) * b.height) / H });
    const stroke = async (x0: number, x1: number, y: number) => {
      const p0 = toScreen(x0, y);
      const p1 = toScreen(x1, y);
      await page.mouse.move(p0.x, p0.y);
      await page.mouse.down();
      await page.mouse.move(p1.x, p1.y, { steps: 12 });
      await page.mouse.up();
    };
    await stroke(20, 70, 32);
    await page.getByTestId('mask-eraser').click();
    await page.getByTestId('mask-size').fill('12');
    await stroke(44, 46, 32);
    await shot(page, 'images-4-mask-editor');
    await page.getByTestId('mask-save').click();
    await page.getByTestId('mask-editor').waitFor({ state: 'detached' });
    const value = await imageValue(page, 10);
    expect(value).toMatch(/^clipspace\/clipspace-mask-\d+\.png \[input\]$/);
    const saved = path.join(h.base, 'input', value.replace(/ \[input\]$/, ''));
    const { data, info } = await sharp(saved).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([W, H, 4]);
    const orig = await sharp(photo).raw().toBuffer();
    const alpha = (x: number, y: number) => data[(y * W + x) * 4 + 3];
    // RGB is the original's, untouched; alpha is 0 under the brush, 255 away from it and where erased.
    for (let i = 0; i < W * H; i++)
      for (let c = 0; c < 3; c++) if (data[i * 4 + c] !== orig[i * 3 + c]) throw new Error(`RGB changed at pixel ${i}`);
    for (const x of [22, 30, 36, 54, 60, 68]) expect(alpha(x, 32)).toBe(0);
    for (const [x, y] of [
      [45, 32],
      [5, 5],
      [90, 60],
      [45, 10],
      [45, 50],
    ])
      expect(alpha(x, y)).toBe(255);
    await eventually(() => previewSize(page, 10)).toEqual([W, H]);

    const sent = page.waitForRequest((r) => r.url().endsWith('/api/prompt') && r.method() === 'POST');
    await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+Enter');
    expect(((await sent).postDataJSON() as ApiBody).prompt['10'].inputs.image).toBe(value);
    await page.getByTestId('output-image-9').waitFor({ timeout: 240_000 });
    await shot(page, 'images-5-inpaint-ran');
    // Reopening the editor shows the saved mask painted where the alpha is 0.
    await page.getByTestId('node-10').getByTestId('open-mask-editor').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="mask-canvas"]')?.getAttribute('data-ready') === 'true');
    // The saved mask is drawn after the image has loaded: poll until it is there (CI once read the canvas in between).
    await eventually(() =>
      canvas.evaluate((c) => {
        const d = (c as HTMLCanvasElement).getContext('2d')!.getImageData(0, 0, 96, 64).data;
        return [d[(32 * 96 + 30) * 4 + 3], d[(5 * 96 + 5) * 4 + 3]];
      }),
    ).toEqual([255, 0]);
    await page.getByTestId('mask-cancel').click();
    await page.close();
  }, 300_000);

  it('produced no console errors', () => {
    expect(h.consoleErrors).toEqual([]);
  });
});
