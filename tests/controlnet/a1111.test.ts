import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Latent, Tensor } from '../../engine/core/tensor.ts';
import { A1111Control, softInjectionScales } from '../../engine/models/controlnet/a1111-control.ts';
import { a1111ResizeHint, detectMapResize, highQualityResize, lvminThin, nakeNms } from '../../engine/models/controlnet/a1111-resize.ts';
import { ControlNetControl } from '../../engine/models/controlnet/control.ts';
import { adapterConfigFor, makeAdapterFile } from '../../engine/models/controlnet/generate-adapter.ts';
import { makeControlNetFile } from '../../engine/models/controlnet/generate.ts';
import type { ControlNetModel } from '../../engine/models/controlnet/model.ts';
import type { T2IAdapterModel } from '../../engine/models/controlnet/adapter.ts';
import type { ModelHandle } from '../../engine/models/handles.ts';
import type { U8Mat } from '../../engine/image/preprocess/mat.ts';
import type { Conditioning, ControlRequest } from '../../engine/sampling/conditioning.ts';
import { ksample, type KSamplerArgs } from '../../engine/sampling/ksampler.ts';
import { ModelSamplingDiscrete } from '../../engine/sampling/model-sampling.ts';
import { ControlNetApplyA1111, pixelPerfectResolution, PixelPerfectResolution } from '../../nodes/controlnet/a1111.ts';
import { ControlNetLoader } from '../../nodes/controlnet/controlnet.ts';
import '../../nodes/model/services.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { loadSd1ControlRig } from './helpers.ts';

/*
 * The A1111 extension's unit (ControlNetApplyA1111): guidance start/end over sampler steps, the
 * control modes' soft weights and cond-only rows, the resize modes' geometry and lvmin's edge
 * handling, and pixel perfect, each against the extension's formulas written out here.
 */

const noCtx = {} as never;
const ms = new ModelSamplingDiscrete();
let model: ModelHandle;
let pos: Conditioning;
let neg: Conditioning;
let base: KSamplerArgs;
let plain: Latent;
let cn: ControlNetModel;
let adapter: T2IAdapterModel;
/** Pixel values k/255 (as a loaded PNG's), 48 × 80. */
const image: Tensor = { shape: [1, 48, 80, 3], data: lcg(48 * 80 * 3, 5).map((v) => Math.round(((v + 1) / 2) * 255) / 255) };

type Mode = 'Balanced' | 'My prompt is more important' | 'ControlNet is more important';
const applyA1111 = (
  net: ControlNetModel | T2IAdapterModel,
  weight: number,
  mode: Mode,
  start = 0,
  end = 1,
  resize = 'Crop and Resize',
): [Conditioning, Conditioning] =>
  ControlNetApplyA1111.run(
    {
      positive: pos,
      negative: neg,
      control_net: net,
      image,
      weight,
      guidance_start: start,
      guidance_end: end,
      control_mode: mode,
      resize_mode: resize,
    },
    noCtx,
  ) as [Conditioning, Conditioning];

const request = (stepFraction: number, condOrUncond = [0, 1]): ControlRequest => ({
  x: { shape: [2, 4, 8, 8], data: lcg(512, 9) },
  sigma: 4,
  timesteps: new Float32Array([ms.timestep(4), ms.timestep(4)]),
  context: { shape: [2, 77, 64], data: lcg(2 * 77 * 64, 3) },
  chunks: 2,
  area: { x: 0, y: 0, h: 8, w: 8 },
  modelSampling: ms,
  condOrUncond,
  stepFraction,
});

beforeAll(async () => {
  const rig = await loadSd1ControlRig(9, 'a house by a lake', { seed: 7n, steps: 10, cfg: 6 });
  const { tiny, ctx } = rig;
  ({ model, pos, neg, base } = rig);
  makeControlNetFile(join(tiny.dir, 'controlnet', 'cn.safetensors'), { unet: tiny.cfg.unet, hintChannels: 3 }, { seed: 12 });
  makeAdapterFile(join(tiny.dir, 'controlnet', 'ad.safetensors'), adapterConfigFor(tiny.cfg.unet), { seed: 13 });
  cn = (ControlNetLoader.run({ control_net_name: 'cn.safetensors' }, ctx) as [ControlNetModel])[0];
  adapter = (ControlNetLoader.run({ control_net_name: 'ad.safetensors' }, ctx) as [T2IAdapterModel])[0];
  plain = await ksample(base);
}, 120_000);

