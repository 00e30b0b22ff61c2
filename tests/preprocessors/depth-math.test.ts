import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { depthAnythingInput, depthToImage } from '../../engine/models/annotators/depth.ts';
import { hwc3 } from '../../engine/image/preprocess/mat.ts';
import { decodeF32, decodeU8, mismatches } from './opencv-fixture.ts';

/** tests/fixtures/preprocessors/depth.json.gz, written by scripts/fixtures/depth-numpy.py. */
type Encoded = Parameters<typeof decodeU8>[0];
interface DepthFixture {
  opencv: string;
  inputs: { image: Encoded; size: [number, number]; sampled: Encoded }[];
  depths: { depth: Encoded; size: [number, number]; image: Encoded }[];
}
const url = new URL('../fixtures/preprocessors/depth.json.gz', import.meta.url);
const fx = JSON.parse(gunzipSync(readFileSync(fileURLToPath(url))).toString('utf8')) as DepthFixture;

describe("Depth Anything V2's arithmetic around the network, against the package's numpy/OpenCV " + fx.opencv, () => {
  for (const [i, c] of fx.inputs.entries()) {
    const img = decodeU8(c.image);
    it(`network input of a ${img.h}x${img.w} image: size ${c.size.join('x')}, normalised values`, () => {
      const x = depthAnythingInput(img);
      expect([x.h, x.w]).toEqual(c.size);
      expect(x.h % 14 === 0 && x.w % 14 === 0 && Math.min(x.h, x.w) >= 518).toBe(true);
      // the fixture keeps every 7th row and column of each channel ([3, ceil(h/7), ceil(w/7)])
      const s = decodeF32(c.sampled);
      const [ch, sh, sw] = [3, Math.ceil(x.h / 7), Math.ceil(x.w / 7)];
      expect(s.data.length).toBe(ch * sh * sw);
      // INTER_CUBIC on float64 agrees with OpenCV to ~1e-15 (cv-resize.test.ts): after the cast to
      // float32 every sampled value is the same float32
      let differ = 0;
      let first: string | undefined;
      for (let c3 = 0; c3 < ch; c3++)
        for (let y = 0; y < sh; y++)
          for (let xx = 0; xx < sw; xx++) {
            const got = x.data[c3 * x.h * x.w + y * 7 * x.w + xx * 7];
            const want = s.data[(c3 * sh + y) * sw + xx];
            if (got === want) continue;
            first ??= `channel ${c3} row ${y * 7} column ${xx * 7}: ${got} vs ${want}`;
            differ++;
          }
      expect({ differ, first }, `image ${i}`).toEqual({ differ: 0, first: undefined });
    });
  }
  for (const c of fx.depths) {
    const d = decodeF32(c.depth);
    const [h, w] = c.size;
    it(`depth ${d.h}x${d.w} back to ${h}x${w} (bilinear, corners aligned) and min-max to uint8`, () => {
      expect(mismatches(depthToImage(d.data, d.h, d.w, h, w), hwc3(decodeU8(c.image)))).toEqual({ count: 0, first: undefined });
    });
  }
});
