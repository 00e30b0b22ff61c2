import type { WeightSource } from '../../core/weights.ts';

/**
 * Which upscaler a state dict holds, read from its key names and tensor shapes as spandrel reads
 * them (`architectures/ESRGAN`, `architectures/Compact`): ESRGAN's RRDBNet in the old (`model.N`),
 * new (`conv_first`/`body.N.rdb1`, Real-ESRGAN) and BSRGAN (`RRDB_trunk`) layouts, with
 * pixel-unshuffle input (Real-ESRGAN x2plus), and SRVGGNetCompact. Architectures Weft cannot run
 * are recognised by their keys and refused by name.
 */

export interface EsrganArch {
  readonly kind: 'esrgan';
  readonly layout: 'old' | 'new' | 'bsrgan';
  /** Channels the network's first conv reads (after any pixel unshuffle: 12 or 48 for 3-channel images). */
  readonly inNc: number;
  readonly outNc: number;
  /** Features (num_filters) and RRDB blocks. */
  readonly nf: number;
  readonly nb: number;
  /** Growth channels of each dense block (32 in every published model). */
  readonly gc: number;
  /** 2× upsampling stages of the network itself. */
  readonly upsamples: number;
  /** Pixel-unshuffle factor of the input (Real-ESRGAN x2plus: 2), 1 when none. */
  readonly shuffle: number;
  /** Output pixels per input pixel of the whole model. */
  readonly scale: number;
}

export interface CompactArch {
  readonly kind: 'compact';
  readonly inNc: number;
  readonly outNc: number;
  readonly nf: number;
  /** Body convs between the first and the last (num_conv). */
  readonly numConv: number;
  readonly scale: number;
}

export type UpscaleArch = EsrganArch | CompactArch;

/** Key sets that name architectures Weft recognises but does not run (spandrel's detection keys, abridged). */
const REFUSED: readonly { name: string; keys: readonly string[] }[] = [
  { name: 'HAT', keys: ['relative_position_index_SA', 'layers.0.residual_group.overlap_attn.qkv.weight'] },
  { name: 'ATD', keys: ['relative_position_index_SA', 'layers.0.residual_group.td'] },
  { name: 'DRCT', keys: ['layers.0.swin1.norm1.weight', 'layers.0.adjust1.weight'] },
  { name: 'Swin2SR', keys: ['layers.0.residual_group.blocks.0.norm1.weight', 'patch_embed.proj.weight', 'layers.0.residual_group.blocks.0.attn.relative_position_index'] },
  { name: 'SwinIR', keys: ['layers.0.residual_group.blocks.0.norm1.weight', 'layers.0.residual_group.blocks.0.attn.relative_position_index'] },
  { name: 'DAT', keys: ['before_RG.1.weight', 'layers.0.blocks.0.ffn.sg.conv.weight'] },
  { name: 'RGT', keys: ['before_RG.1.weight', 'layers.0.blocks.0.gamma'] },
  { name: 'OmniSR', keys: ['residual_layer.0.residual_layer.0.layer.0.fn.0.weight', 'input.weight', 'up.0.weight'] },
  { name: 'SPAN', keys: ['conv_1.sk.weight', 'block_1.c1_r.sk.weight', 'conv_cat.weight'] },
  { name: 'RealCUGAN', keys: ['unet1.conv1.conv.0.weight', 'unet2.conv1.conv.0.weight'] },
  { name: 'PLKSR', keys: ['feats.0.weight', 'feats.1.refine.weight'] },
  { name: 'GFPGAN', keys: ['toRGB.0.weight', 'stylegan_decoder.style_mlp.1.weight'] },
  { name: 'CodeFormer', keys: ['quantize.embedding.weight', 'ft_layers.0.self_attn.in_proj_weight'] },
  { name: 'RestoreFormer', keys: ['quantize.embedding.weight', 'encoder.conv_in.weight', 'quant_conv.weight'] },
  { name: 'SCUNet', keys: ['m_head.0.weight', 'm_tail.0.weight'] },
  { name: 'LaMa', keys: ['model.model.1.bn_l.running_mean'] },
  { name: 'LaMa', keys: ['generator.model.1.bn_l.running_mean'] },
  { name: 'SwiftSRGAN', keys: ['initial.cnn.depthwise.weight', 'final_conv.pointwise.weight'] },
  { name: 'ESRGAN+ (RRDB with conv1x1 paths)', keys: ['model.0.weight', 'model.1.sub.0.RDB1.conv1x1.weight'] },
];

export class UpscaleModelError extends Error {}

/**
 * The tensors of a file under the names the architectures use: a `params_ema` (preferred) or
 * `params` sub-dict of a BasicSR checkpoint (a .pth read by the pickle reader flattens it to
 * `params_ema.<name>`), and DataParallel's `module.` prefix, are unwrapped.
 */
