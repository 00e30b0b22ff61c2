import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrefixedWeightSource, type WeightSource } from '../../engine/core/weights.ts';
import { SafetensorsFile, SafetensorsWriter } from '../../engine/formats/safetensors.ts';
import { openClipForwardRef } from '../../engine/models/families/openclip/reference/openclip.ts';
import { SDXL_PREFIX } from '../../engine/models/families/sdxl/config.ts';
import { tinySdxlConfig } from '../../engine/models/families/sdxl/layout.ts';
import { writeSdxlCheckpoint, writeTinyTokenizer } from '../../engine/models/families/sdxl/make.ts';
import { sd1Weights } from '../../engine/models/families/sd1/weight-views.ts';
import { parseAdapter, patchedWeight } from '../../engine/models/lora/index.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { addPatches, type PatchEntry } from '../../engine/models/patching/patch-set.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';

/*
 * SDXL LoRA names on helper-generated tiny SDXL base weights (make-model sdxl-tiny's generator):
 * lora_te1_ on CLIP-L, lora_te2_ / text_encoder_2. on bigG (q/k/v as thirds of in_proj), diffusers
 * and LDM UNet names, add_embedding → label_emb. Patched weights against W + s·(α/r)·up·down, and
 * the patched G encoder through the SDXL CLIP handle against the open_clip reference.
 */

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const R = 4;
const G = `${SDXL_PREFIX.clipG}transformer.resblocks.`;
const L = `${SDXL_PREFIX.clipL}encoder.layers.`;
const U = 'model.diffusion_model.';
let dir: string;
let file: string;
let lora: string;
let ckpt: SafetensorsFile;
const cfg = tinySdxlConfig(870, 'base');
const GW = cfg.clipG.width;

interface Pair {
  key: string;
  up: string;
  down: string;
  target: string;
  start?: number;
  alpha?: number;
  out: number;
  inp: number;
}
const PAIRS: Pair[] = [
  {
    key: 'lora_te2_text_model_encoder_layers_1_self_attn_q_proj',
    up: '.lora_up.weight',
    down: '.lora_down.weight',
    target: `${G}1.attn.in_proj_weight`,
    start: 0,
    alpha: 2,
    out: GW,
    inp: GW,
  },
  {
    key: 'lora_te2_text_model_encoder_layers_1_self_attn_k_proj',
    up: '.lora_up.weight',
    down: '.lora_down.weight',
    target: `${G}1.attn.in_proj_weight`,
    start: GW,
    alpha: 8,
    out: GW,
    inp: GW,
  },
  {
    key: 'text_encoder_2.text_model.encoder.layers.0.mlp.fc1',
    up: '.lora_B.weight',
    down: '.lora_A.weight',
    target: `${G}0.mlp.c_fc.weight`,
    out: 4 * GW,
    inp: GW,
  },
  {
    key: 'lora_te1_text_model_encoder_layers_1_self_attn_q_proj',
    up: '.lora_up.weight',
    down: '.lora_down.weight',
    target: `${L}1.self_attn.q_proj.weight`,
    alpha: 4,
    out: 64,
    inp: 64,
  },
  {
    key: 'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k',
    up: '.lora_up.weight',
    down: '.lora_down.weight',
    target: `${U}input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight`,
    alpha: 4,
    out: 128,
    inp: 192,
  },
  {
    key: 'unet.up_blocks.0.attentions.2.transformer_blocks.1.ff.net.2',
    up: '.lora_B.weight',
    down: '.lora_A.weight',
    target: `${U}output_blocks.2.1.transformer_blocks.1.ff.net.2.weight`,
    out: 128,
    inp: 512,
  },
  {
    key: 'lora_unet_add_embedding_linear_1',
    up: '.lora_up.weight',
    down: '.lora_down.weight',
    target: `${U}label_emb.0.0.weight`,
    alpha: 1,
    out: 256,
    inp: 128 + 6 * 256,
  },
];
const factors = new Map<string, Float32Array>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-sdxl-lora-'));
  file = join(dir, 'checkpoints', 'weft-tiny-sdxl.safetensors');
  writeTinyTokenizer(file);
  await writeSdxlCheckpoint(file, cfg, { seed: 4 });
  ckpt = SafetensorsFile.open(file);
  lora = join(dir, 'sdxl-mixed.safetensors');
  const specs: { name: string; dtype: 'F32'; shape: number[] }[] = [];
  let seed = 300;
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
  const w = SafetensorsWriter.create(lora, specs, {});
  for (const s of specs) w.write(s.name, factors.get(s.name)!);
  w.finish();
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function referencePatched(strength: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const p of PAIRS) {
    const w = out.get(p.target) ?? ckpt.get(p.target).slice();
    const up = factors.get(`${p.key}${p.up}`)!;
    const down = factors.get(`${p.key}${p.down}`)!;
    const scale = strength * ((p.alpha ?? R) / R);
    for (let o = 0; o < p.out; o++) {
      for (let i = 0; i < p.inp; i++) {
        let s = 0;
        for (let r = 0; r < R; r++) s += up[o * R + r] * down[r * p.inp + i];
        w[((p.start ?? 0) + o) * p.inp + i] += scale * s;
      }
    }
    out.set(p.target, w);
  }
  return out;
}

