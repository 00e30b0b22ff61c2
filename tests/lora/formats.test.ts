import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { patchedWeight } from '../../engine/models/lora/apply.ts';
import { parseAdapter, type ParsedAdapter } from '../../engine/models/lora/parse.ts';
import { type WeightPatch } from '../../engine/models/lora/types.ts';
import { SafetensorsFile } from '../../engine/formats/safetensors.ts';
import { AdapterBuilder, M, kohyaTe, kohyaUnet, kohyaUnetLdm, loraPair, makeCkpt, removeCkpt, type Ckpt } from './make-adapters.ts';
import { addScaled, doraRef, kronRef, loconTuckerRef, mmRef, numel, relErr, tuckerRef } from './reference.ts';

const TOL = 1e-5;
let ckpt: Ckpt;
let seed = 100;
beforeAll(async () => {
  ckpt = await makeCkpt();
});
afterAll(() => removeCkpt(ckpt));

const builder = (): AdapterBuilder => new AdapterBuilder(ckpt.dir, seed++);

function parse(b: AdapterBuilder, name: string): { parsed: ParsedAdapter; file: string } {
  const file = b.write(name);
  return { parsed: parseAdapter(file, SafetensorsFile.open(file), ckpt.src), file };
}

function patchFor(parsed: ParsedAdapter, target: string): WeightPatch {
  const p = parsed.patches.find((x) => x.target === target);
  if (!p) throw new Error(`no patch for ${target}`);
  return p;
}

/** The patched weight and the checkpoint's own. */
async function apply(
  parsed: ParsedAdapter,
  target: string,
  strength = 1,
): Promise<{ got: Float32Array; base: Float32Array; shape: readonly number[] }> {
  const base = ckpt.src.get(target);
  const shape = ckpt.src.shape(target);
  const got = await patchedWeight(target, base, shape, [{ patch: patchFor(parsed, target), strength }]);
  return { got, base, shape };
}

async function expectLora(
  parsed: ParsedAdapter,
  b: AdapterBuilder,
  stem: string,
  target: string,
  opts: { up?: string; down?: string; alpha?: number; strength?: number } = {},
): Promise<void> {
  const up = b.get(`${stem}${opts.up ?? '.lora_up.weight'}`);
  const down = b.get(`${stem}${opts.down ?? '.lora_down.weight'}`);
  const r = down.shape[0];
  const delta = mmRef(up.data, up.shape[0], r, down.data, numel(down.shape) / r);
  const strength = opts.strength ?? 1;
  const { got, base } = await apply(parsed, target, strength);
  expect(relErr(got, addScaled(base, delta, strength * (opts.alpha !== undefined ? opts.alpha / r : 1)))).toBeLessThan(TOL);
}

const sorted = (xs: readonly string[]): string[] => [...xs].sort();
const targets = (p: ParsedAdapter): string[] => sorted(p.patches.map((x) => x.target));

describe('the tiny checkpoint', () => {
  it('has the modules the adapters are written for, with the shapes written down', () => {
    for (const m of Object.values(M)) expect(ckpt.src.shape(m.ldm)).toEqual(m.shape);
  });
});

