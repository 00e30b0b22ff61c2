import fs from 'node:fs';
import path from 'node:path';
import type { ListingContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';
import type { ModelHandle } from '../../engine/models/handles.ts';
import { hypernetworkEntries, loadHypernetwork } from '../../engine/models/hypernetwork/index.ts';
import { addPatches } from '../../engine/models/patching/patch-set.ts';
import { readLdmConfig } from './ldm-config.ts';
import { modelManager } from './services.ts';

/** ComfyUI's model loaders: names, inputs and outputs as there; files come from the model folders. */

/** Checkpoint files, and diffusers/Optimum ONNX folders (a folder holding unet/model.onnx) by folder name. */
const checkpoints = (env: ListingContext): string[] => {
  const folders: string[] = [];
  for (const root of env.paths.searchPaths('checkpoints')) {
    let entries: fs.Dirent[] = [];
    try {
      entries = fs.readdirSync(root, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) if (e.isDirectory() && fs.existsSync(path.join(root, e.name, 'unet', 'model.onnx'))) folders.push(e.name);
  }
  return [...env.paths.listFiles('checkpoints'), ...folders.sort()];
};
const vaes = (env: ListingContext): string[] => env.paths.listFiles('vae');
const configs = (env: ListingContext): string[] => env.paths.listFiles('configs');
const hypernetworks = (env: ListingContext): string[] => env.paths.listFiles('hypernetworks');

export const CheckpointLoaderSimple = defineNode({
  name: 'CheckpointLoaderSimple',
  displayName: 'Load Checkpoint',
  category: 'loaders',
  description: 'Loads a diffusion model checkpoint, diffusion models are used to denoise latents.',
  searchAliases: ['checkpoint', 'model', 'load model', 'ckpt'],
  inputs: { required: { ckpt_name: { type: 'COMBO', options: checkpoints, tooltip: 'The name of the checkpoint (model) to load.' } } },
  outputs: [
    { type: 'MODEL', name: 'MODEL', tooltip: 'The model used for denoising latents.' },
    { type: 'CLIP', name: 'CLIP', tooltip: 'The CLIP model used for encoding text prompts.' },
    { type: 'VAE', name: 'VAE', tooltip: 'The VAE model used for encoding and decoding images to and from latent space.' },
  ],
  async run({ ckpt_name }, ctx) {
    const file = ctx.paths.require('checkpoints', ckpt_name);
    const m = modelManager(ctx);
    const parts = fs.statSync(file).isDirectory() ? m.loadOnnxFolder(file) : await m.loadCheckpoint(file);
    return [parts.model, parts.clip, parts.vae];
  },
});

/** ComfyUI's ModelSamplingDiscrete with V_PREDICTION on the model's own schedule; kept through later patches. */
function vPrediction(model: ModelHandle): ModelHandle {
  const p = model.patching;
  return {
    ...model,
    sampling: { ...model.sampling, prediction: 'v_prediction' },
    patching: p && { ...p, withPatches: (patches) => vPrediction(p.withPatches(patches)) },
  };
}

/**
 * The deprecated loader with an LDM config: the model is guessed from the checkpoint as
 * CheckpointLoaderSimple does, and the YAML only contributes what ComfyUI's load_checkpoint still
 * reads from it (v-prediction, the CLIP layer; see ldm-config.ts).
 */
export const CheckpointLoader = defineNode({
  name: 'CheckpointLoader',
  displayName: 'Load Checkpoint With Config (DEPRECATED)',
  category: 'advanced/loaders',
  deprecated: true,
  inputs: {
    required: {
      config_name: { type: 'COMBO', options: configs },
      ckpt_name: { type: 'COMBO', options: checkpoints },
    },
  },
  outputs: [
    { type: 'MODEL', name: 'MODEL' },
    { type: 'CLIP', name: 'CLIP' },
    { type: 'VAE', name: 'VAE' },
  ],
  async run({ config_name, ckpt_name }, ctx) {
    const config = readLdmConfig(ctx.paths.require('configs', config_name));
    const file = ctx.paths.require('checkpoints', ckpt_name);
    const m = modelManager(ctx);
    const parts = fs.statSync(file).isDirectory() ? m.loadOnnxFolder(file) : await m.loadCheckpoint(file);
    const model = config.vPrediction ? vPrediction(parts.model) : parts.model;
    const clip = config.clipLayer !== undefined ? parts.clip.withLayer(config.clipLayer) : parts.clip;
    return [model, clip, parts.vae];
  },
});

export const VAELoader = defineNode({
  name: 'VAELoader',
  displayName: 'Load VAE',
  category: 'loaders',
  searchAliases: ['vae', 'load vae', 'vae model'],
  inputs: { required: { vae_name: { type: 'COMBO', options: vaes } } },
  outputs: [{ type: 'VAE', name: 'VAE' }],
  async run({ vae_name }, ctx) {
    return [await modelManager(ctx).loadVae(ctx.paths.require('vae', vae_name))];
  },
});

/**
 * ComfyUI's HypernetworkLoader (comfy_extras/nodes_hypernetwork.py): an A1111 hypernetwork changes
 * the k and v inputs of every attention whose width it has a module for, `k + h_k(k)·strength`. In
 * Weft these are input patches on the to_k/to_v weights' patch lists, so they stack with LoRAs and
 * merges in order and a new strength is a new graph feed (see engine/models/hypernetwork).
 */
export const HypernetworkLoader = defineNode({
  name: 'HypernetworkLoader',
  category: 'loaders',
  inputs: {
    required: {
      model: { type: 'MODEL' },
      hypernetwork_name: { type: 'COMBO', options: hypernetworks },
      strength: { type: 'FLOAT', default: 1.0, min: -10.0, max: 10.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'MODEL', name: 'MODEL' }],
  run({ model, hypernetwork_name, strength }, ctx) {
    const file = ctx.paths.require('hypernetworks', hypernetwork_name);
    const p = model.patching;
    if (!p)
      throw new Error(
        `HypernetworkLoader: ${hypernetwork_name} needs a model whose graph Weft builds; this model is an exported ONNX graph`,
      );
    const { hn, hash } = loadHypernetwork(file, modelManager(ctx).opts.cacheDir);
    // strength 0 adds h(k)·0 in ComfyUI: the same k.
    if (strength === 0) return [model];
    const adds = hypernetworkEntries(hn, hash, p.weights, p.prefix, strength);
    if (adds.size === 0) {
      ctx.log.warn(
        `HypernetworkLoader: ${hypernetwork_name} has modules for widths ${[...hn.modules.keys()].join(', ')}; no attention of this model has those`,
      );
      return [model];
    }
    return [p.withPatches(addPatches(p.patches, adds))];
  },
});

export const nodes = [CheckpointLoaderSimple, CheckpointLoader, VAELoader, HypernetworkLoader];
