import fs from 'node:fs';
import path from 'node:path';
import { UnsupportedModelError } from './errors.ts';

/** The parts of a diffusers/Optimum ONNX export of an SD1 pipeline. */
export interface OnnxFolder {
  dir: string;
  textEncoder: string;
  unet: string;
  vaeDecoder: string;
  vaeEncoder?: string;
  /** Folder with vocab.json + merges.txt, when the export ships its tokenizer. */
  tokenizerDir?: string;
  /** model_index.json's `_class_name`, e.g. OnnxStableDiffusionPipeline. */
  pipelineClass?: string;
  /** From scheduler/scheduler_config.json, when present. */
  scheduler?: { predictionType?: string; betaSchedule?: string; betaStart?: number; betaEnd?: number; trainTimesteps?: number };
}

/** Config files are small; anything bigger is not one. */
const MAX_JSON = 1024 * 1024;

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    const st = fs.statSync(file);
    if (!st.isFile() || st.size > MAX_JSON) return undefined;
    const v: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const isFile = (p: string): boolean => {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
};

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * Recognise a diffusers/Optimum ONNX folder (text_encoder/, unet/, vae_decoder/ each with model.onnx;
 * vae_encoder/ and tokenizer/ optional) and return the file paths. SDXL exports (text_encoder_2/) and
 * SD2 ones (1024-wide text encoder per the exported configs) are named and refused; missing parts are
 * listed by path.
 */
export function detectOnnxFolder(dir: string): OnnxFolder {
  const abs = path.resolve(dir);
  if (!fs.existsSync(abs) || !fs.statSync(abs).isDirectory()) throw new Error(`${abs}: not a folder (an ONNX model is a folder with text_encoder/, unet/, vae_decoder/)`);
  const index = readJson(path.join(abs, 'model_index.json'));
  const pipelineClass = str(index?._class_name);
  if (fs.existsSync(path.join(abs, 'text_encoder_2')) || /XL/.test(pipelineClass ?? '')) {
    throw new UnsupportedModelError('SDXL (ONNX folder)', pipelineClass ?? 'text_encoder_2/');
  }
  const part = (name: string): string => path.join(abs, name, 'model.onnx');
  const required = { textEncoder: part('text_encoder'), unet: part('unet'), vaeDecoder: part('vae_decoder') };
  const missing = Object.values(required).filter((p) => !isFile(p));
  if (missing.length) {
    throw new Error(
      `${abs}: not a diffusers ONNX folder: missing ${missing.map((p) => path.relative(abs, p)).join(', ')} ` +
        '(expected text_encoder/model.onnx, unet/model.onnx, vae_decoder/model.onnx, optionally vae_encoder/ and tokenizer/)',
    );
  }
  const textConfig = readJson(path.join(abs, 'text_encoder', 'config.json'));
  const unetConfig = readJson(path.join(abs, 'unet', 'config.json'));
  const width = num(textConfig?.hidden_size) ?? num(unetConfig?.cross_attention_dim);
  if (width === 1024) throw new UnsupportedModelError('SD2.x (ONNX folder)', 'text encoder width 1024');
  const out: OnnxFolder = { dir: abs, ...required };
  if (pipelineClass) out.pipelineClass = pipelineClass;
  if (isFile(part('vae_encoder'))) out.vaeEncoder = part('vae_encoder');
  const tok = path.join(abs, 'tokenizer');
  if (isFile(path.join(tok, 'vocab.json')) && isFile(path.join(tok, 'merges.txt'))) out.tokenizerDir = tok;
  const sched = readJson(path.join(abs, 'scheduler', 'scheduler_config.json'));
  if (sched) {
    out.scheduler = {
      predictionType: str(sched.prediction_type),
      betaSchedule: str(sched.beta_schedule),
      betaStart: num(sched.beta_start),
      betaEnd: num(sched.beta_end),
      trainTimesteps: num(sched.num_train_timesteps),
    };
  }
  return out;
}
