import fs from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Dtype } from '../../engine/core/dtype.ts';
import type { Tensor } from '../../engine/core/tensor.ts';
import { SafetensorsFile, writeSafetensors } from '../../engine/formats/safetensors.ts';
import { makeControlNetFile } from '../../engine/models/controlnet/generate.ts';
import type { ControlNetModel } from '../../engine/models/controlnet/model.ts';
import { SD1_PREFIX } from '../../engine/models/families/sd1/config.ts';
import type { ClipHandle, ModelHandle, VaeHandle } from '../../engine/models/handles.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import { ControlNetLoader } from '../../nodes/controlnet/controlnet.ts';
import { CheckpointLoader, CheckpointLoaderSimple, VAELoader } from '../../nodes/model/loaders.ts';
import { LoraLoader } from '../../nodes/model/lora.ts';
import '../../nodes/model/services.ts';
import { kohyaUnetLdm } from '../lora/make-adapters.ts';
import { lcg, makeTiny, type Tiny } from '../models-onnx/tiny.ts';
import { POrdered, PStorage, PTensor, torchSaveLegacy, torchSaveZip, type PVal, type StorageClass } from './torch-writer.ts';

/**
 * Every loader takes PyTorch pickles through the safe reader and gives exactly what the same
 * weights as safetensors give: LoRAs (LoraLoader, applied to the UNet), VAEs (VAELoader), ControlNets
 * (ControlNetLoader, which refused .pth before). Checkpoints, embeddings and hypernetworks have their
 * own tests (pickle-checkpoint, pickle, tests/hypernetwork). And CheckpointLoader, the deprecated
 * loader with an LDM config, against CheckpointLoaderSimple.
 */

const STORAGE: Partial<Record<Dtype, StorageClass>> = {
  F32: 'FloatStorage',
  F16: 'HalfStorage',
  BF16: 'BFloat16Storage',
  I64: 'LongStorage',
};
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/** A safetensors file's tensors as a torch state dict (same bytes, same dtypes). */
function toTorch(file: string, out: string, format: 'zip' | 'legacy', wrap?: (sd: POrdered) => PVal): string {
  const sf = SafetensorsFile.open(file);
  const m = new Map<PVal, PVal>();
  sf.names().forEach((name, i) => {
    const { dtype, shape, bytes } = sf.getRaw(name);
    const cls = STORAGE[dtype];
    if (!cls) throw new Error(`no storage class for ${dtype}`);
    m.set(
      name,
      new PTensor(
        new PStorage(
          String(i),
          cls,
          new Uint8Array(bytes),
          shape.reduce((a, b) => a * b, 1),
        ),
        shape,
      ),
    );
  });
  sf.close();
  const sd = new POrdered(m);
  const v = wrap ? wrap(sd) : sd;
  fs.writeFileSync(out, format === 'zip' ? torchSaveZip(v) : torchSaveLegacy(v));
  return out;
}

const bits = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

let tiny: Tiny;
let ctx: NodeContext;
let model: ModelHandle;
const x: Tensor = { shape: [1, 4, 8, 8], data: lcg(256, 61) };
const t = new Float32Array([450]);
let context: Tensor;

beforeAll(async () => {
  tiny = await makeTiny(12);
  const paths = new FolderPaths({ baseDir: tiny.dir, modelsDir: tiny.dir });
  const manager = new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet, paths });
  ctx = { services: { models: manager }, log: quiet, paths } as unknown as NodeContext;
  model = (await manager.loadCheckpoint(tiny.file)).model;
  context = { shape: [1, 77, tiny.cfg.unet.contextDim], data: lcg(77 * tiny.cfg.unet.contextDim, 62) };
}, 120_000);

