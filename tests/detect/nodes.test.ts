import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageTensor, MaskTensor } from '../../engine/core/tensor.ts';
import { Executor } from '../../engine/executor/executor.ts';
import type { Segs, SegsDetector } from '../../engine/image/segs.ts';
import { makeTinyFaceDetectors, tinyFaceDetections } from '../../engine/models/detect/generate.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { AnyNodeDefinition } from '../../engine/registry/types.ts';
import { BboxDetectorSEGS, ImpactSimpleDetectorSEGS, SegmDetectorSEGS } from '../../nodes/detect/detectors.ts';
import { detectorNames, UltralyticsDetectorProvider } from '../../nodes/detect/provider.ts';
import { ImpactSEGSLabelFilter, MaskToSEGS, SEGSPreview, SEGSToImageList, SegsToCombinedMask } from '../../nodes/detect/segs-nodes.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import { TestWorld } from '../image/context.ts';

/** The Impact Pack's detection and SEGS nodes on the deterministic face detectors, called directly and through the executor. */

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
let world: TestWorld;
let models: ModelManager;
let ctx: NodeContext;

function picture(h: number, w: number): ImageTensor {
  const data = new Float32Array(h * w * 3);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 31) % 256) / 255;
  return { shape: [1, h, w, 3], data };
}

async function run(def: AnyNodeDefinition, args: Record<string, unknown>): Promise<unknown[]> {
  const r = (await def.run(args, ctx)) as unknown[] | { result?: unknown[] };
  return Array.isArray(r) ? r : (r.result ?? []);
}

beforeAll(() => {
  world = new TestWorld('detect-nodes');
  makeTinyFaceDetectors(path.join(world.paths.modelsDir, 'ultralytics'));
  models = new ModelManager({ cacheDir: path.join(world.base, 'cache'), device: 'cpu', log: quiet, paths: world.paths });
  ctx = { ...world.ctx(), services: { models } };
});
afterAll(() => world.remove());

describe('UltralyticsDetectorProvider', () => {
  it('lists the ONNX exports as bbox/… and segm/…', () => {
    fs.writeFileSync(path.join(world.paths.modelsDir, 'ultralytics', 'bbox', 'face_yolov8m.pt'), 'PK');
    expect(detectorNames(world)).toEqual(['bbox/weft-tiny-face.onnx', 'segm/weft-tiny-face-seg.onnx']);
  });

  it('a bbox model gives a BBOX_DETECTOR and a SEGM_DETECTOR that refuses; a segm model gives both', async () => {
    const [bbox, segm] = (await run(UltralyticsDetectorProvider, { model_name: 'bbox/weft-tiny-face.onnx' })) as SegsDetector[];
    expect(bbox.classNames).toEqual(['face', 'hand']);
    await expect(segm.detect(picture(64, 64), { threshold: 0.5, dilation: 0, cropFactor: 3, dropSize: 10 })).rejects.toThrow(
      /bbox model.*no SEGM_DETECTOR/,
    );
    const both = (await run(UltralyticsDetectorProvider, { model_name: 'segm/weft-tiny-face-seg.onnx' })) as SegsDetector[];
    expect(both.map((d) => d.kind)).toEqual(['bbox', 'segm']);
  });

  it('a .pt name (as shared workflows have) is refused with the export command, or runs the .onnx exported beside it', async () => {
    const validate = UltralyticsDetectorProvider.validateInputs!;
    expect(await validate({ model_name: 'bbox/face_yolov8m.pt' }, {}, world)).toMatch(
      /face_yolov8m\.pt is a PyTorch file.*yolo export model=face_yolov8m\.pt format=onnx/,
    );
    expect(await validate({ model_name: 'bbox/nothing.onnx' }, {}, world)).toMatch(
      /detector 'bbox\/nothing\.onnx' not found; looked in .*ultralytics/,
    );
    expect(await validate({ model_name: 'bbox/weft-tiny-face.onnx' }, {}, world)).toBe(true);
    fs.copyFileSync(
      path.join(world.paths.modelsDir, 'ultralytics', 'bbox', 'weft-tiny-face.onnx'),
      path.join(world.paths.modelsDir, 'ultralytics', 'bbox', 'face_yolov8n.onnx'),
    );
    expect(await validate({ model_name: 'bbox/face_yolov8n.pt' }, {}, world)).toBe(true);
    const [d] = (await run(UltralyticsDetectorProvider, { model_name: 'bbox/face_yolov8n.pt' })) as SegsDetector[];
    expect(d.classNames).toEqual(['face', 'hand']);
  });
});

