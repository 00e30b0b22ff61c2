import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { SafetensorsFile, SafetensorsWriter } from '../../formats/safetensors.ts';
import type { UNetConfig } from '../families/sd1/config.ts';
import { detectCheckpoint } from '../families/sd1/detect.ts';
import { detectSdxl } from '../families/sdxl/detect.ts';
import { Rng } from '../generate/rng.ts';
import { adapterLayout, type T2IAdapterConfig } from './adapter-layout.ts';

/**
 * Random-weight T2I-Adapter files made by Weft (tests, the demo, benchmarks), deterministic from a
 * seed, in ComfyUI's full/light layouts or diffusers' full layout.
 */

export interface MakeAdapterOptions {
  seed?: number;
  dtype?: 'F32' | 'F16' | 'BF16';
  layout?: 'comfy' | 'diffusers';
}

/**
 * The adapter structure that fits a UNet: one level per UNet level, each as wide as that level's
 * blocks. `xl`: SDXL's (16× unshuffle; four levels over the UNet's three, the last two as wide as
 * its deepest level, as ComfyUI's [c, 2c, 4c, 4c] over SDXL's 320, 640, 1280).
 */
export function adapterConfigFor(unet: UNetConfig, opts: { kind?: 'full' | 'light'; imageChannels?: number; ksize?: number; useConv?: boolean; xl?: boolean } = {}): T2IAdapterConfig {
  if (opts.xl) {
    if (unet.channelMult.length !== 3) throw new Error(`an SDXL T2I-Adapter fits a UNet of 3 levels (SDXL's), this one has ${unet.channelMult.length}`);
    const widths = unet.channelMult.map((m) => unet.modelChannels * m);
    return { kind: 'full', cin: 256 * (opts.imageChannels ?? 3), channels: [...widths, widths[2]], numsRb: 2, ksize: opts.ksize ?? 1, useConv: opts.useConv ?? false, xl: true };
  }
  const channels = unet.channelMult.map((m) => unet.modelChannels * m);
  const cin = 64 * (opts.imageChannels ?? 3);
  if (opts.kind === 'light') return { kind: 'light', cin, channels, numsRb: 4, ksize: 3, useConv: false, inner: channels.map((c) => Math.floor(c / 4)) };
  return { kind: 'full', cin, channels, numsRb: 2, ksize: opts.ksize ?? 1, useConv: opts.useConv ?? false };
}

/** N(0, 1/fan_in) weights and small biases for every tensor of `cfg`. */
export function randomAdapterWeights(cfg: T2IAdapterConfig, seed = 0): Map<string, { shape: readonly number[]; data: Float32Array }> {
  const rng = new Rng(seed);
  const out = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [name, shape] of adapterLayout(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = rng.normal(new Float32Array(n), 1);
    const s = shape.length >= 2 ? 1 / Math.sqrt(n / shape[0]) : 0.05;
    for (let i = 0; i < n; i++) data[i] *= s;
    out.set(name, { shape, data });
  }
  return out;
}

/** ComfyUI name → diffusers FullAdapter name (the inverse of load_t2i_adapter's prefix replace). */
function toDiffusers(name: string): string {
  const m = /^body\.(\d+)\.(.*)$/.exec(name);
  if (!m) return `adapter.${name}`;
  const k = Number(m[1]);
  if (m[2].startsWith('in_conv.')) return `adapter.body.${k / 2}.${m[2]}`;
  return `adapter.body.${Math.floor(k / 2)}.resnets.${k % 2}.${m[2]}`;
}

/** Writes a random adapter of `cfg`; returns its weights under ComfyUI's names. */
export function makeAdapterFile(outFile: string, cfg: T2IAdapterConfig, opts: MakeAdapterOptions = {}): Map<string, { shape: readonly number[]; data: Float32Array }> {
  const weights = randomAdapterWeights(cfg, opts.seed ?? 0);
  const diffusers = opts.layout === 'diffusers';
  if (diffusers && (cfg.kind !== 'full' || cfg.useConv)) throw new Error('the diffusers layout is written for full adapters that downsample by average pooling');
  const rename = (k: string): string => (diffusers ? toDiffusers(k) : k);
  const dtype = opts.dtype ?? 'F32';
  const w = SafetensorsWriter.create(
    outFile,
    [...weights].map(([k, t]) => ({ name: rename(k), dtype, shape: t.shape })),
    { 'weft.generator': 'make-t2i-adapter', 'weft.seed': String(opts.seed ?? 0) },
  );
  try {
    for (const [k, t] of weights) w.write(rename(k), t.data);
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
  return weights;
}

/** Where `weft make-model sdxl-tiny` puts the tiny SDXL's T2I-Adapter, under the models folder. */
export const DEMO_SDXL_ADAPTER = 't2i_adapter/weft-tiny-sdxl-t2i-adapter.safetensors';

/** The T2I-Adapter for the SDXL checkpoint `ckpt` (random weights, diffusers layout as TencentARC's SDXL adapters), unless the file exists; returns its path. */
export function makeDemoSdxlAdapter(ckpt: string, modelsDir: string, seed: number): string {
  const out = path.join(modelsDir, DEMO_SDXL_ADAPTER);
  if (existsSync(out)) return out;
  const cfg = detectSdxl(SafetensorsFile.open(ckpt));
  if (!cfg) throw new Error(`${ckpt} is not an SDXL checkpoint: no SDXL T2I-Adapter made for it`);
  mkdirSync(path.dirname(out), { recursive: true });
  makeAdapterFile(out, adapterConfigFor(cfg.unet, { xl: true }), { seed: seed + 6, layout: 'diffusers' });
  return out;
}

/** Where `weft make-model tiny` puts the demo T2I-Adapter, under the models folder. */
export const DEMO_ADAPTER = 't2i_adapter/weft-tiny-t2i-adapter.safetensors';

/** The demo adapter for the checkpoint `ckpt` (a full adapter of its widths, random weights), unless the file exists; returns its path. */
export function makeDemoAdapter(ckpt: string, modelsDir: string, seed: number): string {
  const out = path.join(modelsDir, DEMO_ADAPTER);
  if (existsSync(out)) return out;
  mkdirSync(path.dirname(out), { recursive: true });
  const cfg = detectCheckpoint(SafetensorsFile.open(ckpt));
  makeAdapterFile(out, adapterConfigFor(cfg.unet), { seed: seed + 5 });
  return out;
}
