import fs from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Dtype } from '../../engine/core/dtype.ts';
import { SafetensorsFile, writeSafetensors } from '../../engine/formats/safetensors.ts';
import type { LoraPatch } from '../../engine/models/lora/types.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { SD1_PREFIX } from '../../engine/models/families/sd1/config.ts';
import { kohyaUnetLdm } from '../lora/make-adapters.ts';
import { lcg, makeTiny, relErr, type Tiny } from '../models-onnx/tiny.ts';
import { POrdered, PStorage, PTensor, torchSaveLegacy, torchSaveZip, type PVal, type StorageClass } from './torch-writer.ts';

/**
 * The tiny SD1 checkpoint re-saved as torch files (zip .ckpt, as A1111 checkpoints are, with
 * `state_dict` and training metadata; its VAE alone as a legacy .pt) loads through the same
 * ModelManager calls and gives the same UNet and VAE outputs as the safetensors file.
 */

const STORAGE: Partial<Record<Dtype, StorageClass>> = {
  F32: 'FloatStorage',
  F16: 'HalfStorage',
  BF16: 'BFloat16Storage',
  I64: 'LongStorage',
  I32: 'IntStorage',
};
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

function stateDict(sf: SafetensorsFile, filter: (n: string) => string | undefined): POrdered {
  const m = new Map<PVal, PVal>();
  sf.names().forEach((name, i) => {
    const to = filter(name);
    if (to === undefined) return;
    const { dtype, shape, bytes } = sf.getRaw(name);
    const cls = STORAGE[dtype];
    if (!cls) throw new Error(`no storage class for ${dtype}`);
    const numel = shape.reduce((a, b) => a * b, 1);
    m.set(to, new PTensor(new PStorage(String(i), cls, new Uint8Array(bytes), numel), shape));
  });
  return new POrdered(m);
}

let tiny: Tiny;
let ckpt: string;
let vaePt: string;
beforeAll(async () => {
  tiny = await makeTiny(6);
  const sf = SafetensorsFile.open(tiny.file);
  ckpt = join(tiny.dir, 'checkpoints', 'weft-tiny-sd1.ckpt');
  fs.writeFileSync(ckpt, torchSaveZip({ epoch: 3, global_step: 12000, state_dict: stateDict(sf, (n) => n) }));
  vaePt = join(tiny.dir, 'vae.pt');
  fs.writeFileSync(
    vaePt,
    torchSaveLegacy({ state_dict: stateDict(sf, (n) => (n.startsWith(SD1_PREFIX.vae) ? n.slice(SD1_PREFIX.vae.length) : undefined)) }),
  );
  sf.close();
});

describe('the tiny SD1 checkpoint as a .ckpt', () => {
  it('gives the same UNet and VAE outputs as the safetensors file; a legacy .pt VAE decodes the same', async () => {
    const a = await new ModelManager({ cacheDir: join(tiny.dir, 'cache-st'), device: 'cpu', log: quiet }).loadCheckpoint(tiny.file);
    const m = new ModelManager({ cacheDir: join(tiny.dir, 'cache-ckpt'), device: 'cpu', log: quiet });
    const b = await m.loadCheckpoint(ckpt);
    const D = tiny.cfg.unet.contextDim;
    const x = { shape: [1, 4, 8, 8], data: lcg(256, 21) };
    const ctx = { shape: [1, 77, D], data: lcg(77 * D, 22) };
    const t = new Float32Array([500]);
    const ua = await a.model.unet.run({ x, timesteps: t, context: ctx });
    const ub = await b.model.unet.run({ x, timesteps: t, context: ctx });
    expect(relErr(ub.data, ua.data)).toBeLessThan(1e-7);
    const lat = { shape: [1, 4, 4, 4], data: lcg(64, 23) };
    const ia = await a.vae.decode(lat);
    expect(relErr((await b.vae.decode(lat)).data, ia.data)).toBeLessThan(1e-7);
    const v = await m.loadVae(vaePt);
    expect(relErr((await v.decode(lat)).data, ia.data)).toBeLessThan(1e-7);
    const ca = await a.clip.encodeText('a cat');
    expect(relErr((await b.clip.encodeText('a cat')).cond.data, ca.cond.data)).toBeLessThan(1e-7);
  });

  it('a LoRA saved as a .pt parses into the same patches as its safetensors twin', () => {
    const sf = SafetensorsFile.open(tiny.file);
    const q = sf.names().find((n) => n.startsWith(SD1_PREFIX.unet) && n.endsWith('attn1.to_q.weight'));
    if (!q) throw new Error('no to_q in the tiny UNet');
    const [out, inp] = sf.shape(q);
    const stem = kohyaUnetLdm(q);
    const st = join(tiny.dir, 'lora.safetensors');
    writeSafetensors(st, [
      { name: `${stem}.lora_down.weight`, dtype: 'F32', shape: [2, inp], data: lcg(2 * inp, 31) },
      { name: `${stem}.lora_up.weight`, dtype: 'F16', shape: [out, 2], data: lcg(2 * out, 32) },
      { name: `${stem}.alpha`, dtype: 'F32', shape: [], data: new Float32Array([1.5]) },
    ]);
    const pt = join(tiny.dir, 'lora.pt');
    const lsf = SafetensorsFile.open(st);
    fs.writeFileSync(pt, torchSaveZip(stateDict(lsf, (n) => n)));
    lsf.close();
    const m = new ModelManager({ cacheDir: join(tiny.dir, 'cache-lora'), device: 'cpu', log: quiet });
    const a = m.loadAdapter(st, sf).parsed;
    const b = m.loadAdapter(pt, sf).parsed;
    expect(b.format).toBe(a.format);
    expect(b.unmatched).toEqual([]);
    expect(b.patches).toHaveLength(1);
    const [pa, pb] = [a.patches[0] as LoraPatch, b.patches[0] as LoraPatch];
    expect([pb.kind, pb.target, pb.alpha]).toEqual(['lora', q, 1.5]);
    expect([pa.kind, pa.target, pa.alpha]).toEqual(['lora', q, 1.5]);
    expect(pb.up.read()).toEqual(pa.up.read());
    expect(pb.down.read()).toEqual(pa.down.read());
    sf.close();
  });
});
