import type { ClipTextConfig, Sd1Config, UNetConfig, VaeConfig } from './config.ts';
import { SD1_PREFIX } from './config.ts';
import { clipLayout, unetLayout, vaeLayout, type Layout } from './layout.ts';
import { PrefixedWeightSource, type WeightSource } from '../../../core/weights.ts';
import { UnsupportedModelError } from '../../errors.ts';
import { refuseUnsupported, UNSUPPORTED_FAMILIES } from '../unsupported.ts';
import { compactDepths, unetPlan } from './unet-plan.ts';
import { diffusersVaeToLdm, isDiffusersVae, sd1Weights } from './weight-views.ts';

export { sd1Weights } from './weight-views.ts';


/** A file that is a model part of another kind (a LoRA, an embedding, a VAE) given where a checkpoint was expected. */
export class NotACheckpointError extends Error {
  constructor(
    readonly kind: string,
    advice: string,
  ) {
    super(`this is ${kind}, not a full checkpoint: ${advice}`);
    this.name = 'NotACheckpointError';
  }
}

const has = (names: readonly string[], re: RegExp): boolean => names.some((k) => re.test(k));

/** Files that are parts or add-ons rather than checkpoints; checked first, since their keys mimic UNet names. */
const NOT_CHECKPOINTS: [string, string, (n: readonly string[]) => boolean][] = [
  ['a LoRA/LyCORIS file', 'load it with a LoRA loader node on top of a checkpoint', (n) => has(n, /^lora_(unet|te\d?)_|\.(lora_(up|down)|lora_[AB])\.weight$|\.(hada_w[12]_[ab]|lokr_w[12](_[ab])?)$/)],
  ['a textual-inversion embedding', 'put it in models/embeddings and write embedding:<name> in the prompt', (n) => n.length <= 4 && has(n, /^(emb_params|string_to_param\..*|clip_[lg])$/)],
];

/**
 * Names that identify other families, checked before SD1 so that the error names the right one.
 * Patterns match with or without the `model.diffusion_model.` prefix.
 */
const FAMILIES: [string, (n: readonly string[]) => boolean][] = [
  // Families Weft cannot run, by the keys ComfyUI's model_detection looks for (families/unsupported.ts).
  ...UNSUPPORTED_FAMILIES.map((f): [string, (n: readonly string[]) => boolean] => [f.family, (n) => f.test((re) => has(n, re))]),
  ['SDXL', (n) => has(n, /^conditioner\.embedders\./)],
  ['SD2.x', (n) => has(n, /^cond_stage_model\.model\./)],
  ['a diffusers-format single file', (n) => has(n, /^(unet|text_encoder|vae)\.(conv_in|down_blocks|text_model|encoder)\./)],
];

function shapeOf(ws: WeightSource, key: string, what: string): readonly number[] {
  if (!ws.has(key)) throw new Error(`not an SD1 checkpoint: missing ${key} (${what})`);
  return ws.shape(key);
}

/** Compare every tensor an architecture needs against the file; extra tensors (EMA, buffers) are ignored. */
export function verifyLayout(ws: WeightSource, layout: Layout, what: string): void {
  const problems: string[] = [];
  for (const [name, shape] of layout) {
    if (!ws.has(name)) problems.push(`missing ${name}`);
    else {
      const got = ws.shape(name);
      if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) problems.push(`${name} has shape [${got.join(', ')}], expected [${shape.join(', ')}]`);
    }
    if (problems.length >= 5) break;
  }
  if (problems.length) throw new Error(`not a consistent SD1 ${what}: ${problems.join('; ')}`);
}

/**
 * Every UNet hyper-parameter a file's shapes tell, for any LDM UNet (SD1, SD2, SDXL): levels and
 * widths from the input blocks, then the transformer depth of every block the plan of that
 * structure names, the cross-attention width, linear or conv projections and the `label_emb` input
 * width. What shapes cannot tell (head count or width) is left at SD1's 8 heads. Per-block depths
 * are listed only where they are not SD1's uniform form. `encoderOnly` reads a ControlNet, which has
 * the input and middle blocks only (its output width is taken to be its input width).
 */
