import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { GraphBuilder } from './graph.ts';

/**
 * The on-disk cache of built ONNX parts: one folder per build key (`model.onnx` + `weights.bin`,
 * plus what ORT saves beside them), written through a temporary folder and renamed, so a second
 * process, or the same checkpoint under another name, skips building.
 */

/** Where a build came from, recorded beside it (for listing and pruning). */
export interface BuildOrigin {
  /** Part id (`unet`, `clip`, `vae_decoder`, a registered part's id, ...). */
  readonly part: string;
  /** The model file the weights came from. */
  readonly source?: string;
}

export interface BuiltPart {
  readonly key: string;
  readonly dir: string;
  /** `model.onnx` in `dir`. */
  readonly file: string;
  /** Bytes of the graph and its weights (what the session pool budgets). */
  readonly bytes: number;
  /** True when this call built it (false: found in the cache). */
  readonly built: boolean;
}

export class BuildCache {
  constructor(readonly root: string) {}

  dirOf(key: string): string {
    return join(this.root, key);
  }

  /** The build under `key`, made by `build()` if it is not there yet. */
  ensure(key: string, origin: BuildOrigin, build: () => GraphBuilder): BuiltPart {
    void origin;
    const dir = this.dirOf(key);
    const file = join(dir, 'model.onnx');
    let built = false;
    if (!existsSync(file)) {
      build().writeTo(dir);
      built = true;
    }
    const bytes = statSync(join(dir, 'weights.bin')).size + statSync(file).size;
    return { key, dir, file, bytes, built };
  }
}
