import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageTensor, Tensor } from '../../engine/core/tensor.ts';
import type { Seg, Segs } from '../../engine/image/segs.ts';
import { detailForEach, type DetailOptions } from '../../engine/sampling/detail/detail-for-each.ts';
import { DetailerForEach } from '../../nodes/detailer/detailer-for-each.ts';
import { boxSeg, detailerInputs, detailOptions, loadTinyDetail, loggingContext, picture, type TinyDetail } from './tiny-detail.ts';

/**
 * The detailer nodes sample same-size, disjoint segments as one batch. Batched and one-by-one agree up
 * to the UNet's batch arithmetic, which after the decode and the 8-bit lanczos resize back is at most
 * one 8-bit step on a few pixels; the log says when a batch was made and why not when it could not be.
 * Where the nodes must not batch (overlapping crops, a sampler with step noise or one that couples the
 * batch, different sizes, inpaint_model) their result is the one-by-one pass, bit for bit.
 */

const H = 64;
const W = 80;

describe('DetailerForEach batches same-size segments', () => {
  let t: TinyDetail;
  beforeAll(async () => {
    t = await loadTinyDetail();
  }, 120_000);
  afterAll(() => rmSync(t.dir, { recursive: true, force: true }));

  /** The same pass through the engine, one segment after the other (the Impact Pack's order). */
  const oneByOne = (segs: Segs, over: Partial<DetailOptions> = {}) => detailForEach(picture(H, W), segs, { ...detailOptions(t), ...over });
  const runNode = async (segs: Segs, over: Record<string, unknown> = {}): Promise<{ image: ImageTensor; log: string }> => {
    const { ctx, lines } = loggingContext('3', 'DetailerForEach');
    const [image] = (await DetailerForEach.run(detailerInputs(t, picture(H, W), segs, over) as never, ctx)) as unknown as [ImageTensor];
    return { image, log: lines.join('\n') };
  };
  const segsOf = (...segments: Seg[]): Segs => ({ shape: [H, W], segments });
  const diff = (a: Tensor, b: Tensor): { worst: number; count: number } => {
    let worst = 0;
    let count = 0;
    for (let i = 0; i < a.data.length; i++) {
      const d = Math.abs(a.data[i] - b.data[i]);
      worst = Math.max(worst, d);
      if (d > 0) count++;
    }
    return { worst, count };
  };

  it('two disjoint 32×32 crops: one batch (logged), within one 8-bit step of one by one on under 1% of the values', async () => {
    const segs = segsOf(boxSeg([4, 4, 20, 20], H, W, 2), boxSeg([50, 30, 66, 46], H, W, 2));
    const node = await runNode(segs);
    expect(node.log).toMatch(/2 segments of 32x32 sampled as one batch/);
    const ref = await oneByOne(segs);
    const { worst, count } = diff(node.image, ref.image);
    expect(worst).toBeLessThanOrEqual(1 / 255 + 1e-6);
    expect(count).toBeLessThan(node.image.data.length / 100);
    // the pass did change the picture, in both crops
    const before = picture(H, W);
    const changedAt = (x: number, y: number): boolean =>
      [0, 1, 2].some((k) => node.image.data[(y * W + x) * 3 + k] !== before.data[(y * W + x) * 3 + k]);
    expect(changedAt(12, 12)).toBe(true);
    expect(changedAt(58, 38)).toBe(true);
  }, 180_000);

  it('three same-size crops of which two overlap: one by one, bit for bit, with the reason in the log', async () => {
    const segs = segsOf(boxSeg([4, 4, 20, 20], H, W, 2), boxSeg([14, 10, 30, 26], H, W, 2), boxSeg([50, 30, 66, 46], H, W, 2));
    const node = await runNode(segs);
    expect(node.log).toMatch(/sampled one by one \(crop regions overlap\)/);
    expect(node.log).not.toMatch(/one batch/);
    expect(node.image.data).toEqual((await oneByOne(segs)).image.data);
  }, 180_000);

  it.each([
    ['euler_ancestral', /draws step noise/],
    ['dpm_adaptive', /couples the items of a batch/],
  ])(
    '%s: one by one, bit for bit, with the reason in the log',
    async (sampler, reason) => {
      const segs = segsOf(boxSeg([4, 4, 20, 20], H, W, 2), boxSeg([50, 30, 66, 46], H, W, 2));
      const node = await runNode(segs, { sampler_name: sampler, steps: 2 });
      expect(node.log).toMatch(reason);
      expect(node.log).not.toMatch(/one batch/);
      expect(node.image.data).toEqual((await oneByOne(segs, { samplerName: sampler, steps: 2 })).image.data);
    },
    // dpm_adaptive makes as many model calls as its error control asks: room for a loaded CI box (49 s seen at load 20)
    400_000,
  );

  it('crops of different sizes are not batched (nothing to batch, nothing logged about it)', async () => {
    const segs = segsOf(boxSeg([4, 4, 20, 20], H, W, 2), boxSeg([48, 28, 68, 48], H, W, 2));
    const node = await runNode(segs);
    expect(node.log).not.toMatch(/one batch|one by one/);
    expect(node.image.data).toEqual((await oneByOne(segs)).image.data);
  }, 180_000);
});
