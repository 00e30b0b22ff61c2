import fs from 'node:fs';
import path from 'node:path';
import type { Dtype } from '../core/dtype.ts';
import type { WeightSource } from '../core/weights.ts';
import { looksLikeSafetensors, pickleMagic } from './pickle-guard.ts';
import { TorchFile } from './pickle/torch-file.ts';
import { SafetensorsFile } from './safetensors.ts';

/**
 * One opener for weight files: safetensors by content, and PyTorch pickles (.ckpt/.pt/.pth/.bin, zip
 * or legacy) through the non-executing reader with its allowlist. What loaders need beyond a
 * WeightSource is here too: the stored dtype, a whole-file content hash, metadata, and close. Only
 * SafetensorsFile can `locate` tensors in place; a pickle's tensors are always read (and, strided,
 * gathered), so graphs built from one copy their weights.
 */
export type WeightsFile = WeightSource & {
  readonly file: string;
  dtype(name: string): Dtype;
  contentHash(opts?: { cacheDir?: string }): string;
  metadata(): Record<string, string>;
  close(): void;
};

export function openWeights(file: string): SafetensorsFile | TorchFile {
  let head: Buffer;
  let size: number;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      size = fs.fstatSync(fd).size;
      head = Buffer.alloc(Math.min(16, size));
      fs.readSync(fd, head, 0, head.length, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Let the safetensors reader report the missing or unreadable file with its usual message.
    return SafetensorsFile.open(file);
  }
  if (looksLikeSafetensors(head, size)) return SafetensorsFile.open(file);
  if (pickleMagic(head, size) || ['.ckpt', '.pt', '.pth', '.bin'].includes(path.extname(file).toLowerCase())) return TorchFile.open(file);
  return SafetensorsFile.open(file);
}
