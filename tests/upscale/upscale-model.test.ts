import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { SafetensorsFile } from '../../engine/formats/safetensors.ts';
import { detectUpscaleArch, expectedTensors, type UpscaleArch } from '../../engine/models/upscale/detect.ts';
import { compactArch, esrganArch, esrganNewName, makeUpscaleFile, TINY_ESRGAN } from '../../engine/models/upscale/generate.ts';
import { readUpscaleWeights, UpscaleModelLoader } from '../../engine/models/upscale/loader.ts';
import { chooseUpscaleTile, padToRequirements } from '../../engine/models/upscale/model.ts';
import { PartsRuntime } from '../../engine/models/runtime/parts-runtime.ts';
import { POrdered, PStorage, PTensor, torchSaveZip, type PVal } from '../formats/torch-writer.ts';
import { maxAbsDiff, quiet, ramp, tempDir } from './helpers.ts';
import { referenceCompact, referenceRrdbNet } from './reference.ts';

/*
 * Upscale models: detection from key names and shapes (spandrel's rules) for every layout, the ONNX
 * graphs against plain-loop RRDBNet/SRVGGNetCompact references, spandrel's padding, and
 * ImageUpscaleWithModel's tiling and blending against ComfyUI's tiled_scale written out here.
 */

/** Names and shapes of an architecture in a given key layout. */
function keySet(a: UpscaleArch, layout: 'old' | 'new' | 'bsrgan' = 'old'): Map<string, readonly number[]> {
  const m = new Map<string, readonly number[]>();
  for (const [k, s] of expectedTensors(a)) {
    let name = k;
    if (a.kind === 'esrgan' && layout !== 'old') {
      name = esrganNewName(a, k);
      if (layout === 'bsrgan')
        name = name
          .replace(/^body\.(\d+)\.rdb/, 'RRDB_trunk.$1.RDB')
          .replace('conv_body.', 'trunk_conv.')
          .replace('conv_hr.', 'HRconv.')
          .replace(/^conv_up(\d)/, 'upconv$1');
    }
    m.set(name, s);
  }
  return m;
}

const detect = (m: Map<string, readonly number[]>): UpscaleArch => detectUpscaleArch([...m.keys()], (k) => m.get(k)!, 'test.pth');