const scaled = (t: Tensor, s: number): Float32Array => t.data.map((v) => Math.fround(v * Math.fround(s)));

describe('ControlNetApplyA1111: control modes and weight', () => {
  it("Balanced is ComfyUI's residuals at strength = weight for cond and uncond; the soft modes scale residual i by weight·0.825^(12−i)", async () => {
    const w = 0.7;
    const unit = (mode: Mode): A1111Control => applyA1111(cn, w, mode)[0][0].control as unknown as A1111Control;
    const balanced = unit('Balanced');
    expect(balanced).toBeInstanceOf(A1111Control);
    const inner = balanced.inner as ControlNetControl;
    const raw = await new ControlNetControl(cn, { ...inner.application, strength: 1 }).residuals(request(0));
    const b = (await balanced.getControl(request(0)))!;
    b.input.forEach((t, i) => expect(t!.data).toEqual(scaled(raw.input[i]!, w)));
    expect(b.middle!.data).toEqual(scaled(raw.middle!, w));

    const scales = softInjectionScales('controlnet');
    expect(scales).toHaveLength(13);
    expect(scales[0]).toBeCloseTo(0.825 ** 12, 15);
    expect(scales[12]).toBe(1);
    const p = (await unit('My prompt is more important').getControl(request(0)))!;
    p.input.forEach((t, i) => expect(t!.data).toEqual(scaled(raw.input[i]!, w * 0.825 ** (12 - i))));
    expect(p.middle!.data).toEqual(scaled(raw.middle!, w));

    // ControlNet is more important: the same soft residuals on the cond rows, zero on the uncond rows.
    const c = (await unit('ControlNet is more important').getControl(request(0, [0, 1])))!;
    const half = c.middle!.data.length / 2;
    c.input.forEach((t, i) => {
      expect(t!.data.subarray(0, t!.data.length / 2)).toEqual(p.input[i]!.data.subarray(0, t!.data.length / 2));
      expect(t!.data.subarray(t!.data.length / 2).every((v) => v === 0)).toBe(true);
    });
    expect(c.middle!.data.subarray(0, half)).toEqual(p.middle!.data.subarray(0, half));
    // With the uncond chunk first, the second half carries the control.
    const swapped = (await unit('ControlNet is more important').getControl(request(0, [1, 0])))!;
    expect(swapped.middle!.data.subarray(0, half).every((v) => v === 0)).toBe(true);
    expect(swapped.middle!.data.subarray(half)).toEqual(p.middle!.data.subarray(half));
  }, 120_000);

  it("a T2I-Adapter's four features get weight·(0.25, 0.62, 0.825, 1) in the soft modes", async () => {
    const bal = (await (applyA1111(adapter, 1, 'Balanced')[0][0].control as unknown as A1111Control).getControl(request(0)))!;
    const soft = (await (applyA1111(adapter, 1, 'My prompt is more important')[0][0].control as unknown as A1111Control).getControl(
      request(0),
    ))!;
    [0.25, 0.62, 0.825, 1].forEach((s, l) => expect(soft.afterInput![3 * l + 2]!.data).toEqual(scaled(bal.afterInput![3 * l + 2]!, s)));
  }, 120_000);

  it('guidance start/end count sampler steps: a unit runs at steps i with start ≤ i/n ≤ end', async () => {
    const c = applyA1111(cn, 1, 'Balanced', 0.3, 0.6)[0][0].control!;
    expect(await c.getControl(request(0.2))).toBeUndefined();
    expect(await c.getControl(request(0.3))).toBeDefined();
    expect(await c.getControl(request(0.6))).toBeDefined();
    expect(await c.getControl(request(0.7))).toBeUndefined();
    const [p, n] = applyA1111(cn, 1, 'Balanced', 0.3, 0.6);
    const before = cn.runs.net;
    const out = await ksample({ ...base, positive: p, negative: n });
    // Steps 3, 4, 5, 6 of 10 (one batched model call each with euler).
    expect(cn.runs.net - before).toBe(4);
    expect(relErr(out.samples.data, plain.samples.data)).toBeGreaterThan(1e-4);
  }, 120_000);

  it('in a KSampler run, "ControlNet is more important" equals the soft-weighted control on the positive alone', async () => {
    const [p, n] = applyA1111(cn, 0.9, 'ControlNet is more important', 0, 1, 'Just Resize');
    const got = await ksample({ ...base, steps: 4, positive: p, negative: n });
    const unit = p[0].control as unknown as A1111Control;
    const inner = unit.inner as ControlNetControl;
    const soft = new ControlNetControl(cn, inner.application);
    const positiveOnly = { previous: undefined, getControl: (r: ControlRequest) => soft.residuals(r, softInjectionScales('controlnet')) };
    const want = await ksample({ ...base, steps: 4, positive: pos.map((e) => ({ ...e, control: positiveOnly })), negative: neg });
    expect(relErr(got.samples.data, want.samples.data)).toBeLessThan(1e-4);
  }, 120_000);

  it('weight 0 leaves the conditioning as it is', () => {
    const [p, n] = applyA1111(cn, 0, 'Balanced');
    expect(p).toBe(pos);
    expect(n).toBe(neg);
  });
});