describe('kohya / sd-scripts LoRA and LoCon', () => {
  it('diffusers-named UNet keys, lora_te_, linear, 1×1 and 3×3 convs; junk comes back unmatched', async () => {
    const b = builder();
    loraPair(b, kohyaUnet(M.q.diffusers), 32, [4, 32], undefined, 2);
    loraPair(b, kohyaUnet(M.k2.diffusers), 32, [4, 64]);
    loraPair(b, kohyaUnet(M.out1.diffusers), 32, [8, 32], undefined, 8);
    loraPair(b, kohyaUnet(M.projIn.diffusers), 128, [4, 128, 1, 1], undefined, 1);
    loraPair(b, kohyaUnet(M.conv3.diffusers), 64, [4, 32, 3, 3], undefined, 3);
    loraPair(b, kohyaUnet(M.up0.diffusers), 128, [2, 128, 3, 3], undefined, 1);
    loraPair(b, kohyaUnet(M.up1.diffusers), 128, [2, 128, 3, 3]);
    loraPair(b, kohyaUnet(M.down0.diffusers), 32, [2, 32, 3, 3]);
    loraPair(b, kohyaUnet(M.skip.diffusers), 64, [2, 32, 1, 1]);
    loraPair(b, kohyaUnet(M.time.diffusers), 128, [4, 32], undefined, 4);
    loraPair(b, kohyaTe(0, 'self_attn.q_proj'), 64, [4, 64], undefined, 4);
    loraPair(b, kohyaTe(1, 'mlp.fc2'), 64, [4, 256], undefined, 1);
    const junk = [
      'lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight',
      'lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_unknown',
      'lora_unet_time_embedding_linear_2.alpha',
    ];
    b.t(junk[0], [4, 8]);
    b.t(junk[1], [4]);
    b.scalar(junk[2], 3);
    const { parsed } = parse(b, 'kohya.safetensors');
    expect(parsed.format).toBe('kohya');
    expect(sorted(parsed.unmatched)).toEqual(sorted(junk));
    expect(targets(parsed)).toEqual(
      sorted([M.q, M.k2, M.out1, M.projIn, M.conv3, M.up0, M.up1, M.down0, M.skip, M.time, M.teQ, M.teFc2].map((m) => m.ldm)),
    );
    await expectLora(parsed, b, kohyaUnet(M.q.diffusers), M.q.ldm, { alpha: 2 });
    await expectLora(parsed, b, kohyaUnet(M.k2.diffusers), M.k2.ldm);
    await expectLora(parsed, b, kohyaUnet(M.out1.diffusers), M.out1.ldm, { alpha: 8, strength: 0.7 });
    await expectLora(parsed, b, kohyaUnet(M.projIn.diffusers), M.projIn.ldm, { alpha: 1 });
    await expectLora(parsed, b, kohyaUnet(M.conv3.diffusers), M.conv3.ldm, { alpha: 3, strength: -1.3 });
    await expectLora(parsed, b, kohyaUnet(M.up0.diffusers), M.up0.ldm, { alpha: 1 });
    await expectLora(parsed, b, kohyaUnet(M.up1.diffusers), M.up1.ldm);
    await expectLora(parsed, b, kohyaUnet(M.down0.diffusers), M.down0.ldm);
    await expectLora(parsed, b, kohyaUnet(M.skip.diffusers), M.skip.ldm);
    await expectLora(parsed, b, kohyaUnet(M.time.diffusers), M.time.ldm, { alpha: 4 });
    await expectLora(parsed, b, kohyaTe(0, 'self_attn.q_proj'), M.teQ.ldm, { alpha: 4 });
    await expectLora(parsed, b, kohyaTe(1, 'mlp.fc2'), M.teFc2.ldm, { alpha: 1 });
  });

  it('LDM-named UNet keys, lora_te1_, and the Tucker LoCon form with lora_mid', async () => {
    const b = builder();
    loraPair(b, kohyaUnetLdm(M.q.ldm), 32, [4, 32], undefined, 4);
    loraPair(b, kohyaTe(0, 'self_attn.q_proj', 'lora_te1'), 64, [2, 64]);
    const mids: [typeof M.conv3 | typeof M.up1, string, number, number | undefined][] = [
      [M.conv3, kohyaUnetLdm(M.conv3.ldm), 4, 2],
      [M.up1, kohyaUnet(M.up1.diffusers), 3, undefined],
    ];
    for (const [m, stem, r, alpha] of mids) {
      b.t(`${stem}.lora_down.weight`, [r, m.shape[1], 1, 1]);
      b.t(`${stem}.lora_mid.weight`, [r, r, 3, 3]);
      b.t(`${stem}.lora_up.weight`, [m.shape[0], r, 1, 1]);
      if (alpha !== undefined) b.scalar(`${stem}.alpha`, alpha);
    }
    const { parsed } = parse(b, 'kohya-ldm.safetensors');
    expect(parsed.unmatched).toEqual([]);
    expect(targets(parsed)).toEqual(sorted([M.q.ldm, M.teQ.ldm, M.conv3.ldm, M.up1.ldm]));
    await expectLora(parsed, b, kohyaUnetLdm(M.q.ldm), M.q.ldm, { alpha: 4 });
    await expectLora(parsed, b, kohyaTe(0, 'self_attn.q_proj', 'lora_te1'), M.teQ.ldm);
    for (const [m, stem, r, alpha] of mids) {
      const delta = loconTuckerRef(
        b.get(`${stem}.lora_up.weight`).data,
        b.get(`${stem}.lora_down.weight`).data,
        b.get(`${stem}.lora_mid.weight`).data,
        m.shape[0],
        m.shape[1],
        r,
        3,
        3,
      );
      const { got, base } = await apply(parsed, m.ldm, 0.9);
      expect(relErr(got, addScaled(base, delta, 0.9 * (alpha !== undefined ? alpha / r : 1)))).toBeLessThan(TOL);
    }
  });

  it('two entries for one weight: the later one is applied, the earlier reported as shadowed', () => {
    const b = builder();
    loraPair(b, kohyaUnet(M.q.diffusers), 32, [4, 32]);
    loraPair(b, kohyaUnetLdm(M.q.ldm), 32, [2, 32]);
    const { parsed } = parse(b, 'dup.safetensors');
    expect(parsed.patches).toHaveLength(1);
    expect(sorted(parsed.shadowed)).toEqual(
      sorted([`${kohyaUnet(M.q.diffusers)}.lora_down.weight`, `${kohyaUnet(M.q.diffusers)}.lora_up.weight`]),
    );
  });
});