describe('detector nodes', () => {
  const base = { threshold: 0.5, dilation: 10, crop_factor: 3, drop_size: 10, labels: 'all' };

  it('BboxDetectorSEGS: the detector SEGS, then the label filter', async () => {
    const [bbox] = (await run(UltralyticsDetectorProvider, { model_name: 'bbox/weft-tiny-face.onnx' })) as SegsDetector[];
    const image = picture(512, 512);
    const [all] = (await run(BboxDetectorSEGS, { ...base, bbox_detector: bbox, image })) as [Segs];
    expect(all.segments.map((s) => s.label)).toEqual(['face', 'face', 'hand']);
    const [faces] = (await run(BboxDetectorSEGS, { ...base, bbox_detector: bbox, image, labels: 'face' })) as [Segs];
    expect(faces.segments.map((s) => [...s.bbox])).toEqual(
      tinyFaceDetections(512, 512)
        .filter((d) => d.label === 'face')
        .map((d) => [...d.box]),
    );
    await expect(
      run(BboxDetectorSEGS, { ...base, bbox_detector: bbox, image: { shape: [2, 8, 8, 3], data: new Float32Array(384) } }),
    ).rejects.toThrow(/BboxDetectorSEGS \(node 9\): image batches are not allowed/);
  });

  it('ImpactSimpleDetectorSEGS: bbox masks ANDed with the segm detector combined mask (the ellipses), then post_dilation', async () => {
    const [bbox, segm] = (await run(UltralyticsDetectorProvider, { model_name: 'segm/weft-tiny-face-seg.onnx' })) as SegsDetector[];
    const image = picture(512, 512);
    const args = {
      bbox_detector: bbox,
      image,
      bbox_threshold: 0.5,
      bbox_dilation: 0,
      crop_factor: 3,
      drop_size: 10,
      sub_threshold: 0.5,
      sub_dilation: 0,
      sub_bbox_expansion: 0,
      sam_mask_hint_threshold: 0.7,
    };
    const [plain] = (await run(ImpactSimpleDetectorSEGS, args)) as [Segs];
    const [refined] = (await run(ImpactSimpleDetectorSEGS, { ...args, segm_detector_opt: segm })) as [Segs];
    const [segmSegs] = (await run(SegmDetectorSEGS, { ...base, dilation: 0, segm_detector: segm, image })) as [Segs];
    const sum = (s: Segs, i: number): number => s.segments[i].croppedMask.data.reduce((a, b) => a + b, 0);
    for (let i = 0; i < 3; i++) {
      expect(sum(refined, i)).toBeLessThan(sum(plain, i));
      // AND of the box with the ellipses: within the ellipse's soft area
      expect(Math.abs(sum(refined, i) - sum(segmSegs, i))).toBeLessThan(0.03 * sum(segmSegs, i));
    }
    const [dilated] = (await run(ImpactSimpleDetectorSEGS, { ...args, segm_detector_opt: segm, post_dilation: 5 })) as [Segs];
    expect(sum(dilated, 0)).toBeGreaterThan(sum(refined, 0));
    await expect(run(ImpactSimpleDetectorSEGS, { ...args, sam_model_opt: {} })).rejects.toThrow(/sam_model_opt is not supported/);
  });
});

