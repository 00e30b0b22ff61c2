import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import type { WeightSource } from '../../engine/core/weights.ts';
import { SafetensorsFile, SafetensorsWriter } from '../../engine/formats/safetensors.ts';
import { FamilyRegistry } from '../../engine/models/families/index.ts';
import { openClipForwardRef } from '../../engine/models/families/openclip/reference/openclip.ts';
import { SD1 } from '../../engine/models/families/sd1/index.ts';
import { unetForwardRef } from '../../engine/models/families/sd1/reference/unet.ts';
import { SD2 } from '../../engine/models/families/sd2/index.ts';
import { sd1Weights } from '../../engine/models/families/sd1/weight-views.ts';
import { parseAdapter, patchedWeight, type ParsedAdapter } from '../../engine/models/lora/index.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import type { OrtClip } from '../../engine/models/ort-clip.ts';
import { addPatches, type PatchEntry } from '../../engine/models/patching/patch-set.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { makeTinySd2, type TinySd2 } from './tiny-sd2.ts';

/*
 * LoRAs on the tiny SD2 checkpoint in kohya, PEFT and diffusers names: OpenCLIP-H's q/k/v LoRAs
 * patch thirds of the fused in_proj (as ComfyUI patches its separate q/k/v weights), the others
 * their tensors; patched weights against W + s·(α/r)·up·down written out here, and the patched CLIP
 * and UNet (branch and merge modes) against the reference nets on those weights.
 */

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const H = 'cond_stage_model.model.transformer.resblocks.';
const U = 'model.diffusion_model.';
const R = 4;
let t: TinySd2;
let loraFile: string;

interface Pair {
  key: string;
  up: string;
  down: string;
  target: string;
  rows?: [number, number];
  alpha?: number;
  out: number;
  inp: number;
}
const W = 64;
// Each adapter stem with the tensor (and row block) ComfyUI's names say it patches.
const PAIRS: Pair[] = [
  {
    key: 'lora_te_text_model_encoder_layers_1_self_attn_q_proj',
    up: '.lora_up.weight',
    down: '.lora_down.weight',
    target: `${H}1.attn.in_proj_weight`,
    rows: [0, W],
    alpha: 2,
    out: W,
    inp: W,
  },
  {
    key: 'lora_te_text_model_encoder_layers_1_self_attn_v_proj',
    up: '.lora_up.weight',
    down: '.lora_down.weight',
    target: `${H}1.attn.in_proj_weight`,
    rows: [2 * W, W],
    alpha: 8,
    out: W,
    inp: W,
  },
  {
    key: 'text_encoder.text_model.encoder.layers.1.self_attn.k_proj',
    up: '.lora_B.weight',
    down: '.lora_A.weight',
    target: `${H}1.attn.in_proj_weight`,
    rows: [W, W],
    out: W,
    inp: W,
  },
  {
    key: 'lora_te1_text_model_encoder_layers_0_mlp_fc1',
    up: '.lora_up.weight',
    down: '.lora_down.weight',
    target: `${H}0.mlp.c_fc.weight`,
    alpha: 4,
    out: 256,
    inp: W,
  },
  {
    key: 'lora_te_text_model_encoder_layers_2_self_attn_out_proj',
    up: '.lora_up.weight',
    down: '.lora_down.weight',
    target: `${H}2.attn.out_proj.weight`,
    alpha: 1,
    out: W,
    inp: W,
  },
  {
    key: 'lora_unet_down_blocks_0_attentions_0_proj_in',
    up: '.lora_up.weight',
    down: '.lora_down.weight',
    target: `${U}input_blocks.1.1.proj_in.weight`,
    alpha: 4,
    out: 64,
    inp: 64,
  },
  {
    key: 'lora_unet_output_blocks_11_1_transformer_blocks_0_attn2_to_k',
    up: '.lora_up.weight',
    down: '.lora_down.weight',
    target: `${U}output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight`,
    alpha: 4,
    out: 64,
    inp: 64,
  },
  {
    key: 'unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q',
    up: '.lora_B.weight',
    down: '.lora_A.weight',
    target: `${U}middle_block.1.transformer_blocks.0.attn1.to_q.weight`,
    out: 128,
    inp: 128,
  },
];
const factors = new Map<string, Float32Array>();