describe('diffusers / PEFT LoRA', () => {
  const A = { up: '.lora_B.weight', down: '.lora_A.weight' };

  it('unet./text_encoder. with lora_A/lora_B, alpha when present (scale 1 without), a linear-shaped LoRA on a 1×1 conv', async () => {
    const b = builder();
    loraPair(b, `unet.${M.q.diffusers}`, 32, [4, 32], A, 8);
    loraPair(b, `unet.${M.out1.diffusers}`, 32, [4, 32], A);
    loraPair(b, `unet.${M.ff.diffusers}`, 1024, [8, 128], A, 4);
    loraPair(b, `unet.${M.projIn.diffusers}`, 128, [4, 128], A);
    loraPair(b, `text_encoder.text_model.encoder.layers.1.mlp.fc2`, 64, [4, 256], A, 2);
    const junk = [
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_magnitude_vector',
      'text_encoder.text_model.final_layer_norm.lora_A.weight',
    ];
    b.t(junk[0], [32]);
    b.t(junk[1], [4, 64]);
    const { parsed } = parse(b, 'peft.safetensors');
    expect(parsed.format).toBe('peft');
    expect(sorted(parsed.unmatched)).toEqual(sorted(junk));
    expect(targets(parsed)).toEqual(sorted([M.q.ldm, M.out1.ldm, M.ff.ldm, M.projIn.ldm, M.teFc2.ldm]));
    await expectLora(parsed, b, `unet.${M.q.diffusers}`, M.q.ldm, { ...A, alpha: 8 });
    await expectLora(parsed, b, `unet.${M.out1.diffusers}`, M.out1.ldm, A);
    await expectLora(parsed, b, `unet.${M.ff.diffusers}`, M.ff.ldm, { ...A, alpha: 4, strength: 0.5 });
    await expectLora(parsed, b, `unet.${M.projIn.diffusers}`, M.projIn.ldm, A);
    await expectLora(parsed, b, 'text_encoder.text_model.encoder.layers.1.mlp.fc2', M.teFc2.ldm, { ...A, alpha: 2 });
  });

  it('PEFT base_model.model. prefixes (UNet and text encoder)', async () => {
    const b = builder();
    loraPair(b, `base_model.model.${M.k2.diffusers}`, 32, [4, 64], A);
    loraPair(b, 'base_model.model.text_model.encoder.layers.0.self_attn.q_proj', 64, [4, 64], A);
    const { parsed } = parse(b, 'peft-base.safetensors');
    expect(parsed.unmatched).toEqual([]);
    expect(targets(parsed)).toEqual(sorted([M.k2.ldm, M.teQ.ldm]));
    await expectLora(parsed, b, `base_model.model.${M.k2.diffusers}`, M.k2.ldm, A);
    await expectLora(parsed, b, 'base_model.model.text_model.encoder.layers.0.self_attn.q_proj', M.teQ.ldm, A);
  });

  it('older diffusers spellings: processor.to_q_lora.up, processor.to_out_lora, .lora.up, lora_linear_layer', async () => {
    const b = builder();
    const old = { up: '_lora.up.weight', down: '_lora.down.weight' };
    const dot = { up: '.lora.up.weight', down: '.lora.down.weight' };
    const tl = { up: '.lora_linear_layer.up.weight', down: '.lora_linear_layer.down.weight' };
    const qStem = 'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q';
    const outStem = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out';
    loraPair(b, qStem, 32, [4, 32], old);
    loraPair(b, outStem, 32, [4, 32], old);
    loraPair(b, `unet.${M.k2.diffusers}`, 32, [4, 64], dot);
    loraPair(b, 'text_encoder.text_model.encoder.layers.0.self_attn.q_proj', 64, [4, 64], tl);
    const { parsed } = parse(b, 'diffusers-old.safetensors');
    expect(parsed.unmatched).toEqual([]);
    expect(targets(parsed)).toEqual(sorted([M.q.ldm, M.out1.ldm, M.k2.ldm, M.teQ.ldm]));
    await expectLora(parsed, b, qStem, M.q.ldm, old);
    await expectLora(parsed, b, outStem, M.out1.ldm, old);
    await expectLora(parsed, b, `unet.${M.k2.diffusers}`, M.k2.ldm, dot);
    await expectLora(parsed, b, 'text_encoder.text_model.encoder.layers.0.self_attn.q_proj', M.teQ.ldm, tl);
  });
});

