import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SD1_PREFIX } from '../../engine/models/families/sd1/config.ts';
import { sd1Weights } from '../../engine/models/families/sd1/detect.ts';
import type { CheckpointParts } from '../../engine/models/manager.ts';
import { makeTinyCheckpoint } from '../../engine/models/make-model.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { SafetensorsFile } from '../../engine/formats/safetensors.ts';
import type { WeightSource } from '../../engine/core/weights.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { Executor } from '../../engine/executor/executor.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { CLIPMergeAdd, CLIPMergeSubtract, ModelMergeAdd, ModelMergeBlocks, ModelMergeSubtract } from '../../nodes/model/merge-ops.ts';
import { ModelMergeSD1, SD1_BLOCKS } from '../../nodes/model/merge-sd1.ts';
import { CLIPSave, ModelSave, VAESave } from '../../nodes/model/merge-save.ts';
import { CheckpointSave } from '../../nodes/model/merge.ts';
import { makeTiny, type Tiny } from '../models-onnx/tiny.ts';
import '../../nodes/model/services.ts';

/**
 * The merge nodes against ComfyUI's formulas written out per weight (float64, from the two files'
 * own tensors): ModelMergeBlocks/SD1 pick each UNet key's ratio by the longest matching prefix (the
 * first input's ratio for keys none matches), Add is W₁ + W₂, Subtract m·W₁ − m·W₂. The save nodes
 * write ComfyUI's key names and metadata.
 */

let tiny: Tiny;
let otherFile: string;
let a: CheckpointParts;
let b: CheckpointParts;
let A: WeightSource;
let B: WeightSource;
const log = { info: () => {}, warn: () => {}, error: () => {} };
let ctx: NodeContext;

beforeAll(async () => {
  tiny = await makeTiny(3);
  otherFile = join(tiny.dir, 'checkpoints', 'other.safetensors');
  await makeTinyCheckpoint(otherFile, { seed: 91 });
  const paths = new FolderPaths({ baseDir: tiny.dir, modelsDir: tiny.dir });
  const m = new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log, paths });
  a = await m.loadCheckpoint(tiny.file);
  b = await m.loadCheckpoint(otherFile);
  A = sd1Weights(SafetensorsFile.open(tiny.file));
  B = sd1Weights(SafetensorsFile.open(otherFile));
  ctx = { services: { models: m }, log, paths } as unknown as NodeContext;
}, 120_000);

/** max |got − want| over every weight under `prefix`, want = f(name relative to prefix, w₁, w₂) per element. */
async function maxDiff(
  read: (n: string) => Promise<Float32Array>,
  prefix: string,
  f: (rel: string, w1: number, w2: number) => number,
): Promise<{ diff: number; count: number }> {
  let diff = 0;
  let count = 0;
  for (const n of A.names()) {
    if (!n.startsWith(prefix) || n.endsWith('.position_ids')) continue;
    const got = await read(n);
    const w1 = A.get(n);
    const w2 = B.get(n);
    const rel = n.slice(prefix.length);
    for (let i = 0; i < got.length; i++) diff = Math.max(diff, Math.abs(got[i] - f(rel, w1[i], w2[i])));
    count++;
  }
  return { diff, count };
}