export function readUnetConfig(ws: WeightSource, prefix: string = SD1_PREFIX.unet, opts: { encoderOnly?: boolean } = {}): UNetConfig {
  const conv0 = shapeOf(ws, `${prefix}input_blocks.0.0.weight`, 'UNet input convolution');
  if (conv0.length !== 4) throw new Error(`not an SD1 UNet: ${prefix}input_blocks.0.0.weight has shape [${conv0.join(', ')}], expected a 4-D convolution`);
  const C = conv0[0];
  const channelMult: number[] = [];
  let numResBlocks = 0;
  let idx = 1;
  let level = 0;
  // Input blocks: the res blocks of a level, then a downsample (absent after the last level).
  for (;;) {
    let inLevel = 0;
    while (ws.has(`${prefix}input_blocks.${idx}.0.in_layers.2.weight`)) {
      const out = ws.shape(`${prefix}input_blocks.${idx}.0.in_layers.2.weight`)[0];
      if (inLevel === 0) {
        if (out % C !== 0) throw new Error(`not an SD1 UNet: level ${level} has ${out} channels, not a multiple of ${C}`);
        channelMult.push(out / C);
      }
      inLevel++;
      idx++;
    }
    if (inLevel === 0) break;
    if (level === 0) numResBlocks = inLevel;
    else if (inLevel !== numResBlocks) throw new Error(`unsupported UNet: level ${level} has ${inLevel} res blocks, level 0 has ${numResBlocks}`);
    level++;
    if (!ws.has(`${prefix}input_blocks.${idx}.0.op.weight`)) break;
    idx++;
  }
  if (!channelMult.length) throw new Error('not an SD1 checkpoint: no UNet input blocks found');
  // A ControlNet is the encoder half alone: no output convolution, so its width is the input's.
  const out = opts.encoderOnly ? [conv0[1]] : shapeOf(ws, `${prefix}out.2.weight`, 'UNet output convolution');
  const base: UNetConfig = {
    inChannels: conv0[1],
    outChannels: out[0],
    modelChannels: C,
    channelMult,
    numResBlocks,
    attentionLevels: channelMult.map((_m, l) => l),
    transformerDepth: 1,
    contextDim: 0,
    numHeads: 8,
    useLinearInProj: false,
    normGroups: 32,
  };
  // The plan of this structure names every block that may hold a transformer; count what each holds.
  const probe = unetPlan(base);
  const depthAt = (key: string): number => {
    let d = 0;
    while (ws.has(`${prefix}${key}.transformer_blocks.${d}.attn1.to_q.weight`)) d++;
    return d;
  };
  const inputKeys = probe.input.flatMap((b) => (b.transformer ? [b.transformer.key] : []));
  const input = inputKeys.map(depthAt);
  // ComfyUI lists output depths from level 0 up: output block 0 is the last entry.
  const output = opts.encoderOnly
    ? // No output blocks to count: each level's output blocks are taken to mirror its input blocks (as in every LDM UNet).
      probe.output.map((b) => input[b.level * numResBlocks]).reverse()
    : probe.output.map((b) => depthAt(b.transformer!.key)).reverse();
  const midKey = probe.middle.transformer!.key;
  const middle = ws.has(`${prefix}${midKey}.norm.weight`) ? depthAt(midKey) : -1;
  // Cross-attention width and projection kind from the middle transformer (SD1 always has one), else the first input one.
  const firstInput = inputKeys.find((_k, i) => input[i] > 0);
  const tKey = middle >= 0 || !firstInput ? midKey : firstInput;
  const toK = shapeOf(ws, `${prefix}${tKey}.transformer_blocks.0.attn2.to_k.weight`, 'cross-attention key projection');
  const projIn = shapeOf(ws, `${prefix}${tKey}.proj_in.weight`, 'transformer input projection');
  const cfg: UNetConfig = { ...base, contextDim: toK[1], useLinearInProj: projIn.length === 2, transformerDepths: { input, middle, output } };
  if (ws.has(`${prefix}label_emb.0.0.weight`)) cfg.admInChannels = ws.shape(`${prefix}label_emb.0.0.weight`)[1];
  return compactDepths(cfg);
}

/**
 * An SD1 UNet's architecture from `<prefix>input_blocks.*`, `middle_block.*` and `out.*` shapes, in
 * SD1's form: attention levels from the input blocks, depth from the middle block (a file whose
 * other blocks disagree then fails the layout check, naming the tensor).
 */
