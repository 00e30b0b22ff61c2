import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { MapWeightSource } from '../../engine/core/weights.ts';
import { TorchFileError } from '../../engine/formats/pickle/torch-file.ts';
import { hypernetPatch } from '../../engine/models/hypernetwork/graph.ts';
import { ACTIVATIONS, readHypernetwork, type HnLayer, type Hypernetwork } from '../../engine/models/hypernetwork/index.ts';
import { GraphBuilder } from '../../engine/onnx/graph.ts';
import { Net } from '../../engine/onnx/nn.ts';
import { PRaw, torchSaveLegacy } from '../formats/torch-writer.ts';
import {
  comfyLayers,
  makeHypernet,
  moduleRef,
  writeHypernetPt,
  writeHypernetSafetensors,
  type HnSpec,
  type ModuleTensors,
} from './make-hypernet.ts';

/**
 * Hypernetwork files as ComfyUI's nodes_hypernetwork.py reads them: every layer structure,
 * activation, layer-norm, activate-output and dropout option, from real pickles (zip and legacy) and
 * safetensors; each module's graph against a float64 evaluation of the layers ComfyUI builds.
 */

const dir = mkdtempSync(join(tmpdir(), 'weft-hn-read-'));
let n = 0;
const file = (ext: string): string => join(dir, `hn${n++}${ext}`);

const kinds = (layers: readonly HnLayer[]): string[] => layers.map((l) => (l.kind === 'activation' ? l.fn : l.kind));

function sameAsFile(hn: Hypernetwork, modules: Map<number, [ModuleTensors, ModuleTensors]>, spec: HnSpec): void {
  expect([...hn.modules.keys()].sort()).toEqual([...modules.keys()].sort());
  for (const [dim, pair] of modules) {
    for (const index of [0, 1] as const) {
      const got = hn.modules.get(dim)![index];
      const want = comfyLayers(pair[index], spec);
      expect(kinds(got)).toEqual(want.map((l) => (l.kind === 'act' ? l.fn : l.kind)));
      got.forEach((l, i) => {
        const w = want[i];
        if (l.kind === 'activation' || w.kind === 'act') return;
        expect([...l.weight.shape]).toEqual(w.shape);
        expect(l.weight.read()).toEqual(w.w);
        expect(l.bias.read()).toEqual(w.b);
      });
    }
  }
}