beforeAll(() => {
  t = makeTinySd2('eps', 9);
  loraFile = join(t.dir, 'loras', 'sd2-mixed.safetensors');
  const specs: { name: string; dtype: 'F32'; shape: number[] }[] = [];
  let seed = 100;
  for (const p of PAIRS) {
    specs.push(
      { name: `${p.key}${p.up}`, dtype: 'F32', shape: [p.out, R] },
      { name: `${p.key}${p.down}`, dtype: 'F32', shape: [R, p.inp] },
    );
    factors.set(`${p.key}${p.up}`, lcg(p.out * R, seed++, 0.3));
    factors.set(`${p.key}${p.down}`, lcg(R * p.inp, seed++, 0.3));
    if (p.alpha !== undefined) {
      specs.push({ name: `${p.key}.alpha`, dtype: 'F32', shape: [] });
      factors.set(`${p.key}.alpha`, new Float32Array([p.alpha]));
    }
  }
  const w = SafetensorsWriter.create(loraFile, specs, {});
  for (const s of specs) w.write(s.name, factors.get(s.name)!);
  w.finish();
});
afterAll(() => rmSync(t.dir, { recursive: true, force: true }));

/** Every patched tensor: base + s·(α/r)·up·down added into its rows, in plain loops. */
function referencePatched(strength: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const p of PAIRS) {
    const w = out.get(p.target) ?? t.source.get(p.target).slice();
    const up = factors.get(`${p.key}${p.up}`)!;
    const down = factors.get(`${p.key}${p.down}`)!;
    const scale = strength * ((p.alpha ?? R) / R);
    const [start] = p.rows ?? [0, p.out];
    for (let o = 0; o < p.out; o++) {
      for (let i = 0; i < p.inp; i++) {
        let s = 0;
        for (let r = 0; r < R; r++) s += up[o * R + r] * down[r * p.inp + i];
        w[(start + o) * p.inp + i] += scale * s;
      }
    }
    out.set(p.target, w);
  }
  return out;
}

/** `ws` under `prefix` with the patched tensors swapped in. */
function overlay(ws: WeightSource, patched: Map<string, Float32Array>, prefix: string): WeightSource {
  return {
    ...ws,
    has: (n) => ws.has(n),
    names: () => ws.names(),
    shape: (n) => ws.shape(n),
    get: (n) => patched.get(prefix + n) ?? ws.get(n),
  };
}

function entries(parsed: ParsedAdapter, strength: number): Map<string, PatchEntry> {
  return new Map(
    parsed.patches.map((patch) => [
      patch.target,
      { sig: `t:${patch.stem}:${patch.kind}`, strength, strengthModel: 1, source: { kind: 'adapter', patch } } as PatchEntry,
    ]),
  );
}

