import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../../engine/formats/safetensors.ts';
import { adapterConfigFor, makeAdapterFile } from '../../engine/models/controlnet/generate-adapter.ts';
import { makeControlNetFile } from '../../engine/models/controlnet/generate.ts';
import { readControlModel } from '../../engine/models/controlnet/load.ts';
import { ControlNetLoader } from '../../engine/models/controlnet/loader.ts';
import { PartsRuntime } from '../../engine/models/runtime/parts-runtime.ts';
import { POrdered, PStorage, PTensor, torchSaveLegacy, torchSaveZip, type PVal, type StorageClass } from '../formats/torch-writer.ts';
import { lcg } from '../models-onnx/tiny.ts';
import { TINY_CN, tempDir } from './helpers.ts';

/*
 * `.pth` ControlNets and T2I-Adapters (lllyasviel's and TencentARC's releases are pickles) go through
 * the safe pickle reader: the same weights, structure and outputs as their .safetensors twins.
 */

const STORAGE: Record<string, StorageClass> = { F32: 'FloatStorage', F16: 'HalfStorage', BF16: 'BFloat16Storage' };
const quiet = { info: () => {}, warn: () => {}, error: () => {} };
/** Bitwise equality of two float arrays (vitest's deep equality walks large typed arrays slowly). */
const same = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** The tensors of a safetensors file as a torch state dict. */
function stateDict(file: string): POrdered {
  const sf = SafetensorsFile.open(file);
  const m = new Map<PVal, PVal>();
  sf.names().forEach((name, i) => {
    const { dtype, shape, bytes } = sf.getRaw(name);
    m.set(
      name,
      new PTensor(
        new PStorage(
          String(i),
          STORAGE[dtype],
          new Uint8Array(bytes),
          shape.reduce((a, b) => a * b, 1),
        ),
        shape,
      ),
    );
  });
  return new POrdered(m);
}

describe('.pth ControlNets and T2I-Adapters', () => {
  it('a .pth ControlNet (zip) and a legacy-format one read as their safetensors twin: layout, structure, every weight; the loader runs it to the same residuals', async () => {
    const dir = tempDir();
    const st = join(dir, 'controlnet', 'control_v11p_sd15_canny.safetensors');
    makeControlNetFile(st, TINY_CN, { seed: 6, dtype: 'F16' });
    const zip = join(dir, 'controlnet', 'control_v11p_sd15_canny.pth');
    const legacy = join(dir, 'controlnet', 'control_sd15_canny_legacy.pth');
    writeFileSync(zip, torchSaveZip(stateDict(st)));
    writeFileSync(legacy, torchSaveLegacy(stateDict(st)));
    const a = readControlModel(st);
    if (a.kind !== 'controlnet') throw new Error('not a ControlNet');
    for (const f of [zip, legacy]) {
      const b = readControlModel(f);
      if (b.kind !== 'controlnet') throw new Error('not a ControlNet');
      expect(b.cn.kind).toBe('single-file');
      expect(b.cn.config).toEqual(a.cn.config);
      expect(b.cn.weights.names().sort()).toEqual(a.cn.weights.names().sort());
      for (const k of a.cn.weights.names()) expect(same(b.cn.weights.get(k), a.cn.weights.get(k)), k).toBe(true);
    }

    const rt = new PartsRuntime({ cacheDir: join(dir, 'cache'), device: 'cpu', log: quiet });
    const loader = new ControlNetLoader(rt, { cacheDir: join(dir, 'cache') });
    const hint = { shape: [1, 3, 32, 32], data: lcg(3 * 1024, 1).map((v) => (v + 1) / 2) };
    const run = async (file: string): Promise<Float32Array[]> => {
      const net = loader.load(file);
      const out = await net.run({
        x: { shape: [1, 4, 4, 4], data: lcg(64, 2) },
        timesteps: new Float32Array([500]),
        context: { shape: [1, 3, 64], data: lcg(192, 3) },
        hintFeatures: await net.encodeHint(hint),
      });
      return [...out.input.map((t) => t.data), out.middle.data];
    };
    const want = await run(st);
    const got = await run(zip);
    expect(got).toHaveLength(want.length);
    got.forEach((g, i) => expect(same(g, want[i]), `residual ${i}`).toBe(true));
  }, 120_000);

  it('a .pth T2I-Adapter reads as its safetensors twin', () => {
    const dir = tempDir();
    const cfg = adapterConfigFor(TINY_CN.unet, { ksize: 1 });
    const st = join(dir, 'controlnet', 't2iadapter_canny_sd15v2.safetensors');
    const w = makeAdapterFile(st, cfg, { seed: 2 });
    const pth = join(dir, 'controlnet', 't2iadapter_canny_sd15v2.pth');
    writeFileSync(pth, torchSaveZip(stateDict(st)));
    const r = readControlModel(pth);
    if (r.kind !== 't2i-adapter') throw new Error('not an adapter');
    expect(r.adapter.config).toEqual(cfg);
    for (const [k, t] of w) expect(same(r.adapter.weights.get(k), t.data), k).toBe(true);
  });
});
