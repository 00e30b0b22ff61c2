import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { featherMask, growMask } from '../../engine/image/morphology.ts';
import type { Tensor } from '../../engine/core/tensor.ts';
import {
  CropMask,
  FeatherMask,
  GrowMask,
  ImageColorToMask,
  ImageToMask,
  InvertMask,
  MaskComposite,
  MaskPreview,
  MaskToImage,
  nodes,
  SolidMask,
  ThresholdMask,
} from '../../nodes/mask/masks.ts';
import { TestWorld } from './context.ts';
import { expectClose, refs, t } from './references.ts';

const world = new TestWorld('masks');
afterAll(() => world.remove());
const run = (def: Parameters<TestWorld['run']>[0], args: Record<string, unknown>) => world.run(def, args) as Promise<Tensor[]>;

describe('GrowMask', () => {
  it('dilates with a cross or a square, erodes when negative', async () => {
    const dot = t([1, 3, 3], [0, 0, 0, 0, 1, 0, 0, 0, 0]);
    expect([...(await run(GrowMask, { mask: dot, expand: 1, tapered_corners: true }))[0].data]).toEqual([0, 1, 0, 1, 1, 1, 0, 1, 0]);
    expect([...(await run(GrowMask, { mask: dot, expand: 1, tapered_corners: false }))[0].data]).toEqual(new Array(9).fill(1));
    expect([...(await run(GrowMask, { mask: dot, expand: -1, tapered_corners: true }))[0].data]).toEqual(new Array(9).fill(0));
  });

  it('erosion does not eat in from the border (scipy mirrors the edge)', () => {
    const full = t([1, 3, 4], new Array(12).fill(1));
    expect([...growMask(full, -2, false).data]).toEqual(new Array(12).fill(1));
  });

  it('takes [H, W] masks and keeps every item of a batch separate', () => {
    expect(growMask(t([2, 2], [1, 0, 0, 0]), 1, true).shape).toEqual([1, 2, 2]);
    const two = growMask(t([2, 1, 3], [1, 0, 0, 0, 0, 1]), 1, true);
    expect([...two.data]).toEqual([1, 1, 0, 0, 1, 1]);
  });

  for (const c of refs.grow_mask) {
    it(`matches scipy.ndimage grey_${c.expand > 0 ? 'dilation' : 'erosion'} ×${Math.abs(c.expand)} (${c.name}, ${c.tapered ? 'cross' : 'square'})`, async () => {
      const [o] = await run(GrowMask, {
        mask: { shape: [1, ...c.shape], data: Float32Array.from(c.input) },
        expand: c.expand,
        tapered_corners: c.tapered,
      });
      expectClose(o.data, c.data, 0);
    });
  }

  it('square growth equals |expand| naive 3×3 passes, for any size and radius', () => {
    // the definition, written out: k passes of max/min over the in-bounds 3×3 neighbourhood
    const naive = (src: Float32Array, h: number, w: number, k: number): Float32Array => {
      let cur = Float32Array.from(src);
      for (let it = 0; it < Math.abs(k); it++) {
        const nx = new Float32Array(cur.length);
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            let v = cur[y * w + x];
            for (let dy = -1; dy <= 1; dy++) {
              for (let dx = -1; dx <= 1; dx++) {
                const yy = y + dy;
                const xx = x + dx;
                if (yy >= 0 && yy < h && xx >= 0 && xx < w) v = k > 0 ? Math.max(v, cur[yy * w + xx]) : Math.min(v, cur[yy * w + xx]);
              }
            }
            nx[y * w + x] = v;
          }
        }
        cur = nx;
      }
      return cur;
    };
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (const [h, w] of [
      [9, 13],
      [1, 6],
      [5, 1],
      [17, 4],
    ]) {
      const data = Float32Array.from({ length: h * w }, () => (rnd() < 0.15 ? rnd() : 0));
      const inv = data.map((v) => 1 - v);
      for (const k of [1, 2, 3, 5, 8, 20]) {
        expect([...growMask({ shape: [1, h, w], data }, k, false).data], `${h}×${w} +${k}`).toEqual([...naive(data, h, w, k)]);
        expect([...growMask({ shape: [1, h, w], data: inv }, -k, false).data], `${h}×${w} −${k}`).toEqual([...naive(inv, h, w, -k)]);
      }
    }
  });

  it('checks for interruption between passes', () => {
    let passes = 0;
    growMask(
      t(
        [1, 8, 8],
        new Array(64).fill(0).map((_, i) => (i === 0 ? 1 : 0)),
      ),
      5,
      true,
      () => passes++,
    );
    expect(passes).toBe(5);
  });
});

