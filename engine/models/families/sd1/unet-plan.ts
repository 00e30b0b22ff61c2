import type { UNetConfig } from './config.ts';

/**
 * The LDM UNet's structure (ComfyUI's `openaimodel.UNetModel`) computed once from its config: every
 * block with its checkpoint name, channels and transformer depth, and the skip connections in the
 * order the output blocks take them. The checkpoint layout, the ONNX graph, the reference net and
 * detection all walk this plan, so a structural rule (where a downsample goes, which output block
 * upsamples, what a skip carries) lives here only. Keys are bare UNet names (`input_blocks.1.1`).
 */

export interface ResBlockPlan {
  key: string;
  inChannels: number;
  outChannels: number;
}

export interface TransformerPlan {
  key: string;
  channels: number;
  /** Number of BasicTransformerBlocks (`transformer_blocks.0 … depth−1`). */
  depth: number;
  heads: number;
}

/** `input_blocks.N`: block 0 is the input conv, then per level its res blocks and a downsample. */
export interface InputBlockPlan {
  index: number;
  level: number;
  kind: 'conv_in' | 'res' | 'downsample';
  /** The input conv (`input_blocks.0.0`) or the downsample's stride-2 conv (`input_blocks.N.0.op`). */
  conv?: string;
  res?: ResBlockPlan;
  transformer?: TransformerPlan;
  /** Channels of this block's output, which is skip connection `index`. */
  channels: number;
}

/** `output_blocks.N`: a res block on [h, skip] concatenated, an optional transformer, an optional upsample. */
export interface OutputBlockPlan {
  index: number;
  level: number;
  /** The skip connection (input block index) this block concatenates. */
  skip: number;
  res: ResBlockPlan;
  transformer?: TransformerPlan;
  /** The upsample's conv (`output_blocks.N.M.conv`), applied after nearest resizing to the next skip's size. */
  upsample?: string;
}

export interface MiddlePlan {
  /** `middle_block.0`, and `middle_block.2` when the middle has a transformer. */
  res: ResBlockPlan[];
  transformer?: TransformerPlan;
}

export interface UnetPlan {
  config: UNetConfig;
  /** Width of the timestep embedding (`time_embed.*`, 4 × model channels). */
  embDim: number;
  /** `label_emb.0.0`/`label_emb.0.2` input width when the model takes a `y` vector. */
  admInChannels?: number;
  input: InputBlockPlan[];
  middle: MiddlePlan;
  output: OutputBlockPlan[];
  /** Channels of skip connection i (= input block i's output), the control residual i a ControlNet adds. */
  skipChannels: number[];
}

/** Depths per input res block, middle and output block (the SD1 form expanded when the config has no lists). */
export function transformerDepths(cfg: UNetConfig): { input: readonly number[]; middle: number; output: readonly number[] } {
  if (cfg.transformerDepths) return cfg.transformerDepths;
  const at = (level: number): number => (cfg.attentionLevels.includes(level) ? cfg.transformerDepth : 0);
  const input = cfg.channelMult.flatMap((_m, level) => Array<number>(cfg.numResBlocks).fill(at(level)));
  const output = cfg.channelMult.flatMap((_m, level) => Array<number>(cfg.numResBlocks + 1).fill(at(level)));
  return { input, middle: cfg.transformerDepth, output };
}

/** Attention heads of a transformer `channels` wide: a fixed count (SD1) or channels / head width (SD2/SDXL). */
export function headsAt(cfg: UNetConfig, channels: number): number {
  if (cfg.numHeadChannels === undefined) return cfg.numHeads;
  if (channels % cfg.numHeadChannels !== 0) throw new Error(`UNet config: ${channels} channels do not split into ${cfg.numHeadChannels}-wide heads`);
  return channels / cfg.numHeadChannels;
}

export function unetPlan(cfg: UNetConfig): UnetPlan {
  const C = cfg.modelChannels;
  const levels = cfg.channelMult.length;
  const depths = transformerDepths(cfg);
  const resPerLevel = cfg.numResBlocks;
  if (depths.input.length !== levels * resPerLevel) throw new Error(`UNet config: ${depths.input.length} input transformer depths for ${levels * resPerLevel} input res blocks`);
  if (depths.output.length !== levels * (resPerLevel + 1)) throw new Error(`UNet config: ${depths.output.length} output transformer depths for ${levels * (resPerLevel + 1)} output blocks`);
  const transformer = (key: string, channels: number, depth: number): TransformerPlan | undefined =>
    depth > 0 ? { key, channels, depth, heads: headsAt(cfg, channels) } : undefined;

  const input: InputBlockPlan[] = [{ index: 0, level: 0, kind: 'conv_in', conv: 'input_blocks.0.0', channels: C }];
  let ch = C;
  let r = 0;
  cfg.channelMult.forEach((mult, level) => {
    for (let i = 0; i < resPerLevel; i++) {
      const index = input.length;
      const res = { key: `input_blocks.${index}.0`, inChannels: ch, outChannels: C * mult };
      ch = C * mult;
      input.push({ index, level, kind: 'res', res, transformer: transformer(`input_blocks.${index}.1`, ch, depths.input[r++]), channels: ch });
    }
    if (level < levels - 1) {
      const index = input.length;
      input.push({ index, level, kind: 'downsample', conv: `input_blocks.${index}.0.op`, channels: ch });
    }
  });

  const midTransformer = depths.middle >= 0 ? { key: 'middle_block.1', channels: ch, depth: depths.middle, heads: headsAt(cfg, ch) } : undefined;
  const middle: MiddlePlan = {
    res: [{ key: 'middle_block.0', inChannels: ch, outChannels: ch }, ...(midTransformer ? [{ key: 'middle_block.2', inChannels: ch, outChannels: ch }] : [])],
    transformer: midTransformer,
  };

  const output: OutputBlockPlan[] = [];
  const pending = input.map((b) => b.index);
  const outDepths = [...depths.output];
  for (let level = levels - 1; level >= 0; level--) {
    for (let i = 0; i <= resPerLevel; i++) {
      const index = output.length;
      const skip = pending.pop()!;
      const out = C * cfg.channelMult[level];
      const res = { key: `output_blocks.${index}.0`, inChannels: ch + input[skip].channels, outChannels: out };
      ch = out;
      const t = transformer(`output_blocks.${index}.1`, ch, outDepths.pop()!);
      const upsample = level > 0 && i === resPerLevel ? `output_blocks.${index}.${t ? 2 : 1}.conv` : undefined;
      output.push({ index, level, skip, res, transformer: t, upsample });
    }
  }
  return { config: cfg, embDim: C * 4, admInChannels: cfg.admInChannels, input, middle, output, skipChannels: input.map((b) => b.channels) };
}

/**
 * The config in SD1's form (one `transformerDepth` at `attentionLevels`) when its per-block depth
 * lists say no more than that, so a config read from a file compares equal to a written one.
 */
export function compactDepths(cfg: UNetConfig): UNetConfig {
  const lists = cfg.transformerDepths;
  if (!lists || lists.middle <= 0) return cfg;
  const per = cfg.numResBlocks;
  const attentionLevels = cfg.channelMult.map((_m, level) => level).filter((level) => lists.input.slice(level * per, (level + 1) * per).some((d) => d > 0));
  const { transformerDepths: _lists, ...rest } = cfg;
  const sd1: UNetConfig = { ...rest, attentionLevels, transformerDepth: lists.middle };
  const same = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);
  const expanded = transformerDepths(sd1);
  return same(expanded.input, lists.input) && same(expanded.output, lists.output) ? sd1 : cfg;
}
