import { SD1_PREFIX } from './config.ts';
import type { WeightSource } from '../../../core/weights.ts';

/**
 * Renaming views over a WeightSource, so that files which store the same SD1 weights under other
 * names (older transformers CLIP keys, diffusers-format VAEs, linear-shaped 1×1 convolutions) reach
 * detection and the graph builders under the one set of names both expect. No data is copied: a view
 * maps a name to a source tensor, and at most changes the reported shape to an equivalent one.
 */
export class RenamedWeightSource implements WeightSource {
  constructor(
    private readonly inner: WeightSource,
    /** view name → source name and the shape to report (same element count as the source). */
    private readonly entries: ReadonlyMap<string, { source: string; shape: readonly number[] }>,
  ) {}
  has(name: string): boolean {
    return this.entries.has(name);
  }
  names(): string[] {
    return [...this.entries.keys()];
  }
  shape(name: string): readonly number[] {
    return this.entry(name).shape;
  }
  get(name: string): Float32Array {
    return this.inner.get(this.entry(name).source);
  }
  raw(name: string): { dtype: 'F32' | 'F16'; bytes: Uint8Array } | undefined {
    return this.inner.raw?.(this.entry(name).source);
  }
  /** The underlying tensor name (for error messages that should point into the file). */
  sourceName(name: string): string {
    return this.entry(name).source;
  }
  private entry(name: string): { source: string; shape: readonly number[] } {
    const e = this.entries.get(name);
    if (!e) throw new Error(`weight '${name}' is missing`);
    return e;
  }
}

/** A 2-D [C, C'] weight reported as the equivalent 1×1 convolution [C, C', 1, 1]. */
function asConv1x1(shape: readonly number[]): readonly number[] {
  return shape.length === 2 ? [shape[0], shape[1], 1, 1] : shape;
}

const VAE_ATTN_1X1 = /(^|\.)(encoder|decoder)\.mid\.attn_1\.(q|k|v|proj_out)\.weight$/;

/**
 * An SD1 checkpoint under the names Weft's builders use: CLIP keys saved by old transformers
 * versions (`cond_stage_model.transformer.encoder…`, without `text_model.`) are renamed, and VAE
 * attention projections stored as linear [C, C] are reported as 1×1 convs [C, C, 1, 1] (as files
 * converted from diffusers have them). Returns `ws` itself when nothing needs renaming.
 */
export function sd1Weights(ws: WeightSource): WeightSource {
  const names = ws.names();
  const oldClip = 'cond_stage_model.transformer.';
  let changed = false;
  const entries = new Map<string, { source: string; shape: readonly number[] }>();
  for (const n of names) {
    let view = n;
    if (n.startsWith(oldClip) && !n.startsWith(SD1_PREFIX.clip)) view = SD1_PREFIX.clip + n.slice(oldClip.length);
    const shape = ws.shape(n);
    const reported = VAE_ATTN_1X1.test(view) ? asConv1x1(shape) : shape;
    if (view !== n || reported !== shape) changed = true;
    // A file holding both spellings keeps the current one.
    if (view !== n && ws.has(view)) continue;
    entries.set(view, { source: n, shape: reported });
  }
  return changed ? new RenamedWeightSource(ws, entries) : ws;
}

/** diffusers AutoencoderKL name (without prefix) → LDM name, or undefined for names it does not know. */
function diffusersVaeName(n: string, levels: number): string | undefined {
  let m: RegExpExecArray | null;
  const resnet = (s: string): string => s.replace('conv_shortcut', 'nin_shortcut');
  const attn = (s: string): string | undefined =>
    ({ group_norm: 'norm', to_q: 'q', to_k: 'k', to_v: 'v', 'to_out.0': 'proj_out', query: 'q', key: 'k', value: 'v', proj_attn: 'proj_out' })[s];
  if ((m = /^(encoder|decoder)\.(conv_in|conv_out)\.(weight|bias)$/.exec(n))) return n;
  if ((m = /^(encoder|decoder)\.conv_norm_out\.(weight|bias)$/.exec(n))) return `${m[1]}.norm_out.${m[2]}`;
  if ((m = /^(quant_conv|post_quant_conv)\.(weight|bias)$/.exec(n))) return n;
  if ((m = /^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(n))) return `encoder.down.${m[1]}.block.${m[2]}.${resnet(m[3])}`;
  if ((m = /^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(weight|bias)$/.exec(n))) return `encoder.down.${m[1]}.downsample.conv.${m[2]}`;
  if ((m = /^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(n))) return `decoder.up.${levels - 1 - Number(m[1])}.block.${m[2]}.${resnet(m[3])}`;
  if ((m = /^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(weight|bias)$/.exec(n))) return `decoder.up.${levels - 1 - Number(m[1])}.upsample.conv.${m[2]}`;
  if ((m = /^(encoder|decoder)\.mid_block\.resnets\.([01])\.(.+)$/.exec(n))) return `${m[1]}.mid.block_${Number(m[2]) + 1}.${resnet(m[3])}`;
  if ((m = /^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0|query|key|value|proj_attn)\.(weight|bias)$/.exec(n))) {
    return `${m[1]}.mid.attn_1.${attn(m[2])}.${m[3]}`;
  }
  return undefined;
}

/** Whether the names are a diffusers-format VAE (`encoder.down_blocks.…`), possibly under a prefix. */
export function isDiffusersVae(names: readonly string[], prefix = ''): boolean {
  return names.some((n) => n.startsWith(`${prefix}encoder.down_blocks.`));
}

/**
 * A diffusers-format VAE (diffusion_pytorch_model.safetensors of an AutoencoderKL) under LDM names
 * without prefix (`encoder.down.0.block.0.conv1.weight`, `decoder.up.3…`, `encoder.mid.attn_1.q…`),
 * attention projections as 1×1 convs. Unknown names are an error naming the first few.
 */
export function diffusersVaeToLdm(ws: WeightSource, prefix = ''): RenamedWeightSource {
  const names = ws.names().filter((n) => n.startsWith(prefix));
  let levels = 0;
  for (const n of names) {
    const m = /^decoder\.up_blocks\.(\d+)\./.exec(n.slice(prefix.length));
    if (m) levels = Math.max(levels, Number(m[1]) + 1);
  }
  const entries = new Map<string, { source: string; shape: readonly number[] }>();
  const unknown: string[] = [];
  for (const n of names) {
    const ldm = diffusersVaeName(n.slice(prefix.length), levels);
    if (!ldm) {
      unknown.push(n);
      continue;
    }
    const shape = ws.shape(n);
    entries.set(ldm, { source: n, shape: VAE_ATTN_1X1.test(ldm) ? asConv1x1(shape) : shape });
  }
  if (unknown.length) throw new Error(`diffusers-format VAE has tensors Weft cannot map to LDM names: ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? `, … (${unknown.length} in all)` : ''}`);
  return new RenamedWeightSource(ws, entries);
}