describe('FeatherMask', () => {
  it('ramps (i + 1)/n from each feathered edge, ramps multiplying where they overlap', async () => {
    const ones = t([1, 1, 4], [1, 1, 1, 1]);
    expectClose((await run(FeatherMask, { mask: ones, left: 2, top: 0, right: 0, bottom: 0 }))[0].data, [0.5, 1, 1, 1]);
    expectClose((await run(FeatherMask, { mask: ones, left: 0, top: 0, right: 2, bottom: 0 }))[0].data, [1, 1, 1, 0.5]);
    // widths larger than the mask are clamped to it: left = right = 4
    expectClose(featherMask(ones, 10, 0, 4, 0).data, [(1 / 4) * (4 / 4), (2 / 4) * (3 / 4), (3 / 4) * (2 / 4), (4 / 4) * (1 / 4)]);
    const col = t([1, 3, 1], [1, 1, 1]);
    expectClose(featherMask(col, 0, 3, 0, 1).data, [1 / 3, 2 / 3, 1]);
    expectClose(featherMask(col, 0, 0, 0, 3).data, [1, 2 / 3, 1 / 3]);
  });
});

describe('simple mask nodes', () => {
  it('SolidMask, InvertMask, ThresholdMask', async () => {
    const [s] = await run(SolidMask, { value: 0.25, width: 3, height: 2 });
    expect(s.shape).toEqual([1, 2, 3]);
    expectClose(s.data, new Array(6).fill(0.25));
    expectClose((await run(InvertMask, { mask: s }))[0].data, new Array(6).fill(0.75));
    const [th] = await run(ThresholdMask, { mask: t([1, 1, 4], [0.2, 0.5, 0.50001, 0.9]), value: 0.5 });
    expect([...th.data]).toEqual([0, 0, 1, 1]);
  });

  it('MaskToImage and ImageToMask', async () => {
    const [img] = await run(MaskToImage, { mask: t([2, 1, 1], [0.1, 0.9]) });
    expect(img.shape).toEqual([2, 1, 1, 3]);
    expectClose(img.data, [0.1, 0.1, 0.1, 0.9, 0.9, 0.9]);
    const [g] = await run(ImageToMask, { image: t([2, 1, 1, 3], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), channel: 'green' });
    expect(g.shape).toEqual([2, 1, 1]);
    expectClose(g.data, [0.2, 0.5]);
    const [a] = await run(ImageToMask, { image: t([1, 1, 1, 4], [0.1, 0.2, 0.3, 0.4]), channel: 'alpha' });
    expectClose(a.data, [0.4]);
    await expect(run(ImageToMask, { image: t([1, 1, 1, 3], [0, 0, 0]), channel: 'alpha' })).rejects.toThrow(
      /has 3 channels, so it has no alpha/,
    );
  });

  it('ImageColorToMask matches the 8-bit colour after round(255·x)', async () => {
    const img = t([1, 1, 3, 3], [1, 0.5, 0, 1, 128 / 255, 0, 1, 126 / 255, 0]);
    const [m] = await run(ImageColorToMask, { image: img, color: 0xff8000 });
    // 0.5·255 = 127.5 rounds to 128 (half to even), 126/255 does not match
    expect([...m.data]).toEqual([1, 1, 0]);
  });

  it('CropMask cuts the box, clipped to the mask, and refuses a box outside it', async () => {
    const m = t(
      [1, 3, 4],
      Array.from({ length: 12 }, (_, i) => i),
    );
    const [c] = await run(CropMask, { mask: m, x: 1, y: 1, width: 2, height: 5 });
    expect(c.shape).toEqual([1, 2, 2]);
    expect([...c.data]).toEqual([5, 6, 9, 10]);
    await expect(run(CropMask, { mask: m, x: 4, y: 0, width: 2, height: 2 })).rejects.toThrow(/outside the 4×3 mask/);
  });
});

