import fs from 'node:fs';
import path from 'node:path';

export class PathEscapeError extends Error {
  constructor(
    readonly requested: string,
    readonly root: string,
    reason: string,
  ) {
    super(`refused path ${JSON.stringify(requested)}: ${reason} (must stay inside ${root})`);
    this.name = 'PathEscapeError';
  }
}

/**
 * Resolve a user-supplied relative name inside `root`, refusing anything that could leave it:
 * absolute paths, `..` segments, NUL bytes, Windows drive letters and UNC prefixes, and symlinks
 * that point outside. The returned path may not exist yet (for writes); the deepest existing
 * ancestor is what gets checked against symlink escapes.
 *
 * With `followLinks` the symlink check is skipped (the name checks stay): for folders a request
 * only reads from and whose owner links files in from other disks, as ComfyUI allows for models
 * and inputs. Folders a request writes to (output, temp, user) never follow links.
 */
export function safeJoin(root: string, relative: string, opts: { followLinks?: boolean } = {}): string {
  if (typeof relative !== 'string') throw new PathEscapeError(String(relative), root, 'not a string');
  if (relative.includes('\0')) throw new PathEscapeError(relative, root, 'contains a NUL byte');
  if (/^[a-zA-Z]:/.test(relative)) throw new PathEscapeError(relative, root, 'has a drive letter');
  if (relative.startsWith('/') || relative.startsWith('\\')) {
    throw new PathEscapeError(relative, root, 'is absolute');
  }
  const parts = relative.split(/[\\/]+/);
  if (parts.some((p) => p === '..')) throw new PathEscapeError(relative, root, "contains '..'");
  const absRoot = path.resolve(root);
  const joined = path.resolve(absRoot, ...parts.filter((p) => p !== '' && p !== '.'));
  if (joined !== absRoot && !joined.startsWith(absRoot + path.sep)) {
    throw new PathEscapeError(relative, root, 'resolves outside the folder');
  }
  if (opts.followLinks) return joined;
  const realRoot = realpathOrSelf(absRoot);
  let probe = joined;
  while (!fs.existsSync(probe) && probe !== absRoot) probe = path.dirname(probe);
  const realProbe = realpathOrSelf(probe);
  if (realProbe !== realRoot && !realProbe.startsWith(realRoot + path.sep)) {
    throw new PathEscapeError(relative, root, 'a symbolic link points outside the folder');
  }
  return joined;
}

function realpathOrSelf(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}

/**
 * Reads `length` bytes at `position` into `into`, looping over short reads; returns how many it got
 * (less than `length` only at the end of the file), so the caller can say what was cut short.
 */
export function readAt(fd: number, into: Uint8Array, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, into, done, length - done, position + done);
    if (n <= 0) break;
    done += n;
  }
  return done;
}

/**
 * Write a file atomically: a temp file in the same folder, then rename; never overwrite when
 * `exclusive`; with `fsync`, the data is on disk before the name appears.
 */
export function writeFileAtomic(file: string, data: Uint8Array | string, opts: { exclusive?: boolean; fsync?: boolean } = {}): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, data);
      if (opts.fsync) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (opts.exclusive) {
      // link() fails with EEXIST instead of replacing, which rename() would silently do.
      fs.linkSync(tmp, file);
      fs.unlinkSync(tmp);
    } else {
      fs.renameSync(tmp, file);
    }
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Removes a folder, renamed first (to `<dir>.del-<pid>-<time>`), so no other process finds half of it
 * under its name; a process that has its files open or mapped keeps reading them. Nothing when it is gone.
 */
export function removeDirRenamedFirst(dir: string): void {
  const gone = `${dir}.del-${process.pid}-${Date.now()}`;
  try {
    fs.renameSync(dir, gone);
  } catch {
    return;
  }
  fs.rmSync(gone, { recursive: true, force: true });
}

/** The names in a folder, none where it cannot be read (not there yet, or removed meanwhile). */
export function namesIn(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
