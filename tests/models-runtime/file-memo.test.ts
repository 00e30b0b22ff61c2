import { mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SafetensorsFile, writeSafetensors } from '../../engine/formats/safetensors.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { FileMemo } from '../../engine/models/runtime/file-memo.ts';
import { lcg, makeTiny } from '../models-onnx/tiny.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

describe('FileMemo', () => {
  it('loads once per file identity: the same file is free, a rewritten one loads again', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'weft-memo-')), 'a.bin');
    writeFileSync(file, 'one');
    const memo = new FileMemo<string>();
    let loads = 0;
    const load = () => `v${++loads}`;
    expect(memo.get(file, load)).toBe('v1');
    expect(memo.get(file, load)).toBe('v1');
    writeFileSync(file, 'three');
    expect(memo.get(file, load)).toBe('v2');
    utimesSync(file, new Date(), new Date(Date.now() + 60_000));
    expect(memo.get(file, load)).toBe('v3');
  });

  it('a standalone VAE file loads once, as the LDM VAE over the same parts as its checkpoint', async () => {
    const tiny = await makeTiny(9);
    const sf = SafetensorsFile.open(tiny.file);
    const prefix = 'first_stage_model.';
    const vaeFile = join(tiny.dir, 'vae.safetensors');
    await writeSafetensors(
      vaeFile,
      sf
        .names()
        .filter((n) => n.startsWith(prefix))
        .map((n) => ({ name: n.slice(prefix.length), dtype: 'F32' as const, shape: [...sf.shape(n)], data: sf.get(n) })),
    );
    const m = new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet });
    const vae = await m.loadVae(vaeFile);
    expect(await m.loadVae(vaeFile)).toBe(vae);
    expect(vae.id).toMatch(/^vae:[0-9a-f]{64}$/);
    const lat = { shape: [1, 4, 3, 4], data: lcg(48, 2) };
    const fromCkpt = await (await m.loadCheckpoint(tiny.file)).vae.decode(lat);
    expect((await vae.decode(lat)).data).toEqual(fromCkpt.data);
  });
});
