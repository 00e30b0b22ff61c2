import { join } from 'node:path';
import type { ModelHandle } from '../../engine/models/handles.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { makeTiny } from '../models-onnx/tiny.ts';

/** The tiny checkpoint's MODEL with a positive and a negative prompt, as the sampling tests use them. */
export async function loadTinyParts(): Promise<{ model: ModelHandle; pos: Conditioning; neg: Conditioning }> {
  const quiet = { info: () => {}, warn: () => {}, error: () => {} };
  const tiny = await makeTiny(7);
  const parts = await new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet }).loadCheckpoint(tiny.file);
  return { model: parts.model, pos: [await parts.clip.encodeText('a red fox in the snow')], neg: [await parts.clip.encodeText('blurry')] };
}
