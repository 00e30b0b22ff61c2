/**
 * The ControlNet example workflows (issue 14) run from the editor, not only from the CLI
 * (tests/controlnet/workflows.test.ts): each template opens in Chromium, is queued with the Queue
 * button on the demo model and demo ControlNet that `weft make-model tiny` writes, and its SaveImage
 * shows the picture the server saved. What the editor posts must also be what the CLI would run.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertOrThrow } from '../../engine/graph/convert.ts';
import { makeDemoControlNet } from '../../engine/models/controlnet/generate.ts';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import { openTemplate, readWorkflow, shot, startEditorHarness, type ApiBody, type EditorHarness } from './harness.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
let h: EditorHarness;

beforeAll(async () => {
  h = await startEditorHarness({ demoModel: true });
  makeDemoControlNet(path.join(h.base, 'models/checkpoints/weft-tiny-sd1.safetensors'), path.join(h.base, 'models'), 0);
  // the depth map and the pose skeleton the multi and pose examples load (scripts/make-controlnet-workflows.ts)
  for (const f of ['example-depth.png', 'example-pose.png']) fs.copyFileSync(path.join(ROOT, 'input', f), path.join(h.base, 'input', f));
}, 180_000);

afterAll(async () => {
  await h?.close();
});

describe('ControlNet example workflows queued from the editor', () => {
  for (const file of ['controlnet-canny.json', 'controlnet-multi.json', 'controlnet-pose.json']) {
    it(`${file}: opens, queues, and shows the saved image`, async () => {
      const page = await h.openPage();
      await openTemplate(page, file);
      const posted = page.waitForRequest((r) => r.url().endsWith('/api/prompt') && r.method() === 'POST');
      await page.getByTestId('btn-queue').click();
      const body = (await posted).postDataJSON() as ApiBody;
      const info = (await (await fetch(`${h.server.url}/object_info`)).json()) as ObjectInfo;
      expect(body.prompt).toEqual(JSON.parse(JSON.stringify(convertOrThrow(readWorkflow(file), info))));
      await page.getByTestId('output-image-9').waitFor({ timeout: 170_000 });
      const out = fs.readdirSync(path.join(h.base, 'output')).filter((f) => f.startsWith(`weft-${file.replace('.json', '')}`));
      expect(out.length).toBe(1);
      const meta = await sharp(path.join(h.base, 'output', out[0])).metadata();
      expect([meta.width, meta.height]).toEqual([256, 256]);
      await shot(page, `workflow-run-${file.replace('.json', '')}`);
      expect(h.consoleErrors).toEqual([]);
      await page.close();
    }, 180_000);
  }
});