describe('reading A1111 hypernetwork files', () => {
  it('layer sequences as ComfyUI builds them, in the cases worth spelling out', () => {
    const seq = (spec: Partial<HnSpec>): string[] => {
      const hn = readHypernetwork(writeHypernetPt(file('.pt'), makeHypernet({ dims: [16], structure: [1, 2, 1], ...spec })));
      return kinds(hn.modules.get(16)![0]);
    };
    expect(seq({ activation: 'relu' })).toEqual(['linear', 'relu', 'linear']);
    expect(seq({ activation: 'relu', activateOutput: true })).toEqual(['linear', 'relu', 'linear', 'relu']);
    // ComfyUI counts "last" over Linear and LayerNorm entries together, so the final Linear is activated too.
    expect(seq({ activation: 'relu', layerNorm: true })).toEqual(['linear', 'relu', 'layernorm', 'linear', 'relu', 'layernorm']);
    expect(seq({ activation: 'linear', layerNorm: true })).toEqual(['linear', 'layernorm', 'linear', 'layernorm']);
    expect(seq({})).toEqual(['linear', 'linear']);
    expect(seq({ activation: 'mish', structure: [1, 2, 2, 1], useDropout: true, lastLayerDropout: true })).toEqual([
      'linear',
      'mish',
      'linear',
      'mish',
      'linear',
    ]);
    expect(seq({ activation: 'tanh', structure: [1, 1] })).toEqual(['linear']);
  });

  const structures = [
    [1, 2, 1],
    [1, 1],
    [1, 2, 2, 1],
    [1, 1.5, 1],
    [1, 4, 2, 1],
  ];
  for (const activation of ACTIVATIONS) {
    it(`${activation}: every structure with and without layer norm, activate_output and dropout; zip, legacy and safetensors files`, () => {
      let seed = 1;
      for (const structure of structures) {
        for (const layerNorm of [false, true]) {
          for (const activateOutput of [false, true]) {
            const spec: HnSpec = {
              dims: [12, 8],
              structure,
              activation,
              layerNorm,
              activateOutput,
              useDropout: seed % 2 === 0,
              lastLayerDropout: seed % 3 === 0,
              seed: seed++,
            };
            const h = makeHypernet(spec);
            const zip = readHypernetwork(writeHypernetPt(file('.pt'), h, 'zip'));
            sameAsFile(zip, h.modules, spec);
            expect([zip.activation, zip.layerNorm, zip.activateOutput, zip.useDropout, zip.lastLayerDropout]).toEqual([
              activation,
              layerNorm,
              activateOutput,
              spec.useDropout,
              spec.lastLayerDropout,
            ]);
            // The other containers hold the same dict: one structure each is enough.
            if (structure.length !== 3) continue;
            sameAsFile(readHypernetwork(writeHypernetPt(file('.pt'), h, 'legacy')), h.modules, spec);
            sameAsFile(readHypernetwork(writeHypernetSafetensors(file('.safetensors'), h)), h.modules, spec);
          }
        }
      }
    });
  }

  it('an old file without activation_func is linear; is_layer_norm and friends default to off', () => {
    const h = makeHypernet({ dims: [16], structure: [1, 2, 1], activation: undefined, seed: 9 });
    const hn = readHypernetwork(writeHypernetPt(file('.pt'), h));
    expect([hn.activation, hn.layerNorm, hn.activateOutput]).toEqual(['linear', false, false]);
    expect(kinds(hn.modules.get(16)![1])).toEqual(['linear', 'linear']);
  });

  it('refuses what ComfyUI cannot run, naming the file and the problem', () => {
    const bad = (spec: Partial<HnSpec>, edit?: (h: ReturnType<typeof makeHypernet>) => void): string => {
      const h = makeHypernet({ dims: [16], structure: [1, 2, 1], ...spec });
      edit?.(h);
      return writeHypernetPt(file('.pt'), h);
    };
    const gelu = bad({ activation: 'gelu' });
    expect(() => readHypernetwork(gelu)).toThrow(/activation_func "gelu" is not one ComfyUI runs/);
    expect(() => readHypernetwork(gelu)).toThrow(gelu);
    expect(() => readHypernetwork(bad({ activation: null }))).toThrow(/activation_func null/);
    expect(() => readHypernetwork(bad({}, (h) => h.modules.get(16)![0].delete('linear.1.bias')))).toThrow(
      /16\[0\]: 'linear\.1' has no bias/,
    );
    expect(() =>
      readHypernetwork(
        bad({}, (h) => {
          const m = h.modules.get(16)![1];
          m.set('linear.1.weight', { shape: [12, 32], data: new Float32Array(12 * 32) });
          m.set('linear.1.bias', { shape: [12], data: new Float32Array(12) });
        }),
      ),
    ).toThrow(/16\[1\]: the module ends 12 wide, it must give back 16/);
    // is_layer_norm claimed, but the file has no LayerNorm tensors.
    const noLn = makeHypernet({ dims: [16], structure: [1, 2, 1] });
    noLn.spec.layerNorm = true;
    expect(() => readHypernetwork(writeHypernetPt(file('.pt'), noLn))).toThrow(/not a LayerNorm|has no LayerNorm/);
    const empty = file('.pt');
    writeFileSync(empty, torchSaveLegacy({ name: 'x', step: 3 }));
    expect(() => readHypernetwork(empty)).toThrow(/not a hypernetwork/);
    // A pickle that calls anything outside the allowlist never runs: refused by name.
    const evil = file('.pt');
    const sys = [...Buffer.from('cos\nsystem\n')];
    writeFileSync(evil, torchSaveLegacy(new PRaw([...sys, 0x85, 0x52])));
    expect(() => readHypernetwork(evil)).toThrow(TorchFileError);
    expect(() => readHypernetwork(evil)).toThrow(/os\.system/);
  });
});

describe('a module as graph nodes', () => {
  const dim = 24;
  const rows = 2 * 5;
  const x = Float32Array.from({ length: rows * dim }, (_, i) => Math.sin(i * 0.37) * 2.5);
  for (const activation of ACTIVATIONS) {
    it(`${activation}: x + module(x)·strength as float64 evaluation of ComfyUI's layers (with and without layer norm)`, async () => {
      for (const layerNorm of [false, true]) {
        const spec: HnSpec = { dims: [dim], structure: [1, 2, 1], activation, layerNorm, activateOutput: true, seed: 5, scale: 0.6 };
        const h = makeHypernet(spec);
        const hn = readHypernetwork(writeHypernetPt(file('.pt'), h));
        for (const index of [0, 1] as const) {
          const g = new GraphBuilder('hn');
          const net = new Net(g, new MapWeightSource(new Map()), { dtype: 'float32', fusedAttention: false });
          g.input('x', 'float32', [2, 5, dim]);
          g.input('s', 'float32', [1]);
          const patch = hypernetPatch({ id: 'hn_test', source: 'f'.repeat(64), dim, index, layers: hn.modules.get(dim)![index] });
          g.output(patch.apply(net, 'x', 's'), 'y', 'float32', [2, 5, dim]);
          const session = await ort.InferenceSession.create(g.toBuffer());
          for (const strength of [1, -0.7]) {
            const out = await session.run({
              x: new ort.Tensor('float32', x, [2, 5, dim]),
              s: new ort.Tensor('float32', new Float32Array([strength]), [1]),
            });
            const got = out.y.data as Float32Array;
            const want = moduleRef(comfyLayers(h.modules.get(dim)![index], spec), x, dim, strength);
            let err = 0;
            let mx = 0;
            for (let i = 0; i < want.length; i++) {
              err = Math.max(err, Math.abs(got[i] - want[i]));
              mx = Math.max(mx, Math.abs(want[i] - x[i]));
            }
            // Relative to the size of the change the module makes, so a wrong layer cannot hide behind x.
            expect(err / mx, `${activation} ln=${layerNorm} ${index} s=${strength}`).toBeLessThan(2e-6);
            expect(mx).toBeGreaterThan(0.05);
          }
          await session.release();
        }
      }
    });
  }
});
