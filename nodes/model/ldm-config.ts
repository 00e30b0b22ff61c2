import fs from 'node:fs';
import YAML from 'yaml';

/**
 * What ComfyUI's deprecated `load_checkpoint(config_path, ckpt_path)` still takes from an LDM
 * inference YAML after guessing the model from the checkpoint: `model.params.parameterization: v`
 * makes the model v-prediction (ModelSamplingDiscrete + V_PREDICTION on the model's own schedule), and
 * `model.params.cond_stage_config.params.layer_idx` sets the CLIP layer (clip.clip_layer). Every
 * other key (unet, VAE and scale-factor configs) is ignored, as there.
 */
export interface LdmConfigEffects {
  vPrediction: boolean;
  clipLayer?: number;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function readLdmConfig(file: string): LdmConfigEffects {
  let doc: unknown;
  try {
    doc = YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`config ${file}: not readable YAML: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  // ComfyUI indexes these keys directly, so a file without them fails to load there too.
  const model = isRecord(doc) ? doc.model : undefined;
  const params = isRecord(model) ? model.params : undefined;
  if (!isRecord(params))
    throw new Error(`config ${file}: no model.params section (is it an LDM inference config such as v1-inference.yaml?)`);
  const cond = params.cond_stage_config;
  if (!isRecord(cond)) throw new Error(`config ${file}: no model.params.cond_stage_config section`);
  const layer = isRecord(cond.params) ? cond.params.layer_idx : undefined;
  if (layer !== undefined && layer !== null && (typeof layer !== 'number' || !Number.isInteger(layer) || layer === 0)) {
    throw new Error(`config ${file}: cond_stage_config.params.layer_idx must be a non-zero integer, got ${JSON.stringify(layer)}`);
  }
  return { vPrediction: params.parameterization === 'v', clipLayer: typeof layer === 'number' ? layer : undefined };
}
