import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageTensor, Tensor } from '../../engine/core/tensor.ts';
import type { Segs } from '../../engine/image/segs.ts';
import type { ModelHandle, UNetRunArgs, VaeHandle } from '../../engine/models/handles.ts';
import { makeTinyCheckpoint } from '../../engine/models/make-model.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { impactBlurMask } from '../../engine/sampling/detail/impact-blur.ts';
import { inpaintModelConditioning } from '../../engine/sampling/detail/inpaint-model.ts';
import { DetailerForEach } from '../../nodes/detailer/detailer-for-each.ts';
import { lcg } from '../models-onnx/tiny.ts';
import { boxSeg, detailerInputs, loadTinyDetail, loggingContext, picture, type TinyDetail } from './tiny-detail.ts';

/**
 * `inpaint_model` on the detailers: ComfyUI's InpaintModelConditioning (pixels and mask cut to the
 * 8-pixel grid, the pixels greyed under the rounded mask and encoded, c_concat = [round(mask at latent
 * size), masked latent × scale factor]) against a reference written here from its formulas, the UNet
 * handle feeding c_concat after the model input as apply_model does, and DetailerForEach on a tiny
 * 9-channel inpainting checkpoint.
 */

/** torch.nn.functional.interpolate(mode='bilinear', align_corners=False) of one [h, w] plane, in float64. */
function bilinear(src: ArrayLike<number>, h: number, w: number, oh: number, ow: number): Float64Array {
  const axis = (o: number, n: number, on: number): [number, number, number] => {
    const s = Math.max(((o + 0.5) * n) / on - 0.5, 0);
    const i0 = Math.floor(s);
    return [i0, Math.min(i0 + 1, n - 1), s - i0];
  };
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    const [y0, y1, ly] = axis(y, h, oh);
    for (let x = 0; x < ow; x++) {
      const [x0, x1, lx] = axis(x, w, ow);
      const top = src[y0 * w + x0] * (1 - lx) + src[y0 * w + x1] * lx;
      const bottom = src[y1 * w + x0] * (1 - lx) + src[y1 * w + x1] * lx;
      out[y * ow + x] = top * (1 - ly) + bottom * ly;
    }
  }
  return out;
}

