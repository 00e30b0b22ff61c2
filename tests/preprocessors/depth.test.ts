import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tensor, type ImageTensor } from '../../engine/core/tensor.ts';
import { makeRandomDepth } from '../../engine/models/annotators/generate.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { DepthAnythingV2Preprocessor, MiDaSDepthMapPreprocessor } from '../../nodes/controlnet/preprocessors/depth.ts';
import '../../nodes/model/services.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };

describe('depth preprocessors with random-weight ONNX models of the exports signature', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-depth-'));
  const models = join(dir, 'models');
  makeRandomDepth(join(models, 'annotators'), 5);
  const ctx = {
    services: { models: new ModelManager({ cacheDir: join(dir, 'cache'), device: 'cpu', log: quiet }) },
    log: quiet,
    signal: new AbortController().signal,
    progress: () => {},
    paths: new FolderPaths({ baseDir: dir, modelsDir: models }),
  } as unknown as NodeContext;
  const img = tensor([2, 50, 70, 3]);
  for (let i = 0; i < img.data.length; i++) img.data[i] = ((i * 2654435761) % 1000) / 1000;

  function checkDepth(out: ImageTensor, shape: number[]): void {
    expect(out.shape).toEqual(shape);
    // grey, spanning the range after min–max normalisation (the padded copy may clip the top)
    let lo = 1;
    let hi = 0;
    for (let i = 0; i < out.data.length; i += 3) {
      expect(out.data[i + 1]).toBe(out.data[i]);
      expect(out.data[i + 2]).toBe(out.data[i]);
      lo = Math.min(lo, out.data[i]);
      hi = Math.max(hi, out.data[i]);
    }
    expect(lo).toBeLessThan(0.1);
    expect(hi).toBeGreaterThan(0.5);
  }

  it('DepthAnythingV2Preprocessor: 518-lower-bound input in multiples of 14, depth at detect resolution', async () => {
    const [out] = (await DepthAnythingV2Preprocessor.run({ image: img, ckpt_name: 'depth_anything_v2_vits.pth', resolution: 64 }, ctx)) as [
      ImageTensor,
    ];
    checkDepth(out, [2, 64, 90, 3]);
  });

  it('MiDaS-DepthMapPreprocessor: padded image at 384², depth back at the padded size and cropped', async () => {
    const [out] = (await MiDaSDepthMapPreprocessor.run({ image: img, resolution: 64 }, ctx)) as [ImageTensor];
    checkDepth(out, [2, 64, 90, 3]);
  });

  it('a missing checkpoint export is named with the folders searched', async () => {
    await expect(DepthAnythingV2Preprocessor.run({ image: img, ckpt_name: 'depth_anything_v2_vitl.pth' }, ctx)).rejects.toThrow(
      /depth_anything_v2_vitl\.onnx not found.*depth-anything\/Depth-Anything-V2-Large/,
    );
  });
});
