import { readAt } from '../../core/safe-path.ts';

/**
 * The few parts of the zip format torch.save's archives need: the end-of-central-directory record
 * (zip64 where it says so), the central directory's names, sizes and local-header offsets, and the
 * start of each stored entry's data. Compressed entries are refused (torch stores everything).
 */

export interface ZipEntry {
  name: string;
  /** Absolute offset of the entry's data in the file. */
  dataOffset: number;
  size: number;
}

export class ZipError extends Error {}

const MAX_ENTRIES = 1_000_000;
const MAX_CD = 256 * 1024 * 1024;

function at(fd: number, pos: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  if (readAt(fd, b, len, pos) !== len) throw new ZipError(`zip: truncated at byte ${pos}`);
  return b;
}

function u64(b: Buffer, o: number): number {
  const v = b.readBigUInt64LE(o);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError('zip: a 64-bit size beyond 2^53');
  return Number(v);
}

/** The stored entries of the zip archive in `fd` (of `size` bytes), by name. */
export function readZipDirectory(fd: number, size: number): Map<string, ZipEntry> {
  const tailLen = Math.min(size, 22 + 65535);
  const tail = at(fd, size - tailLen, tailLen);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ZipError('zip: no end-of-central-directory record (truncated archive?)');
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const locAt = size - tailLen + eocd - 20;
    if (locAt < 0) throw new ZipError('zip: zip64 locator missing');
    const loc = at(fd, locAt, 20);
    if (loc.readUInt32LE(0) !== 0x07064b50) throw new ZipError('zip: zip64 locator missing');
    const recAt = u64(loc, 8);
    if (recAt + 56 > size) throw new ZipError('zip: zip64 record beyond the file');
    const rec = at(fd, recAt, 56);
    if (rec.readUInt32LE(0) !== 0x06064b50) throw new ZipError('zip: bad zip64 end-of-central-directory record');
    count = u64(rec, 32);
    cdSize = u64(rec, 40);
    cdOffset = u64(rec, 48);
  }
  if (count > MAX_ENTRIES || cdSize > MAX_CD || cdOffset + cdSize > size)
    throw new ZipError(`zip: central directory (${count} entries, ${cdSize} bytes at ${cdOffset}) does not fit the file`);
  const cd = at(fd, cdOffset, cdSize);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50) throw new ZipError(`zip: bad central directory entry ${i}`);
    const method = cd.readUInt16LE(p + 10);
    let csize = cd.readUInt32LE(p + 20);
    let usize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let local = cd.readUInt32LE(p + 42);
    if (p + 46 + nameLen + extraLen + commentLen > cd.length) throw new ZipError(`zip: central directory entry ${i} overruns`);
    const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
    // zip64 extended information: present fields are those whose 32-bit value is saturated, in order.
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
      const id = cd.readUInt16LE(e);
      const len = cd.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let f = e + 4;
        const take = (): number => {
          if (f + 8 > e + 4 + len) throw new ZipError(`zip: short zip64 field in ${name}`);
          const v = u64(cd, f);
          f += 8;
          return v;
        };
        if (usize === 0xffffffff) usize = take();
        if (csize === 0xffffffff) csize = take();
        if (local === 0xffffffff) local = take();
      }
      e += 4 + len;
    }
    p += 46 + nameLen + extraLen + commentLen;
    if (name.endsWith('/')) continue;
    if (method !== 0)
      throw new ZipError(
        `zip: entry ${name} is compressed (method ${method}); torch.save stores entries uncompressed, so this archive was repacked: unzip it and zip it again with -0 (store)`,
      );
    if (csize !== usize) throw new ZipError(`zip: stored entry ${name} has different sizes`);
    if (local + 30 > size) throw new ZipError(`zip: entry ${name} lies beyond the file`);
    const lh = at(fd, local, 30);
    if (lh.readUInt32LE(0) !== 0x04034b50) throw new ZipError(`zip: bad local header for ${name}`);
    const dataOffset = local + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
    if (dataOffset + usize > size) throw new ZipError(`zip: entry ${name} (${usize} bytes) runs past the end of the file`);
    entries.set(name, { name, dataOffset, size: usize });
  }
  return entries;
}