describe("ComfyUI's own naming", () => {
  it('diffusion_model.<ldm>, text_encoders.clip_l.transformer.…, lycoris_<diffusers>', async () => {
    const b = builder();
    const qStem = 'diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q';
    const teStem = 'text_encoders.clip_l.transformer.text_model.encoder.layers.1.mlp.fc2';
    const lyStem = `lycoris_${M.ff.diffusers.replace(/\./g, '_')}`;
    loraPair(b, qStem, 32, [4, 32], undefined, 2);
    loraPair(b, teStem, 64, [4, 256]);
    loraPair(b, lyStem, 1024, [4, 128], undefined, 4);
    const junk = ['diffusion_model.input_blocks.1.1.transformer_blocks.0.attn9.to_q.lora_up.weight'];
    b.t(junk[0], [32, 4]);
    const { parsed } = parse(b, 'comfy.safetensors');
    expect(sorted(parsed.unmatched)).toEqual(junk);
    expect(targets(parsed)).toEqual(sorted([M.q.ldm, M.teFc2.ldm, M.ff.ldm]));
    await expectLora(parsed, b, qStem, M.q.ldm, { alpha: 2 });
    await expectLora(parsed, b, teStem, M.teFc2.ldm);
    await expectLora(parsed, b, lyStem, M.ff.ldm, { alpha: 4 });
  });
});

