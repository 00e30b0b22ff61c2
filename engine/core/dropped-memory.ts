import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * V8 frees a dropped typed array's memory only when it next collects, and it counts that memory
 * (held outside its heap) too loosely to collect soon: a tiled VAE pass over a 2048² image drops a
 * ~600 MB tile array at every layer, and the process held 2 GB of them at once. Code that drops
 * large arrays in a loop counts them here, and a full collection runs once enough has been dropped.
 */

let collect: (() => void) | null | undefined;

/** V8's `gc()`, made available without `--expose-gc` (a context created after the flag has it); undefined where that fails. */
function collector(): (() => void) | undefined {
  if (collect === undefined) {
    try {
      setFlagsFromString('--expose_gc');
      const gc: unknown = runInNewContext('gc');
      collect = typeof gc === 'function' ? (gc as () => void) : null;
    } catch {
      collect = null;
    }
  }
  return collect ?? undefined;
}

export class DroppedMemory {
  private bytes = 0;
  /** Collections run so far. */
  collections = 0;

  /** `threshold`: bytes dropped between collections (a collection of a small heap takes a few ms). */
  constructor(private readonly threshold = 256 * 2 ** 20) {}

  /** Counts an array of `bytes` that nothing references any more. */
  drop(bytes: number): void {
    this.bytes += bytes;
    if (this.bytes < this.threshold) return;
    this.bytes = 0;
    const gc = collector();
    if (!gc) return;
    gc();
    this.collections++;
  }
}
