import { describe, expect, it } from 'vitest';
import { embedSizes, sdxlAdm, sdxlSizeValues } from '../../engine/models/families/sdxl/adm.ts';
import { SDXL_BASE_CONFIG, tinySdxlConfig } from '../../engine/models/families/sdxl/layout.ts';
import { sdxlAdmRef } from '../../engine/models/families/sdxl/reference/adm.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';

const pooled = lcg(1280, 7);
const cond = { shape: [1, 77, 2048], data: new Float32Array(77 * 2048) };

describe("SDXL's adm vector (ComfyUI's SDXL.encode_adm / SDXLRefiner.encode_adm)", () => {
  it('base: pooled, then height, width, crop_h, crop_w, target_height, target_width, 2816 wide, one row per batch item', () => {
    const size = { width: 1152, height: 896, cropW: 16, cropH: 32, targetWidth: 1024, targetHeight: 768 };
    const y = sdxlAdm(SDXL_BASE_CONFIG, { cond, pooled: { shape: [1, 1280], data: pooled }, size }, { batch: 2, height: 64, width: 80 }).y;
    expect(y.shape).toEqual([2, 2816]);
    const ref = sdxlAdmRef(
      'base',
      pooled,
      { width: 1152, height: 896, crop_w: 16, crop_h: 32, target_width: 1024, target_height: 768 },
      { width: 80, height: 64 },
      'positive',
      2,
    );
    expect(relErr(y.data, ref.data)).toBeLessThan(1e-6);
    // The first frequency is 1: each size's block starts with cos(value) and has sin(value) half-way.
    const at = (k: number, i: number): number => y.data[1280 + k * 256 + i];
    [896, 1152, 32, 16, 768, 1024].forEach((v, k) => {
      expect(at(k, 0)).toBeCloseTo(Math.cos(v), 5);
      expect(at(k, 128)).toBeCloseTo(Math.sin(v), 5);
    });
    expect(y.data.subarray(2816, 2816 + 1280)).toEqual(pooled);
  });

  it('base defaults: the latent size ×8 for width/height (encode_model_conds), no crop, target = size', () => {
    const info = { batch: 1, height: 96, width: 128 };
    expect(sdxlSizeValues('base', { cond }, info)).toEqual([768, 1024, 0, 0, 768, 1024]);
    const y = sdxlAdm(SDXL_BASE_CONFIG, { cond, pooled: { shape: [1, 1280], data: pooled } }, info).y;
    expect(relErr(y.data, sdxlAdmRef('base', pooled, {}, { width: 128, height: 96 }, 'positive', 1).data)).toBeLessThan(1e-6);
  });

  it('refiner: pooled, height, width, crop_h, crop_w, aesthetic score (6, or 2.5 for the negative prompt), 2560 wide', () => {
    const cfg = { ...SDXL_BASE_CONFIG, kind: 'refiner' as const, unet: { ...SDXL_BASE_CONFIG.unet, admInChannels: 2560 } };
    const p = { shape: [1, 1280], data: pooled };
    const info = { batch: 1, height: 128, width: 128 };
    const pos = sdxlAdm(cfg, { cond, pooled: p }, info).y;
    const neg = sdxlAdm(cfg, { cond, pooled: p }, info, 'negative').y;
    expect(pos.shape).toEqual([1, 2560]);
    expect(relErr(pos.data, sdxlAdmRef('refiner', pooled, {}, info, 'positive', 1).data)).toBeLessThan(1e-6);
    expect(relErr(neg.data, sdxlAdmRef('refiner', pooled, {}, info, 'negative', 1).data)).toBeLessThan(1e-6);
    expect(Array.from(neg.data.subarray(1280 + 4 * 256, 1280 + 4 * 256 + 1))[0]).toBeCloseTo(Math.cos(2.5), 6);
    const set = sdxlAdm(cfg, { cond, pooled: p, size: { aestheticScore: 7.5, width: 512, height: 640 } }, info, 'negative').y;
    expect(
      relErr(set.data, sdxlAdmRef('refiner', pooled, { aesthetic_score: 7.5, width: 512, height: 640 }, info, 'negative', 1).data),
    ).toBeLessThan(1e-6);
  });

  it('size embeddings are float32 sinusoids: value 0 gives cos 1 and sin 0 everywhere', () => {
    const e = embedSizes([0]);
    expect(Array.from(e.subarray(0, 128)).every((v) => v === 1)).toBe(true);
    expect(Array.from(e.subarray(128)).every((v) => v === 0)).toBe(true);
  });

  it('refuses an entry without a pooled output, or one from another CLIP, naming what is wrong', () => {
    const info = { batch: 1, height: 8, width: 8 };
    expect(() => sdxlAdm(SDXL_BASE_CONFIG, { cond }, info)).toThrow(/pooled text output/);
    expect(() => sdxlAdm(SDXL_BASE_CONFIG, { cond, pooled: { shape: [1, 768], data: new Float32Array(768) } }, info)).toThrow(
      /768 values, this model takes 1280/,
    );
    const tiny = tinySdxlConfig(1000);
    expect(sdxlAdm(tiny, { cond, pooled: { shape: [1, 128], data: new Float32Array(128) } }, info).y.shape).toEqual([1, 128 + 6 * 256]);
  });
});
