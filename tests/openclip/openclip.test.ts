import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { MapWeightSource, type WeightSource } from '../../engine/core/weights.ts';
import { detectOpenClip, openClipLayout, type OpenClipConfig } from '../../engine/models/families/openclip/config.ts';
import { buildOpenClipGraph, OPENCLIP_IO } from '../../engine/models/families/openclip/graph.ts';
import { openClipForwardRef } from '../../engine/models/families/openclip/reference/openclip.ts';
import { layoutShapes } from '../../engine/models/families/sd1/layout.ts';
import { makeTinyTokenizer } from '../../engine/models/make-model.ts';
import { OrtClip } from '../../engine/models/ort-clip.ts';
import { ClipTokenizer } from '../../engine/text/clip-tokenizer.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';

const TOL = 1e-4;
const T = 77;

/** Random open_clip text weights under bare names: norms near 1, everything else small and centred. */
function randomOpenClip(cfg: OpenClipConfig, seed: number): WeightSource {
  const map = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  let s = seed;
  for (const [name, shape] of openClipLayout(cfg, '')) {
    const n = shape.reduce((a, b) => a * b, 1);
    const fanIn = shape.length === 2 && !name.includes('embedding') && name !== 'text_projection' ? shape[1] : shape[0];
    let data = lcg(n, s++, Math.sqrt(3 / fanIn));
    if (/\.(ln_\d|ln_final)\.weight$|^ln_final\.weight$/.test(name)) data = data.map((v) => 1 + v);
    if (name.includes('embedding')) data = lcg(n, s++, 0.5);
    map.set(name, { shape, data });
  }
  return new MapWeightSource(map);
}

const session = (buf: Uint8Array): Promise<ort.InferenceSession> => ort.InferenceSession.create(buf, { logSeverityLevel: 3 });
const f32 = (v: ort.OnnxValue | undefined): Float32Array => {
  if (!v || !(v.data instanceof Float32Array)) throw new Error('no float32 output');
  return v.data;
};

const tok = makeTinyTokenizer();
const tokenizer = new ClipTokenizer(new Map(Object.entries(tok.vocab)), tok.merges);
const cfg: OpenClipConfig = {
  vocabSize: tokenizer.vocabSize,
  width: 128,
  layers: 3,
  heads: 2,
  mlpWidth: 512,
  contextLength: T,
  projectionDim: 96,
  layerNormEps: 1e-5,
};
let ws: WeightSource;
beforeAll(() => {
  ws = randomOpenClip(cfg, 11);
});

describe('open_clip key map and detection', () => {
  it('reads the architecture from the shapes under a prefix (SD2 and SDXL-G prefixes)', () => {
    for (const prefix of ['cond_stage_model.model.', 'conditioner.embedders.1.model.']) {
      expect(detectOpenClip(layoutShapes(openClipLayout(cfg, prefix)), prefix)).toEqual(cfg);
    }
    const full: OpenClipConfig = {
      vocabSize: 49408,
      width: 1280,
      layers: 32,
      heads: 20,
      mlpWidth: 5120,
      contextLength: 77,
      projectionDim: 1280,
      layerNormEps: 1e-5,
    };
    expect(detectOpenClip(layoutShapes(openClipLayout(full, 'p.')), 'p.')).toEqual(full);
  });

  it('names the tensor whose shape is wrong, and a missing one', () => {
    const l = openClipLayout(cfg, 'm.');
    l.set('m.transformer.resblocks.1.attn.in_proj_weight', [128, 128]);
    expect(() => detectOpenClip(layoutShapes(l), 'm.')).toThrow(
      /m\.transformer\.resblocks\.1\.attn\.in_proj_weight has shape \[128, 128\], expected \[384, 128\]/,
    );
    l.delete('m.ln_final.bias');
    expect(() => detectOpenClip(layoutShapes(l), 'm.')).toThrow(/missing m\.ln_final\.bias/);
    expect(() => detectOpenClip(layoutShapes(l), 'x.')).toThrow(/missing x\.token_embedding\.weight/);
  });
});