describe('LyCORIS LoHa', () => {
  it('plain (linear and a flattened 3×3 conv) and Tucker (hada_t1/t2)', async () => {
    const b = builder();
    const q = kohyaUnet(M.q.diffusers);
    const c = kohyaUnet(M.conv3.diffusers);
    const t = kohyaUnet(M.up0.diffusers);
    for (const w of ['1', '2']) {
      b.t(`${q}.hada_w${w}_a`, [32, 4]);
      b.t(`${q}.hada_w${w}_b`, [4, 32]);
      b.t(`${c}.hada_w${w}_a`, [64, 2]);
      b.t(`${c}.hada_w${w}_b`, [2, 32 * 9]);
      b.t(`${t}.hada_w${w}_a`, [4, 128]);
      b.t(`${t}.hada_w${w}_b`, [4, 128]);
      b.t(`${t}.hada_t${w}`, [4, 4, 3, 3]);
    }
    b.scalar(`${q}.alpha`, 2);
    b.scalar(`${t}.alpha`, 2);
    const { parsed } = parse(b, 'loha.safetensors');
    expect(parsed.format).toBe('lycoris');
    expect(parsed.unmatched).toEqual([]);
    expect(targets(parsed)).toEqual(sorted([M.q.ldm, M.conv3.ldm, M.up0.ldm]));
    expect(patchFor(parsed, M.up0.ldm).kind).toBe('loha');

    const hada = (stem: string, w: string, m: number, r: number, n: number): Float64Array =>
      mmRef(b.get(`${stem}.hada_w${w}_a`).data, m, r, b.get(`${stem}.hada_w${w}_b`).data, n);
    const prod = (x: Float64Array, y: Float64Array): Float64Array => x.map((v, i) => v * y[i]);
    let r = await apply(parsed, M.q.ldm, 0.8);
    expect(relErr(r.got, addScaled(r.base, prod(hada(q, '1', 32, 4, 32), hada(q, '2', 32, 4, 32)), 0.8 * (2 / 4)))).toBeLessThan(TOL);
    r = await apply(parsed, M.conv3.ldm);
    expect(relErr(r.got, addScaled(r.base, prod(hada(c, '1', 64, 2, 288), hada(c, '2', 64, 2, 288)), 1))).toBeLessThan(TOL);
    const tk = (w: string): Float64Array =>
      tuckerRef(b.get(`${t}.hada_t${w}`).data, [4, 4, 3, 3], b.get(`${t}.hada_w${w}_b`).data, 128, b.get(`${t}.hada_w${w}_a`).data, 128);
    r = await apply(parsed, M.up0.ldm, 1.5);
    expect(relErr(r.got, addScaled(r.base, prod(tk('1'), tk('2')), 1.5 * (2 / 4)))).toBeLessThan(TOL);
  });
});