describe('SEGS nodes', () => {
  const mask: MaskTensor = (() => {
    const data = new Float32Array(64 * 80);
    for (let y = 10; y < 30; y++) for (let x = 5; x < 25; x++) data[y * 80 + x] = 1;
    for (let y = 40; y < 60; y++) for (let x = 50; x < 75; x++) data[y * 80 + x] = 0.5;
    return { shape: [1, 64, 80], data };
  })();

  it('MaskToSEGS → SegsToCombinedMask gives the mask back (as truncated bytes)', async () => {
    const [segs] = (await run(MaskToSEGS, {
      mask,
      combined: false,
      crop_factor: 1.5,
      bbox_fill: false,
      drop_size: 10,
      contour_fill: false,
    })) as [Segs];
    expect(segs.segments.map((s) => [...s.bbox])).toEqual([
      [50, 40, 75, 60],
      [5, 10, 25, 30],
    ]);
    const [back] = (await run(SegsToCombinedMask, { segs })) as [MaskTensor];
    expect(back.shape).toEqual([1, 64, 80]);
    back.data.forEach((v, i) => expect(v).toBe(mask.data[i] === 0.5 ? Math.fround(127 / 255) : mask.data[i]));
  });

  it("ImpactSEGSLabelFilter splits by label (the preset widget is only the editor's helper)", async () => {
    const [bbox] = (await run(UltralyticsDetectorProvider, { model_name: 'bbox/weft-tiny-face.onnx' })) as SegsDetector[];
    const [segs] = (await run(BboxDetectorSEGS, {
      threshold: 0.5,
      dilation: 0,
      crop_factor: 2,
      drop_size: 10,
      labels: 'all',
      bbox_detector: bbox,
      image: picture(256, 256),
    })) as [Segs];
    const [kept, rest] = (await run(ImpactSEGSLabelFilter, { segs, preset: 'face', labels: 'hand' })) as [Segs, Segs];
    expect(kept.segments.map((s) => s.label)).toEqual(['hand']);
    expect(rest.segments.map((s) => s.label)).toEqual(['face', 'face']);
    const [all, none] = (await run(ImpactSEGSLabelFilter, { segs, preset: 'all', labels: 'all' })) as [Segs, Segs];
    expect([all.segments.length, none.segments.length]).toEqual([3, 0]);
  });

  it('SEGSToImageList cuts the fallback image; an empty SEGS gives one 64² black image', async () => {
    const [segs] = (await run(MaskToSEGS, {
      mask,
      combined: true,
      crop_factor: 1,
      bbox_fill: false,
      drop_size: 10,
      contour_fill: false,
    })) as [Segs];
    const image = picture(64, 80);
    const [list] = (await run(SEGSToImageList, { segs, fallback_image_opt: image })) as [ImageTensor[]];
    expect(list.map((i) => i.shape)).toEqual([[1, 49, 69, 3]]);
    expect(list[0].data[0]).toBe(image.data[(10 * 80 + 5) * 3]);
    const [empty] = (await run(SEGSToImageList, { segs: { shape: [64, 80], segments: [] } })) as [ImageTensor[]];
    expect(empty.map((i) => i.shape)).toEqual([[1, 64, 64, 3]]);
  });

  it('SEGSPreview writes one RGBA preview per segment to temp and returns crop × mask', async () => {
    const [bbox] = (await run(UltralyticsDetectorProvider, { model_name: 'bbox/weft-tiny-face.onnx' })) as SegsDetector[];
    const image = picture(512, 512);
    const [segs] = (await run(BboxDetectorSEGS, {
      threshold: 0.5,
      dilation: 0,
      crop_factor: 1.2,
      drop_size: 10,
      labels: 'all',
      bbox_detector: bbox,
      image,
    })) as [Segs];
    const r = (await SEGSPreview.run({ segs, alpha_mode: true, min_alpha: 0.2 }, ctx)) as {
      ui: { images: { filename: string; type: string }[] };
      result: [ImageTensor[]];
    };
    expect(r.ui.images).toHaveLength(3);
    for (const f of r.ui.images) expect(fs.existsSync(path.join(world.paths.tempDir, f.filename))).toBe(true);
    const first = r.result[0][0];
    const s = segs.segments[0];
    expect(first.shape).toEqual(s.croppedImage?.shape);
    first.data.forEach((v, i) => expect(v).toBe(Math.fround(s.croppedImage!.data[i] * s.croppedMask.data[Math.floor(i / 3)])));
  });
});

describe('through the executor', () => {
  it('provider → BboxDetectorSEGS → SEGSPreview validates and runs; a .pt without export fails validation with the command', async () => {
    const registry = createBuiltinRegistry();
    const executor = new Executor(registry, { paths: world.paths, services: { models }, log: quiet });
    fs.mkdirSync(world.paths.inputDir, { recursive: true });
    const prompt = (name: string): Record<string, unknown> => ({
      '1': { class_type: 'UltralyticsDetectorProvider', inputs: { model_name: name } },
      '2': { class_type: 'EmptyImage', inputs: { width: 256, height: 256, batch_size: 1, color: 8421504 } },
      '3': {
        class_type: 'BboxDetectorSEGS',
        inputs: { bbox_detector: ['1', 0], image: ['2', 0], threshold: 0.5, dilation: 10, crop_factor: 3, drop_size: 10, labels: 'face' },
      },
      '4': { class_type: 'SEGSPreview', inputs: { segs: ['3', 0], alpha_mode: true, min_alpha: 0.2, fallback_image_opt: ['2', 0] } },
    });
    const ok = await executor.execute(prompt('bbox/weft-tiny-face.onnx') as never, { promptId: 'a' });
    expect(ok.error).toBeUndefined();
    expect(ok.status).toBe('success');
    expect((ok.outputs['4'] as { images: unknown[] }).images).toHaveLength(2);
    const bad = await executor.execute(prompt('bbox/face_yolov8m.pt') as never, { promptId: 'b' });
    expect(bad.status).toBe('error');
    expect(JSON.stringify(bad)).toMatch(/yolo export model=face_yolov8m\.pt format=onnx/);
  });
});
