import { describe, expect, it } from 'vitest';
import { tensor, type ImageTensor } from '../../engine/core/tensor.ts';
import { remapLinear } from '../../engine/image/preprocess/cv-remap.ts';
import { contentShuffleDetector } from '../../engine/image/preprocess/detectors.ts';
import { imageToU8 } from '../../engine/image/preprocess/mat.ts';
import { defaultRng, ShufflePreprocessor } from '../../nodes/controlnet/preprocessors/shuffle.ts';
import { decodeF32, decodeF64, decodeU8, mismatches, opencvFixture } from './opencv-fixture.ts';

const fx = opencvFixture();

describe("ShufflePreprocessor: numpy's default_rng, cv2.remap and the whole detector against the fixtures", () => {
  it("PCG64 through SeedSequence gives numpy's default_rng(seed).uniform", () => {
    expect(Array.from(defaultRng(123n).uniform(0, 1, 7))).toEqual(Array.from(decodeF64(fx.ops.pcg64_uniform_123).data));
    expect(Array.from(defaultRng(2n ** 40n + 5n).uniform(0, 1, 7))).toEqual(Array.from(decodeF64(fx.ops.pcg64_uniform_2pow40).data));
  });

  it('remap with INTER_LINEAR and a constant border matches OpenCV byte for byte', () => {
    const src = decodeU8(fx.images.a);
    const got = remapLinear(src, decodeF32(fx.ops.remap_mx).data, decodeF32(fx.ops.remap_my).data, src.h, src.w);
    expect(mismatches(got, decodeU8(fx.ops.remap))).toEqual({ count: 0, first: undefined });
  });

  for (const n of Object.keys(fx.images)) {
    it(`content shuffle of image ${n} with seed 5 at resolution 64`, () => {
      const rng = defaultRng(5n);
      const got = contentShuffleDetector(decodeU8(fx.images[n]), 64, (k) => rng.uniform(0, 1, k));
      expect(mismatches(got, decodeU8(fx.pipelines[`shuffle_${n}`]))).toEqual({ count: 0, first: undefined });
    });
  }

  it('the node is reproducible for a seed and differs between seeds', async () => {
    const img = tensor([1, 40, 40, 3]);
    for (let i = 0; i < img.data.length; i++) img.data[i] = (i % 97) / 97;
    const run = async (seed: number): Promise<ImageTensor> =>
      ((await ShufflePreprocessor.run({ image: img, resolution: 64, seed }, undefined as never)) as [ImageTensor])[0];
    const a = await run(7);
    expect(Array.from((await run(7)).data)).toEqual(Array.from(a.data));
    expect(Array.from((await run(8)).data)).not.toEqual(Array.from(a.data));
    const direct = contentShuffleDetector(imageToU8(img, 0), 64, (k) => defaultRng(7n).uniform(0, 1, k));
    expect(a.shape).toEqual([1, direct.h, direct.w, 3]);
  });
});