describe('upscale model detection', () => {
  it('reads ESRGAN in the old, new and BSRGAN layouts, x4plus, x2plus (unshuffle), anime_6B, and compact models, with scale, features and blocks from shapes', () => {
    const x4plus = esrganArch({ nf: 64, nb: 23, gc: 32, upsamples: 2 });
    for (const layout of ['old', 'new', 'bsrgan'] as const) {
      const a = detect(keySet(x4plus, layout));
      expect(a).toMatchObject({ kind: 'esrgan', layout, nf: 64, nb: 23, gc: 32, scale: 4, shuffle: 1, inNc: 3, outNc: 3 });
    }
    const x2plus = esrganArch({ nf: 64, nb: 23, gc: 32, upsamples: 2, inNc: 12 });
    expect(detect(keySet(x2plus, 'new'))).toMatchObject({ inNc: 12, shuffle: 2, scale: 2, upsamples: 2 });
    expect(detect(keySet(esrganArch({ nf: 64, nb: 6, gc: 32, upsamples: 2 }), 'new'))).toMatchObject({ nb: 6, scale: 4 });
    expect(detect(keySet(esrganArch({ nf: 32, nb: 2, gc: 16, upsamples: 3 }), 'old'))).toMatchObject({ nf: 32, nb: 2, gc: 16, scale: 8 });
    expect(detect(keySet(esrganArch({ nf: 16, nb: 1, gc: 8, upsamples: 0 }), 'old'))).toMatchObject({ scale: 1 });
    for (const upsamples of [0, 1, 3, 4])
      for (const layout of ['new', 'bsrgan'] as const)
        expect(detect(keySet(esrganArch({ nf: 8, nb: 2, gc: 4, upsamples }), layout)), `${layout} ×${2 ** upsamples}`).toMatchObject({
          layout,
          upsamples,
          scale: 2 ** upsamples,
        });
    // realesr-general-x4v3 (64 features, 32 convs) and realesr-animevideov3 (16 convs).
    expect(detect(keySet(compactArch({ nf: 64, numConv: 32, scale: 4 })))).toEqual(compactArch({ nf: 64, numConv: 32, scale: 4 }));
    expect(detect(keySet(compactArch({ nf: 64, numConv: 16, scale: 4 })))).toMatchObject({ numConv: 16, scale: 4, outNc: 3 });
    expect(detect(keySet(compactArch({ nf: 48, numConv: 4, scale: 2 })))).toMatchObject({ nf: 48, scale: 2 });
  });

  it('ESRGAN ×3: an upconv ×3 file has the ×2 layout, so it is read as ×2 as spandrel reads it; the pixel-shuffle layout is refused by name', () => {
    // spandrel's RRDBNet(scale=3) has one nearest-×3 upconv: the same keys and shapes as ×2, and _get_scale gives 2**((8 − 5) // 3) = 2.
    const x3 = keySet(esrganArch({ nf: 8, nb: 1, gc: 4, upsamples: 1 }), 'old');
    expect(detect(x3)).toMatchObject({ scale: 2, upsamples: 1 });
    // BasicSR's pixelshuffle_block ×3: conv (nf·9 outputs) at model.2, PixelShuffle at model.3, act, then the HR convs at model.5 and model.7.
    const ps = new Map([...x3].filter(([k]) => !/^model\.[357]\./.test(k)));
    ps.set('model.2.weight', [72, 8, 3, 3]).set('model.2.bias', [72]);
    ps.set('model.5.weight', [8, 8, 3, 3]).set('model.5.bias', [8]);
    ps.set('model.7.weight', [3, 8, 3, 3]).set('model.7.bias', [3]);
    expect(() => detect(ps)).toThrow(/test\.pth: ESRGAN with a pixel-shuffle upsampler \(a conv at model\.2, ×3 per stage\).*spandrel/);
    const odd = new Map([...x3].filter(([k]) => !k.startsWith('model.7.')));
    expect(() => detect(odd)).toThrow(/ESRGAN with 6 top-level layers is not a layout spandrel reads/);
  });

  it('refuses other architectures by name, SD checkpoints and unknown files with what they are', () => {
    const refuse = (keys: string[]): string => {
      try {
        detectUpscaleArch(keys, () => [1], 'm.pth');
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    };
    const swin = [
      'conv_first.weight',
      'layers.0.residual_group.blocks.0.norm1.weight',
      'layers.0.residual_group.blocks.0.mlp.fc1.bias',
      'layers.0.residual_group.blocks.0.attn.relative_position_index',
    ];
    expect(refuse(swin)).toMatch(/m\.pth is a SwinIR upscale model.*does not run/);
    expect(refuse([...swin, 'patch_embed.proj.weight'])).toMatch(/Swin2SR/);
    expect(refuse([...swin, 'relative_position_index_SA', 'layers.0.residual_group.overlap_attn.qkv.weight'])).toMatch(
      /a HAT upscale model/,
    );
    expect(refuse(['conv_first.weight', 'before_RG.1.weight', 'layers.0.blocks.0.ffn.sg.conv.weight'])).toMatch(/a DAT/);
    expect(refuse(['residual_layer.0.residual_layer.0.layer.0.fn.0.weight', 'input.weight', 'up.0.weight'])).toMatch(/OmniSR/);
    expect(refuse(['conv_1.sk.weight', 'block_1.c1_r.sk.weight', 'conv_cat.weight'])).toMatch(/SPAN/);
    expect(refuse(['unet1.conv1.conv.0.weight', 'unet2.conv1.conv.0.weight'])).toMatch(/RealCUGAN/);
    expect(refuse(['model.diffusion_model.input_blocks.0.0.weight'])).toMatch(/Stable Diffusion checkpoint/);
    expect(refuse(['foo.weight', 'bar.bias'])).toMatch(/unknown upscale model architecture \(2 tensors, e\.g\. foo\.weight/);
  });

  it('refuses a file whose tensors do not fit the architecture its names say, and a truncated file', () => {
    const dir = tempDir();
    const a = esrganArch(TINY_ESRGAN);
    const good = join(dir, 'good.safetensors');
    makeUpscaleFile(good, a, { seed: 1 });
    const m = keySet(a, 'new');
    m.set('body.0.rdb2.conv3.weight', [4, 7, 3, 3]);
    expect(() =>
      readUpscaleWeights(
        { names: () => [...m.keys()], has: (k) => m.has(k), shape: (k) => m.get(k)!, get: () => new Float32Array(0) },
        'bad.safetensors',
      ),
    ).toThrow(/bad\.safetensors: tensor 'model\.1\.sub\.0\.RDB2\.conv3\.0\.weight' has shape \[4, 7, 3, 3\], expected \[4, 16, 3, 3\]/);
    const cut = join(dir, 'cut.safetensors');
    const full = readFileSync(good);
    writeFileSync(cut, full.subarray(0, full.length - 100));
    const loader = new UpscaleModelLoader(new PartsRuntime({ cacheDir: join(dir, 'cache'), device: 'cpu', log: quiet }), {
      cacheDir: join(dir, 'cache'),
    });
    expect(() => loader.load(cut)).toThrow(/cannot read upscale model .*cut\.safetensors.*truncated/);
  });
});

function image(h: number, w: number, seed: number): Tensor {
  return { shape: [1, 3, h, w], data: ramp(3 * h * w, seed) };
}

describe('upscale graphs against the plain-loop references', () => {
  const dir = tempDir();
  const rt = new PartsRuntime({ cacheDir: join(dir, 'cache'), device: 'cpu', log: quiet });
  const loader = new UpscaleModelLoader(rt, { cacheDir: join(dir, 'cache') });
  const cases: [string, UpscaleArch, number, number][] = [
    ['ESRGAN x4 (new layout)', esrganArch(TINY_ESRGAN), 9, 7],
    ['ESRGAN x2 with pixel-unshuffle input (x2plus shape)', esrganArch({ nf: 8, nb: 1, gc: 4, upsamples: 2, inNc: 12 }), 8, 12],
    ['ESRGAN x1 (no upsampling)', esrganArch({ nf: 6, nb: 2, gc: 4, upsamples: 0 }), 6, 5],
    ['ESRGAN x2 (one upconv)', esrganArch({ nf: 6, nb: 1, gc: 4, upsamples: 1 }), 7, 6],
    ['ESRGAN x8 (three upconvs)', esrganArch({ nf: 4, nb: 1, gc: 4, upsamples: 3 }), 4, 5],
    ['SRVGGNetCompact x4', compactArch({ nf: 8, numConv: 2, scale: 4 }), 9, 7],
    ['SRVGGNetCompact x2', compactArch({ nf: 6, numConv: 3, scale: 2 }), 5, 6],
  ];
  const layouts = (a: UpscaleArch): ('old' | 'new')[] =>
    a.kind === 'esrgan' && a.shuffle === 1 && a.upsamples !== 2 ? ['new', 'old'] : ['new'];
  for (const [what, arch, h, w] of cases)
    for (const layout of layouts(arch)) {
      it(`${what}${layout === 'old' ? ', old model.N layout' : ''}: the ONNX part equals the float64 reference after spandrel's clamp (max abs error < 1e-5)`, async () => {
        const file = join(dir, `${what.replace(/\W+/g, '-')}-${layout}.safetensors`);
        makeUpscaleFile(file, arch, { seed: h * 31 + w, esrganLayout: layout });
        const m = loader.load(file);
        expect(m.arch).toEqual(arch.kind === 'esrgan' ? { ...arch, layout } : arch);
        const { weights } = readUpscaleWeights(SafetensorsFile.open(file), file);
        const W = (k: string): Float32Array => weights.get(k);
        const x = image(h, w, 7);
        let ref: Tensor;
        if (arch.kind === 'esrgan' && arch.shuffle > 1) {
          const { pixelUnshuffle } = await import('../../engine/models/controlnet/adapter.ts');
          ref = referenceRrdbNet(arch, W, pixelUnshuffle(x, arch.shuffle));
        } else ref = arch.kind === 'esrgan' ? referenceRrdbNet(arch, W, x) : referenceCompact(arch, W, x);
        const clamped = ref.data.map((v) => Math.min(1, Math.max(0, v)));
        const got = await m.forward(x);
        expect(got.shape).toEqual([1, 3, h * arch.scale, w * arch.scale]);
        expect(maxAbsDiff(got.data, clamped)).toBeLessThan(1e-5);
        // The comparison is not vacuous: the output varies and only a few values were clipped.
        const mean = clamped.reduce((s, v) => s + v, 0) / clamped.length;
        expect(clamped.reduce((s, v) => s + (v - mean) ** 2, 0) / clamped.length).toBeGreaterThan(1e-3);
        expect(clamped.filter((v, i) => v !== ref.data[i]).length).toBeLessThan(clamped.length / 4);
      });
    }

  it('a .pth with a params_ema sub-dict (BasicSR) loads through the pickle reader to the same weights', async () => {
    const arch = esrganArch(TINY_ESRGAN);
    const st = join(dir, 'RealESRGAN_tiny.safetensors');
    makeUpscaleFile(st, arch, { seed: 5 });
    const sf = SafetensorsFile.open(st);
    const inner = new Map<PVal, PVal>();
    sf.names().forEach((name, i) => {
      const { shape, bytes } = sf.getRaw(name);
      inner.set(
        name,
        new PTensor(
          new PStorage(
            String(i),
            'FloatStorage',
            new Uint8Array(bytes),
            shape.reduce((a, b) => a * b, 1),
          ),
          shape,
        ),
      );
    });
    const pth = join(dir, 'RealESRGAN_tiny.pth');
    writeFileSync(pth, torchSaveZip(new POrdered(new Map<PVal, PVal>([['params_ema', new POrdered(inner)]]))));
    const a = loader.load(st);
    const b = loader.load(pth);
    expect(b.arch).toEqual(a.arch);
    const x = image(6, 6, 3);
    expect(maxAbsDiff((await b.forward(x)).data, (await a.forward(x)).data)).toBe(0);
  });
});

describe("ImageUpscaleWithModel's tiling", () => {
  it('pads to spandrel size requirements: reflect (edge not repeated) up to size − 1, then replicate', () => {
    const t: Tensor = { shape: [1, 1, 1, 3], data: new Float32Array([1, 2, 3]) };
    const { padded } = padToRequirements(t, 4);
    expect(padded.shape).toEqual([1, 1, 4, 4]);
    // Rows: 1 → 4 (no reflection possible from 1 row: replicate); columns 3 → 4 by reflection (1 2 3 2).
    expect([...padded.data]).toEqual([1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2]);
    const wide: Tensor = { shape: [1, 1, 2, 2], data: new Float32Array([1, 2, 3, 4]) };
    // 2 → 8: one reflected column (index 0), then replicate of it.
    expect([...padToRequirements(wide, 8).padded.data.subarray(0, 8)]).toEqual([1, 2, 1, 1, 1, 1, 1, 1]);
    expect(padToRequirements({ shape: [1, 1, 1, 1], data: new Float32Array([5]) }, 1).padded.shape).toEqual([1, 1, 2, 2]);
  });

  it('chooses 512 when memory allows and halves (not below 128) when not', () => {
    const a = esrganArch({ nf: 64, nb: 23, gc: 32, upsamples: 2 });
    expect(chooseUpscaleTile(a, 64 * 2 ** 30)).toBe(512);
    expect(chooseUpscaleTile(a, 2 * 2 ** 30)).toBe(256);
    expect(chooseUpscaleTile(a, 0)).toBe(128);
  });

  it('tiles of 128 with 32 overlap blend as ComfyUI tiled_scale does (positions, linear feather, division), clamped', async () => {
    const dir = tempDir();
    const rt = new PartsRuntime({ cacheDir: join(dir, 'cache'), device: 'cpu', log: quiet });
    const file = join(dir, 'c.safetensors');
    const arch = compactArch({ nf: 4, numConv: 1, scale: 2 });
    makeUpscaleFile(file, arch, { seed: 2 });
    const m = new UpscaleModelLoader(rt, { cacheDir: join(dir, 'cache') }).load(file);
    const H = 150;
    const W = 230;
    const nhwc: Tensor = { shape: [1, H, W, 3], data: ramp(H * W * 3, 11) };
    const progress: number[] = [];
    const got = await m.upscale(nhwc, { tile: 128, onProgress: (d, t) => progress.push(d / t) });
    expect(got.shape).toEqual([1, 2 * H, 2 * W, 3]);
    expect(progress.at(-1)).toBe(1);
    // The session (and ORT's arena with a tile's activations) is released once the image is done; it loads again when used.
    expect(rt.pool.stats().loaded.filter((l) => l.key.startsWith('upscaler'))).toEqual([]);
    const loads = rt.pool.stats().loads;
    // ComfyUI's tiled_scale_multidim, written out: positions range(0, size − overlap, tile − overlap) plus a
    // last tile flush with the end, clamped; mask (t + 1)/feather at both ends of each axis; out / out_div.
    const pos = (size: number): number[] => {
      if (size <= 128) return [0];
      const p: number[] = [];
      for (let v = 0; v < size - 32; v += 96) p.push(v);
      if (p[p.length - 1] + 128 < size) p.push(size - 128);
      return p;
    };
    const out = new Float64Array(3 * 4 * H * W);
    const div = new Float64Array(4 * H * W);
    const nchw: Tensor = { shape: [1, 3, H, W], data: new Float32Array(3 * H * W) };
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) nchw.data[(c * H + y) * W + x] = nhwc.data[(y * W + x) * 3 + c];
    let tiles = 0;
    for (const py of pos(H))
      for (const px of pos(W)) {
        const y0 = Math.max(0, Math.min(H - 32, py));
        const x0 = Math.max(0, Math.min(W - 32, px));
        const th = Math.min(128, H - y0);
        const tw = Math.min(128, W - x0);
        const crop: Tensor = { shape: [1, 3, th, tw], data: new Float32Array(3 * th * tw) };
        for (let c = 0; c < 3; c++)
          for (let y = 0; y < th; y++)
            for (let x = 0; x < tw; x++) crop.data[(c * th + y) * tw + x] = nchw.data[(c * H + y0 + y) * W + x0 + x];
        const ps = await m.forward(crop);
        tiles++;
        const [, , oh, ow] = ps.shape;
        // Both ends' factors multiply where a short tile's ramps meet.
        const ramp1 = (n: number, i: number): number => (64 >= n ? 1 : (i < 64 ? (i + 1) / 64 : 1) * (i >= n - 64 ? (n - i) / 64 : 1));
        for (let y = 0; y < oh; y++)
          for (let x = 0; x < ow; x++) {
            const k = ramp1(oh, y) * ramp1(ow, x);
            const o = (2 * y0 + y) * 2 * W + 2 * x0 + x;
            div[o] += k;
            for (let c = 0; c < 3; c++) out[c * 4 * H * W + o] += ps.data[(c * oh + y) * ow + x] * k;
          }
      }
    expect(tiles).toBe(pos(H).length * pos(W).length);
    expect(tiles).toBe(6);
    expect(rt.pool.stats().loads).toBe(loads + 1);
    let err = 0;
    for (let y = 0; y < 2 * H; y++)
      for (let x = 0; x < 2 * W; x++)
        for (let c = 0; c < 3; c++) {
          const o = y * 2 * W + x;
          const want = Math.min(1, Math.max(0, out[c * 4 * H * W + o] / div[o]));
          err = Math.max(err, Math.abs(got.data[o * 3 + c] - want));
        }
    expect(err).toBeLessThan(1e-6);
  });

  it('a 1×1 image and a batch of two upscale without error; a 4-channel image is refused by name', async () => {
    const dir = tempDir();
    const rt = new PartsRuntime({ cacheDir: join(dir, 'cache'), device: 'cpu', log: quiet });
    const file = join(dir, 'e.safetensors');
    makeUpscaleFile(file, esrganArch({ nf: 4, nb: 1, gc: 4, upsamples: 2, inNc: 12 }), { seed: 3 });
    const m = new UpscaleModelLoader(rt, { cacheDir: join(dir, 'cache') }).load(file);
    const one = await m.upscale({ shape: [1, 1, 1, 3], data: new Float32Array([0.2, 0.5, 0.9]) });
    expect(one.shape).toEqual([1, 2, 2, 3]);
    const two = await m.upscale({ shape: [2, 5, 3, 3], data: ramp(90, 4) });
    expect(two.shape).toEqual([2, 10, 6, 3]);
    for (const v of two.data) expect(v >= 0 && v <= 1).toBe(true);
    await expect(m.upscale({ shape: [1, 4, 4, 4], data: new Float32Array(64) })).rejects.toThrow(
      /image must be \[B, H, W, 3\], got \[1, 4, 4, 4\]/,
    );
  });
});
