import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { openClipForwardRef } from '../../engine/models/families/openclip/reference/openclip.ts';
import { clipForwardRef } from '../../engine/models/families/sd1/reference/clip.ts';
import { unetForwardRef } from '../../engine/models/families/sd1/reference/unet.ts';
import { vaeDecodeRef } from '../../engine/models/families/sd1/reference/vae.ts';
import { SdxlClip } from '../../engine/models/families/sdxl/clip.ts';
import { sdxlAdmRef } from '../../engine/models/families/sdxl/reference/adm.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { modelToImage } from '../../engine/models/ort-vae.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { makeTinySdxl, type TinySdxl } from './tiny.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const TOL = 1e-4;
let tiny: TinySdxl;
let refiner: TinySdxl;
beforeAll(async () => {
  tiny = await makeTinySdxl(3);
  refiner = await makeTinySdxl(5, 'refiner');
});
afterAll(() => {
  for (const t of [tiny, refiner]) if (t) rmSync(t.dir, { recursive: true, force: true });
});
const manager = (t: TinySdxl) => new ModelManager({ cacheDir: join(t.dir, 'cache'), device: 'cpu', log: quiet });

/** Rows [t0, t1) of a [T·H] buffer. */
const rows = (a: Float32Array, H: number, t0: number, t1: number): Float32Array => a.subarray(t0 * H, t1 * H);

/** [L | G] per token, as ComfyUI concatenates the two encoders' hidden states. */
function joinTokens(l: Float32Array, hl: number, g: Float32Array, hg: number, T: number): Float32Array {
  const out = new Float32Array(T * (hl + hg));
  for (let t = 0; t < T; t++) {
    out.set(l.subarray(t * hl, (t + 1) * hl), t * (hl + hg));
    out.set(g.subarray(t * hg, (t + 1) * hg), t * (hl + hg) + hl);
  }
  return out;
}

