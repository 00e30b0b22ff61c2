import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdapterArchitectureError, parseAdapter } from '../../engine/models/lora/parse.ts';
import { SafetensorsFile } from '../../engine/formats/safetensors.ts';
import { AdapterBuilder, M, kohyaTe, kohyaUnet, loraPair, makeCkpt, removeCkpt, type Ckpt } from './make-adapters.ts';

let ckpt: Ckpt;
beforeAll(async () => {
  ckpt = await makeCkpt(5);
});
afterAll(() => removeCkpt(ckpt));

function tryParse(build: (b: AdapterBuilder) => void, name: string): { error: unknown; file: string } {
  const b = new AdapterBuilder(ckpt.dir, name.length);
  build(b);
  const file = b.write(name);
  try {
    parseAdapter(file, SafetensorsFile.open(file), ckpt.src);
  } catch (error) {
    return { error, file };
  }
  return { error: undefined, file };
}

function archError(build: (b: AdapterBuilder) => void, name: string, family: string): void {
  const { error, file } = tryParse(build, name);
  expect(error).toBeInstanceOf(AdapterArchitectureError);
  const e = error as AdapterArchitectureError;
  expect(e.family).toBe(family);
  expect(e.message).toContain(file);
  expect(e.message).toContain(family);
}

describe('adapters for other model families', () => {
  it('an SDXL LoRA with a second text encoder (lora_te2_)', () => {
    archError(
      (b) => {
        loraPair(b, kohyaUnet(M.q.diffusers), 32, [4, 32]);
        loraPair(b, kohyaTe(0, 'self_attn.q_proj', 'lora_te2'), 1280, [4, 1280]);
      },
      'sdxl-te2.safetensors',
      'SDXL',
    );
  });

  it('diffusers text_encoder_2 keys', () => {
    archError(
      (b) =>
        loraPair(b, 'text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj', 1280, [4, 1280], {
          up: '.lora_B.weight',
          down: '.lora_A.weight',
        }),
      'sdxl-peft.safetensors',
      'SDXL',
    );
  });

  it('an SDXL UNet-only LoRA: 2048-wide cross-attention context', () => {
    archError((b) => loraPair(b, kohyaUnet(M.k2.diffusers), 32, [4, 2048]), 'sdxl-ctx.safetensors', 'SDXL');
  });

  it('an SDXL UNet-only LoRA: transformer blocks deeper than SD1 has', () => {
    archError(
      (b) => loraPair(b, 'lora_unet_down_blocks_1_attentions_0_transformer_blocks_3_attn1_to_q', 640, [4, 640]),
      'sdxl-depth.safetensors',
      'SDXL',
    );
  });

  it('an SD2 LoRA: 1024-wide context', () => {
    archError((b) => loraPair(b, kohyaUnet(M.k2.diffusers), 32, [4, 1024], undefined, 4), 'sd2.safetensors', 'SD2');
  });

  it('a Flux LoRA', () => {
    archError((b) => loraPair(b, 'lora_unet_double_blocks_0_img_attn_qkv', 9216, [4, 3072]), 'flux.safetensors', 'Flux');
  });
});

describe('shapes that do not fit', () => {
  it('names the key, the expected and the actual shape', () => {
    const { error } = tryParse((b) => loraPair(b, kohyaUnet(M.q.diffusers), 32, [4, 48]), 'bad-in.safetensors');
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(AdapterArchitectureError);
    const msg = (error as Error).message;
    expect(msg).toContain(`${kohyaUnet(M.q.diffusers)}.lora_down.weight`);
    expect(msg).toContain('expected [32, 32]');
    expect(msg).toContain('got [32, 48]');
  });

  it('blames the up factor when the output width is wrong', () => {
    const { error } = tryParse((b) => loraPair(b, kohyaUnet(M.conv3.diffusers), 96, [4, 32, 3, 3]), 'bad-out.safetensors');
    const msg = (error as Error).message;
    expect(msg).toContain(`${kohyaUnet(M.conv3.diffusers)}.lora_up.weight`);
    expect(msg).toContain('expected [64, 32, 3, 3]');
    expect(msg).toContain('got [96, 32, 3, 3]');
  });

  it('a rank mismatch between up and down', () => {
    const { error } = tryParse((b) => {
      b.t(`${kohyaUnet(M.q.diffusers)}.lora_down.weight`, [4, 32]);
      b.t(`${kohyaUnet(M.q.diffusers)}.lora_up.weight`, [32, 3]);
    }, 'bad-rank.safetensors');
    expect((error as Error).message).toMatch(/rank mismatch/);
  });

  it('a diff of the wrong shape, an IA3 scale of the wrong length', () => {
    let { error } = tryParse((b) => b.t(`${kohyaUnet(M.k2.diffusers)}.diff`, [64, 32]), 'bad-diff.safetensors');
    expect((error as Error).message).toContain('expected [32, 64], got [64, 32]');
    ({ error } = tryParse((b) => {
      b.t(`${kohyaUnet(M.k2.diffusers)}.weight`, [64]);
      b.int(`${kohyaUnet(M.k2.diffusers)}.on_input`, 0);
    }, 'bad-ia3.safetensors'));
    expect((error as Error).message).toContain('expected [32], got [64]');
  });

  it('a LoRA half without its other half', () => {
    const { error } = tryParse((b) => b.t(`${kohyaUnet(M.q.diffusers)}.lora_up.weight`, [32, 4]), 'half.safetensors');
    expect((error as Error).message).toContain(`${kohyaUnet(M.q.diffusers)}.lora_down.weight`);
  });
});

describe('pickled adapters', () => {
  it('are refused before reading, with advice to convert them', () => {
    const file = join(ckpt.dir, 'old-lora.pt');
    writeFileSync(file, Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]));
    expect(() => SafetensorsFile.open(file)).toThrow(/convert it to \.safetensors/);
  });
});
