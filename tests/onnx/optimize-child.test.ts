import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHILD_MIN_BYTES, hugePageTunables, optimizeInChild, saveOptimizedInChild } from '../../engine/onnx/optimize-child.ts';

describe('the optimising child process (optimize-child.ts)', () => {
  it('is used for builds of 256 MiB and more, unless WEFT_OPTIMIZE_IN_CHILD says otherwise', () => {
    expect(optimizeInChild(CHILD_MIN_BYTES - 1, {})).toBe(false);
    expect(optimizeInChild(CHILD_MIN_BYTES, {})).toBe(true);
    expect(optimizeInChild(3.4e9, { WEFT_OPTIMIZE_IN_CHILD: '0' })).toBe(false);
    expect(optimizeInChild(1000, { WEFT_OPTIMIZE_IN_CHILD: '1' })).toBe(true);
  });

  it('adds huge-page malloc to the user’s glibc tunables without overriding their own choice', () => {
    expect(hugePageTunables(undefined)).toBe('glibc.malloc.hugetlb=1');
    expect(hugePageTunables('glibc.malloc.arena_max=2')).toBe('glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1');
    expect(hugePageTunables('glibc.malloc.hugetlb=0')).toBe('glibc.malloc.hugetlb=0');
  });

  it('rejects with the model and ORT’s own message when the child cannot create the session', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-opt-child-'));
    const bad = join(dir, 'model.onnx');
    writeFileSync(bad, Buffer.from('not a model'));
    await expect(saveOptimizedInChild(bad, { optimizedModelFilePath: join(dir, 'opt.onnx') })).rejects.toThrow(
      new RegExp(`the optimising process for ${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} exited with 3: .*\\S`),
    );
  });
});
