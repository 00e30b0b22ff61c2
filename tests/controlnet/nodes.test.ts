import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { broadcastRows } from '../../engine/models/controlnet/control.ts';
import { makeControlNetFile } from '../../engine/models/controlnet/generate.ts';
import { ControlNetLoader } from '../../engine/models/controlnet/loader.ts';
import type { ControlNetModel } from '../../engine/models/controlnet/model.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { PartsRuntime } from '../../engine/models/runtime/parts-runtime.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { ResolvedEntry } from '../../engine/sampling/cond-areas.ts';
import type { Control } from '../../engine/sampling/conditioning.ts';
import { controlsToUncond } from '../../engine/sampling/control.ts';
import { DiffControlNetLoader } from '../../nodes/controlnet/controlnet.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import '../../nodes/model/services.ts';
import { lcg, makeTiny, relErr } from '../models-onnx/tiny.ts';
import { TINY_CN, tempDir } from './helpers.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

describe('ControlNet nodes as ComfyUI declares them', () => {
  const dir = tempDir();
  makeControlNetFile(join(dir, 'controlnet', 'a.safetensors'), TINY_CN);
  const info = createBuiltinRegistry().objectInfo({ paths: new FolderPaths({ baseDir: dir, modelsDir: dir }) });

  it('ControlNetLoader and DiffControlNetLoader: loaders, the controlnet folder as a combo, one CONTROL_NET', () => {
    expect(info.ControlNetLoader.input.required).toEqual({ control_net_name: [['a.safetensors']] });
    expect(info.ControlNetLoader.output).toEqual(['CONTROL_NET']);
    expect(info.ControlNetLoader.category).toBe('loaders');
    expect(info.ControlNetLoader.display_name).toBe('Load ControlNet Model');
    expect(info.DiffControlNetLoader.input.required).toEqual({ model: ['MODEL'], control_net_name: [['a.safetensors']] });
    expect(info.DiffControlNetLoader.input_order.required).toEqual(['model', 'control_net_name']);
    expect(info.DiffControlNetLoader.output).toEqual(['CONTROL_NET']);
  });

  it('ControlNetApplyAdvanced: positive, negative, control_net, image, strength 1 (0..10 by 0.01), start 0 and end 1 (by 0.001), optional vae', () => {
    const e = info.ControlNetApplyAdvanced;
    expect(e.input_order.required).toEqual(['positive', 'negative', 'control_net', 'image', 'strength', 'start_percent', 'end_percent']);
    expect(e.input.required.strength).toEqual(['FLOAT', { default: 1.0, min: 0.0, max: 10.0, step: 0.01 }]);
    expect(e.input.required.start_percent).toEqual(['FLOAT', { default: 0.0, min: 0.0, max: 1.0, step: 0.001 }]);
    expect(e.input.required.end_percent).toEqual(['FLOAT', { default: 1.0, min: 0.0, max: 1.0, step: 0.001 }]);
    expect(e.input.optional).toEqual({ vae: ['VAE'] });
    expect(e.output).toEqual(['CONDITIONING', 'CONDITIONING']);
    expect(e.output_name).toEqual(['positive', 'negative']);
    expect(e.category).toBe('conditioning/controlnet');
    expect(e.display_name).toBe('Apply ControlNet');
  });

  it('ControlNetApply (legacy, deprecated): conditioning, control_net, image, strength', () => {
    const e = info.ControlNetApply;
    expect(e.input_order.required).toEqual(['conditioning', 'control_net', 'image', 'strength']);
    expect(e.output).toEqual(['CONDITIONING']);
    expect(e.deprecated).toBe(true);
  });
});

describe("ComfyUI's broadcast_image_to for the hint", () => {
  const t: Tensor = { shape: [2, 1, 1, 1], data: new Float32Array([10, 20]) };
  it('keeps a batch-1 hint and a hint as large as the batch; cycles the first rows per chunk otherwise', () => {
    const one: Tensor = { shape: [1, 1, 1, 1], data: new Float32Array([5]) };
    expect(broadcastRows(one, 6, 2)).toBe(one);
    expect(broadcastRows(t, 2, 2)).toBe(t);
    // 3 latents, cond + uncond: per chunk rows 0, 1, 0, repeated for both chunks.
    expect(Array.from(broadcastRows(t, 6, 2).data)).toEqual([10, 20, 10, 10, 20, 10]);
    // 1 latent, cond only: the first row.
    expect(Array.from(broadcastRows(t, 1, 1).data)).toEqual([10]);
    expect(Array.from(broadcastRows({ shape: [3, 1, 1, 1], data: new Float32Array([1, 2, 3]) }, 4, 2).data)).toEqual([1, 2, 1, 2]);
  });
});

