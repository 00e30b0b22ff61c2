import fs from 'node:fs';
import path from 'node:path';
import { InterruptedError } from '../../engine/core/errors.ts';
import type { WeightSource } from '../../engine/core/weights.ts';
import { SafetensorsWriter, type TensorSpec } from '../../engine/formats/safetensors.ts';
import { expandPrefix, nextCounter, saveTarget } from '../../engine/image/output-files.ts';
import { pyJsonDumps } from '../../engine/image/python-compat.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';

/**
 * ComfyUI's CLIPSave, VAESave and ModelSave (comfy_extras/nodes_model_merging.py): one part of a
 * model as a safetensors file under output/, with the key names and metadata ComfyUI writes.
 * Files are written to a temporary name and linked into place, never replacing an existing one.
 */

interface OutTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: 'F16' | 'F32';
  readonly read: () => Promise<Float32Array> | Float32Array;
}

/** ComfyUI's metadata: `prompt` (json.dumps, "" without a prompt) and one json.dumps'd key per extra_pnginfo entry. */
export function saveMetadata(prompt: unknown, extraPnginfo: unknown, base: Record<string, string> = {}): Record<string, string> {
  const metadata: Record<string, string> = { ...base, prompt: prompt === undefined || prompt === null ? '' : pyJsonDumps(prompt) };
  if (extraPnginfo && typeof extraPnginfo === 'object') {
    for (const [k, v] of Object.entries(extraPnginfo as Record<string, unknown>)) metadata[k] = pyJsonDumps(v);
  }
  return metadata;
}

/** `<prefix>_NNNNN_.safetensors` under output/ (ComfyUI's get_save_image_path counter), written atomically. */
export async function saveTensorFile(
  ctx: NodeContext,
  filenamePrefix: string,
  tensors: readonly OutTensor[],
  metadata: Record<string, string>,
): Promise<{ filename: string; subfolder: string }> {
  const target = saveTarget(ctx.paths.outputDir, expandPrefix(filenamePrefix, 0, 0));
  fs.mkdirSync(target.dir, { recursive: true });
  const filename = `${target.base}_${String(nextCounter(target.dir, target.base)).padStart(5, '0')}_.safetensors`;
  const specs: TensorSpec[] = tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
  const w = SafetensorsWriter.create(path.join(target.dir, filename), specs, metadata, { exclusive: true });
  try {
    for (const t of tensors) {
      if (ctx.signal?.aborted) throw new InterruptedError();
      w.write(t.name, await t.read());
    }
  } catch (e) {
    w.abort();
    throw e;
  }
  w.finish();
  ctx.log.info(`saved ${tensors.length} tensors to ${path.posix.join(target.subfolder, filename)}`);
  return { filename, subfolder: target.subfolder };
}

/** A weight's stored precision where the source tells it (half stays half), else float32. */
function storedDtype(ws: WeightSource, name: string): 'F16' | 'F32' {
  const d = ws.locate?.(name)?.dtype;
  return d === 'F16' || d === 'BF16' ? 'F16' : 'F32';
}

/** CLIP-L's width, for the identity text projection ComfyUI's SD1 CLIP carries. */
function identity(n: number): Float32Array {
  const m = new Float32Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = 1;
  return m;
}

export const CLIPSave = defineNode({
  name: 'CLIPSave',
  category: 'advanced/model_merging',
  inputs: {
    required: { clip: { type: 'CLIP' }, filename_prefix: { type: 'STRING', default: 'clip/ComfyUI' } },
    hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
  },
  outputs: [],
  outputNode: true,
  async run({ clip, filename_prefix, prompt, extra_pnginfo }, ctx) {
    const cp = clip.patching;
    if (!cp) throw new Error('CLIPSave: this CLIP has no weights Weft can write (an exported ONNX graph)');
    // ComfyUI's SD1 CLIP state dict is `clip_l.transformer.text_model.…` plus `clip_l.transformer.text_projection.weight`
    // (identity for SD1) and `clip_l.logit_scale`; CLIPSave strips `clip_l.` and `transformer.` and names the file `…_clip_l`.
    const tensors: OutTensor[] = [];
    for (const n of cp.weights.names()) {
      if (!n.startsWith(cp.prefix) || n.endsWith('.position_ids')) continue;
      tensors.push({ name: `text_model.${n.slice(cp.prefix.length)}`, shape: cp.weights.shape(n), dtype: 'F16', read: () => cp.read(n) });
    }
    const width = clip.hiddenSize;
    tensors.push({ name: 'text_projection.weight', shape: [width, width], dtype: 'F16', read: () => identity(width) });
    tensors.push({ name: 'logit_scale', shape: [], dtype: 'F16', read: () => Float32Array.of(4.6055) });
    const metadata = saveMetadata(prompt, extra_pnginfo, { format: 'pt' });
    await saveTensorFile(ctx, `${filename_prefix}_clip_l`, tensors, metadata);
    return [];
  },
});

export const VAESave = defineNode({
  name: 'VAESave',
  category: 'advanced/model_merging',
  inputs: {
    required: { vae: { type: 'VAE' }, filename_prefix: { type: 'STRING', default: 'vae/ComfyUI_vae' } },
    hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
  },
  outputs: [],
  outputNode: true,
  async run({ vae, filename_prefix, prompt, extra_pnginfo }, ctx) {
    const vw = vae.weights;
    if (!vw) throw new Error('VAESave: this VAE has no weights Weft can write (an exported ONNX graph)');
    // vae.get_sd(): the bare first-stage keys (encoder.…, decoder.…, quant_conv.…, post_quant_conv.…).
    const tensors: OutTensor[] = vw.names().map((n) => ({ name: n, shape: vw.shape(n), dtype: storedDtype(vw, n), read: () => vw.get(n) }));
    await saveTensorFile(ctx, filename_prefix, tensors, saveMetadata(prompt, extra_pnginfo));
    return [];
  },
});

export const ModelSave = defineNode({
  name: 'ModelSave',
  category: 'advanced/model_merging',
  inputs: {
    required: { model: { type: 'MODEL' }, filename_prefix: { type: 'STRING', default: 'diffusion_models/ComfyUI' } },
    hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
  },
  outputs: [],
  outputNode: true,
  async run({ model, filename_prefix, prompt, extra_pnginfo }, ctx) {
    const mp = model.patching;
    if (!mp) throw new Error('ModelSave: this MODEL has no weights Weft can write (an exported ONNX graph)');
    // save_checkpoint without CLIP and VAE: the UNet under `model.diffusion_model.`; SD1 gets no modelspec
    // architecture from ComfyUI, only the prediction key.
    const tensors: OutTensor[] = mp.weights
      .names()
      .filter((n) => n.startsWith(mp.prefix))
      .map((n) => ({ name: n, shape: mp.weights.shape(n), dtype: 'F16', read: () => mp.read(n) }));
    const vPred = model.sampling.prediction === 'v_prediction';
    // ComfyUI marks a v-prediction model with an empty `v_pred` tensor beside the metadata key.
    if (vPred) tensors.push({ name: 'v_pred', shape: [0], dtype: 'F32', read: () => new Float32Array(0) });
    const metadata = saveMetadata(prompt, extra_pnginfo, { 'modelspec.predict_key': vPred ? 'v' : 'epsilon' });
    await saveTensorFile(ctx, filename_prefix, tensors, metadata);
    return [];
  },
});

export const nodes = [CLIPSave, VAESave, ModelSave];