export function unwrapStateDict(names: readonly string[]): { prefix: string; names: string[] } {
  for (const prefix of ['params_ema.', 'params.', 'module.']) {
    const inner = names.filter((n) => n.startsWith(prefix));
    if (inner.length > 0 && inner.length >= names.length / 2) return { prefix, names: inner.map((n) => n.slice(prefix.length)) };
  }
  return { prefix: '', names: [...names] };
}

/** spandrel's get_seq_len: one more than the largest index `i` of `<key>.<i>.…`, 0 when none. */
function seqLen(names: readonly string[], key: string): number {
  let max = -1;
  const p = `${key}.`;
  for (const n of names) {
    if (!n.startsWith(p)) continue;
    const i = Number(n.slice(p.length).split('.', 1)[0]);
    if (Number.isInteger(i) && i > max) max = i;
  }
  return max + 1;
}

/** New (Real-ESRGAN) and BSRGAN key → old (`model.N`) key, as spandrel's `_new_to_old_arch` maps them. */
export function esrganOldName(name: string, upsamples: number, nb: number): string | undefined {
  const fixed: Record<string, string> = { 'conv_first.weight': 'model.0.weight', 'conv_first.bias': 'model.0.bias' };
  if (fixed[name]) return fixed[name];
  const rdb = /^(?:body|RRDB_trunk)\.(\d+)\.(?:rdb|RDB)(\d)\.conv(\d+)\.(weight|bias)$/.exec(name);
  if (rdb) return `model.1.sub.${rdb[1]}.RDB${rdb[2]}.conv${rdb[3]}.0.${rdb[4]}`;
  const up = /^(?:upconv|conv_up)(\d)\.(weight|bias)$/.exec(name);
  if (up) return `model.${Number(up[1]) * 3}.${up[2]}`;
  const last = 3 * upsamples;
  const m = /^(conv_body|trunk_conv|HRconv|conv_hr|conv_last)\.(weight|bias)$/.exec(name);
  if (!m) return undefined;
  if (m[1] === 'conv_body' || m[1] === 'trunk_conv') return `model.1.sub.${nb}.${m[2]}`;
  if (m[1] === 'conv_last') return `model.${last + 4}.${m[2]}`;
  return `model.${last + 2}.${m[2]}`;
}

function refusedName(has: (k: string) => boolean): string | undefined {
  return REFUSED.find((r) => r.keys.every(has))?.name;
}

/**
 * The architecture of a state dict given by its names and shapes (names as unwrapped by
 * `unwrapStateDict`), or an `UpscaleModelError` naming what the file is instead.
 */
export function detectUpscaleArch(names: readonly string[], shape: (name: string) => readonly number[], file = 'the file'): UpscaleArch {
  const set = new Set(names);
  const has = (k: string): boolean => set.has(k);
  const refused = refusedName(has);
  if (refused) throw new UpscaleModelError(`${file} is a ${refused} upscale model, an architecture Weft does not run (supported: ESRGAN/Real-ESRGAN RRDBNet, SRVGGNetCompact)`);
  if (has('model.0.weight') && has('model.1.sub.0.RDB1.conv1.0.weight')) return esrgan('old', names, shape, file);
  if (has('conv_first.weight') && has('body.0.rdb1.conv1.weight') && has('conv_body.weight') && has('conv_last.weight')) return esrgan('new', names, shape, file);
  if (has('conv_first.weight') && has('RRDB_trunk.0.RDB1.conv1.weight') && has('trunk_conv.weight') && has('conv_last.weight')) return esrgan('bsrgan', names, shape, file);
  if (has('body.0.weight') && has('body.1.weight')) return compact(names, shape, file);
  if (names.some((n) => n.startsWith('model.diffusion_model.') || n.startsWith('input_blocks.'))) {
    throw new UpscaleModelError(`${file} is a Stable Diffusion checkpoint or UNet, not an upscale model: put it in models/checkpoints`);
  }
  const sample = names.slice(0, 5).join(', ');
  throw new UpscaleModelError(`${file}: unknown upscale model architecture (${names.length} tensors, e.g. ${sample || 'none'}); supported: ESRGAN/Real-ESRGAN RRDBNet, SRVGGNetCompact`);
}