describe('A1111 resize modes and pixel perfect', () => {
  /** A map of 10 colours (nearest-neighbour territory: 3..199 colours), h × w. */
  const palette = (h: number, w: number): U8Mat => {
    const data = new Uint8Array(h * w * 3);
    for (let i = 0; i < h * w; i++) for (let c = 0; c < 3; c++) data[i * 3 + c] = ((((i * 7) % 10) * 25 + c * 3) & 255) as number;
    return { h, w, c: 3, data };
  };
  /** cv2.INTER_NEAREST: source index floor(dst · src / dst_size). */
  const nearest = (m: U8Mat, w: number, h: number): U8Mat => {
    const data = new Uint8Array(h * w * 3);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const sy = Math.min(Math.floor((y * m.h) / h), m.h - 1);
        const sx = Math.min(Math.floor((x * m.w) / w), m.w - 1);
        for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = m.data[(sy * m.w + sx) * 3 + c];
      }
    return { h, w, c: 3, data };
  };

  it('Just Resize stretches; Crop and Resize scales to cover and crops the centre; Resize and Fill fits and pads with the median border colour', () => {
    const m = palette(30, 50);
    expect(detectMapResize(m, 'Just Resize', 40, 40)).toEqual(nearest(m, 40, 40));

    // Crop and Resize to 40×40: k = max(40/30, 40/50) = 4/3 → 67×40 (round(66.67)), crop columns 13..52.
    const cover = nearest(m, 67, 40);
    const crop = detectMapResize(m, 'Crop and Resize', 40, 40);
    expect([crop.h, crop.w]).toEqual([40, 40]);
    for (let y = 0; y < 40; y++)
      expect(crop.data.subarray(y * 120, y * 120 + 120)).toEqual(cover.data.subarray((y * 67 + 13) * 3, (y * 67 + 53) * 3));

    // Resize and Fill to 40×40: k = min(...) = 0.8 → 40×24, rows 8..31; the rest the border median.
    const fit = nearest(m, 40, 24);
    const fill = detectMapResize(m, 'Resize and Fill', 40, 40);
    const border: number[][] = [[], [], []];
    for (let x = 0; x < 50; x++) for (const y of [0, 29]) for (let c = 0; c < 3; c++) border[c].push(m.data[(y * 50 + x) * 3 + c]);
    for (let y = 0; y < 30; y++) for (const x of [0, 49]) for (let c = 0; c < 3; c++) border[c].push(m.data[(y * 50 + x) * 3 + c]);
    const median = border.map((v) => {
      v.sort((a, b) => a - b);
      return Math.trunc((v[v.length / 2 - 1] + v[v.length / 2]) / 2);
    });
    for (let y = 0; y < 40; y++)
      for (let x = 0; x < 40; x++)
        for (let c = 0; c < 3; c++) {
          const want = y >= 8 && y < 32 ? fit.data[((y - 8) * 40 + x) * 3 + c] : median[c];
          expect(fill.data[(y * 40 + x) * 3 + c]).toBe(want);
        }
  });

  it('a binary map comes back binary and grey (Otsu after the resize); a one-pixel edge map stays one pixel wide', () => {
    const h = 32;
    const w = 32;
    const m: U8Mat = { h, w, c: 3, data: new Uint8Array(h * w * 3) };
    // A one-pixel square outline.
    for (let i = 4; i < 28; i++)
      for (const [y, x] of [
        [4, i],
        [27, i],
        [i, 4],
        [i, 27],
      ])
        m.data.fill(255, (y * w + x) * 3, (y * w + x) * 3 + 3);
    const up = highQualityResize(m, 64, 64);
    expect(up.c).toBe(3);
    for (let p = 0; p < 64 * 64; p++) {
      expect([0, 255]).toContain(up.data[p * 3]);
      expect(up.data[p * 3 + 1]).toBe(up.data[p * 3]);
    }
    // Thinned: no 2×2 block of edge pixels anywhere.
    for (let y = 0; y + 1 < 64; y++)
      for (let x = 0; x + 1 < 64; x++) {
        const on = (yy: number, xx: number): boolean => up.data[(yy * 64 + xx) * 3] === 255;
        expect(on(y, x) && on(y + 1, x) && on(y, x + 1) && on(y + 1, x + 1), `${y},${x}`).toBe(false);
      }
    expect(up.data.some((v) => v === 255)).toBe(true);
  });

  it("lvmin's thinning takes a 3-pixel-wide bar to a one-pixel line; nake_nms keeps the maxima along lines", () => {
    const w = 12;
    const bar: U8Mat = { h: 9, w, c: 1, data: new Uint8Array(9 * w) };
    for (let y = 3; y < 6; y++) for (let x = 1; x < 11; x++) bar.data[y * w + x] = 255;
    const t = lvminThin(bar, false);
    for (let x = 3; x < 9; x++)
      expect(
        [3, 4, 5].filter((y) => t.data[y * w + x] === 255),
        `column ${x}`,
      ).toHaveLength(1);

    // A pixel survives when it is the maximum along at least one of the four lines through it (pixels outside never win).
    const dip: U8Mat = { h: 3, w: 3, c: 1, data: Uint8Array.from([5, 5, 5, 5, 1, 5, 5, 5, 5]) };
    expect(Array.from(nakeNms(dip).data)).toEqual([5, 5, 5, 5, 0, 5, 5, 5, 5]);
    const ridge: U8Mat = { h: 3, w: 4, c: 1, data: Uint8Array.from([1, 2, 9, 3, 2, 4, 8, 1, 9, 5, 7, 2]) };
    // (1,1) = 4 is below a neighbour on every line: 2|8 horizontally, 2|5 vertically, 1|7 and 9|9 diagonally.
    expect(nakeNms(ridge).data[5]).toBe(0);
    expect(nakeNms(ridge).data[6]).toBe(8);
  });

  it('the hint goes through the uint8 map and back to k/255 at the latent size × 8', () => {
    const hint: Tensor = { shape: [1, 3, 48, 80], data: new Float32Array(3 * 48 * 80).map((_, i) => (i % 7) / 255) };
    const out = a1111ResizeHint(hint, 'Crop and Resize', 64, 64);
    expect(out.shape).toEqual([1, 3, 64, 64]);
    expect(out.data.every((v) => Number.isInteger(Math.round(v * 255)) && Math.abs(v * 255 - Math.round(v * 255)) < 1e-4)).toBe(true);
  });

  it('pixel perfect: the larger scale (Resize and Fill: the smaller) times the short side, rounded half to even', () => {
    expect(pixelPerfectResolution(512, 768, 512, 512, 'Just Resize')).toBe(512);
    expect(pixelPerfectResolution(512, 768, 512, 512, 'Crop and Resize')).toBe(512);
    expect(pixelPerfectResolution(512, 768, 512, 512, 'Resize and Fill')).toBe(341);
    expect(pixelPerfectResolution(1000, 600, 768, 512, 'Just Resize')).toBe(Math.round(Math.max(768 / 1000, 512 / 600) * 600));
    // 0.5 · 5 = 2.5 → 2 (numpy rounds half to even).
    expect(pixelPerfectResolution(10, 5, 5, 2, 'Just Resize')).toBe(2);
    const img: Tensor = { shape: [1, 300, 400, 3], data: new Float32Array(300 * 400 * 3) };
    expect(
      PixelPerfectResolution.run({ original_image: img, image_gen_width: 512, image_gen_height: 768, resize_mode: 'Just Resize' }, noCtx),
    ).toEqual([Math.round(Math.max(768 / 300, 512 / 400) * 300)]);
  });
});