describe('pickled weights in every loader', () => {
  it('LoraLoader: a .pt LoRA (zip) and a .ckpt one (legacy, under state_dict) patch the UNet exactly as its safetensors twin', async () => {
    ensureLora();
    const apply = async (name: string): Promise<Float32Array> => {
      const [m] = (await LoraLoader.run(
        { model, clip: (await ctxClip()) as ClipHandle, lora_name: name, strength_model: 0.8, strength_clip: 0 },
        ctx,
      )) as [ModelHandle, ClipHandle];
      return (await m.unet.run({ x, timesteps: t, context })).data;
    };
    const want = await apply('l.safetensors');
    const plain = (await model.unet.run({ x, timesteps: t, context })).data;
    expect(bits(want).equals(bits(plain))).toBe(false);
    expect(bits(await apply('l.pt')).equals(bits(want))).toBe(true);
    expect(bits(await apply('l.ckpt')).equals(bits(want))).toBe(true);
  });

  it('VAELoader: a legacy .pt and a zip .pth VAE decode exactly as the safetensors one', async () => {
    fs.mkdirSync(join(tiny.dir, 'vae'), { recursive: true });
    const sf = SafetensorsFile.open(tiny.file);
    const st = join(tiny.dir, 'vae', 'v.safetensors');
    writeSafetensors(
      st,
      sf
        .names()
        .filter((n) => n.startsWith(SD1_PREFIX.vae))
        .map((n) => ({ name: n.slice(SD1_PREFIX.vae.length), dtype: 'F32' as const, shape: [...sf.shape(n)], data: sf.get(n) })),
    );
    sf.close();
    toTorch(st, join(tiny.dir, 'vae', 'v.pt'), 'legacy', (sd) => ({ state_dict: sd }));
    toTorch(st, join(tiny.dir, 'vae', 'v.pth'), 'zip');
    const lat: Tensor = { shape: [1, 4, 4, 4], data: lcg(64, 63) };
    const decode = async (name: string): Promise<Float32Array> =>
      (await ((await VAELoader.run({ vae_name: name }, ctx)) as [VaeHandle])[0].decode(lat)).data;
    const want = await decode('v.safetensors');
    expect(bits(await decode('v.pt')).equals(bits(want))).toBe(true);
    expect(bits(await decode('v.pth')).equals(bits(want))).toBe(true);
  });

  it('ControlNetLoader: a .pth ControlNet (zip) gives the safetensors residuals exactly', async () => {
    const st = join(tiny.dir, 'controlnet', 'cn.safetensors');
    makeControlNetFile(st, { unet: tiny.cfg.unet, hintChannels: 3 }, { seed: 14 });
    toTorch(st, join(tiny.dir, 'controlnet', 'cn.pth'), 'zip');
    const hint: Tensor = { shape: [1, 3, 64, 64], data: lcg(3 * 64 * 64, 64).map((v) => (v + 1) / 2) };
    const residuals = async (name: string): Promise<Float32Array[]> => {
      const cn = (ControlNetLoader.run({ control_net_name: name }, ctx) as [ControlNetModel])[0];
      const hintFeatures = await cn.encodeHint(hint);
      const r = await cn.run({ x, timesteps: t, context, hintFeatures });
      return [hintFeatures.data, ...r.input.map((v) => v.data), r.middle.data];
    };
    const want = await residuals('cn.safetensors');
    const got = await residuals('cn.pth');
    expect(got.length).toBe(want.length);
    got.forEach((g, i) => expect(bits(g).equals(bits(want[i])), `output ${i}`).toBe(true));
  });
});

/** A LoRA on three UNet layers (a linear, a 1×1 and a 3×3 conv) as loras/l.safetensors, .pt (zip) and .ckpt (legacy, under state_dict). */
function ensureLora(): string {
  fs.mkdirSync(join(tiny.dir, 'loras'), { recursive: true });
  const tensors = [];
  let seed = 70;
  for (const layer of ['input_blocks.1.1.transformer_blocks.0.attn1.to_q', 'middle_block.1.proj_in', 'output_blocks.3.0.in_layers.2']) {
    const target = `${SD1_PREFIX.unet}${layer}.weight`;
    const shape = tiny.unet.shape(`${layer}.weight`);
    const inner = shape.slice(1).reduce((a, b) => a * b, 1);
    const stem = kohyaUnetLdm(target);
    tensors.push(
      {
        name: `${stem}.lora_down.weight`,
        dtype: 'F32' as const,
        shape: shape.length === 4 ? [2, ...shape.slice(1)] : [2, inner],
        data: lcg(2 * inner, seed++, 0.3),
      },
      {
        name: `${stem}.lora_up.weight`,
        dtype: 'F16' as const,
        shape: shape.length === 4 ? [shape[0], 2, 1, 1] : [shape[0], 2],
        data: lcg(2 * shape[0], seed++, 0.3),
      },
      { name: `${stem}.alpha`, dtype: 'F32' as const, shape: [], data: new Float32Array([1.5]) },
    );
  }
  const st = join(tiny.dir, 'loras', 'l.safetensors');
  if (fs.existsSync(st)) return st;
  writeSafetensors(st, tensors);
  toTorch(st, join(tiny.dir, 'loras', 'l.pt'), 'zip');
  toTorch(st, join(tiny.dir, 'loras', 'l.ckpt'), 'legacy', (sd) => ({ state_dict: sd, epoch: 1 }));
  return st;
}

