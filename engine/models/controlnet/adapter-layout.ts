import type { WeightSource } from '../../core/weights.ts';
import type { Layout } from '../families/sd1/layout.ts';

/**
 * T2I-Adapters as ComfyUI's `load_t2i_adapter` (comfy/controlnet.py) and `comfy/t2i_adapter/adapter.py`
 * read them: the full `Adapter` (`conv_in`, `body.<i>.{down_opt.op, in_conv, block1, block2}`, two
 * blocks per level, `sk=True` so no `skep`) and `Adapter_light` (`body.<level>.{in_conv,
 * body.<k>.block1/2, out_conv}`), both after an 8× pixel unshuffle of the hint. diffusers' full
 * layout (`adapter.body.<i>.resnets.<j>.…`) is renamed as ComfyUI renames it. An adapter whose
 * `conv_in` takes 256 or 768 channels is SDXL's (ComfyUI's `xl`): a 16× unshuffle, one downsample
 * (before level 2), and its features go after input blocks 3, 5, 8 and the middle block.
 *
 * Where ComfyUI fixes the widths (`[c, 2c, 4c, 4c]` for full adapters, `[320, 640, 1280, 1280]` for
 * light ones) they are read from the tensor shapes instead: the same for every released SD1 adapter,
 * and it lets the tiny demo model have a matching adapter.
 */

export interface T2IAdapterConfig {
  readonly kind: 'full' | 'light';
  /** Channels of the unshuffled hint: 64 × the hint image's channels (64 for sketch/canny adapters, 192 for RGB). */
  readonly cin: number;
  /** Feature width of each level; feature `i` is added after UNet input block 3i + 2. */
  readonly channels: readonly number[];
  /** Blocks per level: 2 for full adapters (ComfyUI's `nums_rb`), the extractor's ResnetBlock_light count for light ones. */
  readonly numsRb: number;
  /** Full adapters: kernel size of `in_conv` and `block2` (1 or 3; `block1` is always 3×3). */
  readonly ksize: number;
  /** Full adapters: downsampling by a stride-2 conv (`down_opt.op`) rather than a 2×2 average pool. */
  readonly useConv: boolean;
  /** Light adapters: each extractor's inner width (channels / 4 in ComfyUI). */
  readonly inner?: readonly number[];
  /** SDXL's full adapter (ComfyUI's `xl`, told by a conv_in of 256 or 768 channels). */
  readonly xl?: boolean;
}

/** ComfyUI's `unshuffle_amount` for SD1 adapters. */
export const ADAPTER_UNSHUFFLE = 8;
/** ComfyUI's `unshuffle_amount` for SDXL adapters. */
export const ADAPTER_UNSHUFFLE_XL = 16;

/** The pixel unshuffle an adapter takes its hint through. */
export const adapterUnshuffle = (cfg: T2IAdapterConfig): number => (cfg.xl ? ADAPTER_UNSHUFFLE_XL : ADAPTER_UNSHUFFLE);

/** Channels of the hint image an adapter takes (ComfyUI's `input_channels`). */
export const adapterImageChannels = (cfg: T2IAdapterConfig): number => cfg.cin / adapterUnshuffle(cfg) ** 2;

/** Whether level `i` of a full adapter starts with a downsample (ComfyUI: every level after the first; xl: level 2 only). */
export const adapterLevelDown = (cfg: T2IAdapterConfig, level: number): boolean => (cfg.xl ? level === 2 : level > 0);

/** The UNet input block a level's feature is added after (ComfyUI's `[None, None, feature]` per level, popped per block). */
export const adapterTargetBlock = (level: number): number => 3 * level + 2;

/**
 * Where each level's feature goes: after an input block, or onto the middle block's output. ComfyUI's
 * xl adapter lists its features as `[None]*3, f0, None, f1, None, None, f2, None, f3` reversed, the
 * first as 'middle' and the rest popped once per input block: f0, f1, f2 after input blocks 3, 5, 8
 * (SDXL's widths 320, 640, 1280 at 1/2, 1/2, 1/4 of the latent), f3 onto the middle block.
 */
export function adapterTargets(cfg: T2IAdapterConfig): readonly (number | 'middle')[] {
  if (!cfg.xl) return cfg.channels.map((_c, i) => adapterTargetBlock(i));
  return [3, 5, 8, 'middle'];
}

/** Whether a state dict's names are a T2I-Adapter's (any layout ComfyUI's load_t2i_adapter takes). */
export function isT2IAdapter(names: readonly string[]): boolean {
  const set = new Set(names);
  return set.has('adapter.body.0.resnets.0.block1.weight') || set.has('body.0.in_conv.weight') || (set.has('conv_in.weight') && set.has('body.0.block2.weight'));
}

/**
 * diffusers' FullAdapter names → ComfyUI's (`state_dict_prefix_replace`): `adapter.body.<i>.resnets.<j>.`
 * → `body.<2i+j>.`, `adapter.body.<i>.` → `body.<2i>.`, `adapter.` → ``. Other names map to themselves.
 */
export function adapterKeyMap(names: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  const diffusers = names.includes('adapter.body.0.resnets.0.block1.weight');
  for (const n of names) {
    if (!diffusers) {
      map.set(n, n);
      continue;
    }
    let m = /^adapter\.body\.(\d+)\.resnets\.(\d+)\.(.*)$/.exec(n);
    if (m) {
      map.set(n, `body.${Number(m[1]) * 2 + Number(m[2])}.${m[3]}`);
      continue;
    }
    m = /^adapter\.body\.(\d+)\.(.*)$/.exec(n);
    if (m) map.set(n, `body.${Number(m[1]) * 2}.${m[2]}`);
    else map.set(n, n.startsWith('adapter.') ? n.slice('adapter.'.length) : n);
  }
  return map;
}

