import fs from 'node:fs';
import path from 'node:path';

/**
 * Pickled PyTorch checkpoints (.ckpt/.pt/.pth/.bin) can run arbitrary code when unpickled by Python's
 * rules, so the safetensors reader refuses them: they are recognised by extension and by their first
 * bytes (a torch zip archive or a pickle protocol opcode). Loaders that accept them go through
 * `openWeights` (open-weights.ts), which hands them to the non-executing reader in pickle/.
 */

export const PICKLE_EXTENSIONS: readonly string[] = ['.ckpt', '.pt', '.pth', '.bin', '.pkl', '.pt2'];

export class PickleRefusedError extends Error {
  constructor(
    readonly file: string,
    reason: string,
    renameOnly = false,
  ) {
    super(
      renameOnly
        ? `${file}: ${reason}; pickle names are refused so a pickle is never loaded by mistake`
        : `${file}: ${reason}. Pickled PyTorch checkpoints (.ckpt/.pt/.pth/.bin) are never loaded, because unpickling can run arbitrary code; ` +
            'convert it to .safetensors (e.g. with the safetensors Python package: safetensors.torch.save_file(torch.load(f, weights_only=True), out), ' +
            'or a "convert to safetensors" tool) and load that',
    );
    this.name = 'PickleRefusedError';
  }
}

/**
 * Whether the first bytes look like a safetensors file: a little-endian header length that fits the
 * file, followed by the `{` of a JSON object. A safetensors length can begin with the bytes `PK` or
 * 0x80 0x02 (headers of 19280 or 640 bytes do), so this is checked before any pickle magic.
 */
export function looksLikeSafetensors(head: Uint8Array, fileSize: number): boolean {
  if (head.length < 9) return false;
  const len = Buffer.from(head.buffer, head.byteOffset, 8).readBigUInt64LE(0);
  return len >= 2n && len <= BigInt(fileSize - 8) && head[8] === 0x7b;
}

function readHead(file: string): { head: Buffer; size: number } | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(16, size));
    fs.readSync(fd, head, 0, head.length, 0);
    return { head, size };
  } finally {
    fs.closeSync(fd);
  }
}

/** What the first bytes say: 'zip' (torch's archive format), 'pickle' (a raw pickle stream), or undefined. */
export function pickleMagic(head: Uint8Array, fileSize: number): 'zip' | 'pickle' | undefined {
  if (looksLikeSafetensors(head, fileSize)) return undefined;
  if (
    head.length >= 4 &&
    head[0] === 0x50 &&
    head[1] === 0x4b &&
    (head[2] === 0x03 || head[2] === 0x05) &&
    (head[3] === 0x04 || head[3] === 0x06)
  )
    return 'zip';
  if (head.length >= 2 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) return 'pickle';
  return undefined;
}

/**
 * Throw a PickleRefusedError when `file` is a pickle by name or by content. A file that cannot be
 * opened passes (the caller's open reports it with its own context).
 */
export function assertNotPickle(file: string): void {
  const ext = path.extname(file).toLowerCase();
  const probe = readHead(file);
  if (PICKLE_EXTENSIONS.includes(ext)) {
    if (probe && looksLikeSafetensors(probe.head, probe.size)) {
      throw new PickleRefusedError(file, `the name ends in ${ext} but the content is safetensors: rename it to .safetensors`, true);
    }
    throw new PickleRefusedError(file, `a ${ext} file is a pickled PyTorch checkpoint`);
  }
  if (!probe) return;
  const magic = pickleMagic(probe.head, probe.size);
  if (magic === 'zip')
    throw new PickleRefusedError(file, 'the content is a PyTorch zip archive (starts with "PK"), whatever the name says');
  if (magic === 'pickle')
    throw new PickleRefusedError(file, `the content is a pickle stream (protocol ${probe.head[1]}), whatever the name says`);
}
