import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildClipGraph } from '../../engine/models/families/sd1/graphs/clip-graph.ts';
import { buildUnetGraph } from '../../engine/models/families/sd1/graphs/unet-graph.ts';
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from '../../engine/models/families/sd1/graphs/vae-graph.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { clipForwardRef } from '../../engine/models/families/sd1/reference/clip.ts';
import { unetForwardRef } from '../../engine/models/families/sd1/reference/unet.ts';
import { vaeDecodeRef } from '../../engine/models/families/sd1/reference/vae.ts';
import { modelToImage } from '../../engine/models/ort-vae.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import { lcg, makeTiny, relErr, type Tiny } from './tiny.ts';

const { onnx } = onnxProto;
type Model = onnxProto.onnx.ModelProto;

/**
 * Builds a diffusers/Optimum-style ONNX folder from the tiny checkpoint: Weft's graphs re-wired to
 * the exporters' input/output names and dtypes (int32 input_ids, int64 timestep, no control inputs),
 * so the folder loader is tested against graphs whose right answers are known.
 */
function rewire(buf: Uint8Array, rename: Record<string, string>, edit?: (m: Model) => void): Uint8Array {
  const m = onnx.ModelProto.decode(buf);
  const g = m.graph!;
  const r = (n: string) => rename[n] ?? n;
  for (const node of g.node ?? []) {
    node.input = (node.input ?? []).map(r);
    node.output = (node.output ?? []).map(r);
  }
  for (const v of [...(g.input ?? []), ...(g.output ?? [])]) v.name = r(v.name ?? '');
  edit?.(m);
  return onnx.ModelProto.encode(m).finish();
}

let tiny: Tiny;
let folder: string;
beforeAll(async () => {
  tiny = await makeTiny(9);
  folder = join(tiny.dir, 'checkpoints', 'tiny-onnx');
  const o = { dtype: 'float32' as const, fusedAttention: false };
  const part = (name: string, bytes: Uint8Array) => {
    mkdirSync(join(folder, name), { recursive: true });
    writeFileSync(join(folder, name, 'model.onnx'), bytes);
  };
  part(
    'unet',
    rewire(
      buildUnetGraph(tiny.cfg.unet, tiny.unet, o).toBuffer(),
      { x: 'sample', context: 'encoder_hidden_states', out: 'out_sample', timesteps: 'timestep_f' },
      (m) => {
        const g = m.graph!;
        // Control inputs become zero initializers; the timestep arrives as int64 and is cast.
        const controls = (g.input ?? []).filter((v) => v.name?.startsWith('control_'));
        g.input = (g.input ?? []).filter((v) => !v.name?.startsWith('control_'));
        for (const c of controls)
          g.initializer!.push(onnx.TensorProto.create({ name: c.name, dims: [1, 1, 1, 1], dataType: 1, rawData: new Uint8Array(4) }));
        const t = g.input.find((v) => v.name === 'timestep_f')!;
        t.name = 'timestep';
        t.type!.tensorType!.elemType = 7;
        g.node!.unshift(
          onnx.NodeProto.create({
            opType: 'Cast',
            input: ['timestep'],
            output: ['timestep_f'],
            attribute: [onnx.AttributeProto.create({ name: 'to', type: 2, i: 1 })],
          }),
        );
      },
    ),
  );
  part(
    'text_encoder',
    rewire(buildClipGraph(tiny.cfg.clip, tiny.clip, o).toBuffer(), { tokens: 'input_ids_64', hidden: 'all_hidden' }, (m) => {
      const g = m.graph!;
      // Exported encoders take token ids only: Weft's embedding inputs become fixed zeros.
      for (const name of ['embeds', 'embeds_mask'])
        g.initializer!.push(onnx.TensorProto.create({ name, dims: [1, 1, 1], dataType: 1, rawData: new Uint8Array(4) }));
      g.input = g.input!.filter((v) => v.name !== 'embeds' && v.name !== 'embeds_mask');
      const i = g.input!.find((v) => v.name === 'input_ids_64')!;
      i.name = 'input_ids';
      i.type!.tensorType!.elemType = 6;
      g.node!.unshift(
        onnx.NodeProto.create({
          opType: 'Cast',
          input: ['input_ids'],
          output: ['input_ids_64'],
          attribute: [onnx.AttributeProto.create({ name: 'to', type: 2, i: 7 })],
        }),
      );
      const L = tiny.cfg.clip.numLayers;
      g.initializer!.push(
        onnx.TensorProto.create({
          name: 'last_idx',
          dims: [],
          dataType: 7,
          rawData: new Uint8Array(new BigInt64Array([BigInt(L - 1)]).buffer),
        }),
      );
      g.node!.push(
        onnx.NodeProto.create({
          opType: 'Gather',
          input: ['all_hidden', 'last_idx'],
          output: ['last_hidden_state'],
          attribute: [onnx.AttributeProto.create({ name: 'axis', type: 2, i: 0 })],
        }),
      );
      g.output = [onnx.ValueInfoProto.create({ name: 'last_hidden_state', type: { tensorType: { elemType: 1 } } })];
    }),
  );
  part('vae_decoder', rewire(buildVaeDecoderGraph(tiny.cfg.vae, tiny.vae, o).toBuffer(), { latent: 'latent_sample', image: 'sample' }));
  part('vae_encoder', rewire(buildVaeEncoderGraph(tiny.cfg.vae, tiny.vae, o).toBuffer(), { image: 'sample', latent: 'latent_sample' }));
  mkdirSync(join(folder, 'tokenizer'), { recursive: true });
  for (const f of ['vocab.json', 'merges.txt'])
    copyFileSync(join(tiny.file.replace(/\.safetensors$/, '.tokenizer'), f), join(folder, 'tokenizer', f));
  writeFileSync(join(folder, 'model_index.json'), JSON.stringify({ _class_name: 'OnnxStableDiffusionPipeline' }));
}, 120_000);

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

