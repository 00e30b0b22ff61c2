/**
 * The SDXL and SD2 example workflows (issue 18) queued from the editor in Chromium, as the CLI tests run
 * them (tests/sdxl/workflows.test.ts, tests/sd2/workflow.test.ts): each template opens, its size and
 * steps are cut down by typing into the node widgets, the Queue button posts the prompt convert.ts
 * makes of the same edits, and the SaveImage node shows the image the server saved, at the typed size.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinySd2Checkpoint } from '../../engine/models/generate/sd2-tiny.ts';
import { makeTinySdxlCheckpoint } from '../../engine/models/make-model.ts';
import {
  openTemplate,
  queueTemplateWithEdits,
  readWorkflow,
  shot,
  startEditorHarness,
  type EditorHarness,
  type WidgetEdit,
} from './harness.ts';

let h: EditorHarness;

beforeAll(async () => {
  h = await startEditorHarness();
  const ckpts = path.join(h.base, 'models', 'checkpoints');
  await makeTinySdxlCheckpoint(path.join(ckpts, 'weft-tiny-sdxl.safetensors'), { seed: 0 });
  await makeTinySdxlCheckpoint(path.join(ckpts, 'weft-tiny-sdxl-refiner.safetensors'), { seed: 1, kind: 'refiner' });
  makeTinySd2Checkpoint(path.join(ckpts, 'weft-tiny-sd2-v.safetensors'), { prediction: 'v_prediction' });
}, 240_000);

afterAll(async () => {
  await h?.close();
});

const CASES: { file: string; edits: WidgetEdit[]; size: [number, number] }[] = [
  {
    file: 'sdxl-txt2img.json',
    edits: [
      [5, 'width', 128],
      [5, 'height', 128],
      [3, 'steps', 2],
    ],
    size: [128, 128],
  },
  {
    file: 'sdxl-refiner.json',
    edits: [
      [5, 'width', 128],
      [5, 'height', 128],
      [3, 'steps', 3],
      [13, 'steps', 3],
      [3, 'end_at_step', 2],
      [13, 'start_at_step', 2],
    ],
    size: [128, 128],
  },
  {
    file: 'sd2-v.json',
    edits: [
      [5, 'width', 128],
      [5, 'height', 96],
      [3, 'steps', 2],
    ],
    size: [128, 96],
  },
];

describe('SDXL and SD2 example workflows queued from the editor', () => {
  for (const c of CASES) {
    it(`${c.file}: opens, queues with smaller size and fewer steps, and shows the saved image`, async () => {
      const page = await h.openPage();
      await openTemplate(page, c.file);
      await queueTemplateWithEdits(page, h.server, c.file, c.edits);
      await page.getByTestId('output-image-9').waitFor({ timeout: 270_000 });
      const prefix = String(readWorkflow(c.file).nodes.find((n) => n.id === 9)!.widgets_values![0]);
      const out = fs.readdirSync(path.join(h.base, 'output')).filter((f) => f.startsWith(`${prefix}_`));
      expect(out.length).toBe(1);
      const meta = await sharp(path.join(h.base, 'output', out[0])).metadata();
      expect([meta.width, meta.height]).toEqual(c.size);
      await shot(page, `workflow-run-${c.file.replace('.json', '')}`);
      expect(h.consoleErrors).toEqual([]);
      await page.close();
    }, 300_000);
  }
});