let clip: ClipHandle | undefined;
async function ctxClip(): Promise<ClipHandle> {
  clip ??= (await (ctx.services as unknown as { models: ModelManager }).models.loadCheckpoint(tiny.file)).clip;
  return clip;
}

describe('CheckpointLoader (deprecated, with an LDM config)', () => {
  const yaml = (params: string): string =>
    [
      'model:',
      '  base_learning_rate: 1.0e-04',
      '  target: ldm.models.diffusion.ddpm.LatentDiffusion',
      '  params:',
      '    linear_start: 0.00085',
      '    linear_end: 0.0120',
      '    scale_factor: 0.18215',
      params,
      '    cond_stage_config:',
      '      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder',
    ].join('\n');

  beforeAll(() => {
    const dir = join(tiny.dir, 'configs');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(join(dir, 'v1-inference.yaml'), yaml(''));
    fs.writeFileSync(join(dir, 'v-pred.yaml'), yaml('    parameterization: "v"'));
    fs.writeFileSync(join(dir, 'skip.yaml'), `${yaml('')}\n      params:\n        layer_idx: -2\n`);
    fs.writeFileSync(join(dir, 'other.yaml'), 'foo: 1\n');
  });

  const load = async (config: string): Promise<[ModelHandle, ClipHandle, VaeHandle]> =>
    (await CheckpointLoader.run({ config_name: config, ckpt_name: 'weft-tiny-sd1.safetensors' }, ctx)) as [
      ModelHandle,
      ClipHandle,
      VaeHandle,
    ];

  it('is listed as ComfyUI lists it: configs and checkpoints combos, MODEL/CLIP/VAE, advanced/loaders, deprecated', () => {
    const info = createBuiltinRegistry().objectInfo({ paths: new FolderPaths({ baseDir: tiny.dir, modelsDir: tiny.dir }) });
    const e = info.CheckpointLoader;
    expect(e.input.required).toEqual({
      config_name: [['other.yaml', 'skip.yaml', 'v-pred.yaml', 'v1-inference.yaml']],
      ckpt_name: [['weft-tiny-sd1.safetensors']],
    });
    expect(e.input_order.required).toEqual(['config_name', 'ckpt_name']);
    expect(e.output).toEqual(['MODEL', 'CLIP', 'VAE']);
    expect([e.display_name, e.category, e.deprecated]).toEqual(['Load Checkpoint With Config (DEPRECATED)', 'advanced/loaders', true]);
  });

  it('an eps config gives what CheckpointLoaderSimple gives', async () => {
    const [m, c, v] = await load('v1-inference.yaml');
    const [sm, sc, sv] = (await CheckpointLoaderSimple.run({ ckpt_name: 'weft-tiny-sd1.safetensors' }, ctx)) as [
      ModelHandle,
      ClipHandle,
      VaeHandle,
    ];
    expect(m.sampling).toEqual(sm.sampling);
    expect(c.layer).toBe(sc.layer);
    expect(
      bits((await m.unet.run({ x, timesteps: t, context })).data).equals(bits((await sm.unet.run({ x, timesteps: t, context })).data)),
    ).toBe(true);
    expect(v).toBe(sv);
  });

  it('parameterization v makes the model v-prediction (kept through a LoRA); layer_idx sets the CLIP layer', async () => {
    const [m] = await load('v-pred.yaml');
    expect(m.sampling.prediction).toBe('v_prediction');
    expect(m.sampling.timesteps).toBe(model.sampling.timesteps);
    ensureLora();
    {
      const [lm] = (await LoraLoader.run(
        { model: m, clip: await ctxClip(), lora_name: 'l.safetensors', strength_model: 0.5, strength_clip: 0 },
        ctx,
      )) as [ModelHandle];
      expect(lm.sampling.prediction).toBe('v_prediction');
    }
    const [, c] = await load('skip.yaml');
    expect(c.layer).toBe(-2);
    const want = await (await ctxClip()).withLayer(-2).encodeText('a red barn');
    expect(bits((await c.encodeText('a red barn')).cond.data).equals(bits(want.cond.data))).toBe(true);
  });

  it('a missing config or one that is not an LDM config is an error naming it', async () => {
    await expect(load('nope.yaml')).rejects.toThrow(/configs file "nope\.yaml" not found/);
    await expect(load('other.yaml')).rejects.toThrow(/other\.yaml: no model\.params section/);
  });
});
