import fs from 'node:fs';
import path from 'node:path';
import type { ListingContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';
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

export const nodes = [CheckpointLoaderSimple, VAELoader];
