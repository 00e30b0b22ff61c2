import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { SD1_PREFIX } from '../families/sd1/config.ts';
import { SafetensorsFile, SafetensorsWriter, type TensorSpec } from '../../formats/safetensors.ts';
import { type Dtype } from '../../core/dtype.ts';
import { Rng } from './rng.ts';

/**
 * Random adapters for a generated checkpoint (the demo workflow's LoRA, LoHa and embedding, and the
 * rank-32 LoRA bench/lora applies to the full-size SD1.5), in kohya's key layout
 * (`lora_unet_<ldm name with _>`, `lora_te_text_model_…`), which ComfyUI and A1111 both read.
 */

export interface AdapterOptions {
  kind: 'lora' | 'loha';
  rank: number;
  seed: number;
  /** Which weights: attention and MLP linears (+ proj_in/out), optionally every conv as well (LoCon). */
  scope: 'attention' | 'attention+conv';
  textEncoder: boolean;
  dtype?: 'F32' | 'F16';
  /** Relative size of a full-strength patch against the weight it changes (random, so a guide only). */
  scale?: number;
}

const ATTN = /\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2)|proj_in|proj_out)\.weight$/;
const TE_ATTN = /\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.(fc1|fc2))\.weight$/;

/** The checkpoint weights an adapter of this scope patches, with their kohya key stems. */
export function adapterTargets(ckpt: SafetensorsFile, opts: Pick<AdapterOptions, 'scope' | 'textEncoder'>): { stem: string; shape: readonly number[] }[] {
  const out: { stem: string; shape: readonly number[] }[] = [];
  for (const name of ckpt.names()) {
    const shape = ckpt.shape(name);
    if (name.startsWith(SD1_PREFIX.unet)) {
      const conv = shape.length === 4 && opts.scope === 'attention+conv';
      if (!ATTN.test(name) && !conv) continue;
      out.push({ stem: `lora_unet_${name.slice(SD1_PREFIX.unet.length, -'.weight'.length).replaceAll('.', '_')}`, shape });
    } else if (opts.textEncoder && name.startsWith(SD1_PREFIX.clip) && TE_ATTN.test(name)) {
      out.push({ stem: `lora_te_text_model_${name.slice(SD1_PREFIX.clip.length, -'.weight'.length).replaceAll('.', '_')}`, shape });
    }
  }
  return out;
}

/** Writes an adapter for `checkpoint` to `outFile` (atomically); returns how many weights it patches. */
export function makeAdapter(checkpoint: string, outFile: string, opts: AdapterOptions): number {
  const ckpt = SafetensorsFile.open(checkpoint);
  const targets = adapterTargets(ckpt, opts);
  ckpt.close();
  const rng = new Rng(opts.seed);
  const dtype: Dtype = opts.dtype ?? 'F32';
  const r = opts.rank;
  const specs: (TensorSpec & { make: () => Float32Array })[] = [];
  const randn = (n: number, std: number) => (): Float32Array => rng.normal(new Float32Array(n), std);
  const scale = opts.scale ?? 0.2;
  for (const { stem, shape } of targets) {
    const out = shape[0];
    const inner = shape.slice(1).reduce((a, b) => a * b, 1);
    const conv = shape.length === 4;
    const rr = Math.min(r, out, inner);
    // up·down then has entries of about scale/√inner, the size of a default-initialised weight's.
    const std = Math.sqrt(scale / Math.sqrt(inner) / Math.sqrt(rr));
    if (opts.kind === 'lora') {
      specs.push({ name: `${stem}.lora_down.weight`, dtype, shape: conv ? [rr, ...shape.slice(1)] : [rr, inner], make: randn(rr * inner, std) });
      specs.push({ name: `${stem}.lora_up.weight`, dtype, shape: conv ? [out, rr, 1, 1] : [out, rr], make: randn(out * rr, std) });
    } else {
      const s4 = Math.sqrt(std);
      specs.push({ name: `${stem}.hada_w1_a`, dtype, shape: [out, rr], make: randn(out * rr, s4) });
      specs.push({ name: `${stem}.hada_w1_b`, dtype, shape: [rr, inner], make: randn(rr * inner, s4) });
      specs.push({ name: `${stem}.hada_w2_a`, dtype, shape: [out, rr], make: randn(out * rr, s4) });
      specs.push({ name: `${stem}.hada_w2_b`, dtype, shape: [rr, inner], make: randn(rr * inner, s4) });
    }
    specs.push({ name: `${stem}.alpha`, dtype: 'F32', shape: [], make: () => new Float32Array([rr]) });
  }
  const meta = { ss_network_module: opts.kind === 'lora' ? 'networks.lora' : 'lycoris.kohya', ss_network_dim: String(r), 'weft.generated': 'random weights' };
  const w = SafetensorsWriter.create(outFile, specs, meta);
  try {
    for (const s of specs) w.write(s.name, s.make());
  } catch (e) {
    w.abort();
    throw e;
  }
  w.finish();
  return targets.length;
}

/** A textual-inversion embedding (`emb_params`, A1111/ComfyUI safetensors layout) of `vectors` tokens. */
export function makeEmbedding(outFile: string, width: number, vectors: number, seed: number): void {
  const rng = new Rng(seed);
  const w = SafetensorsWriter.create(outFile, [{ name: 'emb_params', dtype: 'F32', shape: [vectors, width] }], { 'weft.generated': 'random weights' });
  w.write('emb_params', rng.normal(new Float32Array(vectors * width), 0.02));
  w.finish();
}

/** Where the demo workflow (workflows/lora-embedding.json) finds its adapters, under a models folder. */
export const DEMO_ADAPTERS = {
  lora: 'loras/weft-tiny-lora.safetensors',
  loha: 'loras/weft-tiny-loha.safetensors',
  embedding: 'embeddings/weft-tiny-style.safetensors',
} as const;

/** The demo LoRA, LoHa and embedding for the tiny checkpoint `ckpt` (files that exist are kept). */
export function makeDemoAdapters(ckpt: string, modelsDir: string, seed: number): void {
  const at = (rel: string): string => {
    const f = path.join(modelsDir, rel);
    mkdirSync(path.dirname(f), { recursive: true });
    return f;
  };
  const lora = at(DEMO_ADAPTERS.lora);
  const loha = at(DEMO_ADAPTERS.loha);
  const emb = at(DEMO_ADAPTERS.embedding);
  if (!existsSync(lora)) makeAdapter(ckpt, lora, { kind: 'lora', rank: 4, seed: seed + 1, scope: 'attention+conv', textEncoder: true });
  if (!existsSync(loha)) makeAdapter(ckpt, loha, { kind: 'loha', rank: 4, seed: seed + 2, scope: 'attention', textEncoder: false });
  if (!existsSync(emb)) {
    const f = SafetensorsFile.open(ckpt);
    const width = f.shape(`${SD1_PREFIX.clip}final_layer_norm.weight`)[0];
    f.close();
    makeEmbedding(emb, width, 2, seed + 3);
  }
}