describe('merge nodes', () => {
  it('ModelMergeBlocks: input/middle/out ratios by key prefix, "out" covering output_blocks, time_embed taking input', async () => {
    const [m] = ModelMergeBlocks.run({ model1: a.model, model2: b.model, input: 0.2, middle: 0.5, out: 0.9 }, ctx) as [typeof a.model];
    const ratioOf = (rel: string): number =>
      rel.startsWith('middle') ? 0.5 : rel.startsWith('out') ? 0.9 : 0.2; /* input_blocks, time_embed.: the first input */
    const { diff, count } = await maxDiff(
      (n) => m.patching!.read(n),
      SD1_PREFIX.unet,
      (rel, w1, w2) => ratioOf(rel) * w1 + (1 - ratioOf(rel)) * w2,
    );
    expect(count).toBeGreaterThan(20);
    expect(diff).toBeLessThan(1e-6);
    // The CLIP is untouched.
    expect(m.patching!.patches.size).toBe(count);
  });

  it('ModelMergeSD1: one ratio per block; unmatched keys take time_embed.', async () => {
    const args: Record<string, unknown> = { model1: a.model, model2: b.model };
    SD1_BLOCKS.forEach((blk, i) => (args[blk] = (i * 7 + 3) / 100));
    const [m] = (ModelMergeSD1.run as (x: Record<string, unknown>, c: NodeContext) => unknown)(args, ctx) as [typeof a.model];
    const ratioOf = (rel: string): number => {
      // Independent rule: the block index parsed from the key.
      const mm = /^(input_blocks|middle_block|output_blocks)\.(\d+)\./.exec(rel);
      const name = mm
        ? `${mm[1]}.${mm[2]}.`
        : rel.startsWith('out.')
          ? 'out.'
          : rel.startsWith('label_emb.')
            ? 'label_emb.'
            : 'time_embed.';
      return args[name] as number;
    };
    const { diff } = await maxDiff(
      (n) => m.patching!.read(n),
      SD1_PREFIX.unet,
      (rel, w1, w2) => ratioOf(rel) * w1 + (1 - ratioOf(rel)) * w2,
    );
    expect(diff).toBeLessThan(1e-6);
  });

  it('ModelMergeAdd and ModelMergeSubtract (multiplier scales both models), chained', async () => {
    const [added] = ModelMergeAdd.run({ model1: a.model, model2: b.model }, ctx) as [typeof a.model];
    const r1 = await maxDiff(
      (n) => added.patching!.read(n),
      SD1_PREFIX.unet,
      (_, w1, w2) => w1 + w2,
    );
    expect(r1.diff).toBeLessThan(1e-6);
    const [sub] = ModelMergeSubtract.run({ model1: a.model, model2: b.model, multiplier: 0.7 }, ctx) as [typeof a.model];
    const r2 = await maxDiff(
      (n) => sub.patching!.read(n),
      SD1_PREFIX.unet,
      (_, w1, w2) => 0.7 * w1 - 0.7 * w2,
    );
    expect(r2.diff).toBeLessThan(1e-6);
    // (A − B) + B = A: the second merge reads B's own weights, applied after the first's list.
    const [back] = ModelMergeAdd.run({ model1: sub, model2: b.model }, ctx) as [typeof a.model];
    const r3 = await maxDiff(
      (n) => back.patching!.read(n),
      SD1_PREFIX.unet,
      (_, w1, w2) => 0.7 * w1 - 0.7 * w2 + w2,
    );
    expect(r3.diff).toBeLessThan(1e-6);
  });

  it('CLIPMergeAdd and CLIPMergeSubtract skip position_ids', async () => {
    const [added] = CLIPMergeAdd.run({ clip1: a.clip, clip2: b.clip }, ctx) as [typeof a.clip];
    const r1 = await maxDiff(
      (n) => added.patching!.read(n),
      SD1_PREFIX.clip,
      (_, w1, w2) => w1 + w2,
    );
    expect(r1.count).toBeGreaterThan(5);
    expect(r1.diff).toBeLessThan(1e-6);
    const [sub] = CLIPMergeSubtract.run({ clip1: a.clip, clip2: b.clip, multiplier: -2 }, ctx) as [typeof a.clip];
    const r2 = await maxDiff(
      (n) => sub.patching!.read(n),
      SD1_PREFIX.clip,
      (_, w1, w2) => -2 * w1 + 2 * w2,
    );
    expect(r2.diff).toBeLessThan(1e-5);
    expect([...sub.patching!.patches.keys()].some((k) => k.endsWith('position_ids'))).toBe(false);
  });

  it('a ratio of 1 adds no patch at all (same build as the unmerged model)', () => {
    const [m] = ModelMergeBlocks.run({ model1: a.model, model2: b.model, input: 1, middle: 1, out: 1 }, ctx) as [typeof a.model];
    expect(m.patching!.patches.size).toBe(0);
  });
});

function header(file: string): Record<string, { dtype: string; shape: number[] } | Record<string, string>> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[] }>;
}