describe('LoRA on the tiny SD2 checkpoint', () => {
  it('parses every spelling; the q, k and v LoRAs of one layer become one row-block patch of its in_proj_weight', () => {
    const parsed = parseAdapter(loraFile, SafetensorsFile.open(loraFile), sd1Weights(t.source));
    expect(parsed.unmatched).toEqual([]);
    const fused = parsed.patches.find((p) => p.target === `${H}1.attn.in_proj_weight`)!;
    expect(fused.kind).toBe('slices');
    if (fused.kind !== 'slices') return;
    expect(fused.parts.map((p) => [p.start, p.rows, p.patch.stem])).toEqual([
      [0, W, PAIRS[0].key],
      [W, W, PAIRS[2].key],
      [2 * W, W, PAIRS[1].key],
    ]);
    expect(parsed.patches.map((p) => p.target).sort()).toEqual([...new Set(PAIRS.map((p) => p.target))].sort());
  });

  it('patched weights equal W + s·(α/r)·up·down in the right rows (strength 0.7), and strength 0 is the base bit for bit', async () => {
    const parsed = parseAdapter(loraFile, SafetensorsFile.open(loraFile), sd1Weights(t.source));
    const want = referencePatched(0.7);
    for (const p of parsed.patches) {
      const got = await patchedWeight(p.target, t.source.get(p.target), t.source.shape(p.target), [{ patch: p, strength: 0.7 }]);
      expect(relErr(got, want.get(p.target)!), p.target).toBeLessThan(1e-6);
      expect(await patchedWeight(p.target, t.source.get(p.target), t.source.shape(p.target), [{ patch: p, strength: 0 }])).toEqual(
        t.source.get(p.target),
      );
    }
  });

  it.each(['branch', 'merge'] as const)(
    'patched CLIP and UNet (%s mode) match the reference nets on the patched weights',
    async (loraMode) => {
      const manager = new ModelManager({
        cacheDir: join(t.dir, `cache-${loraMode}`),
        device: 'cpu',
        log: quiet,
        families: new FamilyRegistry(SD1).register(SD2),
        loraMode,
      });
      const parts = await manager.loadCheckpoint(t.file);
      const parsed = manager.loadAdapter(loraFile, parts.clip.patching!.weights).parsed;
      const adds = entries(parsed, 0.7);
      const clip = parts.clip.patching!.withPatches(addPatches(parts.clip.patching!.patches, adds)) as OrtClip;
      const model = parts.model.patching!.withPatches(addPatches(parts.model.patching!.patches, adds));
      const patched = referencePatched(0.7);

      const text = 'a red fox in the snow';
      const ids = clip.tokenizer.tokenize(text);
      const row = [clip.tokenizer.bos, ...ids, clip.tokenizer.eos, ...new Array<number>(75 - ids.length).fill(0)];
      const ref = openClipForwardRef(t.cfg.clip, overlay(t.clip, patched, t.cfg.clipPrefix), row);
      const got = await clip.encodeText(text);
      expect(relErr(got.cond.data, ref.normed[t.cfg.clip.layers - 2])).toBeLessThan(1e-4);
      const plain = openClipForwardRef(t.cfg.clip, t.clip, row);
      expect(relErr(got.cond.data, plain.normed[t.cfg.clip.layers - 2])).toBeGreaterThan(1e-3);

      const x: Tensor = { shape: [1, 4, 4, 4], data: lcg(64, 7) };
      const ctx: Tensor = { shape: [1, 77, 64], data: lcg(77 * 64, 8) };
      const ts = new Float32Array([500]);
      const out = await model.unet.run({ x, timesteps: ts, context: ctx });
      expect(relErr(out.data, unetForwardRef(t.cfg.unet, overlay(t.unet, patched, U), x, ts, ctx).data)).toBeLessThan(1e-4);
      expect(relErr(out.data, unetForwardRef(t.cfg.unet, t.unet, x, ts, ctx).data)).toBeGreaterThan(1e-3);
    },
    120_000,
  );
});

describe('full-difference adapters on the fused in_proj', () => {
  it('diff and diff_b of a v projection change only the v third of in_proj_weight and in_proj_bias', async () => {
    const file = join(t.dir, 'loras', 'sd2-diff.safetensors');
    const key = 'lora_te_text_model_encoder_layers_0_self_attn_v_proj';
    const diff = lcg(W * W, 41, 0.1);
    const diffB = lcg(W, 42, 0.1);
    const w = SafetensorsWriter.create(
      file,
      [
        { name: `${key}.diff`, dtype: 'F32', shape: [W, W] },
        { name: `${key}.diff_b`, dtype: 'F32', shape: [W] },
      ],
      {},
    );
    w.write(`${key}.diff`, diff);
    w.write(`${key}.diff_b`, diffB);
    w.finish();
    const parsed = parseAdapter(file, SafetensorsFile.open(file), sd1Weights(t.source));
    expect(parsed.unmatched).toEqual([]);
    expect(parsed.patches.map((p) => p.target).sort()).toEqual([`${H}0.attn.in_proj_bias`, `${H}0.attn.in_proj_weight`]);
    for (const p of parsed.patches) {
      const base = t.source.get(p.target);
      const got = await patchedWeight(p.target, base, t.source.shape(p.target), [{ patch: p, strength: 0.5 }]);
      const inner = p.target.endsWith('_bias') ? 1 : W;
      const d = inner === 1 ? diffB : diff;
      const want = base.slice();
      for (let i = 0; i < W * inner; i++) want[2 * W * inner + i] += 0.5 * d[i];
      expect(got).toEqual(want);
    }
  });
});