export function detectUnet(ws: WeightSource, prefix: string = SD1_PREFIX.unet): UNetConfig {
  const cfg = readUnetConfig(ws, prefix);
  const { transformerDepths: lists, admInChannels: _adm, ...sd1 } = cfg;
  if (!lists) return sd1;
  const per = cfg.numResBlocks;
  const attentionLevels = cfg.channelMult.map((_m, l) => l).filter((l) => lists.input.slice(l * per, (l + 1) * per).some((d) => d > 0));
  return { ...sd1, attentionLevels, transformerDepth: Math.max(lists.middle, 0) };
}

/**
 * VAE architecture from LDM names under `prefix` (default: `first_stage_model.` when present, else
 * none). A diffusers-format VAE is refused here with a pointer to `vaeWeights`, which renames it.
 */
export function detectVae(ws: WeightSource, prefix?: string): VaeConfig {
  const p = prefix ?? (ws.has(`${SD1_PREFIX.vae}encoder.conv_in.weight`) ? SD1_PREFIX.vae : '');
  if (!ws.has(`${p}encoder.conv_in.weight`) || isDiffusersVae(ws.names(), p)) {
    if (isDiffusersVae(ws.names(), p)) {
      throw new UnsupportedModelError('a diffusers-format VAE (encoder.down_blocks.* keys)', 'read it through vaeWeights(), which maps the names to the original LDM ones');
    }
    throw new Error(`not an SD VAE: missing ${p}encoder.conv_in.weight`);
  }
  const convIn = ws.shape(`${p}encoder.conv_in.weight`);
  const ch = convIn[0];
  const chMult: number[] = [];
  let numResBlocks = 0;
  for (let i = 0; ws.has(`${p}encoder.down.${i}.block.0.conv1.weight`); i++) {
    chMult.push(ws.shape(`${p}encoder.down.${i}.block.0.conv1.weight`)[0] / ch);
    let j = 0;
    while (ws.has(`${p}encoder.down.${i}.block.${j}.conv1.weight`)) j++;
    if (i === 0) numResBlocks = j;
    else if (j !== numResBlocks) throw new Error(`unsupported VAE: encoder level ${i} has ${j} res blocks, level 0 has ${numResBlocks}`);
  }
  if (!chMult.length) throw new Error(`not an SD VAE: no ${p}encoder.down.0.block.0.conv1.weight`);
  const convOut = shapeOf(ws, `${p}encoder.conv_out.weight`, 'VAE encoder output');
  const quant = shapeOf(ws, `${p}quant_conv.weight`, 'VAE quant_conv');
  const outConv = shapeOf(ws, `${p}decoder.conv_out.weight`, 'VAE decoder output');
  const cfg: VaeConfig = { inChannels: convIn[1], outChannels: outConv[0], ch, chMult, numResBlocks, zChannels: convOut[0] / 2, embedDim: quant[0] / 2, normGroups: 32 };
  verifyLayout(ws, vaeLayout(cfg, p), 'VAE');
  return cfg;
}

/**
 * A standalone VAE file of any of the formats seen in the wild (LDM names with or without
 * `first_stage_model.`, or diffusers names), as weights under unprefixed LDM names plus its
 * architecture. Builders bind from `weights` with the same names in every case.
 */
export function vaeWeights(ws: WeightSource): { config: VaeConfig; weights: WeightSource } {
  let weights: WeightSource;
  if (ws.has(`${SD1_PREFIX.vae}encoder.conv_in.weight`)) weights = new PrefixedWeightSource(sd1Weights(ws), SD1_PREFIX.vae);
  else if (isDiffusersVae(ws.names())) weights = diffusersVaeToLdm(ws);
  else if (isDiffusersVae(ws.names(), 'vae.')) weights = diffusersVaeToLdm(ws, 'vae.');
  else weights = sd1Weights(ws);
  return { config: detectVae(weights, ''), weights };
}