describe('control_apply_to_uncond (legacy ControlNetApply)', () => {
  const c: Control = { getControl: async () => undefined };
  const d: Control = { getControl: async () => undefined };
  const entry = (e: Partial<ResolvedEntry>): ResolvedEntry => ({
    cond: { shape: [1, 1, 1], data: new Float32Array(1) },
    strength: 1,
    group: 0,
    named: {},
    ...e,
  });

  it('gives the marked positive controls to negative entries without an area, cycling', () => {
    const neg = [entry({ group: 1 }), entry({ group: 1, area: { h: 1, w: 1, y: 0, x: 0 } }), entry({ group: 1 })];
    controlsToUncond([entry({ control: c, controlApplyToUncond: true }), entry({ control: d, controlApplyToUncond: true })], neg);
    expect(neg.map((e) => e.control)).toEqual([c, undefined, d]);
  });

  it('leaves the negative alone when one of its entries without an area has a control, or the positive is not marked', () => {
    const neg = [entry({ group: 1, control: d }), entry({ group: 1 })];
    controlsToUncond([entry({ control: c, controlApplyToUncond: true })], neg);
    expect(neg.map((e) => e.control)).toEqual([d, undefined]);
    const neg2 = [entry({ group: 1 })];
    controlsToUncond([entry({ control: c, controlApplyToUncond: false })], neg2);
    expect(neg2[0].control).toBeUndefined();
    // A positive with an area does not count.
    controlsToUncond([entry({ control: c, controlApplyToUncond: true, area: { h: 1, w: 1, y: 0, x: 0 } })], neg2);
    expect(neg2[0].control).toBeUndefined();
  });
});

describe('ControlNet parts on the parts runtime', () => {
  it('are built once into the build cache and found there by a later runtime', async () => {
    const dir = tempDir();
    const file = join(dir, 'controlnet', 'cn.safetensors');
    makeControlNetFile(file, TINY_CN, { seed: 2 });
    const run = async (): Promise<number> => {
      const rt = new PartsRuntime({ cacheDir: join(dir, 'cache'), device: 'cpu', log: quiet });
      const net = new ControlNetLoader(rt, { cacheDir: join(dir, 'cache') }).load(file);
      const f = await net.encodeHint({ shape: [1, 3, 32, 32], data: lcg(3 * 1024, 1) });
      expect(f.shape).toEqual([1, 32, 4, 4]);
      const out = await net.run({
        x: { shape: [1, 4, 4, 4], data: lcg(64, 2) },
        timesteps: new Float32Array([10]),
        context: { shape: [1, 3, 64], data: lcg(192, 3) },
        hintFeatures: f,
      });
      expect(out.input).toHaveLength(12);
      return rt.builds;
    };
    expect(await run()).toBe(2);
    expect(await run()).toBe(0);
  }, 120_000);
});

describe('DiffControlNetLoader', () => {
  it("adds the model's UNet weights to a difference ControlNet: it runs as the absolute ControlNet it was made from", async () => {
    const tiny = await makeTiny(3);
    const manager = new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet });
    const parts = await manager.loadCheckpoint(tiny.file);
    const cfg = { unet: tiny.cfg.unet, hintChannels: 3 };
    makeControlNetFile(join(tiny.dir, 'controlnet', 'abs.safetensors'), cfg, { seed: 4 });
    makeControlNetFile(join(tiny.dir, 'controlnet', 'diff.safetensors'), cfg, { seed: 4, differenceFrom: tiny.unet });
    const ctx = {
      services: { models: manager },
      log: quiet,
      paths: new FolderPaths({ baseDir: tiny.dir, modelsDir: tiny.dir }),
    } as unknown as NodeContext;
    const [diff] = (await DiffControlNetLoader.run({ model: parts.model, control_net_name: 'diff.safetensors' }, ctx)) as [ControlNetModel];
    const [abs] = (await DiffControlNetLoader.run({ model: parts.model, control_net_name: 'abs.safetensors' }, ctx)) as [ControlNetModel];
    expect(diff.id).not.toBe(abs.id);
    const warnings: string[] = [];
    const raw = new ControlNetLoader(manager.runtime, {
      cacheDir: join(tiny.dir, 'cache'),
      log: { ...quiet, warn: (m) => warnings.push(m) },
    }).load(join(tiny.dir, 'controlnet', 'diff.safetensors'));
    expect(warnings.join()).toMatch(/difference ControlNet loaded without a model/);
    const hint = { shape: [1, 3, 64, 64], data: lcg(3 * 4096, 5).map((v) => (v + 1) / 2) };
    const args = async (net: typeof abs) => ({
      x: { shape: [1, 4, 8, 8], data: lcg(256, 6) },
      timesteps: new Float32Array([700]),
      context: { shape: [1, 77, 64], data: lcg(77 * 64, 7) },
      hintFeatures: await net.encodeHint(hint),
    });
    const a = await abs.run(await args(abs));
    const d = await diff.run(await args(diff));
    const r = await raw.run(await args(raw));
    a.input.forEach((t, i) => expect(relErr(d.input[i].data, t.data), `${i}`).toBeLessThan(1e-5));
    expect(relErr(d.middle.data, a.middle.data)).toBeLessThan(1e-5);
    expect(relErr(r.middle.data, a.middle.data)).toBeGreaterThan(1e-2);
  }, 120_000);
});