describe('LyCORIS LoKr', () => {
  it('whole and low-rank factors, a conv kernel factor, and the Tucker w2', async () => {
    const b = builder();
    const s = {
      full: kohyaUnet(M.q.diffusers),
      w2pair: kohyaUnet(M.k2.diffusers),
      both: kohyaUnet(M.ff.diffusers),
      conv: kohyaUnet(M.conv3.diffusers),
      tucker: kohyaUnet(M.up1.diffusers),
    };
    b.t(`${s.full}.lokr_w1`, [4, 4]);
    b.t(`${s.full}.lokr_w2`, [8, 8]);
    b.scalar(`${s.full}.alpha`, 3);
    b.t(`${s.w2pair}.lokr_w1`, [4, 8]);
    b.t(`${s.w2pair}.lokr_w2_a`, [8, 2]);
    b.t(`${s.w2pair}.lokr_w2_b`, [2, 8]);
    b.scalar(`${s.w2pair}.alpha`, 4);
    b.t(`${s.both}.lokr_w1_a`, [16, 2]);
    b.t(`${s.both}.lokr_w1_b`, [2, 8]);
    b.t(`${s.both}.lokr_w2_a`, [64, 3]);
    b.t(`${s.both}.lokr_w2_b`, [3, 16]);
    b.scalar(`${s.both}.alpha`, 6);
    b.t(`${s.conv}.lokr_w1`, [8, 4]);
    b.t(`${s.conv}.lokr_w2`, [8, 8, 3, 3]);
    b.t(`${s.tucker}.lokr_w1`, [8, 8]);
    b.t(`${s.tucker}.lokr_w2_a`, [4, 16]);
    b.t(`${s.tucker}.lokr_w2_b`, [4, 16]);
    b.t(`${s.tucker}.lokr_t2`, [4, 4, 3, 3]);
    b.scalar(`${s.tucker}.alpha`, 2);
    const { parsed } = parse(b, 'lokr.safetensors');
    expect(parsed.unmatched).toEqual([]);
    expect(targets(parsed)).toEqual(sorted([M.q.ldm, M.k2.ldm, M.ff.ldm, M.conv3.ldm, M.up1.ldm]));
    const g = (n: string): Float32Array => b.get(n).data;

    // Both factors whole: ComfyUI has no rank to divide by, so alpha is ignored.
    let r = await apply(parsed, M.q.ldm);
    expect(relErr(r.got, addScaled(r.base, kronRef(g(`${s.full}.lokr_w1`), [4, 4], g(`${s.full}.lokr_w2`), [8, 8]), 1))).toBeLessThan(TOL);
    r = await apply(parsed, M.k2.ldm, 0.5);
    const w2 = mmRef(g(`${s.w2pair}.lokr_w2_a`), 8, 2, g(`${s.w2pair}.lokr_w2_b`), 8);
    expect(relErr(r.got, addScaled(r.base, kronRef(g(`${s.w2pair}.lokr_w1`), [4, 8], w2, [8, 8]), 0.5 * (4 / 2)))).toBeLessThan(TOL);
    r = await apply(parsed, M.ff.ldm);
    const bw1 = mmRef(g(`${s.both}.lokr_w1_a`), 16, 2, g(`${s.both}.lokr_w1_b`), 8);
    const bw2 = mmRef(g(`${s.both}.lokr_w2_a`), 64, 3, g(`${s.both}.lokr_w2_b`), 16);
    // The rank is w2's when both factors are low-rank (ComfyUI's `dim` is overwritten by w2_b's).
    expect(relErr(r.got, addScaled(r.base, kronRef(bw1, [16, 8], bw2, [64, 16]), 6 / 3))).toBeLessThan(TOL);
    r = await apply(parsed, M.conv3.ldm, -0.7);
    expect(
      relErr(r.got, addScaled(r.base, kronRef(g(`${s.conv}.lokr_w1`), [8, 4], g(`${s.conv}.lokr_w2`), [8, 8, 3, 3]), -0.7)),
    ).toBeLessThan(TOL);
    r = await apply(parsed, M.up1.ldm);
    const tw2 = tuckerRef(g(`${s.tucker}.lokr_t2`), [4, 4, 3, 3], g(`${s.tucker}.lokr_w2_b`), 16, g(`${s.tucker}.lokr_w2_a`), 16);
    expect(relErr(r.got, addScaled(r.base, kronRef(g(`${s.tucker}.lokr_w1`), [8, 8], tw2, [16, 16, 3, 3]), 2 / 4))).toBeLessThan(TOL);
  });
});

describe('LyCORIS IA3', () => {
  it('scales output rows (on_input 0) or input columns (on_input 1), linear and conv', async () => {
    const b = builder();
    const cases = [
      { m: M.k2, onInput: 0, shape: [32] },
      { m: M.ff2, onInput: 1, shape: [512] },
      { m: M.conv3, onInput: 1, shape: [1, 32, 1, 1] },
      { m: M.skip, onInput: 0, shape: [1, 64, 1, 1] },
    ];
    for (const c of cases) {
      b.t(`${kohyaUnet(c.m.diffusers)}.weight`, c.shape);
      b.int(`${kohyaUnet(c.m.diffusers)}.on_input`, c.onInput);
    }
    const junk = [`${kohyaUnet(M.q.diffusers)}.on_input`];
    b.int(junk[0], 1);
    const { parsed } = parse(b, 'ia3.safetensors');
    expect(sorted(parsed.unmatched)).toEqual(junk);
    expect(targets(parsed)).toEqual(sorted(cases.map((c) => c.m.ldm)));
    for (const c of cases) {
      const p = patchFor(parsed, c.m.ldm);
      expect(p.kind === 'ia3' && p.onInput).toBe(c.onInput === 1);
      const s = b.get(`${kohyaUnet(c.m.diffusers)}.weight`).data;
      const { got, base, shape } = await apply(parsed, c.m.ldm, 0.6);
      const [out, inCh] = shape;
      const sp = numel(shape) / (out * inCh);
      const want = new Float64Array(base.length);
      for (let o = 0; o < out; o++)
        for (let i = 0; i < inCh; i++)
          for (let k = 0; k < sp; k++) {
            const f = (o * inCh + i) * sp + k;
            want[f] = base[f] + 0.6 * base[f] * s[c.onInput ? i : o];
          }
      expect(relErr(got, want)).toBeLessThan(TOL);
    }
  });
});

