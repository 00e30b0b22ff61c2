import type { WeightSource } from '../../core/weights.ts';
import type { ControlNetConfig } from './layout.ts';
import { controlNetUnet } from './unet-config.ts';

/** A Control-LoRA file as the loader reads it, before a model is known (see control-lora.ts). */

export interface ControlLoraFile {
  readonly file: string;
  /** The file's tensors under their own (bare cldm) names. */
  readonly weights: WeightSource;
  readonly config: ControlNetConfig;
}

/** ComfyUI's filter for the tensors a Control-LoRA sets. */
export const applies = (k: string): boolean => k !== 'lora_controlnet' && /\.(up|down|weight|bias)$/.test(k) && !k.includes('__');

/** The shapes of a Control-LoRA as a full ControlNet's: `X.weight` for a layer stored as `X.up` + `X.down`. Values are not read through it. */
export class ControlLoraShapes implements WeightSource {
  private readonly shapes = new Map<string, readonly number[]>();
  constructor(
    private readonly src: WeightSource,
    private readonly file: string,
  ) {
    for (const n of src.names()) {
      if (!applies(n)) continue;
      if (n.endsWith('.up')) {
        const mod = n.slice(0, -3);
        if (!src.has(`${mod}.down`)) throw new Error(`${file}: ${n} has no ${mod}.down beside it`);
        const up = src.shape(n);
        const down = src.shape(`${mod}.down`);
        if (up[1] !== down[0]) throw new Error(`${file}: ${n} [${up.join(', ')}] and ${mod}.down [${down.join(', ')}] do not share a rank`);
        if (!src.has(`${mod}.weight`)) this.shapes.set(`${mod}.weight`, [up[0], ...down.slice(1)]);
      } else if (!n.endsWith('.down')) this.shapes.set(n, src.shape(n));
    }
  }
  has(name: string): boolean {
    return this.shapes.has(name);
  }
  names(): string[] {
    return [...this.shapes.keys()];
  }
  shape(name: string): readonly number[] {
    const s = this.shapes.get(name);
    if (!s) throw new Error(`${this.file}: no ${name}`);
    return s;
  }
  get(name: string): Float32Array {
    throw new Error(`${this.file}: ${name} of a Control-LoRA is known once it is built against a model`);
  }
}

/** A Control-LoRA's structure from its shapes (see control-lora.ts); its weights are made against a model when sampled. */
export function readControlLora(file: string, sf: WeightSource): ControlLoraFile {
  const shapes = new ControlLoraShapes(sf, file);
  if (!shapes.has('input_hint_block.0.weight')) throw new Error(`${file}: a Control-LoRA (lora_controlnet) without input_hint_block.0.weight`);
  if (!shapes.has('input_blocks.0.0.weight')) throw new Error(`${file}: a Control-LoRA (lora_controlnet) without input_blocks.0.0 (.weight, or .up and .down)`);
  return { file, weights: sf, config: { unet: controlNetUnet(shapes), hintChannels: shapes.shape('input_hint_block.0.weight')[1] } };
}

