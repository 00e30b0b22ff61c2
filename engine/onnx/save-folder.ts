import { readdirSync, statfsSync, statSync } from 'node:fs';
import { freemem } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * Where ORT saves the optimised graph of a build's first session. ORT writes every initializer in
 * float32 (3.4 GB for an SD1.5 UNet), and share-weights.ts then keeps ~1.2 GB of it in 16 bits. On
 * the cache's disk that was 3.4 GB written, read back and deleted on the first run; in the scratch
 * folder the weights were just expanded into (`/dev/shm` when memory allows, expand-half.ts) it is a
 * copy in memory, freed with that folder once shared.
 */

/** `statfs` type of tmpfs: its files are memory. */
const TMPFS = 0x01021994;

export interface SaveRoom {
  /** Free bytes of the scratch folder's file system. */
  readonly free: number;
  /** Whether that file system is memory (tmpfs). */
  readonly memory: boolean;
  /** Bytes of memory available now, after the expansion. */
  readonly memAvailable: number;
}

/**
 * The scratch folder when its file system holds the saved copy (`bytes`, the expanded weights'
 * size, with a quarter to spare) and, where that is memory, the machine can also give ORT its
 * reordered copy (up to `bytes` again): else the build's folder, as before.
 */
export function chooseSaveFolder(bytes: number, room: SaveRoom): 'scratch' | 'build' {
  if (room.free < bytes * 1.25) return 'build';
  return !room.memory || room.memAvailable > bytes * 2.25 ? 'scratch' : 'build';
}

/** The folder ORT should save the first optimised graph in: `expandedModel`'s scratch folder or `buildDir` (see above). */
export function saveFolder(expandedModel: string, buildDir: string): string {
  const scratch = dirname(expandedModel);
  if (scratch === buildDir) return buildDir;
  try {
    const bytes = readdirSync(scratch).reduce((n, f) => n + statSync(join(scratch, f)).size, 0);
    const fs = statfsSync(scratch);
    const room = { free: fs.bavail * fs.bsize, memory: fs.type === TMPFS, memAvailable: freemem() };
    return chooseSaveFolder(bytes, room) === 'scratch' ? scratch : buildDir;
  } catch {
    return buildDir;
  }
}
