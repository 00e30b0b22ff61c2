import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import type { OrtVae } from '../../engine/models/ort-vae.ts';
import { resolveMemoryBudget } from '../../engine/models/runtime/memory-budget.ts';
import { PartsRuntime } from '../../engine/models/runtime/parts-runtime.ts';
import { TiledVae, tiledPassBytes } from '../../engine/models/tiled-vae/tiled-vae.ts';
import { lcg, makeTiny } from '../models-onnx/tiny.ts';
import { fakePart } from './fakes.ts';

/* Working memory reserved from the session budget: idle sessions go first, least recently used first, only when needed. */

const W = Float32Array.from([10, 20, 30, 40]);
const feed = { x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [4]) };
const loadedIds = (r: PartsRuntime): string[] => r.stats().loaded.map((l) => l.key.split('-')[0]);

function logs(): { info: (m: string) => void; warn: () => void; error: () => void; lines: string[] } {
  const lines: string[] = [];
  return { info: (m) => void lines.push(m), warn: () => {}, error: () => {}, lines };
}

describe('SessionPool.reserve through PartsRuntime.withReserved', () => {
  it('releases idle sessions, oldest first, only as far as the reservation needs, and counts it against later loads', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'weft-reserve-'));
    const sizes = new PartsRuntime({ cacheDir, device: 'cpu' });
    await sizes.runner({ ...fakePart(W), id: 'a' })(feed);
    const a = sizes.stats().bytes;
    await sizes.runner({ ...fakePart(W), id: 'b' })(feed);
    const b = sizes.stats().bytes - a;
    expect(a).toBeGreaterThan(100);

    const log = logs();
    const r = new PartsRuntime({ cacheDir, device: 'cpu', memoryBudgetBytes: a + b + 100, log });
    const runA = r.runner({ ...fakePart(W), id: 'a' });
    const runB = r.runner({ ...fakePart(W), id: 'b' });
    await runA(feed);
    await runB(feed);
    expect(loadedIds(r)).toEqual(['a', 'b']);
    // Within the budget: nothing released.
    await r.withReserved(100, 'small work', async () => {
      expect(r.stats().reserved).toBe(100);
    });
    expect(loadedIds(r)).toEqual(['a', 'b']);
    // Room for a + 60 more: the least recently used (a) goes, b stays.
    await r.withReserved(a + 60, 'big work', async () => {
      expect(loadedIds(r)).toEqual(['b']);
      expect(r.stats().reserved).toBe(a + 60);
      // While it is held, loading a again has to release b.
      await runA(feed);
      expect(loadedIds(r)).toEqual(['a']);
    });
    expect(r.stats().reserved).toBe(0);
    expect(log.lines.filter((l) => l.startsWith('unloaded'))).toEqual([
      expect.stringMatching(/^unloaded a-.* to make room for big work$/),
      expect.stringMatching(/^unloaded b-.* to make room for a-/),
    ]);
    // Released even when the work fails.
    await expect(r.withReserved(5, 'failing work', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(r.stats().reserved).toBe(0);
  });

  it('the budget comes from --memory-budget, else WEFT_MEMORY_BUDGET, in binary units; a nonsense value is refused', () => {
    expect(resolveMemoryBudget('4G', {})).toBe(4 * 2 ** 30);
    expect(resolveMemoryBudget(undefined, { WEFT_MEMORY_BUDGET: '512M' })).toBe(512 * 2 ** 20);
    expect(resolveMemoryBudget('1G', { WEFT_MEMORY_BUDGET: '512M' })).toBe(2 ** 30);
    expect(resolveMemoryBudget(undefined, {})).toBeGreaterThan(0);
    expect(() => resolveMemoryBudget('lots', {})).toThrow(/'lots' is not a size/);
    expect(() => resolveMemoryBudget('0', {})).toThrow(/leaves no memory/);
  });
});

describe('a tiled VAE pass on a small budget', () => {
  it('releases the idle text encoder before decoding, and decodes the same values as with room to spare', async () => {
    const tiny = await makeTiny(7);
    const cacheDir = join(tiny.dir, 'cache');
    const lat: Tensor = { shape: [1, 4, 16, 16], data: lcg(1024, 3, 2) };
    const spill = 2 ** 20;

    const roomy = new ModelManager({ cacheDir, device: 'cpu', log: logs() });
    const parts = await roomy.loadCheckpoint(tiny.file);
    await parts.clip.encodeText('a cat');
    const vae = parts.vae as OrtVae;
    const tiled = (m: ModelManager): TiledVae => new TiledVae(m.runtime, { cfg: vae.cfg, weights: vae.weights!, hash: vae.id.slice(4) });
    const wanted = await tiled(roomy).decodeRaw(lat, { tileSize: 512, fast: false, memoryBudget: spill });
    expect(roomy.runtime.stats().loaded.some((l) => l.key.startsWith('clip-'))).toBe(true);

    // The text encoder's session as a later process loads it (its saved optimised graph).
    const probe = new ModelManager({ cacheDir, device: 'cpu', log: logs() });
    await (await probe.loadCheckpoint(tiny.file)).clip.encodeText('a cat');
    const clipBytes = probe.runtime.stats().bytes;
    // One tile of 128² pixels: what the decode reserves.
    const reserve = tiledPassBytes(vae.cfg, 1, 128 * 128, 3 * 128 * 128, spill);
    const log = logs();
    const tight = new ModelManager({ cacheDir, device: 'cpu', log, memoryBudgetBytes: clipBytes + reserve - 1 });
    const p2 = await tight.loadCheckpoint(tiny.file);
    await p2.clip.encodeText('a cat');
    expect(tight.runtime.stats().loaded.some((l) => l.key.startsWith('clip-'))).toBe(true);
    const got = await tiled(tight).decodeRaw(lat, { tileSize: 512, fast: false, memoryBudget: spill });
    expect(tight.runtime.stats().loaded.some((l) => l.key.startsWith('clip-'))).toBe(false);
    expect(log.lines).toContainEqual(
      expect.stringMatching(/^unloaded clip-.* to make room for the tiled VAE decode of 128x128 \(0\.\d\d GiB of tiles\)$/),
    );
    expect(got.data).toEqual(wanted.data);
  }, 120_000);
});
