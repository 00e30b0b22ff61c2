import fs from 'node:fs';
import type { SegsDetector } from '../../engine/image/segs.ts';
import '../../engine/models/detect/socket-types.ts';
import { noSegmDetector, YoloSegsDetector } from '../../engine/models/detect/segs-detector.ts';
import { openYolo, torchDetectorError, type YoloModel } from '../../engine/models/detect/yolo.ts';
import type { PartsRuntime } from '../../engine/models/runtime/parts-runtime.ts';
import type { FolderPaths } from '../../engine/paths/folders.ts';
import type { ListingContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { modelManager } from '../model/services.ts';

/**
 * The Impact Subpack's UltralyticsDetectorProvider: `bbox/<file>` and `segm/<file>` from the
 * ultralytics_bbox / ultralytics_segm folders (or the same relative path under `ultralytics`). Weft
 * lists the ONNX exports; a workflow naming a `.pt` runs the `.onnx` exported beside it, and without
 * one is refused with the export command.
 */

const TORCH = /\.(pt|pth|pt2|ckpt|bin|pkl)$/i;

function listing(paths: FolderPaths, folder: string, prefix: string): string[] {
  return paths
    .listFiles(folder)
    .filter((f) => f.toLowerCase().endsWith('.onnx'))
    .map((f) => `${prefix}${f}`);
}

export function detectorNames(env: ListingContext): string[] {
  return [...listing(env.paths, 'ultralytics_bbox', 'bbox/'), ...listing(env.paths, 'ultralytics_segm', 'segm/')];
}

/** The Subpack's lookup: `ultralytics/<name>` first, then the bbox/segm folder without its prefix. */
function findDetector(paths: FolderPaths, name: string): string | undefined {
  const direct = paths.find('ultralytics', name);
  if (direct) return direct;
  if (name.startsWith('bbox/')) return paths.find('ultralytics_bbox', name.slice(5));
  if (name.startsWith('segm/')) return paths.find('ultralytics_segm', name.slice(5));
  return undefined;
}

function searched(paths: FolderPaths, name: string): string {
  const dirs = [...paths.searchPaths('ultralytics')];
  if (name.startsWith('bbox/')) dirs.push(...paths.searchPaths('ultralytics_bbox'));
  if (name.startsWith('segm/')) dirs.push(...paths.searchPaths('ultralytics_segm'));
  return dirs.join(', ');
}

/** The file a model_name runs: the name itself, or for a PyTorch name the ONNX export next to it. */
export function resolveDetector(paths: FolderPaths, name: string): { file: string; note?: string } {
  if (!name.startsWith('bbox/') && !name.startsWith('segm/')) throw new Error(`model_name '${name}' must start with bbox/ or segm/`);
  if (TORCH.test(name)) {
    const onnxName = name.replace(TORCH, '.onnx');
    const exported = findDetector(paths, onnxName);
    if (exported) return { file: exported, note: `${name}: running its ONNX export ${onnxName}` };
    throw torchDetectorError(findDetector(paths, name) ?? name);
  }
  const file = findDetector(paths, name);
  if (!file) throw new Error(`detector '${name}' not found; looked in ${searched(paths, name) || '(no folders)'}`);
  return { file };
}

const opened = new WeakMap<PartsRuntime, Map<string, { mtimeMs: number; size: number; model: YoloModel }>>();

/** Opens a detector file once per runtime (again when the file changes). */
function loadModel(runtime: PartsRuntime, file: string): YoloModel {
  let cache = opened.get(runtime);
  if (!cache) opened.set(runtime, (cache = new Map()));
  const st = fs.statSync(file);
  const hit = cache.get(file);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.model;
  const model = openYolo(file);
  cache.set(file, { mtimeMs: st.mtimeMs, size: st.size, model });
  return model;
}

/** A model's BBOX_DETECTOR and SEGM_DETECTOR as the provider returns them. */
export function detectorsFor(runtime: PartsRuntime, file: string, name: string): [SegsDetector, SegsDetector] {
  const model = loadModel(runtime, file);
  const run = runtime.fileRunner(file);
  const bbox = new YoloSegsDetector('bbox', model, run, name);
  if (name.startsWith('bbox/') || !model.segmentation) return [bbox, noSegmDetector(name)];
  return [bbox, new YoloSegsDetector('segm', model, run, name)];
}

export const UltralyticsDetectorProvider = defineNode({
  name: 'UltralyticsDetectorProvider',
  displayName: 'UltralyticsDetectorProvider',
  category: 'ImpactPack',
  description: 'Load a YOLO detector (ultralytics ONNX export) from models/ultralytics/bbox or segm.',
  searchAliases: ['yolo', 'face detector', 'bbox detector', 'segm detector', 'ultralytics', 'impact'],
  inputs: { required: { model_name: { type: 'COMBO', options: detectorNames } } },
  outputs: [
    { type: 'BBOX_DETECTOR', name: 'BBOX_DETECTOR' },
    { type: 'SEGM_DETECTOR', name: 'SEGM_DETECTOR' },
  ],
  validateInputs(inputs, _linked, env) {
    const name = inputs.model_name;
    if (typeof name !== 'string') return true;
    try {
      resolveDetector(env.paths, name);
      return true;
    } catch (e) {
      return (e as Error).message;
    }
  },
  run({ model_name }, ctx) {
    const { file, note } = resolveDetector(ctx.paths, model_name);
    if (note) ctx.log.info(note);
    return detectorsFor(modelManager(ctx).runtime, file, model_name);
  },
});
