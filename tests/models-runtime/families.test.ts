import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Sd1Config } from '../../engine/models/families/sd1/config.ts';
import { PrefixedWeightSource } from '../../engine/core/weights.ts';
import type { Tensor } from '../../engine/core/tensor.ts';
import { SafetensorsFile, writeSafetensors } from '../../engine/formats/safetensors.ts';
import { builtinFamilies, type ModelFamily, type PartsContext } from '../../engine/models/families/index.ts';
import type { ExtraCondEntry, ExtraCondInfo } from '../../engine/models/handles.ts';
import { SD1 } from '../../engine/models/families/sd1/index.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { OrtUnet } from '../../engine/models/ort-unet.ts';
import type { PartSpec } from '../../engine/models/runtime/part.ts';
import { lcg, makeTiny, type Tiny } from '../models-onnx/tiny.ts';
import { fakeUnetGraph } from './fakes.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/**
 * A family beside SD1: its checkpoints are SD1 ones with a `fake.w` tensor, whose UNet is the fake
 * UNet graph (out = 2x + w + y) taking `y` from the conditioning's pooled output, and whose CLIP and
 * VAE are SD1's parts reused.
 */
const FAKE: ModelFamily<Sd1Config> = {
  id: 'fake',
  name: 'Fake',
  detect: (source) => (source.has('fake.w') ? SD1.detect(source) : undefined),
  parts: (config, ctx) => ({ ...SD1.parts(config, ctx), unet: fakeUnet(ctx) }),
  latentFormat: () => ({
    channels: 4,
    scaleFactor: 1,
    rgbFactors: [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
      [0, 0, 0],
    ],
  }),
  modelSampling: () => ({ prediction: 'v_prediction', betaSchedule: 'linear', linearStart: 0.001, linearEnd: 0.02, timesteps: 1000 }),
  extraConds: (_config, entry, info) => ({
    y: { shape: [info.batch, 4, 1, 1], data: new Float32Array(info.batch * 4).fill(entry.pooled?.data[0] ?? 0) },
  }),
  textEncoders: (config) => SD1.textEncoders(config),
  assemble: (config, ctx) => {
    const sd1 = SD1.assemble(config, ctx);
    const model = {
      id: `${FAKE.id}:${ctx.hash}`,
      family: FAKE.id,
      unet: new OrtUnet(4, config.unet.contextDim, 1, ctx.runtime.runner(fakeUnet(ctx))),
      sampling: FAKE.modelSampling(config),
      latentFormat: FAKE.latentFormat(config),
      extraConds: (e: ExtraCondEntry, i: ExtraCondInfo) => FAKE.extraConds(config, e, i),
    };
    return { ...sd1, family: FAKE.id, model };
  },
};

function fakeUnet(ctx: PartsContext): PartSpec {
  return {
    id: 'fake_unet',
    hash: ctx.hash,
    source: ctx.file,
    prefix: 'fake.',
    weights: new PrefixedWeightSource(ctx.source, 'fake.'),
    build: (w) => fakeUnetGraph(w, true),
  };
}

const W = Float32Array.from([1, 2, 3, 4]);
let tiny: Tiny;
let fakeFile: string;

beforeAll(async () => {
  tiny = await makeTiny(7);
  // The tiny SD1 checkpoint's tensors plus the fake family's marker weight.
  const sf = SafetensorsFile.open(tiny.file);
  const tensors = sf
    .names()
    .filter((n) => sf.info(n).dtype === 'F32')
    .map((name) => ({ name, dtype: 'F32' as const, shape: [...sf.shape(name)], data: sf.get(name) }));
  fakeFile = join(tiny.dir, 'checkpoints', 'fake.safetensors');
  await writeSafetensors(fakeFile, [...tensors, { name: 'fake.w', dtype: 'F32', shape: [1, 4, 1, 1], data: W }]);
  cpSync(tiny.file.replace(/\.safetensors$/, '.tokenizer'), fakeFile.replace(/\.safetensors$/, '.tokenizer'), { recursive: true });
});

describe('model families', () => {
  it('a family registered beside SD1 is chosen for its own checkpoints, SD1 still for SD1 ones', async () => {
    const families = builtinFamilies().register(FAKE);
    expect(families.list().map((f) => f.id)).toEqual(['sdxl', 'sd2', 'fake', 'sd1']);
    const m = new ModelManager({ cacheDir: join(mkdtempSync(join(tmpdir(), 'weft-fam-')), 'cache'), device: 'cpu', log: quiet, families });

    const fake = await m.loadCheckpoint(fakeFile);
    expect(fake.family).toBe('fake');
    expect(fake.model.family).toBe('fake');
    expect(fake.model.id).toMatch(/^fake:[0-9a-f]{64}$/);
    expect(fake.model.sampling.prediction).toBe('v_prediction');
    expect(fake.model.latentFormat.scaleFactor).toBe(1);

    const sd1 = await m.loadCheckpoint(tiny.file);
    expect(sd1.family).toBe('sd1');
    expect(sd1.model.family).toBe('sd1');
    expect(sd1.model.id).toMatch(/^sd1:[0-9a-f]{64}$/);
    expect(sd1.model.latentFormat).toMatchObject({ channels: 4, scaleFactor: 0.18215 });
    expect(sd1.model.sampling).toEqual({
      prediction: 'eps',
      betaSchedule: 'scaled_linear',
      linearStart: 0.00085,
      linearEnd: 0.012,
      timesteps: 1000,
    });

    // The fake family's UNet takes y, made by its extraConds from the entry's pooled output.
    const D = tiny.cfg.unet.contextDim;
    const pooled: Tensor = { shape: [1, D], data: new Float32Array(D).fill(0.25) };
    const entry = { cond: { shape: [1, 77, D], data: lcg(77 * D, 3) }, pooled };
    const extra = fake.model.extraConds!(entry, { batch: 2, height: 3, width: 2 });
    expect(Object.keys(extra)).toEqual(['y']);
    const x = { shape: [2, 4, 3, 2], data: lcg(48, 5) };
    const context = { shape: [2, 77, D], data: lcg(2 * 77 * D, 6) };
    const out = await fake.model.unet.run({ x, timesteps: new Float32Array([10, 10]), context, extra });
    expect([...out.data]).toEqual([...x.data].map((v, i) => Math.fround(Math.fround(2 * v) + W[Math.floor(i / 6) % 4] + 0.25)));
    // SD1 takes no extra inputs.
    expect(sd1.model.extraConds!(entry, { batch: 2, height: 3, width: 2 })).toEqual({});

    // CLIP and VAE are SD1's parts over the same weights: the same encoding.
    const a = await fake.clip.encodeText('a red cube');
    const b = await sd1.clip.encodeText('a red cube');
    expect(a.cond.data).toEqual(b.cond.data);
  });

  it('refuses a family registered twice; without the fake family its checkpoint loads as plain SD1', async () => {
    expect(() => builtinFamilies().register(FAKE).register(FAKE)).toThrow(/registered twice/);
    expect(() => builtinFamilies().register({ ...FAKE, id: 'sd1' })).toThrow(/registered twice/);
    const m = new ModelManager({ cacheDir: join(mkdtempSync(join(tmpdir(), 'weft-fam-')), 'cache'), device: 'cpu', log: quiet });
    expect((await m.loadCheckpoint(fakeFile)).family).toBe('sd1');
  });
});
