import path from 'node:path';
import { writeFileAtomic } from '../../core/safe-path.ts';
import { SafetensorsWriter } from '../../formats/safetensors.ts';
import { openClipLayout } from '../families/openclip/config.ts';
import { SD15_CONFIG, unetLayout, vaeLayout } from '../families/sd1/layout.ts';
import { SD2_HEAD_WIDTH, SD2_PREFIX, type Sd2Config } from '../families/sd2/config.ts';
import { Rng } from './rng.ts';
import { makeTinyTokenizer, mergesText } from './tiny-tokenizer.ts';

/**
 * The tiny SD2 configuration: SD2's block kinds (4 UNet levels with 2 res blocks, attention at levels
 * 0–2, linear proj_in/out, 64-wide heads: 1, 1, 2, 2 heads at widths 64, 64, 128, 128), an open_clip
 * text tower 64 wide × 3 blocks with a text projection (so the penultimate layer and the pooled
 * output both mean something), and SD1's tiny VAE.
 */
export function tinySd2Config(vocabSize: number, prediction: Sd2Config['prediction']): Sd2Config {
  return {
    family: 'sd2',
    unet: { ...SD15_CONFIG.unet, modelChannels: 64, channelMult: [1, 1, 2, 2], contextDim: 64, useLinearInProj: true, numHeadChannels: SD2_HEAD_WIDTH },
    clip: { vocabSize, width: 64, layers: 3, heads: 1, mlpWidth: 256, contextLength: 77, projectionDim: 64, layerNormEps: 1e-5 },
    clipPrefix: SD2_PREFIX.clip,
    vae: { ...SD15_CONFIG.vae, ch: 32, numResBlocks: 1 },
    prediction,
  };
}

/**
 * One tensor's values: norms 1, biases 0, embeddings N(0, 0.02²), the rest N(0, 1/fan_in) (as the SD1
 * generator). open_clip's `text_projection` is [width, proj] applied as x·P, so its fan-in is rows.
 * For the v variant the transformer norm1 biases get N(0, 0.2²), whose population std (≈0.2) is far
 * over ComfyUI's 0.09 v-prediction threshold; the ε variant's are 0.
 */
function initTensor(name: string, shape: readonly number[], rng: Rng, v: boolean): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  if (name.endsWith('.bias') || name.endsWith('_bias')) {
    if (v && name.endsWith('.norm1.bias')) rng.normal(data, 0.2);
    return data;
  }
  if (shape.length === 1) return data.fill(1);
  if (name.endsWith('embedding.weight') || name.endsWith('positional_embedding')) return rng.normal(data, 0.02);
  const fanIn = name.endsWith('text_projection') ? shape[0] : n / shape[0];
  return rng.normal(data, 1 / Math.sqrt(fanIn));
}

/**
 * The tiny SD2-architecture checkpoint (LDM single-file names, `cond_stage_model.model.` open_clip text)
 * with its own CLIP BPE tokenizer in `<name>.tokenizer/`. `prediction: 'v_prediction'` writes weights that
 * ComfyUI's SD20.model_type (and Weft's detection) read as 768-v; 'eps' ones it reads as 512-base.
 */
export function makeTinySd2Checkpoint(outFile: string, opts: { seed?: number; prediction?: Sd2Config['prediction'] } = {}): Sd2Config {
  const seed = opts.seed ?? 0;
  const prediction = opts.prediction ?? 'eps';
  const tok = makeTinyTokenizer();
  const dir = `${outFile.replace(/\.[^.\\/]+$/, '')}.tokenizer`;
  writeFileAtomic(path.join(dir, 'vocab.json'), JSON.stringify(tok.vocab));
  writeFileAtomic(path.join(dir, 'merges.txt'), mergesText(tok.merges));
  const cfg = tinySd2Config(Object.keys(tok.vocab).length, prediction);
  const layout = [...unetLayout(cfg.unet, SD2_PREFIX.unet), ...openClipLayout(cfg.clip, cfg.clipPrefix), ...vaeLayout(cfg.vae, SD2_PREFIX.vae)];
  const rng = new Rng(seed);
  const w = SafetensorsWriter.create(
    outFile,
    layout.map(([name, shape]) => ({ name, dtype: 'F32' as const, shape })),
    {
      'modelspec.architecture': prediction === 'v_prediction' ? 'stable-diffusion-v2-768-v' : 'stable-diffusion-v2-512',
      'modelspec.title': `Weft tiny SD2 ${prediction === 'v_prediction' ? '768-v' : '512-base'} (random weights)`,
      'weft.generator': 'make-model',
      'weft.seed': String(seed),
    },
  );
  try {
    for (const [name, shape] of layout) w.write(name, initTensor(name, shape, rng, prediction === 'v_prediction'));
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
  return cfg;
}