describe('LoRA on a tiny SDXL base checkpoint', () => {
  it('every key matches; te2 q and k become one row-block patch; patched weights equal the reference', async () => {
    const parsed = parseAdapter(lora, SafetensorsFile.open(lora), sd1Weights(ckpt));
    expect(parsed.unmatched).toEqual([]);
    expect(parsed.patches.map((p) => p.target).sort()).toEqual([...new Set(PAIRS.map((p) => p.target))].sort());
    const fused = parsed.patches.find((p) => p.target === `${G}1.attn.in_proj_weight`)!;
    expect(fused.kind === 'slices' && fused.parts.map((p) => [p.start, p.rows])).toEqual([
      [0, GW],
      [GW, GW],
    ]);
    const want = referencePatched(0.6);
    for (const p of parsed.patches) {
      const got = await patchedWeight(p.target, ckpt.get(p.target), ckpt.shape(p.target), [{ patch: p, strength: 0.6 }]);
      expect(relErr(got, want.get(p.target)!), p.target).toBeLessThan(1e-6);
    }
  });

  it('the patched bigG through the SDXL CLIP handle matches the open_clip reference on the patched weights', async () => {
    const manager = new ModelManager({ cacheDir: join(dir, 'cache'), device: 'cpu', log: quiet, loraMode: 'merge' });
    const parts = await manager.loadCheckpoint(file);
    expect(parts.family).toBe('sdxl');
    const parsed = manager.loadAdapter(lora, parts.clip.patching!.weights).parsed;
    const adds = new Map(
      parsed.patches.map((patch) => [
        patch.target,
        { sig: `x:${patch.stem}:${patch.kind}`, strength: 0.6, strengthModel: 1, source: { kind: 'adapter', patch } } as PatchEntry,
      ]),
    );
    const clip = parts.clip.patching!.withPatches(addPatches(parts.clip.patching!.patches, adds));
    const text = 'a red fox in the snow';
    const got = await clip.encodeText(text);
    const tok = clip.tokenizer;
    const ids = tok.tokenize(text);
    const row = [tok.bos, ...ids, tok.eos, ...new Array<number>(75 - ids.length).fill(0)];
    const patched = referencePatched(0.6);
    const gws: WeightSource = new PrefixedWeightSource(ckpt, SDXL_PREFIX.clipG);
    const overlay: WeightSource = {
      ...gws,
      has: (n) => gws.has(n),
      names: () => gws.names(),
      shape: (n) => gws.shape(n),
      get: (n) => patched.get(SDXL_PREFIX.clipG + n) ?? gws.get(n),
    };
    const ref = openClipForwardRef(cfg.clipG, overlay, row);
    const width = 64 + GW;
    const gPart = new Float32Array(77 * GW);
    for (let t = 0; t < 77; t++) gPart.set(got.cond.data.subarray(t * width + 64, (t + 1) * width), t * GW);
    expect(relErr(gPart, ref.raw[cfg.clipG.layers - 2])).toBeLessThan(1e-4);
    const eos = ids.length + 1;
    expect(relErr(got.pooled!.data, ref.projected!.subarray(eos * GW, (eos + 1) * GW))).toBeLessThan(1e-4);
    const plain = openClipForwardRef(cfg.clipG, gws, row);
    expect(relErr(gPart, plain.raw[cfg.clipG.layers - 2])).toBeGreaterThan(1e-3);
  }, 120_000);
});
