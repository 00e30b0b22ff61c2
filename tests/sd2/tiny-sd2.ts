import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrefixedWeightSource, type WeightSource } from '../../engine/core/weights.ts';
import { SafetensorsFile } from '../../engine/formats/safetensors.ts';
import { SD2_PREFIX, type Sd2Config } from '../../engine/models/families/sd2/config.ts';
import { makeTinySd2Checkpoint } from '../../engine/models/generate/sd2-tiny.ts';

/** A tiny SD2 checkpoint (ε or v) in a fresh temp folder, with the bare-key views the reference nets take. */
export interface TinySd2 {
  dir: string;
  file: string;
  cfg: Sd2Config;
  source: SafetensorsFile;
  unet: WeightSource;
  clip: WeightSource;
  vae: WeightSource;
}

export function makeTinySd2(prediction: Sd2Config['prediction'], seed = 1, dir = mkdtempSync(join(tmpdir(), 'weft-sd2-'))): TinySd2 {
  const file = join(dir, 'checkpoints', `weft-tiny-sd2-${prediction === 'v_prediction' ? 'v' : 'eps'}.safetensors`);
  const cfg = makeTinySd2Checkpoint(file, { seed, prediction });
  const source = SafetensorsFile.open(file);
  return {
    dir,
    file,
    cfg,
    source,
    unet: new PrefixedWeightSource(source, SD2_PREFIX.unet),
    clip: new PrefixedWeightSource(source, cfg.clipPrefix),
    vae: new PrefixedWeightSource(source, SD2_PREFIX.vae),
  };
}
