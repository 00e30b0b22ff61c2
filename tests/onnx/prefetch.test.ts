import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { patchedModelFiles } from '../../engine/models/patching/patched-build.ts';
import { prefetchFiles } from '../../engine/onnx/prefetch.ts';

describe('prefetchFiles', () => {
  it('reads every file to its end in a worker, skipping one that cannot be opened', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-prefetch-'));
    writeFileSync(join(dir, 'a.bin'), new Uint8Array(20 << 20).fill(1));
    writeFileSync(join(dir, 'b.bin'), new Uint8Array(12345));
    expect(await prefetchFiles([join(dir, 'a.bin'), join(dir, 'missing.bin'), join(dir, 'b.bin')])).toBe((20 << 20) + 12345);
  });

  it("a patched model's files: the shared weights.bin, then those its tensor list names", () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-prefetch-'));
    const model = join(dir, 'patched-x.onnx');
    expect(patchedModelFiles(model)).toEqual([join(dir, 'weights.bin')]);
    writeFileSync(`${model}.json`, JSON.stringify({ tensors: ['ad-1.safetensors', 'pt-2.bin'] }));
    expect(patchedModelFiles(model)).toEqual([join(dir, 'weights.bin'), join(dir, 'ad-1.safetensors'), join(dir, 'pt-2.bin')]);
  });
});