describe('MaskComposite', () => {
  const dest = t([1, 2, 3], [0.6, 0.6, 0.6, 0.4, 0.4, 1.5]);
  const src = t([1, 1, 2], [0.7, 0.2]);
  const at = async (operation: string): Promise<number[]> => [
    ...(await run(MaskComposite, { destination: dest, source: src, x: 1, y: 1, operation }))[0].data,
  ];

  it('combines in the overlap (source clipped at the right edge) and clamps everything to 0..1', async () => {
    // overlap: row 1, columns 1..2 ← source (0.7, 0.2); 1.5 outside the overlap is clamped too
    expectClose(await at('multiply'), [0.6, 0.6, 0.6, 0.4, 0.28, 0.3]);
    expectClose(await at('add'), [0.6, 0.6, 0.6, 0.4, 1, 1]);
    expectClose(await at('subtract'), [0.6, 0.6, 0.6, 0.4, 0, 1]);
  });

  it('logic operations round to 0/1 first', async () => {
    // (0.4 → 0, 0.7 → 1), (1.5 → 2 ≠ 0, 0.2 → 0)
    expectClose(await at('and'), [0.6, 0.6, 0.6, 0.4, 0, 0]);
    expectClose(await at('or'), [0.6, 0.6, 0.6, 0.4, 1, 1]);
    expectClose(await at('xor'), [0.6, 0.6, 0.6, 0.4, 1, 1]);
  });

  it('a single source mask applies to every item of the destination batch', async () => {
    const [o] = await run(MaskComposite, {
      destination: t([2, 1, 1], [0.5, 0.25]),
      source: t([1, 1], [0.5]),
      x: 0,
      y: 0,
      operation: 'multiply',
    });
    expectClose(o.data, [0.25, 0.125]);
    await expect(
      run(MaskComposite, { destination: t([2, 1, 1], [0, 0]), source: t([3, 1, 1], [0, 0, 0]), x: 0, y: 0, operation: 'add' }),
    ).rejects.toThrow(/batch of 3/);
  });
});

describe('MaskPreview and registration', () => {
  it('writes the mask as a grey temp PNG and passes it through', async () => {
    const mask = t([1, 1, 2], [0, 1]);
    const r = (await MaskPreview.run({ mask }, world.ctx())) as { ui: { images: { filename: string; type: string }[] }; result: unknown[] };
    expect(r.result).toEqual([mask]);
    expect(r.ui.images[0].type).toBe('temp');
    const { data, info } = await sharp(fs.readFileSync(path.join(world.paths.tempDir, r.ui.images[0].filename)))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect(info.channels).toBe(3);
    expect([...data]).toEqual([0, 0, 0, 255, 255, 255]);
  });

  it('exports ComfyUI’s nodes_mask classes under their names', () => {
    expect(nodes.map((n) => n.name)).toEqual([
      'ImageCompositeMasked',
      'MaskToImage',
      'ImageToMask',
      'ImageColorToMask',
      'SolidMask',
      'InvertMask',
      'CropMask',
      'MaskComposite',
      'FeatherMask',
      'GrowMask',
      'ThresholdMask',
      'MaskPreview',
    ]);
    expect(Object.keys(GrowMask.inputs!.required!)).toEqual(['mask', 'expand', 'tapered_corners']);
    expect(Object.keys(FeatherMask.inputs!.required!)).toEqual(['mask', 'left', 'top', 'right', 'bottom']);
  });
});
