import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Content hashes computed in this process, keyed by file identity (device, inode, size, mtime). */
const hashMemo = new Map<string, string>();

/**
 * SHA-256 of a whole open file, as hex. Chosen over a sampled hash because a cache key that misses a
 * changed byte would serve a stale built model; a full hash of a 2 GB file costs a few seconds, so
 * it is memoised per process by file identity (device, inode, size, mtime) and, with `cacheDir`,
 * on disk in a small JSON record per file, so later runs only stat the file. Shared by every weights
 * format (safetensors, torch pickles), so a file's hash never depends on how it is read.
 */
export function fileContentHash(fd: number, file: string, opts: { cacheDir?: string } = {}): string {
  const st = fs.fstatSync(fd);
  const identity = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  const memo = hashMemo.get(identity);
  if (memo) return memo;
  const record = opts.cacheDir
    ? path.join(opts.cacheDir, `${createHash('sha1').update(path.resolve(file)).digest('hex')}.json`)
    : undefined;
  if (record) {
    try {
      const r = JSON.parse(fs.readFileSync(record, 'utf8')) as { identity?: unknown; sha256?: unknown };
      if (r.identity === identity && typeof r.sha256 === 'string' && /^[0-9a-f]{64}$/.test(r.sha256)) {
        hashMemo.set(identity, r.sha256);
        return r.sha256;
      }
    } catch {
      /* no usable record: hash the file */
    }
  }
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
  for (let pos = 0; ;) {
    const n = fs.readSync(fd, buf, 0, buf.length, pos);
    if (n <= 0) break;
    h.update(buf.subarray(0, n));
    pos += n;
  }
  const hash = h.digest('hex');
  hashMemo.set(identity, hash);
  if (record) {
    try {
      fs.mkdirSync(path.dirname(record), { recursive: true });
      const tmp = `${record}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify({ file: path.resolve(file), identity, sha256: hash }));
      fs.renameSync(tmp, record);
    } catch {
      /* a read-only cache folder only costs a re-hash next time */
    }
  }
  return hash;
}
