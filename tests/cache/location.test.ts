import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseByteSize, parseDuration, resolveCacheDir, resolveCacheLimit } from '../../engine/onnx/cache-dir.ts';
import { createEngineServices } from '../../cli/services.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { cmdCache } from '../../cli/cache.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

describe('model cache location', () => {
  it('--cache-dir wins over $WEFT_CACHE_DIR, which wins over the XDG cache folder, then ~/.cache/weft', () => {
    const env = { WEFT_CACHE_DIR: '/env/weft', XDG_CACHE_HOME: '/xdg' };
    expect(resolveCacheDir('rel/dir', env, '/home/u')).toBe(resolve('rel/dir'));
    expect(resolveCacheDir(undefined, env, '/home/u')).toBe('/env/weft');
    expect(resolveCacheDir(undefined, { XDG_CACHE_HOME: '/xdg' }, '/home/u')).toBe('/xdg/weft');
    expect(resolveCacheDir(undefined, {}, '/home/u')).toBe('/home/u/.cache/weft');
    // A relative XDG_CACHE_HOME is invalid by the spec and ignored; an empty variable is unset.
    expect(resolveCacheDir(undefined, { XDG_CACHE_HOME: 'cache' }, '/home/u')).toBe('/home/u/.cache/weft');
    expect(resolveCacheDir(undefined, { WEFT_CACHE_DIR: '' }, '/home/u')).toBe('/home/u/.cache/weft');
  });

  it('does not depend on the base folder: the services of two bases share one cache', () => {
    const a = createEngineServices({ paths: new FolderPaths({ baseDir: join(tmpdir(), 'a') }), device: 'cpu', log: quiet });
    const b = createEngineServices({ paths: new FolderPaths({ baseDir: join(tmpdir(), 'b') }), device: 'cpu', log: quiet });
    expect(a.models?.cache.root).toBe(b.models?.cache.root);
    expect(a.models?.cache.root).toBe(resolveCacheDir());
  });

  it('new builds are stored compact (16 bits, linked) unless WEFT_CACHE_STORAGE (or the option) says float32', () => {
    const paths = new FolderPaths({ baseDir: join(tmpdir(), 'a') });
    const saved = process.env.WEFT_CACHE_STORAGE;
    delete process.env.WEFT_CACHE_STORAGE;
    try {
      const compact = createEngineServices({ paths, device: 'cpu', log: quiet }).models?.cache;
      expect([compact?.storeHalf, compact?.linkSource]).toEqual([true, true]);
      const wide = createEngineServices({ paths, device: 'cpu', log: quiet, cacheStorage: 'float32' }).models?.cache;
      expect([wide?.storeHalf, wide?.linkSource]).toEqual([false, false]);
      process.env.WEFT_CACHE_STORAGE = 'float32';
      expect(createEngineServices({ paths, device: 'cpu', log: quiet }).models?.cache.storeHalf).toBe(false);
      process.env.WEFT_CACHE_STORAGE = 'f16';
      expect(() => createEngineServices({ paths, device: 'cpu', log: quiet })).toThrow(/WEFT_CACHE_STORAGE=f16: expected compact or float32/);
    } finally {
      if (saved === undefined) delete process.env.WEFT_CACHE_STORAGE;
      else process.env.WEFT_CACHE_STORAGE = saved;
    }
  });

  it('the test suite never uses the real user cache', () => {
    // tests/cache/isolate-cache.ts (vitest setupFiles) points every test file at a temporary folder.
    expect(process.env.WEFT_CACHE_DIR?.startsWith(join(tmpdir(), 'weft-test-cache-'))).toBe(true);
    expect(resolveCacheDir()).toBe(process.env.WEFT_CACHE_DIR);
    const lines: string[] = [];
    cmdCache('dir', { print: (l) => lines.push(l) });
    expect(lines).toEqual([process.env.WEFT_CACHE_DIR]);
  });

  it('the size limit comes from --cache-limit, else $WEFT_CACHE_LIMIT, in binary units', () => {
    expect(resolveCacheLimit('20G', { WEFT_CACHE_LIMIT: '1G' })).toBe(20 * 2 ** 30);
    expect(resolveCacheLimit(undefined, { WEFT_CACHE_LIMIT: '1.5GiB' })).toBe(1.5 * 2 ** 30);
    expect(resolveCacheLimit(undefined, {})).toBeUndefined();
    expect(parseByteSize('500M')).toBe(500 * 2 ** 20);
    expect(parseByteSize('123')).toBe(123);
    expect(() => parseByteSize('lots')).toThrow(/not a size/);
    expect(parseDuration('30d')).toBe(30 * 86_400_000);
    expect(parseDuration('12h')).toBe(12 * 3_600_000);
    expect(() => parseDuration('soon')).toThrow(/not a duration/);
  });
});
