import type { VaeConfig } from '../families/sd1/config.ts';
import type { LayerKind } from './layers.ts';

/**
 * The VAE encoder or decoder as the A1111 Tiled VAE's task queue (build_task_queue in the
 * extension's tiled_vae.py): every ResNet block is store residual → norm → SiLU → conv → norm →
 * SiLU → conv → add residual; an attention block is store → norm → attention → add; the
 * samplers' convs, conv_in, and norm_out → SiLU → conv_out. A `norm` is where tiles meet.
 */

export type Task =
  | { readonly op: 'layer'; readonly kind: LayerKind; readonly key: string }
  | { readonly op: 'norm'; readonly key: string }
  | { readonly op: 'silu' }
  /** Keep the residual: the shortcut conv of the input (`key`), or the input itself. */
  | { readonly op: 'store'; readonly key?: string }
  | { readonly op: 'add' };

function resblock(q: Task[], key: string, hasShortcut: boolean): void {
  q.push({ op: 'store', key: hasShortcut ? `${key}.nin_shortcut` : undefined });
  q.push({ op: 'norm', key: `${key}.norm1` }, { op: 'silu' }, { op: 'layer', kind: 'conv', key: `${key}.conv1` });
  q.push({ op: 'norm', key: `${key}.norm2` }, { op: 'silu' }, { op: 'layer', kind: 'conv', key: `${key}.conv2` });
  q.push({ op: 'add' });
}

function attn(q: Task[], key: string): void {
  q.push({ op: 'store' }, { op: 'norm', key: `${key}.norm` }, { op: 'layer', kind: 'attn', key }, { op: 'add' });
}

function mid(q: Task[], key: string, has: (k: string) => boolean): void {
  resblock(q, `${key}.block_1`, has(`${key}.block_1.nin_shortcut.weight`));
  attn(q, `${key}.attn_1`);
  resblock(q, `${key}.block_2`, has(`${key}.block_2.nin_shortcut.weight`));
}

/** The task queue of `decoder` or `encoder`; `has` says which weights exist (nin_shortcut convs). */
export function taskQueue(cfg: VaeConfig, part: 'encoder' | 'decoder', has: (key: string) => boolean): Task[] {
  const q: Task[] = [{ op: 'layer', kind: 'conv', key: `${part}.conv_in` }];
  const levels = cfg.chMult.length;
  const block = (k: string): void => resblock(q, k, has(`${k}.nin_shortcut.weight`));
  if (part === 'decoder') {
    mid(q, 'decoder.mid', has);
    for (let i = levels - 1; i >= 0; i--) {
      for (let j = 0; j <= cfg.numResBlocks; j++) block(`decoder.up.${i}.block.${j}`);
      if (i !== 0) q.push({ op: 'layer', kind: 'up', key: `decoder.up.${i}.upsample.conv` });
    }
  } else {
    for (let i = 0; i < levels; i++) {
      for (let j = 0; j < cfg.numResBlocks; j++) block(`encoder.down.${i}.block.${j}`);
      if (i !== levels - 1) q.push({ op: 'layer', kind: 'down', key: `encoder.down.${i}.downsample.conv` });
    }
    mid(q, 'encoder.mid', has);
  }
  q.push({ op: 'norm', key: `${part}.norm_out` }, { op: 'silu' }, { op: 'layer', kind: 'conv', key: `${part}.conv_out` });
  return q;
}
