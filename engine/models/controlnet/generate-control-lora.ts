import { SafetensorsWriter } from '../../formats/safetensors.ts';
import { Rng } from '../generate/rng.ts';
import { controlNetLayout, type ControlNetConfig } from './layout.ts';

/**
 * Random Control-LoRA files made by Weft (tests), in the layout of Stability's control-lora-*:
 * `lora_controlnet`, the hint encoder, zero convs and middle_block_out in full, every other conv and
 * linear layer of the UNet copy as `.up` / `.down` with its bias in full, norms in full. Names that
 * start with one of `fromModel` are left out, so the ControlNet takes them from the model.
 */

export interface MakeControlLoraOptions {
  seed?: number;
  rank?: number;
  dtype?: 'F32' | 'F16';
  fromModel?: readonly string[];
}

type Tensors = Map<string, { shape: readonly number[]; data: Float32Array }>;

/** Writes a random Control-LoRA for a ControlNet of `cfg`; returns the tensors it holds. */
export function makeControlLoraFile(outFile: string, cfg: ControlNetConfig, opts: MakeControlLoraOptions = {}): Tensors {
  const rng = new Rng(opts.seed ?? 0);
  const rank = opts.rank ?? 4;
  const out: Tensors = new Map();
  const random = (shape: readonly number[], scale: number, offset = 0): Float32Array => {
    const data = rng.normal(new Float32Array(shape.reduce((a, b) => a * b, 1)), 1);
    for (let i = 0; i < data.length; i++) data[i] = offset + data[i] * scale;
    return data;
  };
  out.set('lora_controlnet', { shape: [1], data: new Float32Array(1) });
  for (const [name, shape] of controlNetLayout(cfg)) {
    if (opts.fromModel?.some((p) => name.startsWith(p))) continue;
    const full = /^(input_hint_block|zero_convs|middle_block_out)\./.test(name);
    if (shape.length >= 2 && !full) {
      const mod = name.slice(0, -'.weight'.length);
      const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
      const upShape = shape.length === 4 ? [shape[0], rank, 1, 1] : [shape[0], rank];
      out.set(`${mod}.up`, { shape: upShape, data: random(upShape, 0.5 / Math.sqrt(rank)) });
      out.set(`${mod}.down`, { shape: [rank, ...shape.slice(1)], data: random([rank, ...shape.slice(1)], 0.5 / Math.sqrt(fanIn)) });
    } else if (shape.length >= 2) out.set(name, { shape, data: random(shape, 1 / Math.sqrt(shape.slice(1).reduce((a, b) => a * b, 1))) });
    else if (name.endsWith('.weight')) out.set(name, { shape, data: random(shape, 0.1, 1) });
    else out.set(name, { shape, data: random(shape, 0.05) });
  }
  const dtype = opts.dtype ?? 'F32';
  const w = SafetensorsWriter.create(
    outFile,
    [...out].map(([name, t]) => ({ name, dtype, shape: t.shape })),
    { 'weft.generator': 'make-control-lora', 'weft.seed': String(opts.seed ?? 0) },
  );
  try {
    for (const [name, t] of out) w.write(name, t.data);
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
  return out;
}
