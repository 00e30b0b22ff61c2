import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { f16ToF32, f32ToF16 } from '../../engine/core/dtype.ts';
import { MapWeightSource } from '../../engine/core/weights.ts';
import { TorchFileError } from '../../engine/formats/pickle/torch-file.ts';
import { SafetensorsWriter } from '../../engine/formats/safetensors.ts';
import { makeControlNetFile, makeDemoControlNet, randomControlNetWeights } from '../../engine/models/controlnet/generate.ts';
import { controlNetLayout } from '../../engine/models/controlnet/layout.ts';
import { readControlNet, withDifference } from '../../engine/models/controlnet/load.ts';
import { UnsupportedModelError } from '../../engine/models/errors.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { makeTiny } from '../models-onnx/tiny.ts';
import { TINY_CN, tempDir } from './helpers.ts';

const same = (a: ArrayLike<number>, b: ArrayLike<number>): boolean =>
  a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => Object.is(v, b[i]));

describe('ControlNet loading', () => {
  it('reads the single-file layout with and without the control_model. prefix: architecture from shapes, weights under bare names', () => {
    const dir = tempDir();
    for (const layout of ['single-file', 'single-file-bare'] as const) {
      const file = join(dir, `${layout}.safetensors`);
      const w = makeControlNetFile(file, TINY_CN, { seed: 3, layout });
      const cn = readControlNet(file);
      expect(cn.kind).toBe(layout);
      expect(cn.config).toEqual(TINY_CN);
      expect(cn.difference).toBe(false);
      for (const [k, t] of w) expect(same(cn.weights.get(k), t.data), k).toBe(true);
    }
  });

  it('reads F16 and BF16 storage (values as stored, widened)', () => {
    const dir = tempDir();
    const file = join(dir, 'cn_fp16.safetensors');
    const w = makeControlNetFile(file, TINY_CN, { seed: 4, dtype: 'F16' });
    const cn = readControlNet(file);
    const k = 'input_blocks.1.0.in_layers.2.weight';
    expect(
      same(
        cn.weights.get(k),
        w.get(k)!.data.map((v) => f16ToF32(f32ToF16(v))),
      ),
    ).toBe(true);
    expect(cn.dtypes.get(k)).toBe('F16');
    makeControlNetFile(join(dir, 'bf.safetensors'), TINY_CN, { seed: 4, dtype: 'BF16' });
    expect(readControlNet(join(dir, 'bf.safetensors')).config).toEqual(TINY_CN);
  });

  it('maps the diffusers ControlNetModel layout to the same weights as the single-file layout', () => {
    const dir = tempDir();
    makeControlNetFile(join(dir, 'a.safetensors'), TINY_CN, { seed: 5 });
    makeControlNetFile(join(dir, 'b.safetensors'), TINY_CN, { seed: 5, layout: 'diffusers' });
    const a = readControlNet(join(dir, 'a.safetensors'));
    const b = readControlNet(join(dir, 'b.safetensors'));
    expect(b.kind).toBe('diffusers');
    expect(b.config).toEqual(a.config);
    expect(b.weights.names().sort()).toEqual(a.weights.names().sort());
    for (const k of a.weights.names()) expect(same(b.weights.get(k), a.weights.get(k)), k).toBe(true);
  });

  it('makes a difference ControlNet absolute by adding the model weights in the stored dtype (ComfyUI: cd += model_sd[k].type(cd.dtype))', async () => {
    const dir = tempDir();
    // A "model" holding the UNet tensors the ControlNet shares.
    const model = new MapWeightSource(randomControlNetWeights(TINY_CN, 99));
    const file = join(dir, 'diff.safetensors');
    const w = makeControlNetFile(file, TINY_CN, { seed: 6, differenceFrom: model });
    const cn = readControlNet(file);
    expect(cn.difference).toBe(true);
    const read = async (k: string): Promise<Float32Array | undefined> =>
      model.has(k) && !k.startsWith('zero_convs') && !k.startsWith('input_hint') && !k.startsWith('middle_block_out')
        ? model.get(k)
        : undefined;
    const shape = (k: string): readonly number[] | undefined =>
      model.has(k) && !k.startsWith('zero_convs') && !k.startsWith('input_hint') && !k.startsWith('middle_block_out')
        ? model.shape(k)
        : undefined;
    const abs = await withDifference(cn, read, shape);
    expect(abs.difference).toBe(false);
    const k = 'input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight';
    const stored = cn.weights.get(k);
    expect(
      same(
        abs.weights.get(k),
        stored.map((d, i) => Math.fround(d + model.get(k)[i])),
      ),
    ).toBe(true);
    // Close to the weights the difference was taken from (float32 rounding apart).
    const orig = w.get(k)!.data;
    expect(Math.max(...abs.weights.get(k).map((v, i) => Math.abs(v - orig[i])))).toBeLessThan(1e-6);
    // Tensors the model lacks stay as stored; nothing of them points into the file once changed.
    expect(same(abs.weights.get('zero_convs.0.0.weight'), cn.weights.get('zero_convs.0.0.weight'))).toBe(true);
    expect(abs.weights.locate?.(k)).toBeUndefined();

    // F16: the sum is rounded to half, as torch adds half tensors.
    const f16 = join(dir, 'diff16.safetensors');
    makeControlNetFile(f16, TINY_CN, { seed: 6, differenceFrom: model, dtype: 'F16' });
    const c16 = readControlNet(f16);
    const a16 = await withDifference(c16, read, shape);
    const h = (v: number): number => f16ToF32(f32ToF16(v));
    expect(
      same(
        a16.weights.get(k),
        c16.weights.get(k).map((d, i) => h(d + h(model.get(k)[i]))),
      ),
    ).toBe(true);
  });

  it("refuses a difference ControlNet whose shapes are another model's", async () => {
    const dir = tempDir();
    const model = new MapWeightSource(randomControlNetWeights(TINY_CN, 1));
    const file = join(dir, 'diff.safetensors');
    makeControlNetFile(file, TINY_CN, { differenceFrom: model });
    const cn = readControlNet(file);
    await expect(
      withDifference(
        cn,
        async () => new Float32Array(1),
        () => [1, 2, 3],
      ),
    ).rejects.toThrow(/made for another model/);
  });

  it('marks shuffle ControlNets for global average pooling by file name, as ComfyUI does', () => {
    const dir = tempDir();
    for (const [name, gap] of [
      ['control_v11e_sd15_shuffle', true],
      ['x_shuffle_fp16', true],
      ['shuffle_x', false],
    ] as const) {
      const file = join(dir, `${name}.safetensors`);
      makeControlNetFile(file, TINY_CN);
      expect(readControlNet(file).globalAveragePooling, name).toBe(gap);
    }
  });

  it('refuses ControlNets of other families, naming the family', () => {
    const dir = tempDir();
    const xl = join(dir, 'xl.safetensors');
    makeControlNetFile(xl, { ...TINY_CN, unet: { ...TINY_CN.unet, contextDim: 2048 } });
    expect(() => readControlNet(xl)).toThrow(UnsupportedModelError);
    expect(() => readControlNet(xl)).toThrow(/ControlNet for SDXL/);
    const adm = join(dir, 'adm.safetensors');
    makeControlNetFile(adm, { ...TINY_CN, unet: { ...TINY_CN.unet, admInChannels: 32 } });
    expect(() => readControlNet(adm)).toThrow(/ControlNet for SDXL.*label_emb/);
    const sd2 = join(dir, 'sd2.safetensors');
    makeControlNetFile(sd2, { ...TINY_CN, unet: { ...TINY_CN.unet, contextDim: 1024 } });
    expect(() => readControlNet(sd2)).toThrow(/ControlNet for SD2\.x/);
    const lin = join(dir, 'lin.safetensors');
    makeControlNetFile(lin, { ...TINY_CN, unet: { ...TINY_CN.unet, useLinearInProj: true } });
    expect(() => readControlNet(lin)).toThrow(/ControlNet for SD2\.x.*linear/);
  });

  it('reads pickles through the safe reader (a broken one fails naming the file), names T2I-Adapters, sends Control-LoRAs to their own reader (the full-ControlNet reader refuses them by name), truncated and foreign files', () => {
    const dir = tempDir();
    const pth = join(dir, 'control_sd15_canny.pth');
    writeFileSync(pth, Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00]));
    expect(() => readControlNet(pth)).toThrow(TorchFileError);
    expect(() => readControlNet(pth)).toThrow(/control_sd15_canny\.pth/);

    const write = (name: string, keys: string[]): string => {
      const f = join(dir, name);
      const w = SafetensorsWriter.create(
        f,
        keys.map((k) => ({ name: k, dtype: 'F32' as const, shape: [1] })),
      );
      for (const k of keys) w.write(k, new Float32Array(1));
      w.finish();
      return f;
    };
    // T2I-Adapters load through readControlModel (tests/controlnet/adapter.test.ts); the ControlNet reader names them.
    expect(() => readControlNet(write('t2i.safetensors', ['conv_in.weight', 'body.0.block1.weight', 'body.0.block2.weight']))).toThrow(
      /t2i\.safetensors is a T2I-Adapter/,
    );
    expect(() => readControlNet(write('light.safetensors', ['body.0.in_conv.weight']))).toThrow(/T2I-Adapter/);
    expect(() => readControlNet(write('lora.safetensors', ['lora_controlnet', 'input_hint_block.0.weight']))).toThrow(/Control-LoRA/);
    expect(() => readControlNet(write('other.safetensors', ['foo.weight']))).toThrow(/not a ControlNet/);

    const good = join(dir, 'good.safetensors');
    makeControlNetFile(good, TINY_CN);
    const bytes = readFileSync(good);
    const cut = join(dir, 'cut.safetensors');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 1000));
    expect(() => readControlNet(cut)).toThrow(/cut\.safetensors/);

    // A ControlNet missing a block the architecture implies.
    const w = randomControlNetWeights(TINY_CN);
    const keys = [...controlNetLayout(TINY_CN)].filter(([k]) => k !== 'zero_convs.5.0.bias');
    const partial = join(dir, 'partial.safetensors');
    const sw = SafetensorsWriter.create(
      partial,
      keys.map(([k, s]) => ({ name: k, dtype: 'F32' as const, shape: s })),
    );
    for (const [k] of keys) sw.write(k, w.get(k)!.data);
    sw.finish();
    expect(() => readControlNet(partial)).toThrow(/missing zero_convs\.5\.0\.bias/);
  });

  it("finds ControlNets through extra_model_paths.yaml: the a111 section's controlnet: models/ControlNet", () => {
    const dir = tempDir();
    const webui = join(dir, 'webui');
    mkdirSync(join(webui, 'models', 'ControlNet'), { recursive: true });
    makeControlNetFile(join(webui, 'models', 'ControlNet', 'control_v11p_sd15_canny.safetensors'), TINY_CN);
    const yaml = join(dir, 'extra_model_paths.yaml');
    writeFileSync(yaml, `a111:\n  base_path: ${webui}\n  controlnet: models/ControlNet\n`);
    const paths = new FolderPaths({ baseDir: dir });
    paths.loadExtraModelPaths(yaml);
    expect(paths.listFiles('controlnet')).toContain('control_v11p_sd15_canny.safetensors');
    expect(readControlNet(paths.require('controlnet', 'control_v11p_sd15_canny.safetensors')).config).toEqual(TINY_CN);
  });
});

describe('the demo ControlNet of `weft make-model tiny`', () => {
  it("has the tiny checkpoint's UNet structure and non-zero zero convs", async () => {
    const tiny = await makeTiny(2);
    const file = makeDemoControlNet(tiny.file, join(tiny.dir, 'models'), 0);
    expect(file.endsWith(join('controlnet', 'weft-tiny-controlnet.safetensors'))).toBe(true);
    const cn = readControlNet(file);
    expect(cn.config).toEqual({ unet: tiny.cfg.unet, hintChannels: 3 });
    for (let i = 0; i < 12; i++) expect(cn.weights.get(`zero_convs.${i}.0.weight`).some((v) => v !== 0)).toBe(true);
    expect(cn.weights.get('middle_block_out.0.weight').some((v) => v !== 0)).toBe(true);
  }, 60_000);
});