function esrgan(layout: EsrganArch['layout'], names: readonly string[], shape: (name: string) => readonly number[], file: string): EsrganArch {
  const first = layout === 'old' ? 'model.0.weight' : 'conv_first.weight';
  const [nf, inNc] = shape(first);
  let upsamples: number;
  let nb: number;
  let gc: number;
  let outNc: number;
  if (layout === 'old') {
    const len = seqLen(names, 'model');
    if (len < 5 || (len - 5) % 3 !== 0) throw new UpscaleModelError(`${file}: ESRGAN with ${len} top-level layers is not a layout spandrel reads (5 + 3 per 2× upsampling)`);
    upsamples = (len - 5) / 3;
    // In the upconv layout model.2 is the first nn.Upsample (no weights); a conv there is BasicSR's pixel-shuffle upsampler.
    if (upsamples > 0 && names.includes('model.2.weight')) {
      const r = Math.sqrt(shape('model.2.weight')[0] / shape('model.0.weight')[0]);
      throw new UpscaleModelError(
        `${file}: ESRGAN with a pixel-shuffle upsampler (a conv at model.2${Number.isInteger(r) ? `, ×${r} per stage` : ''}), a layout spandrel (ComfyUI) does not load either; only the upconv (nearest + conv) layout runs`,
      );
    }
    nb = seqLen(names, 'model.1.sub') - 1;
    gc = shape('model.1.sub.0.RDB1.conv1.0.weight')[0];
    outNc = shape(`model.${len - 1}.weight`)[0];
  } else {
    upsamples = names.filter((n) => /^(?:upconv|conv_up)\d\.weight$/.test(n)).length;
    const trunk = layout === 'new' ? 'body' : 'RRDB_trunk';
    nb = seqLen(names, trunk);
    gc = shape(layout === 'new' ? 'body.0.rdb1.conv1.weight' : 'RRDB_trunk.0.RDB1.conv1.weight')[0];
    outNc = shape('conv_last.weight')[0];
  }
  if (nb < 1) throw new UpscaleModelError(`${file}: ESRGAN without RRDB blocks`);
  let shuffle = 1;
  // spandrel's test: an input 4× or 16× the output channels means a pixel-unshuffled input.
  if (inNc === outNc * 4 || inNc === outNc * 16) shuffle = Math.round(Math.sqrt(inNc / outNc));
  const netScale = 2 ** upsamples;
  if (netScale % shuffle !== 0) throw new UpscaleModelError(`${file}: ESRGAN scale ${netScale} is not divisible by its unshuffle factor ${shuffle}`);
  return { kind: 'esrgan', layout, inNc, outNc, nf, nb, gc, upsamples, shuffle, scale: netScale / shuffle };
}

function compact(names: readonly string[], shape: (name: string) => readonly number[], file: string): CompactArch {
  const highest = seqLen(names, 'body') - 1;
  const [nf, inNc] = shape('body.0.weight');
  const numConv = Math.floor((highest - 2) / 2);
  if (numConv < 0 || !names.includes(`body.${highest}.bias`)) throw new UpscaleModelError(`${file}: SRVGGNetCompact body ends at layer ${highest} without a bias`);
  const ps = shape(`body.${highest}.bias`)[0];
  // spandrel's get_scale_and_output_channels: the first of (in, 3, 4, 1) channels leaving a square.
  for (const c of [inNc, 3, 4, 1]) {
    const s = Math.sqrt(ps / c);
    if (ps % c === 0 && Number.isInteger(s)) return { kind: 'compact', inNc, outNc: c, nf, numConv, scale: s };
  }
  throw new UpscaleModelError(`${file}: SRVGGNetCompact's last conv has ${ps} channels, not scale² × 1, 3 or 4`);
}

/** Checks that every tensor the architecture reads exists with the shape it implies (a file cut short or edited fails here). */
export function expectedTensors(a: UpscaleArch): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const conv = (key: string, o: number, i: number): void => {
    m.set(`${key}.weight`, [o, i, 3, 3]);
    m.set(`${key}.bias`, [o]);
  };
  if (a.kind === 'compact') {
    conv('body.0', a.nf, a.inNc);
    m.set('body.1.weight', [a.nf]);
    for (let k = 0; k < a.numConv; k++) {
      conv(`body.${2 * k + 2}`, a.nf, a.nf);
      m.set(`body.${2 * k + 3}.weight`, [a.nf]);
    }
    conv(`body.${2 * a.numConv + 2}`, a.outNc * a.scale * a.scale, a.nf);
    return m;
  }
  conv('model.0', a.nf, a.inNc);
  for (let b = 0; b < a.nb; b++)
    for (let r = 1; r <= 3; r++) for (let c = 1; c <= 5; c++) conv(`model.1.sub.${b}.RDB${r}.conv${c}.0`, c === 5 ? a.nf : a.gc, a.nf + (c - 1) * a.gc);
  conv(`model.1.sub.${a.nb}`, a.nf, a.nf);
  for (let u = 1; u <= a.upsamples; u++) conv(`model.${3 * u}`, a.nf, a.nf);
  conv(`model.${3 * a.upsamples + 2}`, a.nf, a.nf);
  conv(`model.${3 * a.upsamples + 4}`, a.outNc, a.nf);
  return m;
}

/** Verifies `ws` (under the architecture's names) holds every tensor with the expected shape. */
export function verifyUpscaleWeights(a: UpscaleArch, ws: WeightSource, file: string): void {
  for (const [k, s] of expectedTensors(a)) {
    if (!ws.has(k)) throw new UpscaleModelError(`${file}: ${a.kind === 'esrgan' ? 'ESRGAN' : 'SRVGGNetCompact'} tensor '${k}' is missing`);
    const got = ws.shape(k);
    if (got.length !== s.length || got.some((d, i) => d !== s[i])) {
      throw new UpscaleModelError(`${file}: tensor '${k}' has shape [${got.join(', ')}], expected [${s.join(', ')}]`);
    }
  }
}