describe('save nodes', () => {
  const prompt = { '1': { class_type: 'X', inputs: { a: 1.5, s: 'é' } } };
  const extra = { workflow: { nodes: [] } };

  it('CLIPSave writes text_model.* (+ identity text_projection, logit_scale) to clip/<prefix>_clip_l_00001_.safetensors', async () => {
    const [merged] = CLIPMergeAdd.run({ clip1: a.clip, clip2: b.clip }, ctx) as [typeof a.clip];
    await CLIPSave.run({ clip: merged, filename_prefix: 'clip/test', prompt, extra_pnginfo: extra }, ctx);
    await CLIPSave.run({ clip: merged, filename_prefix: 'clip/test', prompt, extra_pnginfo: extra }, ctx);
    const dir = join(ctx.paths.outputDir, 'clip');
    expect(readdirSync(dir).sort()).toEqual(['test_clip_l_00001_.safetensors', 'test_clip_l_00002_.safetensors']);
    const file = join(dir, 'test_clip_l_00001_.safetensors');
    const h = header(file);
    expect(h.__metadata__).toEqual({
      format: 'pt',
      prompt: '{"1": {"class_type": "X", "inputs": {"a": 1.5, "s": "\\u00e9"}}}',
      workflow: '{"nodes": []}',
    });
    const sf = SafetensorsFile.open(file);
    const names = sf.names();
    const clipNames = A.names().filter((n) => n.startsWith(SD1_PREFIX.clip) && !n.endsWith('position_ids'));
    expect(names.sort()).toEqual(
      [...clipNames.map((n) => 'text_model.' + n.slice(SD1_PREFIX.clip.length)), 'logit_scale', 'text_projection.weight'].sort(),
    );
    const n0 = clipNames.find((n) => n.includes('layers.0.mlp.fc1.weight'))!;
    const got = sf.get('text_model.' + n0.slice(SD1_PREFIX.clip.length));
    const w1 = A.get(n0);
    const w2 = B.get(n0);
    // Written in float16: compare within half precision.
    for (let i = 0; i < got.length; i++)
      expect(Math.abs(got[i] - (w1[i] + w2[i]))).toBeLessThan(2e-3 * Math.max(1, Math.abs(w1[i] + w2[i])));
    const tp = sf.get('text_projection.weight');
    const d = a.clip.hiddenSize;
    expect(tp.length).toBe(d * d);
    expect(tp[0]).toBe(1);
    expect(tp[1]).toBe(0);
    expect(tp[d + 1]).toBe(1);
    // ComfyUI's initial logit_scale, 4.6055, in float16.
    expect(Math.abs(sf.get('logit_scale')[0] - 4.6055)).toBeLessThan(2e-3);
    expect(sf.shape('logit_scale')).toEqual([]);
  });

  it('VAESave writes the bare first-stage keys with their values', async () => {
    await VAESave.run({ vae: a.vae, filename_prefix: 'vae/ComfyUI_vae', prompt: undefined, extra_pnginfo: undefined }, ctx);
    const file = join(ctx.paths.outputDir, 'vae', 'ComfyUI_vae_00001_.safetensors');
    expect((header(file).__metadata__ as Record<string, string>).prompt).toBe('');
    const sf = SafetensorsFile.open(file);
    const vaeNames = A.names().filter((n) => n.startsWith(SD1_PREFIX.vae));
    expect(sf.names().sort()).toEqual(vaeNames.map((n) => n.slice(SD1_PREFIX.vae.length)).sort());
    for (const n of vaeNames.slice(0, 10)) {
      const got = sf.get(n.slice(SD1_PREFIX.vae.length));
      const want = A.get(n);
      for (let i = 0; i < got.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-3 * Math.max(1, Math.abs(want[i])));
    }
  });

  it('ModelSave writes model.diffusion_model.* of the patched model with modelspec.predict_key', async () => {
    const [sub] = ModelMergeSubtract.run({ model1: a.model, model2: b.model, multiplier: 1 }, ctx) as [typeof a.model];
    await ModelSave.run({ model: sub, filename_prefix: 'diffusion_models/x', prompt, extra_pnginfo: undefined }, ctx);
    const file = join(ctx.paths.outputDir, 'diffusion_models', 'x_00001_.safetensors');
    const meta = header(file).__metadata__ as Record<string, string>;
    expect(meta['modelspec.predict_key']).toBe('epsilon');
    const sf = SafetensorsFile.open(file);
    const unetNames = A.names().filter((n) => n.startsWith(SD1_PREFIX.unet));
    expect(sf.names().sort()).toEqual(unetNames.sort());
    const n0 = unetNames.find((n) => n.endsWith('.weight') && A.shape(n).length === 4)!;
    const got = sf.get(n0);
    const w1 = A.get(n0);
    const w2 = B.get(n0);
    for (let i = 0; i < got.length; i++)
      expect(Math.abs(got[i] - (w1[i] - w2[i]))).toBeLessThan(2e-3 * Math.max(1, Math.abs(w1[i] - w2[i])));
  });
});

