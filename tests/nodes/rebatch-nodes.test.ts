import { describe, expect, it } from 'vitest';
import type { Latent, Tensor } from '../../engine/core/tensor.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { RebatchImages, RebatchLatents } from '../../nodes/latent/rebatch.ts';

/** RebatchLatents / RebatchImages as ComfyUI's nodes_rebatch.py cuts lists of batches. */

type Run = (args: Record<string, unknown>, c: NodeContext) => unknown;
const run = <T>(node: { run: unknown }, args: Record<string, unknown>): T[] => ((node.run as Run)(args, {} as NodeContext) as [T[]])[0];

/** A batch whose item i is filled with the value first + i. */
const batch = (n: number, c: number, h: number, w: number, first: number): Tensor => ({
  shape: [n, c, h, w],
  data: Float32Array.from({ length: n * c * h * w }, (_, k) => first + Math.floor(k / (c * h * w))),
});
const items = (t: Tensor): number[] => Array.from({ length: t.shape[0] }, (_, i) => t.data[(i * t.data.length) / t.shape[0]]);

describe('RebatchLatents', () => {
  it('joins same-size batches, cuts at batch_size, closes the batch at a size change, numbers batch_index across the list', () => {
    const list: Latent[] = [{ samples: batch(3, 4, 2, 2, 0) }, { samples: batch(2, 4, 2, 2, 3) }, { samples: batch(1, 4, 3, 3, 5) }];
    const out = run<Latent>(RebatchLatents, { latents: list, batch_size: [2] });
    expect(out.map((l) => items(l.samples))).toEqual([[0, 1], [2, 3], [4], [5]]);
    expect(out.map((l) => l.batchIndex)).toEqual([[0, 1], [2, 3], [4], [5]]);
    // Masks of all ones are dropped.
    expect(out.every((l) => l.noiseMask === undefined)).toBe(true);
    expect(out[3].samples.shape).toEqual([1, 4, 3, 3]);
  });

  it('keeps a noise mask (repeated to the batch) and an existing batch_index', () => {
    const mask: Tensor = { shape: [1, 1, 16, 16], data: new Float32Array(256).fill(0.5) };
    const out = run<Latent>(RebatchLatents, {
      latents: [{ samples: batch(3, 4, 2, 2, 0), noiseMask: mask, batchIndex: [7, 8, 9] }],
      batch_size: [3],
    });
    expect(out).toHaveLength(1);
    expect(out[0].batchIndex).toEqual([7, 8, 9]);
    expect(out[0].noiseMask?.shape).toEqual([3, 1, 16, 16]);
    expect(out[0].noiseMask?.data.every((v) => v === 0.5)).toBe(true);
  });
});

describe('RebatchImages', () => {
  it('splits every list item into single images and regroups them by batch_size', () => {
    const img = (n: number, first: number): Tensor => ({
      shape: [n, 1, 1, 1],
      data: Float32Array.from({ length: n }, (_, i) => first + i),
    });
    const out = run<Tensor>(RebatchImages, { images: [img(2, 0), img(3, 2)], batch_size: [2] });
    expect(out.map((t) => Array.from(t.data))).toEqual([[0, 1], [2, 3], [4]]);
  });
});