describe.each([
  ['explicit attention', false],
  ['ORT MultiHeadAttention requested', true],
])('open_clip graph against the plain-loop reference (%s)', (_label, fusedAttention) => {
  it.each([true, false])('layerNormHidden %s: every layer, projected output, batch 2 with an embedding vector', async (layerNormHidden) => {
    const s = await session(buildOpenClipGraph(cfg, ws, { dtype: 'float32', fusedAttention }, { layerNormHidden }).toBuffer());
    const rows = [0, 1].map((b) => Array.from({ length: T }, (_, t) => (t * 37 + b * 101 + 5) % cfg.vocabSize));
    const vec = lcg(cfg.width, 99, 0.3);
    const embeds = new Float32Array(2 * T * cfg.width);
    const mask = new Float32Array(2 * T);
    embeds.set(vec, (T + 3) * cfg.width);
    mask[T + 3] = 1;
    const out = await s.run({
      [OPENCLIP_IO.tokens]: new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [2, T]),
      [OPENCLIP_IO.embeds]: new ort.Tensor('float32', embeds, [2, T, cfg.width]),
      [OPENCLIP_IO.embedsMask]: new ort.Tensor('float32', mask, [2, T, 1]),
    });
    expect(out[OPENCLIP_IO.hidden].dims).toEqual([cfg.layers, 2, T, cfg.width]);
    expect(out[OPENCLIP_IO.projected].dims).toEqual([2, T, cfg.projectionDim]);
    const hidden = f32(out[OPENCLIP_IO.hidden]);
    const projected = f32(out[OPENCLIP_IO.projected]);
    for (let b = 0; b < 2; b++) {
      const ref = openClipForwardRef(cfg, ws, rows[b], b === 1 ? Object.assign([], { 3: vec }) : undefined);
      for (let l = 0; l < cfg.layers; l++) {
        const got = hidden.subarray((l * 2 + b) * T * cfg.width, (l * 2 + b + 1) * T * cfg.width);
        expect(relErr(got, (layerNormHidden ? ref.normed : ref.raw)[l])).toBeLessThan(TOL);
      }
      expect(relErr(projected.subarray(b * T * 96, (b + 1) * T * 96), ref.projected!)).toBeLessThan(TOL);
    }
    // Raw and normed outputs really differ, so the option is exercised.
    const ref0 = openClipForwardRef(cfg, ws, rows[0]);
    expect(relErr(ref0.raw[0], ref0.normed[0])).toBeGreaterThan(0.1);
  });
});

describe('OrtClip over the open_clip graph (ComfyUI SD2ClipHModel: pad 0, penultimate, projected pooled)', () => {
  let clip: OrtClip;
  beforeAll(async () => {
    const s = await session(buildOpenClipGraph(cfg, ws, { dtype: 'float32', fusedAttention: false }, { layerNormHidden: true }).toBuffer());
    clip = new OrtClip({
      id: 'oc',
      tokenizer,
      numLayers: cfg.layers,
      hiddenSize: cfg.width,
      run: (f) => s.run(f),
      layer: -2,
      padToken: 0,
      projectedPooled: true,
    });
  });

  it('pads chunks with 0 after the end token and reads layer −2 final-normed; pooled is ln_final(last)·P at the EOS', async () => {
    const r = await clip.encodeText('a photo of a cat');
    const ids = tokenizer.tokenize('a photo of a cat');
    const row = [tokenizer.bos, ...ids, tokenizer.eos, ...new Array<number>(T - ids.length - 2).fill(0)];
    const ref = openClipForwardRef(cfg, ws, row);
    expect(r.cond.shape).toEqual([1, T, cfg.width]);
    expect(relErr(r.cond.data, ref.normed[cfg.layers - 2])).toBeLessThan(TOL);
    const eos = ids.length + 1;
    expect(r.pooled!.shape).toEqual([1, 96]);
    expect(relErr(r.pooled!.data, ref.projected!.subarray(eos * 96, (eos + 1) * 96))).toBeLessThan(TOL);
    // Padding with the end token instead gives another encoding (the pad really reaches the graph).
    const eosPadded = openClipForwardRef(cfg, ws, [tokenizer.bos, ...ids, ...new Array<number>(T - ids.length - 1).fill(tokenizer.eos)]);
    expect(relErr(r.cond.data, eosPadded.normed[cfg.layers - 2])).toBeGreaterThan(1e-3);
  });

  it('weights interpolate against the empty prompt BOS, EOS, 0…', async () => {
    const r = await clip.encodeText('(cat:1.5) dog');
    const cat = tokenizer.tokenize('cat');
    const dog = tokenizer.tokenize(' dog');
    const ids = [...cat, ...dog];
    const z = openClipForwardRef(cfg, ws, [tokenizer.bos, ...ids, tokenizer.eos, ...new Array<number>(T - ids.length - 2).fill(0)]).normed[
      cfg.layers - 2
    ];
    const e = openClipForwardRef(cfg, ws, [tokenizer.bos, tokenizer.eos, ...new Array<number>(T - 2).fill(0)]).normed[cfg.layers - 2];
    const want = z.slice();
    for (let j = 1; j <= cat.length; j++)
      for (let c = 0; c < cfg.width; c++)
        want[j * cfg.width + c] = (z[j * cfg.width + c] - e[j * cfg.width + c]) * 1.5 + e[j * cfg.width + c];
    expect(relErr(r.cond.data, want)).toBeLessThan(TOL);
  });

  it('CLIPSetLastLayer −1 reads the last layer', async () => {
    const r = await clip.withLayer(-1).encodeText('red fox');
    const ids = tokenizer.tokenize('red fox');
    const ref = openClipForwardRef(cfg, ws, [tokenizer.bos, ...ids, tokenizer.eos, ...new Array<number>(T - ids.length - 2).fill(0)]);
    expect(relErr(r.cond.data, ref.normed[cfg.layers - 1])).toBeLessThan(TOL);
  });
});