describe('CheckpointSave (shares the save path)', () => {
  it('writes UNet, CLIP and VAE under their LDM names to checkpoints/<prefix>_00001_.safetensors and reports it', async () => {
    const r = (await CheckpointSave.run(
      { model: a.model, clip: a.clip, vae: a.vae, filename_prefix: 'checkpoints/cs', prompt: undefined, extra_pnginfo: undefined },
      ctx,
    )) as {
      ui: { checkpoints: { filename: string; subfolder: string }[] };
    };
    expect(r.ui.checkpoints).toEqual([{ filename: 'cs_00001_.safetensors', subfolder: 'checkpoints', type: 'output' }]);
    const sf = SafetensorsFile.open(join(ctx.paths.outputDir, 'checkpoints', 'cs_00001_.safetensors'));
    const want = A.names().filter((n) => Object.values(SD1_PREFIX).some((p) => n.startsWith(p)));
    expect(sf.names().sort()).toEqual(want.sort());
    const k = want.find((n) => n.startsWith(SD1_PREFIX.vae))!;
    const got = sf.get(k);
    const w = A.get(k);
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i] - w[i])).toBeLessThan(2e-3 * Math.max(1, Math.abs(w[i])));
  });
});

describe('through the executor', () => {
  it('a prompt with ModelMergeSD1 (input names with dots) and ModelSave validates and runs', async () => {
    const inputs: Record<string, unknown> = { model1: ['1', 0], model2: ['2', 0] };
    for (const blk of SD1_BLOCKS) inputs[blk] = blk.startsWith('output_blocks') ? 0.25 : 1;
    const prompt = {
      '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'weft-tiny-sd1.safetensors' } },
      '2': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'other.safetensors' } },
      '3': { class_type: 'ModelMergeSD1', inputs },
      '4': { class_type: 'ModelSave', inputs: { model: ['3', 0], filename_prefix: 'diffusion_models/sd1merge' } },
    };
    const ex = new Executor(createBuiltinRegistry(), { paths: ctx.paths, services: ctx.services, log });
    const r = await ex.execute(prompt, { promptId: 'sd1merge' });
    expect(r.status, JSON.stringify(r.error)).toBe('success');
    const sf = SafetensorsFile.open(join(ctx.paths.outputDir, 'diffusion_models', 'sd1merge_00001_.safetensors'));
    const outKey = A.names().find((n) => n.startsWith(SD1_PREFIX.unet + 'output_blocks.0.') && n.endsWith('.weight'))!;
    const inKey = A.names().find((n) => n.startsWith(SD1_PREFIX.unet + 'input_blocks.0.') && n.endsWith('.weight'))!;
    const got = sf.get(outKey);
    const w1 = A.get(outKey);
    const w2 = B.get(outKey);
    for (let i = 0; i < got.length; i++)
      expect(Math.abs(got[i] - (0.25 * w1[i] + 0.75 * w2[i]))).toBeLessThan(2e-3 * Math.max(1, Math.abs(w1[i])));
    const gi = sf.get(inKey);
    const wi = A.get(inKey);
    for (let i = 0; i < gi.length; i++) expect(Math.abs(gi[i] - wi[i])).toBeLessThan(2e-3 * Math.max(1, Math.abs(wi[i])));
  }, 120_000);
});