describe('InpaintModelConditioning (inpaint_model)', () => {
  let t: TinyDetail;
  let inpaint: { model: ModelHandle; vae: VaeHandle };
  beforeAll(async () => {
    t = await loadTinyDetail();
    const file = join(t.dir, 'checkpoints', 'weft-tiny-sd1-inpainting.safetensors');
    await makeTinyCheckpoint(file, { seed: 7, inpainting: true });
    const quiet = { info: () => {}, warn: () => {}, error: () => {} };
    const parts = await new ModelManager({ cacheDir: join(t.dir, 'cache-inpaint'), device: 'cpu', log: quiet }).loadCheckpoint(file);
    inpaint = { model: parts.model, vae: parts.vae };
  }, 180_000);
  afterAll(() => rmSync(t.dir, { recursive: true, force: true }));

  // 45×38 pixels: cut to 40×32 at offsets (2, 3); the 15×19 mask is resized ×3 / ×2 first. Its seed is one whose
  // resized values all keep 7e-4 from 0.5, so float32 and float64 bilinear round alike.
  const H = 45;
  const W = 38;
  const mask: Tensor = { shape: [1, 15, 19], data: lcg(15 * 19, 15).map((v) => (v + 1) / 2) };

  it('pixels and mask cut to the grid, greyed under the rounded mask; c_concat = [round(mask), latent × 0.18215]', async () => {
    const pixels = picture(H, W);
    const out = await inpaintModelConditioning(t.pos, t.neg, pixels, inpaint.vae, mask, inpaint.model, true);
    // the reference: mask to 45×38, cut at (y 2, x 3) to 40×32
    const full = bilinear(mask.data, 15, 19, H, W);
    const m = new Float64Array(40 * 32);
    for (let y = 0; y < 40; y++) for (let x = 0; x < 32; x++) m[y * 32 + x] = full[(y + 2) * W + x + 3];
    expect(m.every((v) => Math.abs(v - 0.5) > 1e-4)).toBe(true); // no rounding ties: the check below is exact
    const f = Math.fround;
    const greyed = new Float32Array(40 * 32 * 3);
    for (let y = 0; y < 40; y++)
      for (let x = 0; x < 32; x++)
        for (let k = 0; k < 3; k++) {
          const keep = 1 - Math.round(m[y * 32 + x]);
          greyed[(y * 32 + x) * 3 + k] = f(f(f(pixels.data[((y + 2) * W + x + 3) * 3 + k] - 0.5) * keep) + 0.5);
        }
    expect(greyed.some((v) => v === 0.5)).toBe(true);
    expect(greyed.some((v) => v !== 0.5)).toBe(true);
    const masked = await inpaint.vae.encode({ shape: [1, 40, 32, 3], data: greyed });
    // the latent: the uncut pixels encoded (the VAE cuts them the same way), the cut mask as noise mask
    expect(out.latent.samples.data).toEqual((await inpaint.vae.encode(pixels)).data);
    expect(out.latent.noiseMask?.shape).toEqual([1, 1, 40, 32]);
    const nm = out.latent.noiseMask!.data;
    for (let i = 0; i < m.length; i++) expect(Math.abs(nm[i] - m[i])).toBeLessThan(1e-6);
    for (const c of [out.positive, out.negative]) {
      const cc = c[0].modelConds?.c_concat;
      expect(cc?.shape).toEqual([1, 5, 5, 4]);
      const lm = bilinear(m, 40, 32, 5, 4);
      expect(lm.every((v) => Math.abs(v - 0.5) > 1e-4)).toBe(true);
      for (let i = 0; i < 20; i++) expect(cc!.data[i]).toBe(Math.round(lm[i]));
      for (let i = 0; i < 80; i++) expect(cc!.data[20 + i]).toBe(f(masked.data[i] * 0.18215));
    }
    expect(out.positive[0].cond).toBe(t.pos[0].cond);
  }, 120_000);

  it('a 4-channel model gets no c_concat (ComfyUI’s other models ignore it); noise_mask off leaves the latent without one', async () => {
    const pixels = picture(H, W);
    const out = await inpaintModelConditioning(t.pos, t.neg, pixels, t.vae, mask, t.model, false);
    expect(out.positive).toBe(t.pos);
    expect(out.negative).toBe(t.neg);
    expect(out.latent.noiseMask).toBeUndefined();
    expect(out.latent.samples.data).toEqual((await t.vae.encode(pixels)).data);
  }, 120_000);

  it('the UNet handle puts c_concat after the model input (apply_model’s torch.cat), and names it when it is missing', async () => {
    const B = 2;
    const S = 4 * 4;
    const x: Tensor = { shape: [B, 4, 4, 4], data: lcg(B * 4 * S, 3) };
    const cc: Tensor = { shape: [B, 5, 4, 4], data: lcg(B * 5 * S, 4) };
    const joined = new Float32Array(B * 9 * S);
    for (let b = 0; b < B; b++) {
      joined.set(x.data.subarray(b * 4 * S, (b + 1) * 4 * S), b * 9 * S);
      joined.set(cc.data.subarray(b * 5 * S, (b + 1) * 5 * S), b * 9 * S + 4 * S);
    }
    const context: Tensor = { shape: [B, 77, 64], data: lcg(B * 77 * 64, 5) };
    const timesteps = Float32Array.from([500, 500]);
    const a = await inpaint.model.unet.run({ x, timesteps, context, extra: { c_concat: cc } });
    const b = await inpaint.model.unet.run({ x: { shape: [B, 9, 4, 4], data: joined }, timesteps, context });
    expect(a.shape).toEqual([B, 4, 4, 4]);
    expect(a.data).toEqual(b.data);
    await expect(inpaint.model.unet.run({ x, timesteps, context })).rejects.toThrow(/InpaintModelConditioning's c_concat/);
  }, 120_000);

  describe('DetailerForEach with inpaint_model', () => {
    const IH = 64;
    const IW = 80;
    const run = async (model: ModelHandle, vae: VaeHandle, over: Record<string, unknown>) => {
      const { ctx, lines } = loggingContext('9', 'DetailerForEach');
      const segs: Segs = { shape: [IH, IW], segments: [boxSeg([4, 4, 20, 20], IH, IW, 2), boxSeg([50, 30, 66, 46], IH, IW, 2)] };
      const inputs = detailerInputs(t, picture(IH, IW), segs, { model, vae, seed: 3, steps: 2, inpaint_model: true, ...over });
      const [image] = (await DetailerForEach.run(inputs as never, ctx)) as unknown as [ImageTensor];
      return { image, log: lines.join('\n'), segs };
    };

    it('on a 9-channel inpainting UNet: every call gets c_concat, pixels outside the blurred masks are unchanged, no batch', async () => {
      const calls: UNetRunArgs[] = [];
      const unet = Object.create(inpaint.model.unet, {
        run: { value: (a: UNetRunArgs) => (calls.push(a), inpaint.model.unet.run(a)) },
      });
      const model: ModelHandle = Object.create(inpaint.model, { unet: { value: unet } });
      const { image, log, segs } = await run(model, inpaint.vae, {});
      expect(log).toMatch(/one by one \(inpaint_model gives each crop its own inpaint conditioning\)/);
      expect(calls.length).toBeGreaterThan(0);
      for (const c of calls) {
        const cc = c.extra?.c_concat;
        expect(cc?.shape).toEqual([c.x.shape[0], 5, c.x.shape[2], c.x.shape[3]]);
        const S = c.x.shape[2] * c.x.shape[3];
        const maskPlane = Array.from(cc!.data.subarray(0, S));
        expect(maskPlane.every((v) => v === 0 || v === 1)).toBe(true);
        expect(maskPlane).toContain(1);
      }
      const before = picture(IH, IW);
      const inside = new Uint8Array(IH * IW);
      for (const s of segs.segments) {
        const [x1, y1, x2, y2] = s.cropRegion;
        const blurred = impactBlurMask({ shape: [1, y2 - y1, x2 - x1], data: s.croppedMask.data }, 3).data;
        for (let y = y1; y < y2; y++) for (let x = x1; x < x2; x++) if (blurred[(y - y1) * (x2 - x1) + x - x1] > 0) inside[y * IW + x] = 1;
      }
      let changed = 0;
      for (let p = 0; p < IH * IW; p++)
        for (let k = 0; k < 3; k++) {
          const same = image.data[p * 3 + k] === before.data[p * 3 + k];
          if (!inside[p]) expect(same).toBe(true);
          else if (!same) changed++;
        }
      expect(changed).toBeGreaterThan(100);
    }, 180_000);

    it('the inpainting UNet without inpaint_model: an error that names c_concat; inpaint_model without noise_mask: a warning', async () => {
      await expect(run(inpaint.model, inpaint.vae, { inpaint_model: false })).rejects.toThrow(/9 input channels|c_concat/);
      const { log } = await run(t.model, t.vae, { noise_mask: false });
      expect(log).toMatch(/inpaint_model has no effect with noise_mask disabled/);
    }, 180_000);
  });
});
