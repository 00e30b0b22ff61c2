import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../engine/models/generate/rng.ts';
import { makeTinyCheckpoint } from '../../engine/models/make-model.ts';
import { SafetensorsFile, writeSafetensors } from '../../engine/formats/safetensors.ts';

/**
 * The tiny SD1 checkpoint and small adapter files for it, in every key layout the LoRA reader
 * accepts. Values are seeded random float32, kept in memory so the tests can recompute each patch
 * with their own loops.
 */

export interface Ckpt {
  dir: string;
  file: string;
  src: SafetensorsFile;
}

/** Closes the checkpoint and deletes the temp folder with every adapter written into it. */
export function removeCkpt(ckpt: Ckpt | undefined): void {
  if (!ckpt) return;
  ckpt.src.close();
  rmSync(ckpt.dir, { recursive: true, force: true });
}

export async function makeCkpt(seed = 11): Promise<Ckpt> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-lora-'));
  const file = join(dir, 'tiny-sd1.safetensors');
  await makeTinyCheckpoint(file, { seed });
  return { dir, file, src: SafetensorsFile.open(file) };
}

const U = 'model.diffusion_model.';
const TE = 'cond_stage_model.transformer.text_model.';

/**
 * Modules of the tiny checkpoint (32 channels, context 64, CLIP 64 wide) with their diffusers names,
 * written out by hand from the SD1 block layout rather than derived by the code under test.
 */
export const M = {
  q: {
    ldm: `${U}input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight`,
    diffusers: 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q',
    shape: [32, 32],
  },
  k2: {
    ldm: `${U}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight`,
    diffusers: 'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k',
    shape: [32, 64],
  },
  out1: {
    ldm: `${U}input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.weight`,
    diffusers: 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0',
    shape: [32, 32],
  },
  ff: {
    ldm: `${U}middle_block.1.transformer_blocks.0.ff.net.0.proj.weight`,
    diffusers: 'mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj',
    shape: [1024, 128],
  },
  ff2: {
    ldm: `${U}output_blocks.4.1.transformer_blocks.0.ff.net.2.weight`,
    diffusers: 'up_blocks.1.attentions.1.transformer_blocks.0.ff.net.2',
    shape: [128, 512],
  },
  projIn: { ldm: `${U}output_blocks.4.1.proj_in.weight`, diffusers: 'up_blocks.1.attentions.1.proj_in', shape: [128, 128, 1, 1] },
  conv3: { ldm: `${U}input_blocks.4.0.in_layers.2.weight`, diffusers: 'down_blocks.1.resnets.0.conv1', shape: [64, 32, 3, 3] },
  skip: { ldm: `${U}input_blocks.4.0.skip_connection.weight`, diffusers: 'down_blocks.1.resnets.0.conv_shortcut', shape: [64, 32, 1, 1] },
  up0: { ldm: `${U}output_blocks.2.1.conv.weight`, diffusers: 'up_blocks.0.upsamplers.0.conv', shape: [128, 128, 3, 3] },
  up1: { ldm: `${U}output_blocks.5.2.conv.weight`, diffusers: 'up_blocks.1.upsamplers.0.conv', shape: [128, 128, 3, 3] },
  down0: { ldm: `${U}input_blocks.3.0.op.weight`, diffusers: 'down_blocks.0.downsamplers.0.conv', shape: [32, 32, 3, 3] },
  time: { ldm: `${U}time_embed.0.weight`, diffusers: 'time_embedding.linear_1', shape: [128, 32] },
  teQ: { ldm: `${TE}encoder.layers.0.self_attn.q_proj.weight`, layer: 0, module: 'self_attn.q_proj', shape: [64, 64] },
  teFc2: { ldm: `${TE}encoder.layers.1.mlp.fc2.weight`, layer: 1, module: 'mlp.fc2', shape: [64, 256] },
} as const;

export interface Tensor {
  shape: number[];
  data: Float32Array;
  /** Stored dtype (F32 unless said). */
  dtype?: 'F32' | 'I64';
}

/** Tensors written in insertion order; `t` makes a random one and returns it. */
export class AdapterBuilder {
  readonly tensors = new Map<string, Tensor>();
  private readonly rng: Rng;

  constructor(
    readonly dir: string,
    seed: number,
  ) {
    this.rng = new Rng(seed);
  }

  t(name: string, shape: number[], std = 0.3): Float32Array {
    const data = this.rng.normal(new Float32Array(shape.reduce((a, b) => a * b, 1)), std);
    this.tensors.set(name, { shape, data });
    return data;
  }

  scalar(name: string, value: number): void {
    this.tensors.set(name, { shape: [], data: new Float32Array([value]) });
  }

  /** An int64 scalar, as LyCORIS saves IA3's `on_input` buffer. */
  int(name: string, value: number): void {
    this.tensors.set(name, { shape: [], data: new Float32Array([value]), dtype: 'I64' });
  }

  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`test adapter has no '${name}'`);
    return t;
  }

  write(name: string): string {
    const file = join(this.dir, name);
    writeSafetensors(
      file,
      [...this.tensors].map(([n, t]) =>
        t.dtype === 'I64'
          ? { name: n, dtype: 'I64' as const, shape: t.shape, data: BigInt64Array.from(t.data, (v) => BigInt(v)) }
          : { name: n, dtype: 'F32' as const, shape: t.shape, data: t.data },
      ),
      { ss_network_module: 'test' },
    );
    return file;
  }
}

const flat = (s: string): string => s.replace(/\./g, '_');
export const kohyaUnet = (diffusers: string): string => `lora_unet_${flat(diffusers)}`;
export const kohyaUnetLdm = (ldm: string): string => `lora_unet_${flat(ldm.slice(U.length, -'.weight'.length))}`;
export const kohyaTe = (layer: number, module: string, prefix = 'lora_te'): string =>
  `${prefix}_text_model_encoder_layers_${layer}_${flat(module)}`;

/** A LoRA pair (down [r, in…], up [out, r, 1…]) under a stem with the given role spellings. */
export function loraPair(
  b: AdapterBuilder,
  stem: string,
  out: number,
  downShape: number[],
  spelling: { up: string; down: string } = { up: '.lora_up.weight', down: '.lora_down.weight' },
  alpha?: number,
): void {
  const r = downShape[0];
  b.t(`${stem}${spelling.down}`, downShape);
  b.t(`${stem}${spelling.up}`, downShape.length === 4 ? [out, r, 1, 1] : [out, r]);
  if (alpha !== undefined) b.scalar(`${stem}.alpha`, alpha);
}