describe('full differences', () => {
  it('diff and diff_b (weights and biases), w_norm/b_norm, in kohya and ComfyUI naming', async () => {
    const b = builder();
    const proj = 'diffusion_model.output_blocks.4.1.proj_in';
    b.t(`${proj}.diff`, [128, 128, 1, 1]);
    b.t(`${proj}.diff_b`, [128]);
    const time = kohyaUnet(M.time.diffusers);
    b.t(`${time}.diff`, [128, 32]);
    b.t(`${time}.diff_b`, [128]);
    b.t(`${kohyaTe(1, 'mlp.fc2')}.diff`, [64, 256]);
    const norm = 'diffusion_model.middle_block.1.norm';
    b.t(`${norm}.w_norm`, [128]);
    b.t(`${norm}.b_norm`, [128]);
    const { parsed } = parse(b, 'diff.safetensors');
    expect(parsed.unmatched).toEqual([]);
    const U = 'model.diffusion_model.';
    const cases: [string, string][] = [
      [M.projIn.ldm, `${proj}.diff`],
      [`${U}output_blocks.4.1.proj_in.bias`, `${proj}.diff_b`],
      [M.time.ldm, `${time}.diff`],
      [`${U}time_embed.0.bias`, `${time}.diff_b`],
      [M.teFc2.ldm, `${kohyaTe(1, 'mlp.fc2')}.diff`],
      [`${U}middle_block.1.norm.weight`, `${norm}.w_norm`],
      [`${U}middle_block.1.norm.bias`, `${norm}.b_norm`],
    ];
    expect(targets(parsed)).toEqual(sorted(cases.map((c) => c[0])));
    for (const [target, key] of cases) {
      const { got, base } = await apply(parsed, target, 0.3);
      expect(relErr(got, addScaled(base, b.get(key).data, 0.3))).toBeLessThan(TOL);
    }
  });
});

describe('DoRA (dora_scale, ComfyUI weight_decompose)', () => {
  it('linear and 3×3 LoCon, strength 1 and a partial strength', async () => {
    const b = builder();
    const q = kohyaUnet(M.q.diffusers);
    const c = kohyaUnet(M.conv3.diffusers);
    loraPair(b, q, 32, [4, 32], undefined, 4);
    b.t(`${q}.dora_scale`, [1, 32], 1);
    loraPair(b, c, 64, [4, 32, 3, 3], undefined, 2);
    b.t(`${c}.dora_scale`, [1, 32, 1, 1], 1);
    const { parsed } = parse(b, 'dora.safetensors');
    expect(parsed.unmatched).toEqual([]);
    for (const [stem, m, alpha] of [
      [q, M.q, 4],
      [c, M.conv3, 2],
    ] as const) {
      const up = b.get(`${stem}.lora_up.weight`);
      const down = b.get(`${stem}.lora_down.weight`);
      const delta = mmRef(up.data, up.shape[0], 4, down.data, numel(down.shape) / 4);
      for (const strength of [1, 0.6]) {
        const { got, base } = await apply(parsed, m.ldm, strength);
        expect(relErr(got, doraRef(base, [...m.shape], delta, alpha / 4, b.get(`${stem}.dora_scale`).data, strength))).toBeLessThan(TOL);
      }
    }
  });
});

