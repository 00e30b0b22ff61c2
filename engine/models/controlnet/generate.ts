import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { SD1_PREFIX } from '../families/sd1/config.ts';
import { detectCheckpoint } from '../families/sd1/detect.ts';
import { SafetensorsFile, SafetensorsWriter } from '../../formats/safetensors.ts';
import type { WeightSource } from '../../core/weights.ts';
import { Rng } from '../generate/rng.ts';
import { diffusersUnetModules } from '../lora/keys.ts';
import { controlNetLayout, HINT_CONVS, MIDDLE_OUT_KEY, zeroConvKey, type ControlNetConfig } from './layout.ts';
import { isUnionKey } from './union.ts';

/**
 * Random-weight ControlNet files made by Weft (tests, the demo, benchmarks): every layout the loader
 * reads, deterministic from a seed. Unlike a trained ControlNet's initialisation, the zero convs are
 * not zero, so the residuals have an effect.
 */

export interface MakeControlNetOptions {
  seed?: number;
  dtype?: 'F32' | 'F16' | 'BF16';
  layout?: 'single-file' | 'single-file-bare' | 'diffusers';
  /**
   * Write a difference ControlNet relative to these UNet weights (bare UNet names): each tensor the
   * UNet also has is stored minus the UNet's, with a `difference` marker (single-file layout only).
   */
  differenceFrom?: WeightSource;
}

/** Random values for one bare ControlNet tensor: N(0, 1/fan_in) weights, norm scales near 1, small biases. */
export function randomControlNetWeights(cfg: ControlNetConfig, seed = 0): Map<string, { shape: readonly number[]; data: Float32Array }> {
  const rng = new Rng(seed);
  const out = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [name, shape] of controlNetLayout(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = rng.normal(new Float32Array(n), 1);
    if (shape.length >= 2) {
      const s = 1 / Math.sqrt(n / shape[0]);
      for (let i = 0; i < n; i++) data[i] *= s;
    } else if (name.endsWith('.weight')) for (let i = 0; i < n; i++) data[i] = 1 + 0.1 * data[i];
    else for (let i = 0; i < n; i++) data[i] *= 0.05;
    out.set(name, { shape, data });
  }
  return out;
}

/** cldm name → diffusers ControlNetModel name (the inverse of the loader's key map). */
export function controlNetToDiffusers(cfg: ControlNetConfig): Map<string, string> {
  const layout = controlNetLayout(cfg);
  const prefixed = new Set([...layout.keys()].map((k) => SD1_PREFIX.unet + k));
  const map = new Map<string, string>();
  for (const [d, l] of diffusersUnetModules((n) => prefixed.has(n))) for (const s of ['.weight', '.bias']) if (layout.has(l + s)) map.set(l + s, d + s);
  // A Union's modules keep their names in xinsir's files, but for nn.MultiheadAttention's fused in_proj_weight / in_proj_bias.
  for (const k of layout.keys()) if (isUnionKey(k)) map.set(k, k.replace('.attn.in_proj.', '.attn.in_proj_'));
  for (const s of ['.weight', '.bias']) {
    map.set(MIDDLE_OUT_KEY + s, `controlnet_mid_block${s}`);
    for (let i = 0; layout.has(zeroConvKey(i) + s); i++) map.set(zeroConvKey(i) + s, `controlnet_down_blocks.${i}${s}`);
    HINT_CONVS.forEach((c, k) => {
      const d = k === 0 ? 'conv_in' : k === HINT_CONVS.length - 1 ? 'conv_out' : `blocks.${k - 1}`;
      map.set(`input_hint_block.${c.index}${s}`, `controlnet_cond_embedding.${d}${s}`);
    });
  }
  return map;
}

/** Writes a random ControlNet of `cfg` to `outFile`; returns the bare weights it holds (before any difference). */
export function makeControlNetFile(outFile: string, cfg: ControlNetConfig, opts: MakeControlNetOptions = {}): Map<string, { shape: readonly number[]; data: Float32Array }> {
  const weights = randomControlNetWeights(cfg, opts.seed ?? 0);
  const layout = opts.layout ?? 'single-file';
  const dtype = opts.dtype ?? 'F32';
  const names = layout === 'diffusers' ? controlNetToDiffusers(cfg) : undefined;
  const rename = (k: string): string => (layout === 'single-file' ? `control_model.${k}` : layout === 'diffusers' ? names!.get(k)! : k);
  const base = opts.differenceFrom;
  if (base && layout !== 'single-file') throw new Error('a difference ControlNet is written in the single-file layout');
  const tensors = [...weights].map(([k, t]) => {
    let data = t.data;
    if (base?.has(k)) {
      const m = base.get(k);
      data = data.map((v, i) => v - m[i]);
    }
    return { name: rename(k), shape: t.shape, data };
  });
  if (base) tensors.push({ name: 'difference', shape: [], data: new Float32Array(1) });
  const w = SafetensorsWriter.create(outFile, tensors.map((t) => ({ name: t.name, dtype, shape: t.shape })), { 'weft.generator': 'make-controlnet', 'weft.seed': String(opts.seed ?? 0) });
  try {
    for (const t of tensors) w.write(t.name, t.data);
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
  return weights;
}

/** Where `weft make-model tiny` puts the demo ControlNet, under the models folder. */
export const DEMO_CONTROLNET = 'controlnet/weft-tiny-controlnet.safetensors';

/** The demo ControlNet for the checkpoint `ckpt` (its UNet's structure, random weights), unless the file exists; returns its path. */
export function makeDemoControlNet(ckpt: string, modelsDir: string, seed: number): string {
  const out = path.join(modelsDir, DEMO_CONTROLNET);
  if (existsSync(out)) return out;
  mkdirSync(path.dirname(out), { recursive: true });
  const cfg = detectCheckpoint(SafetensorsFile.open(ckpt));
  makeControlNetFile(out, { unet: cfg.unet, hintChannels: 3 }, { seed: seed + 4 });
  return out;
}