describe('SDXL tiny checkpoint through the model manager, held to the reference nets', () => {
  it('CLIPTextEncode: CLIP-L and bigG penultimate layers raw, joined L ++ G; G pads with 0; pooled = ln_final(last)·text_projection at EOS', async () => {
    const parts = await manager(tiny).loadCheckpoint(tiny.file);
    expect(parts.family).toBe('sdxl');
    const clip = parts.clip as SdxlClip;
    expect(clip).toBeInstanceOf(SdxlClip);
    const cfgL = tiny.cfg.clipL!;
    const cfgG = tiny.cfg.clipG;
    expect(clip.hiddenSize).toBe(cfgL.hiddenSize + cfgG.width);
    const text = 'a photo of a cat';
    const out = await clip.encodeText(text);
    const toks = clip.tokenizer.tokenizeWithWeights(text)[0].map((t) => t.token);
    const eos = toks.indexOf(clip.tokenizer.eos);
    const gToks = toks.map((t, i) => (i > eos ? 0 : t));
    const refL = clipForwardRef(cfgL, tiny.clipL!, toks, undefined, false);
    const refG = openClipForwardRef(cfgG, tiny.clipG, gToks);
    const expected = joinTokens(refL[cfgL.numLayers - 2].data, cfgL.hiddenSize, refG.raw[cfgG.layers - 2], cfgG.width, 77);
    expect(out.cond.shape).toEqual([1, 77, cfgL.hiddenSize + cfgG.width]);
    expect(relErr(out.cond.data, expected)).toBeLessThan(TOL);
    expect(out.pooled.shape).toEqual([1, cfgG.projectionDim]);
    expect(relErr(out.pooled.data, rows(refG.projected!, cfgG.projectionDim!, eos, eos + 1))).toBeLessThan(TOL);
    // Padding with EOS instead of 0 would change G's output after the prompt: the test can tell.
    const eosPadded = openClipForwardRef(cfgG, tiny.clipG, toks).raw[cfgG.layers - 2];
    expect(relErr(rows(eosPadded, cfgG.width, eos + 1, 77), rows(refG.raw[cfgG.layers - 2], cfgG.width, eos + 1, 77))).toBeGreaterThan(
      1e-3,
    );

    // Weights interpolate each encoder against its own empty prompt (BOS, EOS, EOS… for L; BOS, EOS, 0… for G).
    const wText = 'a photo of a (cat:1.4)';
    const wt = clip.tokenizer.tokenizeWithWeights(wText)[0];
    const wToks = wt.map((t) => t.token);
    const weighted = await clip.encodeText(wText);
    const e = [clip.tokenizer.bos, ...new Array<number>(76).fill(clip.tokenizer.eos)];
    const eG = e.map((t, i) => (i > 1 ? 0 : t));
    const wEos = wToks.indexOf(clip.tokenizer.eos);
    const zl = clipForwardRef(cfgL, tiny.clipL!, wToks, undefined, false)[cfgL.numLayers - 2].data;
    const el = clipForwardRef(cfgL, tiny.clipL!, e, undefined, false)[cfgL.numLayers - 2].data;
    const zg = openClipForwardRef(
      cfgG,
      tiny.clipG,
      wToks.map((t, i) => (i > wEos ? 0 : t)),
    ).raw[cfgG.layers - 2];
    const eg = openClipForwardRef(cfgG, tiny.clipG, eG).raw[cfgG.layers - 2];
    const mix = (z: Float32Array, em: Float32Array, H: number): Float32Array => {
      const o = Float32Array.from(z);
      wt.forEach((t, j) => {
        for (let c = 0; c < H; c++) o[j * H + c] = (z[j * H + c] - em[j * H + c]) * t.weight + em[j * H + c];
      });
      return o;
    };
    expect(
      relErr(weighted.cond.data, joinTokens(mix(zl, el, cfgL.hiddenSize), cfgL.hiddenSize, mix(zg, eg, cfgG.width), cfgG.width, 77)),
    ).toBeLessThan(TOL);

    // CLIPSetLastLayer −1: both encoders' last layer, still raw.
    const last = await clip.withLayer(-1).encodeText(text);
    const expLast = joinTokens(refL[cfgL.numLayers - 1].data, cfgL.hiddenSize, refG.raw[cfgG.layers - 1], cfgG.width, 77);
    expect(relErr(last.cond.data, expLast)).toBeLessThan(TOL);
  });

  it('CLIPTextEncodeSDXL tokens: text_g to G, text_l to L, the shorter padded with empty chunks to the same count', async () => {
    const clip = (await manager(tiny).loadCheckpoint(tiny.file)).clip as SdxlClip;
    const long = Array.from({ length: 40 }, () => 'red cat').join(' ');
    const both = await clip.encodeSdxl(long, 'a dog');
    expect(both.cond.shape[1]).toBe(154);
    const gOnly = await clip.encodeTokens({ g: clip.tokenize('g', long), l: [...clip.tokenize('l', 'a dog'), ...clip.tokenize('l', '')] });
    expect(relErr(both.cond.data, gOnly.cond.data)).toBe(0);
    const short = await clip.encodeSdxl('a dog', long);
    expect(short.cond.shape[1]).toBe(154);
    // G's pooled output comes from text_g's first chunk.
    expect(relErr(both.pooled.data, (await clip.encodeText(long)).pooled.data)).toBe(0);
  });

  it('UNet with the adm vector y from the family, and the VAE decoder, against the reference nets', async () => {
    const parts = await manager(tiny).loadCheckpoint(tiny.file);
    const model = parts.model;
    expect(model.family).toBe('sdxl');
    expect(model.latentFormat.scaleFactor).toBe(0.13025);
    const B = 2;
    const x: Tensor = { shape: [B, 4, 8, 8], data: lcg(B * 256, 11) };
    const t = Float32Array.of(999, 321.5);
    const ctx: Tensor = { shape: [B, 77, tiny.cfg.unet.contextDim], data: lcg(B * 77 * tiny.cfg.unet.contextDim, 12, 0.5) };
    const pooled = lcg(128, 13);
    const y = model.extraConds!(
      { cond: ctx, pooled: { shape: [1, 128], data: pooled }, size: { width: 1024, height: 768 } },
      { batch: B, height: 8, width: 8 },
    ).y;
    const yRef = sdxlAdmRef('base', pooled, { width: 1024, height: 768 }, { width: 8, height: 8 }, 'positive', B);
    expect(relErr(y.data, yRef.data)).toBeLessThan(1e-6);
    const out = await model.unet.run({ x, timesteps: t, context: ctx, extra: { y } });
    const ref = unetForwardRef(tiny.cfg.unet, tiny.unet, x, t, ctx, undefined, { y: yRef });
    expect(relErr(out.data, ref.data)).toBeLessThan(TOL);
    // y matters: another size gives another output.
    const y2 = model.extraConds!({ cond: ctx, pooled: { shape: [1, 128], data: pooled } }, { batch: B, height: 8, width: 8 }).y;
    expect(relErr((await model.unet.run({ x, timesteps: t, context: ctx, extra: { y: y2 } })).data, out.data)).toBeGreaterThan(1e-4);

    const lat: Tensor = { shape: [1, 4, 4, 4], data: lcg(64, 14) };
    const img = await parts.vae.decode(lat);
    expect(relErr(img.data, modelToImage(vaeDecodeRef(tiny.cfg.vae, tiny.vae, lat)).data)).toBeLessThan(TOL);
  });

  it('the refiner: G alone (its own prefix), a 2560-style y (pooled + 5 sizes), the UNet against the reference', async () => {
    const parts = await manager(refiner).loadCheckpoint(refiner.file);
    const clip = parts.clip as SdxlClip;
    const cfgG = refiner.cfg.clipG;
    expect(clip.hiddenSize).toBe(cfgG.width);
    const out = await clip.encodeText('a castle');
    const toks = clip.tokenizer.tokenizeWithWeights('a castle')[0].map((t) => t.token);
    const eos = toks.indexOf(clip.tokenizer.eos);
    const refG = openClipForwardRef(
      cfgG,
      refiner.clipG,
      toks.map((t, i) => (i > eos ? 0 : t)),
    );
    expect(relErr(out.cond.data, refG.raw[cfgG.layers - 2])).toBeLessThan(TOL);
    expect(relErr(out.pooled.data, rows(refG.projected!, cfgG.projectionDim!, eos, eos + 1))).toBeLessThan(TOL);
    const x: Tensor = { shape: [1, 4, 8, 8], data: lcg(256, 21) };
    const t = Float32Array.of(500);
    const neg = parts.model.extraConds!(out, { batch: 1, height: 8, width: 8 }, 'negative').y;
    expect(neg.shape).toEqual([1, 128 + 5 * 256]);
    const yRef = sdxlAdmRef('refiner', out.pooled.data, {}, { width: 8, height: 8 }, 'negative', 1);
    expect(relErr(neg.data, yRef.data)).toBeLessThan(1e-6);
    const res = await parts.model.unet.run({ x, timesteps: t, context: out.cond, extra: { y: neg } });
    expect(relErr(res.data, unetForwardRef(refiner.cfg.unet, refiner.unet, x, t, out.cond, undefined, { y: yRef }).data)).toBeLessThan(TOL);
  });
});