/** The structure of an adapter over ComfyUI-named weights, from its names and shapes. */
export function readAdapterConfig(ws: WeightSource, file: string): T2IAdapterConfig {
  if (ws.has('body.0.in_conv.weight')) {
    const cin = ws.shape('body.0.in_conv.weight')[1];
    const channels: number[] = [];
    const inner: number[] = [];
    for (let i = 0; ws.has(`body.${i}.out_conv.weight`); i++) {
      channels.push(ws.shape(`body.${i}.out_conv.weight`)[0]);
      inner.push(ws.shape(`body.${i}.in_conv.weight`)[0]);
    }
    let numsRb = 0;
    while (ws.has(`body.0.body.${numsRb}.block1.weight`)) numsRb++;
    if (!channels.length || !numsRb) throw new Error(`${file}: not a consistent light T2I-Adapter: no body.0.out_conv or body.0.body.0.block1`);
    return { kind: 'light', cin, channels, numsRb, ksize: 3, useConv: false, inner };
  }
  if (!ws.has('conv_in.weight') || !ws.has('body.0.block2.weight')) throw new Error(`${file}: not a T2I-Adapter: no conv_in.weight with body.0.block2.weight, nor body.0.in_conv.weight`);
  const [channel, cin] = ws.shape('conv_in.weight');
  // ComfyUI's rule, exactly: these two widths are a 16× unshuffled one-channel or RGB hint.
  const xl = cin === 256 || cin === 768;
  if (!xl && cin % (ADAPTER_UNSHUFFLE * ADAPTER_UNSHUFFLE) !== 0) throw new Error(`${file}: T2I-Adapter conv_in takes ${cin} channels, not a multiple of 64 (an 8× unshuffled image)`);
  let blocks = 0;
  while (ws.has(`body.${blocks}.block1.weight`)) blocks++;
  const numsRb = 2;
  if (blocks === 0 || blocks % numsRb !== 0) throw new Error(`${file}: T2I-Adapter has ${blocks} body blocks; a full adapter has ${numsRb} per level`);
  const channels = Array.from({ length: blocks / numsRb }, (_, i) => ws.shape(`body.${i * numsRb}.block1.weight`)[0]);
  if (channels[0] !== channel) throw new Error(`${file}: T2I-Adapter conv_in gives ${channel} channels but body.0 takes ${channels[0]}`);
  const ksize = ws.shape('body.0.block2.weight')[2];
  const useConv = ws.names().some((n) => n.endsWith('down_opt.op.weight'));
  if (xl && channels.length !== 4) throw new Error(`${file}: SDXL T2I-Adapter (conv_in of ${cin} channels) has ${channels.length} levels; ComfyUI's xl adapter has 4`);
  return { kind: 'full', cin, channels, numsRb, ksize, useConv, ...(xl ? { xl } : {}) };
}

/** Every tensor an adapter of `cfg` has, with its shape (ComfyUI names). */
export function adapterLayout(cfg: T2IAdapterConfig): Layout {
  const l: Layout = new Map();
  const conv = (key: string, out: number, inp: number, k: number): void => {
    l.set(`${key}.weight`, [out, inp, k, k]);
    l.set(`${key}.bias`, [out]);
  };
  if (cfg.kind === 'light') {
    cfg.channels.forEach((out, i) => {
      const inner = cfg.inner?.[i] ?? Math.floor(out / 4);
      conv(`body.${i}.in_conv`, inner, i === 0 ? cfg.cin : cfg.channels[i - 1], 1);
      for (let k = 0; k < cfg.numsRb; k++) {
        conv(`body.${i}.body.${k}.block1`, inner, inner, 3);
        conv(`body.${i}.body.${k}.block2`, inner, inner, 3);
      }
      conv(`body.${i}.out_conv`, out, inner, 1);
    });
    return l;
  }
  conv('conv_in', cfg.channels[0], cfg.cin, 3);
  cfg.channels.forEach((out, i) => {
    for (let j = 0; j < cfg.numsRb; j++) {
      const key = `body.${i * cfg.numsRb + j}`;
      const down = j === 0 && adapterLevelDown(cfg, i);
      // A level's first block takes the previous level's width (xl's level 3 too: ComfyUI builds it as channels[3] → channels[3], equal to channels[2]).
      const inC = i > 0 && j === 0 ? cfg.channels[i - 1] : out;
      if (down && cfg.useConv) conv(`${key}.down_opt.op`, inC, inC, 3);
      if (inC !== out) conv(`${key}.in_conv`, out, inC, cfg.ksize);
      conv(`${key}.block1`, out, out, 3);
      conv(`${key}.block2`, out, out, cfg.ksize);
    }
  });
  return l;
}

/** Refuses an adapter whose tensors are missing or mis-shaped for its structure (ComfyUI's strict load_state_dict). */
export function verifyAdapter(ws: WeightSource, cfg: T2IAdapterConfig, file: string): void {
  const problems: string[] = [];
  for (const [name, shape] of adapterLayout(cfg)) {
    if (!ws.has(name)) problems.push(`missing ${name}`);
    else {
      const got = ws.shape(name);
      if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) problems.push(`${name} has shape [${got.join(', ')}], expected [${shape.join(', ')}]`);
    }
    if (problems.length >= 5) break;
  }
  if (problems.length) throw new Error(`${file}: not a consistent ${cfg.xl ? 'SDXL' : 'SD1'} T2I-Adapter (${cfg.kind}): ${problems.join('; ')}`);
}
