import { describe, expect, it } from 'vitest';
import { nchwToNhwc, nhwcToNchw } from '../../engine/image/layout.ts';
import { pilLanczos } from '../../engine/image/pil-lanczos.ts';
import { centerCrop, commonUpscale, resizeNCHW, upscaleImage, type ResizeMethod } from '../../engine/image/resize.ts';
import { expectClose, refs, t, tensorOf } from './references.ts';

describe('resize against formulas', () => {
  it('bilinear 2×2 → 4×4 follows the align_corners=False formula', () => {
    const out = resizeNCHW(t([1, 1, 2, 2], [0, 1, 2, 3]), 4, 4, 'bilinear');
    // source coordinate (d + 0.5)/2 − 0.5 clamped at 0 gives per-axis weights [1,0],[.75,.25],[.25,.75],[0,1]
    const wts = [
      [1, 0],
      [0.75, 0.25],
      [0.25, 0.75],
      [0, 1],
    ];
    const expected: number[] = [];
    for (const [y0, y1] of wts) for (const [x0, x1] of wts) expected.push(y0 * (x0 * 0 + x1 * 1) + y1 * (x0 * 2 + x1 * 3));
    expectClose(out.data, expected);
  });

  it('bilinear downscale 5 → 3 samples at 5/3·(i + ½) − ½', () => {
    const v = [3, 1, 4, 1, 5];
    const out = resizeNCHW(t([1, 1, 1, 5], v), 1, 3, 'bilinear');
    const expected = [0, 1, 2].map((i) => {
      const s = Math.max(0, (5 / 3) * (i + 0.5) - 0.5);
      const i0 = Math.floor(s);
      const l = s - i0;
      return v[i0] * (1 - l) + v[Math.min(i0 + 1, 4)] * l;
    });
    expectClose(out.data, expected, 1e-6);
  });

  it('area: integer downscale is the block mean, fractional windows are [floor(i·r), ceil((i+1)·r))', () => {
    const src = t([1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
    expectClose(resizeNCHW(src, 1, 2, 'area').data, [(1 + 2 + 5 + 6) / 4, (3 + 4 + 7 + 8) / 4]);
    // 5 → 3: windows [0,2), [1,4), [3,5)
    expectClose(resizeNCHW(t([1, 1, 1, 5], [1, 2, 3, 4, 5]), 1, 3, 'area').data, [1.5, 3, 4.5]);
  });

  it('nearest-exact picks floor((i + ½)·in/out)', () => {
    expectClose(resizeNCHW(t([1, 1, 1, 3], [10, 20, 30]), 1, 2, 'nearest-exact').data, [10, 30]);
    expectClose(resizeNCHW(t([1, 1, 1, 2], [10, 20]), 1, 5, 'nearest-exact').data, [10, 10, 20, 20, 20]);
  });

  it('bicubic follows the Keys kernel with a = −0.75 and clamped borders', () => {
    const vals = [0, 3, 1, 4, 1, 5, 9, 2];
    const out = resizeNCHW(t([1, 1, 1, 8], vals), 1, 13, 'bicubic');
    const a = -0.75;
    const W = (x: number): number => {
      const d = Math.abs(x);
      return d <= 1 ? (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1 : d < 2 ? a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a : 0;
    };
    for (let x = 0; x < 13; x++) {
      const src = ((x + 0.5) * 8) / 13 - 0.5;
      const f = Math.floor(src);
      let e = 0;
      for (let k = f - 1; k <= f + 2; k++) e += vals[Math.min(7, Math.max(0, k))] * W(src - k);
      expect(out.data[x]).toBeCloseTo(e, 5);
    }
  });

  it('every method keeps a constant image constant (lanczos to its 8-bit level)', () => {
    const c = { shape: [1, 3, 4, 5], data: new Float32Array(60).fill(0.3) };
    for (const m of ['nearest-exact', 'bilinear', 'area', 'bicubic', 'bislerp'] as ResizeMethod[]) {
      for (const [h, w] of [
        [7, 9],
        [2, 3],
      ])
        expectClose(resizeNCHW(c, h, w, m).data, new Array(3 * h * w).fill(0.3), 1e-6, m);
    }
    expectClose(resizeNCHW(c, 7, 9, 'lanczos').data, new Array(3 * 63).fill(76 / 255), 1e-7, 'lanczos');
  });

  it('refuses bad targets with a message naming the problem', () => {
    const c = t([1, 1, 2, 2], [0, 0, 0, 0]);
    expect(() => resizeNCHW(c, 0, 4, 'bilinear')).toThrow(/height 0/);
    expect(() => resizeNCHW(c, 2, 2.5, 'bilinear')).toThrow(/width 2.5/);
    expect(() => resizeNCHW(c, 2, 2, 'cubic' as ResizeMethod)).toThrow(/unknown resize method 'cubic'/);
    expect(() => resizeNCHW(t([2, 2], [0, 0, 0, 0]), 2, 2, 'area')).toThrow(/\[N, C, H, W\]/);
    expect(() => resizeNCHW(c, 100000, 100000, 'area')).toThrow(/more than/);
    expect(() => pilLanczos({ shape: [1, 5, 2, 2], data: new Float32Array(20) }, 3, 3)).toThrow(/1 to 4 channels/);
  });
});

describe('resize against torch.nn.functional.interpolate', () => {
  const src = tensorOf(refs.interpolate.input);
  for (const c of refs.interpolate.cases) {
    it(`${c.method} ${src.shape[2]}×${src.shape[3]} → ${c.height}×${c.width}`, () => {
      const out = resizeNCHW(src, c.height, c.width, c.method as ResizeMethod);
      expect(out.shape).toEqual([1, 2, c.height, c.width]);
      // float32 arithmetic in a different order than torch's kernels: a few ulps (measured ≤ 4.5e-7).
      expectClose(out.data, c.data, 1e-6, c.method);
    });
  }
});

describe('centre crop (common_upscale crop="center")', () => {
  const src = tensorOf(refs.center_crop.input);
  for (const c of refs.center_crop.cases) {
    it(`6×9 to the aspect of ${c.width}×${c.height}, then bilinear`, () => {
      expect(centerCrop(src, c.width, c.height).shape).toEqual(c.cropped_shape);
      expectClose(commonUpscale(src, c.width, c.height, 'bilinear', 'center').data, c.data, 2e-6);
    });
  }

  it('crops whole columns around the centre (4×8 to square keeps columns 2..5)', () => {
    const data = Array.from({ length: 32 }, (_, i) => i);
    const out = centerCrop(t([1, 1, 4, 8], data), 3, 3);
    expect(out.shape).toEqual([1, 1, 4, 4]);
    expect([...out.data.subarray(0, 4)]).toEqual([2, 3, 4, 5]);
    expect([...out.data.subarray(12, 16)]).toEqual([26, 27, 28, 29]);
  });
});

describe('bislerp against ComfyUI’s torch implementation', () => {
  const src = tensorOf(refs.bislerp.input);
  for (const c of refs.bislerp.cases) {
    it(`3×4 → ${c.height}×${c.width}`, () => {
      const out = resizeNCHW(src, c.height, c.width, 'bislerp');
      expect(out.shape).toEqual([2, 4, c.height, c.width]);
      expectClose(out.data, c.data, 1e-6, 'bislerp');
    });
  }

  // Bilinear positions of 4 outputs over 2 inputs: 0 (clamped), 0.25, 0.75, 1 → pairs (0,1) with
  // ratios 0, .25, .75 and the last pixel alone.
  it('orthogonal vectors turn along the quarter circle while the length goes linearly', () => {
    const src = t([1, 2, 1, 2], [1, 0, 0, 2]); // pixel 0 = (1, 0), pixel 1 = (0, 2)
    const out = resizeNCHW(src, 1, 4, 'bislerp');
    const at = (r: number): [number, number] => {
      const len = 1 * (1 - r) + 2 * r;
      return [Math.sin((1 - r) * (Math.PI / 2)) * len, Math.sin(r * (Math.PI / 2)) * len];
    };
    const e = [at(0), at(0.25), at(0.75), [0, 2]];
    expectClose(out.data, [...e.map((p) => p[0]), ...e.map((p) => p[1])], 1e-6);
  });

  it('parallel vectors keep the first of the pair (ComfyUI’s shortcut for dot > 1 − 1e-5)', () => {
    const src = t([1, 2, 1, 2], [0.6, 1.8, 0.8, 2.4]); // (0.6, 0.8) and 3·(0.6, 0.8)
    const out = resizeNCHW(src, 1, 4, 'bislerp');
    expectClose(out.data, [0.6, 0.6, 0.6, 1.8, 0.8, 0.8, 0.8, 2.4], 1e-7);
  });
});

describe('lanczos against Pillow’s Image.resize(LANCZOS)', () => {
  for (const c of refs.lanczos) {
    it(`${c.mode} ${c.in_width}×${c.in_height} → ${c.width}×${c.height}`, () => {
      // ComfyUI feeds v/255 floats in, quantises back to these bytes, and returns PIL's bytes / 255.
      const hwc = { shape: [1, c.in_height, c.in_width, c.channels], data: Float32Array.from(c.input, (v) => v / 255) };
      const out = nchwToNhwc(resizeNCHW(nhwcToNchw(hwc), c.height, c.width, 'lanczos'));
      expect(out.shape).toEqual([1, c.height, c.width, c.channels]);
      expect(Array.from(out.data, (v) => Math.round(v * 255))).toEqual(c.data);
    });
  }

  it('stays within a step of the exact (floating point) Lanczos-3 sum when upscaling', () => {
    const w = 9;
    const v = Array.from({ length: w }, (_, i) => (i * 29) % 256);
    const out = pilLanczos({ shape: [1, 1, 1, w], data: Float32Array.from(v, (x) => x / 255) }, 1, 20);
    const sinc = (x: number): number => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));
    const L = (x: number): number => (Math.abs(x) < 3 ? sinc(x) * sinc(x / 3) : 0);
    for (let o = 0; o < 20; o++) {
      const center = ((o + 0.5) * w) / 20;
      let s = 0;
      let n = 0;
      for (let i = 0; i < w; i++) {
        const k = L(i + 0.5 - center);
        s += k * v[i];
        n += k;
      }
      const exact = Math.min(255, Math.max(0, s / n));
      expect(Math.abs(out.data[o] * 255 - exact)).toBeLessThanOrEqual(1);
    }
  });
});

describe('upscaleImage (IMAGE, NHWC)', () => {
  it('resizes each channel of an NHWC image like the NCHW planes', () => {
    const img = { shape: [1, 2, 3, 3], data: Float32Array.from({ length: 18 }, (_, i) => (i % 7) / 7) };
    const viaPlanes = nchwToNhwc(resizeNCHW(nhwcToNchw(img), 5, 4, 'bicubic'));
    const out = upscaleImage(img, 4, 5, 'bicubic', 'disabled');
    expect(out.shape).toEqual([1, 5, 4, 3]);
    expectClose(out.data, viaPlanes.data, 0);
    // a 2×2 grey image: pixel (y, x) channel k is read back at the same place
    const round = nchwToNhwc(nhwcToNchw(img));
    expect([...round.data]).toEqual([...img.data]);
  });

  it('lanczos on a constant image with a centre crop', () => {
    const img = { shape: [1, 4, 8, 3], data: new Float32Array(96).fill(0.5) };
    const out = upscaleImage(img, 3, 3, 'lanczos', 'center');
    expect(out.shape).toEqual([1, 3, 3, 3]);
    // 255·0.5 = 127.5 truncates to 127
    for (const v of out.data) expect(v).toBeCloseTo(127 / 255, 7);
  });
});
