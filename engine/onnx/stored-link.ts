import { existsSync, linkSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { StoredTensor } from '../core/weights.ts';

/**
 * A model file's external data must lie in its own folder (ORT refuses paths outside it, symlinks
 * included), so a build that points at a checkpoint's own bytes reaches them through a hard link
 * named by the file's content. Returns the link's name, or undefined where no hard link can be made
 * (another filesystem): the caller then stores the bytes itself rather than copying a whole file.
 */
export function hardLinkInto(dir: string, s: StoredTensor, prefix = 'src-'): string | undefined {
  const name = `${prefix}${s.fileKey.slice(0, 32)}.safetensors`;
  const target = join(dir, name);
  if (existsSync(target)) return name;
  const tmp = join(dir, `.${name}.${process.pid}.${Date.now()}.tmp`);
  try {
    linkSync(s.file, tmp);
    renameSync(tmp, target);
    return name;
  } catch {
    rmSync(tmp, { force: true });
    return undefined;
  }
}
