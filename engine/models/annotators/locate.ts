import fs from 'node:fs';
import path from 'node:path';
import type { FolderPaths } from '../../paths/folders.ts';

/**
 * Where annotator (preprocessor) models are found: `models/annotators/`, any folder given as
 * `annotators:` in extra_model_paths.yaml, and in each of them the comfyui_controlnet_aux `ckpts/`
 * layout (`<hf repo>/<file>`, e.g. `yzd-v/DWPose/yolox_l.onnx`). Nothing is downloaded: a missing file
 * is an error naming it and every place looked at.
 */
export const ANNOTATOR_FOLDER = 'annotators';

export function annotatorRoots(paths: FolderPaths): string[] {
  const roots = paths.hasFolder(ANNOTATOR_FOLDER) ? paths.searchPaths(ANNOTATOR_FOLDER) : [];
  const own = path.join(paths.modelsDir, ANNOTATOR_FOLDER);
  return roots.includes(own) ? roots : [own, ...roots];
}

export function findAnnotator(paths: FolderPaths, file: string, repos: readonly string[]): string {
  if (file.includes('..') || path.isAbsolute(file)) throw new Error(`annotator model name ${JSON.stringify(file)} is not a plain file name`);
  const tried: string[] = [];
  for (const root of annotatorRoots(paths)) {
    for (const rel of [file, ...repos.map((r) => path.join(r, file))]) {
      const p = path.join(root, rel);
      tried.push(p);
      if (fs.existsSync(p) && fs.statSync(p).isFile()) return p;
    }
  }
  throw new Error(
    `annotator model ${file} not found (Weft does not download models); put it in models/${ANNOTATOR_FOLDER}/ or point ` +
      `'${ANNOTATOR_FOLDER}:' in extra_model_paths.yaml at comfyui_controlnet_aux's ckpts folder. Looked for: ${tried.join(', ')}`,
  );
}
