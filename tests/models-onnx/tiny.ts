import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SD1_PREFIX, type Sd1Config } from '../../engine/models/families/sd1/config.ts';
import { detectCheckpoint, sd1Weights } from '../../engine/models/families/sd1/detect.ts';
import { makeTinyCheckpoint } from '../../engine/models/make-model.ts';
import { SafetensorsFile } from '../../engine/formats/safetensors.ts';
import { PrefixedWeightSource, type WeightSource } from '../../engine/core/weights.ts';

/** A tiny SD1 checkpoint in a fresh temp folder, with the bare-key views the graph builders take. */
export interface Tiny {
  dir: string;
  file: string;
  cfg: Sd1Config;
  unet: WeightSource;
  vae: WeightSource;
  clip: WeightSource;
}

export async function makeTiny(seed = 1): Promise<Tiny> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-tiny-'));
  const file = join(dir, 'checkpoints', 'weft-tiny-sd1.safetensors');
  await makeTinyCheckpoint(file, { seed });
  const sf = SafetensorsFile.open(file);
  const cfg = detectCheckpoint(sf);
  const ws = sd1Weights(sf);
  return {
    dir,
    file,
    cfg,
    unet: new PrefixedWeightSource(ws, SD1_PREFIX.unet),
    vae: new PrefixedWeightSource(ws, SD1_PREFIX.vae),
    clip: new PrefixedWeightSource(ws, SD1_PREFIX.clip),
  };
}

/** Deterministic values in [-1, 1) (an LCG: no dependence on the code under test). */
export function lcg(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32) * 2 * scale - scale;
  }
  return a;
}

/** max |a − b| / max |b|: the relative error the issue bounds (< 1e-4). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  let r = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]));
    r = Math.max(r, Math.abs(b[i]));
  }
  return m / r;
}