describe('GLoRA', () => {
  it('W·a1·a2 + b1·b2 scaled by alpha / rank', async () => {
    const b = builder();
    const s = kohyaUnet(M.k2.diffusers);
    b.t(`${s}.a1.weight`, [64, 4]);
    b.t(`${s}.a2.weight`, [4, 64]);
    b.t(`${s}.b1.weight`, [32, 4]);
    b.t(`${s}.b2.weight`, [4, 64]);
    b.scalar(`${s}.alpha`, 2);
    const { parsed } = parse(b, 'glora.safetensors');
    expect(parsed.unmatched).toEqual([]);
    const { got, base } = await apply(parsed, M.k2.ldm, 0.9);
    const wa = mmRef(mmRef(base, 32, 64, b.get(`${s}.a1.weight`).data, 4), 32, 4, b.get(`${s}.a2.weight`).data, 64);
    const bb = mmRef(b.get(`${s}.b1.weight`).data, 32, 4, b.get(`${s}.b2.weight`).data, 64);
    expect(
      relErr(
        got,
        addScaled(
          base,
          wa.map((v, i) => v + bb[i]),
          0.9 * (2 / 4),
        ),
      ),
    ).toBeLessThan(TOL);
  });
});

describe('strengths and stacking', () => {
  it('strength 0 gives the base weight bit for bit, for every kind', async () => {
    const b = builder();
    loraPair(b, kohyaUnet(M.q.diffusers), 32, [4, 32], undefined, 2);
    b.t(`${kohyaUnet(M.q.diffusers)}.dora_scale`, [1, 32], 1);
    loraPair(b, kohyaUnet(M.conv3.diffusers), 64, [4, 32, 3, 3]);
    b.t(`${kohyaUnet(M.k2.diffusers)}.diff`, [32, 64]);
    b.t(`${kohyaUnet(M.ff2.diffusers)}.weight`, [128]);
    b.int(`${kohyaUnet(M.ff2.diffusers)}.on_input`, 0);
    const { parsed } = parse(b, 'zero.safetensors');
    expect(parsed.patches).toHaveLength(4);
    for (const p of parsed.patches) {
      const base = ckpt.src.get(p.target);
      const got = await patchedWeight(p.target, base, ckpt.src.shape(p.target), [{ patch: p, strength: 0 }]);
      expect(got).not.toBe(base);
      expect(Buffer.from(got.buffer).equals(Buffer.from(base.buffer))).toBe(true);
    }
  });

  it('two adapters on one weight add up, and the base array is left alone', async () => {
    const b1 = builder();
    loraPair(b1, kohyaUnet(M.q.diffusers), 32, [4, 32], undefined, 2);
    const b2 = builder();
    loraPair(b2, `unet.${M.q.diffusers}`, 32, [3, 32], { up: '.lora_B.weight', down: '.lora_A.weight' });
    const p1 = parse(b1, 'stack1.safetensors').parsed;
    const p2 = parse(b2, 'stack2.safetensors').parsed;
    const base = ckpt.src.get(M.q.ldm);
    const copy = base.slice();
    const got = await patchedWeight(M.q.ldm, base, M.q.shape, [
      { patch: patchFor(p1, M.q.ldm), strength: 0.8 },
      { patch: patchFor(p2, M.q.ldm), strength: -0.5 },
    ]);
    expect(base).toEqual(copy);
    const d1 = mmRef(
      b1.get(`${kohyaUnet(M.q.diffusers)}.lora_up.weight`).data,
      32,
      4,
      b1.get(`${kohyaUnet(M.q.diffusers)}.lora_down.weight`).data,
      32,
    );
    const d2 = mmRef(b2.get(`unet.${M.q.diffusers}.lora_B.weight`).data, 32, 3, b2.get(`unet.${M.q.diffusers}.lora_A.weight`).data, 32);
    const want = Float64Array.from(base, (v, i) => v + 0.8 * (2 / 4) * d1[i] - 0.5 * d2[i]);
    expect(relErr(got, want)).toBeLessThan(TOL);
  });
});