/** CLIP-L-style text encoder architecture from `<prefix>embeddings.*` and `encoder.layers.*` shapes. */
export function detectClip(ws: WeightSource, prefix: string = SD1_PREFIX.clip): ClipTextConfig {
  const tok = shapeOf(ws, `${prefix}embeddings.token_embedding.weight`, 'CLIP token embedding');
  const pos = shapeOf(ws, `${prefix}embeddings.position_embedding.weight`, 'CLIP position embedding');
  let layers = 0;
  while (ws.has(`${prefix}encoder.layers.${layers}.self_attn.q_proj.weight`)) layers++;
  const fc1 = shapeOf(ws, `${prefix}encoder.layers.0.mlp.fc1.weight`, 'CLIP MLP');
  const H = tok[1];
  const cfg: ClipTextConfig = {
    vocabSize: tok[0],
    hiddenSize: H,
    numLayers: layers,
    intermediateSize: fc1[0],
    numHeads: Math.max(1, Math.round(H / 64)),
    maxPositions: pos[0],
    activation: 'quick_gelu',
    layerNormEps: 1e-5,
  };
  verifyLayout(ws, clipLayout(cfg, prefix), 'CLIP text encoder');
  return cfg;
}

/** What a file that is not an SD1 checkpoint is, when its names tell; undefined when they look like SD1. */
export function identifyFamily(names: readonly string[]): string | undefined {
  for (const [kind, , test] of NOT_CHECKPOINTS) if (test(names)) return kind;
  for (const [family, test] of FAMILIES) if (test(names)) return family;
  return undefined;
}

/**
 * The architecture of a single-file checkpoint from its tensor names and shapes (never its data).
 * Every width and depth is read from the file and every tensor the architecture implies is checked
 * for presence and shape; SD1 conventions fill in what shapes cannot tell (8 attention heads, 64-wide
 * CLIP heads, quick_gelu, scale factor 0.18215). Other families are named and refused. Detection runs
 * on `sd1Weights(ws)`, the view builders should bind from too.
 */
export function detectCheckpoint(source: WeightSource): Sd1Config {
  const names = source.names();
  for (const [kind, advice, test] of NOT_CHECKPOINTS) if (test(names)) throw new NotACheckpointError(kind, advice);
  refuseUnsupported(names);
  for (const [family, test] of FAMILIES) if (test(names)) throw new UnsupportedModelError(family);
  const ws = sd1Weights(source);
  const hasUnet = ws.has(`${SD1_PREFIX.unet}input_blocks.0.0.weight`);
  const hasClip = ws.has(`${SD1_PREFIX.clip}embeddings.token_embedding.weight`);
  const hasVae = ws.has(`${SD1_PREFIX.vae}encoder.conv_in.weight`);
  if (!hasUnet && !hasClip && (ws.has('encoder.conv_in.weight') || isDiffusersVae(names))) {
    throw new NotACheckpointError('a standalone VAE', 'load it with VAELoader from models/vae');
  }
  if (!hasUnet && (ws.has('input_blocks.0.0.weight') || ws.has('conv_in.weight'))) {
    throw new NotACheckpointError('a UNet-only file (no CLIP or VAE)', 'Weft loads SD1 as single-file checkpoints for now');
  }
  const unet = detectUnet(ws);
  if (unet.contextDim === 1024 || unet.useLinearInProj) throw new UnsupportedModelError('SD2.x', unet.contextDim === 1024 ? 'cross-attention width 1024' : 'linear transformer projections');
  if (ws.has(`${SD1_PREFIX.unet}label_emb.0.0.weight`)) throw new UnsupportedModelError('SD2.x unCLIP or another class-conditioned UNet', 'label_emb');
  if (!hasClip) throw new Error(`not a complete SD1 checkpoint: it has a UNet but no CLIP text encoder (${SD1_PREFIX.clip}*)`);
  if (!hasVae) throw new Error(`not a complete SD1 checkpoint: it has a UNet but no VAE (${SD1_PREFIX.vae}*); load a VAE separately`);
  verifyLayout(ws, unetLayout(unet), 'UNet');
  const clip = detectClip(ws);
  if (clip.hiddenSize !== unet.contextDim) {
    throw new Error(`inconsistent checkpoint: CLIP hidden size ${clip.hiddenSize} but the UNet's cross-attention expects ${unet.contextDim}`);
  }
  return { family: 'sd1', unet, clip, vae: detectVae(ws, SD1_PREFIX.vae), scaleFactor: 0.18215 };
}
