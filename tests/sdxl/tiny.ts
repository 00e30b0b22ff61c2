import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrefixedWeightSource, type WeightSource } from '../../engine/core/weights.ts';
import { SafetensorsFile } from '../../engine/formats/safetensors.ts';
import { SDXL_PREFIX, type SdxlConfig } from '../../engine/models/families/sdxl/config.ts';
import { detectSdxl } from '../../engine/models/families/sdxl/detect.ts';
import type { SdxlMarker } from '../../engine/models/families/sdxl/make.ts';
import { makeTinySdxlCheckpoint } from '../../engine/models/make-model.ts';

/** A tiny SDXL (base or refiner) checkpoint in a fresh temp folder, with the bare-key views the references read. */
export interface TinySdxl {
  dir: string;
  file: string;
  cfg: SdxlConfig;
  unet: WeightSource;
  vae: WeightSource;
  clipL?: WeightSource;
  clipG: WeightSource;
}

export async function makeTinySdxl(seed = 1, kind: 'base' | 'refiner' = 'base', markers?: readonly SdxlMarker[]): Promise<TinySdxl> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-tiny-sdxl-'));
  const file = join(dir, 'checkpoints', `weft-tiny-sdxl-${kind}.safetensors`);
  await makeTinySdxlCheckpoint(file, { seed, kind, markers });
  const sf = SafetensorsFile.open(file);
  const cfg = detectSdxl(sf);
  if (!cfg) throw new Error('tiny SDXL not detected');
  return {
    dir,
    file,
    cfg,
    unet: new PrefixedWeightSource(sf, SDXL_PREFIX.unet),
    vae: new PrefixedWeightSource(sf, SDXL_PREFIX.vae),
    clipL: cfg.clipL ? new PrefixedWeightSource(sf, SDXL_PREFIX.clipL) : undefined,
    clipG: new PrefixedWeightSource(sf, cfg.clipGPrefix),
  };
}
