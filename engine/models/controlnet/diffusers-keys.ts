import type { UNetConfig } from '../families/sd1/config.ts';
import { SD1_PREFIX } from '../families/sd1/config.ts';
import { diffusersUnetModules } from '../lora/keys.ts';
import { unetLayout } from '../families/sd1/layout.ts';
import { compactDepths } from '../families/sd1/unet-plan.ts';
import { MIDDLE_OUT_KEY, zeroConvKey } from './layout.ts';

/**
 * diffusers' ControlNetModel names → the original (cldm) names, as ComfyUI's load_controlnet maps
 * them: the UNet part through `unet_to_diffusers` of the structure the file's shapes tell, then
 * `controlnet_down_blocks.<i>` → `zero_convs.<i>.0`, `controlnet_mid_block` → `middle_block_out.0`
 * and the conditioning embedding's convs → `input_hint_block.<2k>` (conv_in, blocks.*, conv_out).
 */

/** Whether a state dict is a diffusers ControlNetModel (ComfyUI's test). */
export function isDiffusersControlNet(names: readonly string[]): boolean {
  return names.includes('controlnet_cond_embedding.conv_in.weight');
}

/** The UNet structure of a diffusers ControlNet from its down/mid block names and shapes. */
function diffusersStructure(has: (n: string) => boolean, shape: (n: string) => readonly number[]): UNetConfig {
  const convIn = shape('conv_in.weight');
  const C = convIn[0];
  const channelMult: number[] = [];
  for (let x = 0; has(`down_blocks.${x}.resnets.0.conv1.weight`); x++) channelMult.push(shape(`down_blocks.${x}.resnets.0.conv1.weight`)[0] / C);
  let numResBlocks = 0;
  while (has(`down_blocks.0.resnets.${numResBlocks}.conv1.weight`)) numResBlocks++;
  const depth = (p: string): number => {
    let d = 0;
    while (has(`${p}.transformer_blocks.${d}.attn1.to_q.weight`)) d++;
    return d;
  };
  const input = channelMult.flatMap((_m, x) => Array.from({ length: numResBlocks }, (_, i) => depth(`down_blocks.${x}.attentions.${i}`)));
  const middle = has('mid_block.attentions.0.norm.weight') ? depth('mid_block.attentions.0') : -1;
  const output = channelMult.flatMap((_m, x) => Array<number>(numResBlocks + 1).fill(input[x * numResBlocks])).reverse();
  const attn = [...channelMult.keys()].map((x) => `down_blocks.${x}.attentions.0`).find((p) => depth(p) > 0) ?? 'mid_block.attentions.0';
  const toK = has(`${attn}.transformer_blocks.0.attn2.to_k.weight`) ? shape(`${attn}.transformer_blocks.0.attn2.to_k.weight`) : [0, 0];
  const projIn = has(`${attn}.proj_in.weight`) ? shape(`${attn}.proj_in.weight`) : [0, 0, 1, 1];
  const cfg: UNetConfig = {
    inChannels: convIn[1],
    outChannels: convIn[1],
    modelChannels: C,
    channelMult,
    numResBlocks,
    attentionLevels: channelMult.map((_m, l) => l),
    transformerDepth: 1,
    contextDim: toK[1],
    numHeads: 8,
    useLinearInProj: projIn.length === 2,
    normGroups: 32,
    transformerDepths: { input, middle, output },
  };
  for (const k of ['add_embedding.linear_1.weight', 'class_embedding.linear_1.weight']) if (has(k)) cfg.admInChannels = shape(k)[1];
  return compactDepths(cfg);
}

/** diffusers name → cldm name for every tensor of a diffusers ControlNet this map knows. */
export function diffusersControlNetKeys(names: readonly string[], shape: (n: string) => readonly number[]): Map<string, string> {
  const present = new Set(names);
  const has = (n: string): boolean => present.has(n);
  const cfg = diffusersStructure(has, shape);
  const ldm = new Set(unetLayout(cfg, SD1_PREFIX.unet).keys());
  const map = new Map<string, string>();
  for (const [d, l] of diffusersUnetModules((n) => ldm.has(n))) {
    for (const s of ['.weight', '.bias']) map.set(d + s, l + s);
  }
  for (const s of ['.weight', '.bias']) {
    map.set(`controlnet_mid_block${s}`, MIDDLE_OUT_KEY + s);
    for (let i = 0; has(`controlnet_down_blocks.${i}${s}`); i++) map.set(`controlnet_down_blocks.${i}${s}`, zeroConvKey(i) + s);
    map.set(`controlnet_cond_embedding.conv_in${s}`, `input_hint_block.0${s}`);
    let k = 0;
    for (; has(`controlnet_cond_embedding.blocks.${k}${s}`); k++) map.set(`controlnet_cond_embedding.blocks.${k}${s}`, `input_hint_block.${(k + 1) * 2}${s}`);
    map.set(`controlnet_cond_embedding.conv_out${s}`, `input_hint_block.${(k + 1) * 2}${s}`);
  }
  for (const k of [...map.keys()]) if (!present.has(k)) map.delete(k);
  return map;
}