describe('diffusers/Optimum ONNX folders', () => {
  it('load as MODEL/CLIP/VAE whose outputs match the reference math', async () => {
    const warnings: string[] = [];
    const m = new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: { ...quiet, warn: (w) => warnings.push(w) } });
    const { model, clip, vae } = m.loadOnnxFolder(folder);
    const enc = await clip.encodeText('a small house');
    const toks = clip.tokenizer.tokenizeWithWeights('a small house')[0].map((t) => t.token);
    expect(relErr(enc.cond.data, clipForwardRef(tiny.cfg.clip, tiny.clip, toks)[tiny.cfg.clip.numLayers - 1].data)).toBeLessThan(1e-4);
    await clip.withLayer(-2).encodeText('x');
    expect(warnings.join('\n')).toMatch(/only its last layer/);

    const D = tiny.cfg.unet.contextDim;
    const x = { shape: [2, 4, 8, 8], data: lcg(512, 21) };
    const ctx = { shape: [2, 77, D], data: lcg(2 * 77 * D, 22) };
    const t = new Float32Array([321, 321]);
    const out = await model.unet.run({ x, timesteps: t, context: ctx });
    expect(relErr(out.data, unetForwardRef(tiny.cfg.unet, tiny.unet, x, t, ctx).data)).toBeLessThan(1e-4);
    await expect(model.unet.run({ x, timesteps: t, context: ctx, control: { input: [x] } })).rejects.toThrow(
      /no ControlNet residual inputs/,
    );

    const lat = { shape: [1, 4, 4, 6], data: lcg(96, 23) };
    const img = await vae.decode(lat);
    expect(relErr(img.data, modelToImage(vaeDecodeRef(tiny.cfg.vae, tiny.vae, lat)).data)).toBeLessThan(1e-4);
    expect((await vae.encode(img)).shape).toEqual([1, 4, 4, 6]);
  });

  it('show up in CheckpointLoaderSimple by folder name and run txt2img', async () => {
    const paths = new FolderPaths({ baseDir: tiny.dir, modelsDir: tiny.dir });
    const registry = createBuiltinRegistry();
    const info = registry.objectInfo({ paths });
    expect((info.CheckpointLoaderSimple.input.required as Record<string, unknown[]>).ckpt_name[0]).toContain('tiny-onnx');
    const { Executor } = await import('../../engine/executor/executor.ts');
    const ex = new Executor(registry, {
      paths,
      services: { models: new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet }) },
      log: quiet,
    });
    const r = await ex.execute(
      {
        '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'tiny-onnx' } },
        '2': { class_type: 'CLIPTextEncode', inputs: { clip: ['1', 1], text: 'a tree' } },
        '3': { class_type: 'CLIPTextEncode', inputs: { clip: ['1', 1], text: '' } },
        '4': { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
        '5': {
          class_type: 'KSampler',
          inputs: {
            model: ['1', 0],
            positive: ['2', 0],
            negative: ['3', 0],
            latent_image: ['4', 0],
            seed: 1,
            steps: 2,
            cfg: 5,
            sampler_name: 'euler',
            scheduler: 'karras',
            denoise: 1,
          },
        },
        '6': { class_type: 'VAEDecode', inputs: { samples: ['5', 0], vae: ['1', 2] } },
        '7': { class_type: 'PreviewImage', inputs: { images: ['6', 0] } },
      },
      { promptId: 'onnx' },
    );
    expect(r.error).toBeUndefined();
    expect(r.status).toBe('success');
  });
});
