import fs from 'node:fs';
import { writeSafetensors } from '../../engine/formats/safetensors.ts';
import { PFloat, PTensor, PTuple, f32Storage, torchSaveLegacy, torchSaveZip, type PVal } from '../formats/torch-writer.ts';

/**
 * A1111 hypernetwork files written as A1111's `Hypernetwork.save` lays them out (a dict with integer
 * widths holding (k, v) module state dicts, options beside them), as real pickles through the test
 * torch writer. Module keys follow A1111's `HypernetworkModule`: `linear.<i>` where i counts every
 * module of its Sequential, activations and dropouts included.
 */

export interface HnSpec {
  dims: number[];
  structure: number[];
  activation?: string | null;
  layerNorm?: boolean;
  activateOutput?: boolean;
  useDropout?: boolean;
  lastLayerDropout?: boolean;
  seed?: number;
  /** Value scale of the weights. */
  scale?: number;
}

/** A module's tensors in the file's order: key → [shape, values]. */
export type ModuleTensors = Map<string, { shape: number[]; data: Float32Array }>;

export interface HnFile {
  spec: HnSpec;
  /** width → [k module, v module]. */
  modules: Map<number, [ModuleTensors, ModuleTensors]>;
}

function rand(n: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * scale;
  });
}

/** A1111's HypernetworkModule.__init__ sequence, as state-dict tensors. */
function moduleTensors(dim: number, spec: HnSpec, seed: number): ModuleTensors {
  const ls = spec.structure;
  const out: ModuleTensors = new Map();
  const scale = spec.scale ?? 0.3;
  let idx = 0;
  for (let i = 0; i < ls.length - 1; i++) {
    const a = Math.floor(dim * ls[i]);
    const b = Math.floor(dim * ls[i + 1]);
    out.set(`linear.${idx}.weight`, { shape: [b, a], data: rand(a * b, seed + 10 * i, scale / Math.sqrt(a / 8)) });
    out.set(`linear.${idx}.bias`, { shape: [b], data: rand(b, seed + 10 * i + 1, scale) });
    idx++;
    const act = spec.activation ?? 'linear';
    if (act !== 'linear' && (i < ls.length - 2 || spec.activateOutput)) idx++;
    if (spec.layerNorm) {
      out.set(`linear.${idx}.weight`, { shape: [b], data: rand(b, seed + 10 * i + 2, 0.5).map((v) => 1 + v) });
      out.set(`linear.${idx}.bias`, { shape: [b], data: rand(b, seed + 10 * i + 3, 0.2) });
      idx++;
    }
    if (spec.useDropout && (i < ls.length - 3 || (spec.lastLayerDropout && i < ls.length - 2))) idx++;
  }
  return out;
}

export function makeHypernet(spec: HnSpec): HnFile {
  const modules = new Map<number, [ModuleTensors, ModuleTensors]>();
  spec.dims.forEach((dim, d) => {
    const seed = (spec.seed ?? 1) * 1000 + d * 100;
    modules.set(dim, [moduleTensors(dim, spec, seed), moduleTensors(dim, spec, seed + 50)]);
  });
  return { spec, modules };
}

function pickleValue(hn: HnFile): Map<PVal, PVal> {
  let storage = 0;
  const sd = (m: ModuleTensors): Map<PVal, PVal> =>
    new Map<PVal, PVal>([...m].map(([k, t]) => [k, new PTensor(f32Storage(String(storage++), t.data), t.shape)] as [PVal, PVal]));
  const root = new Map<PVal, PVal>();
  for (const [dim, [k, v]] of hn.modules) root.set(dim, new PTuple([sd(k), sd(v)]));
  const s = hn.spec;
  root.set(
    'layer_structure',
    s.structure.map((x) => new PFloat(x)),
  );
  if (s.activation !== undefined) root.set('activation_func', s.activation);
  root.set('is_layer_norm', s.layerNorm ?? false);
  root.set('weight_initialization', 'Normal');
  root.set('use_dropout', s.useDropout ?? false);
  root.set('activate_output', s.activateOutput ?? false);
  root.set('last_layer_dropout', s.lastLayerDropout ?? false);
  root.set('sd_checkpoint', 'abcdef01');
  root.set('sd_checkpoint_name', 'v1-5-pruned');
  root.set('step', 1234);
  root.set('name', 'test-hypernet');
  return root;
}

/** Writes the hypernetwork as a torch file (zip as newer A1111 saves, or the legacy format). */
export function writeHypernetPt(file: string, hn: HnFile, format: 'zip' | 'legacy' = 'zip'): string {
  const v = pickleValue(hn);
  fs.writeFileSync(file, format === 'zip' ? torchSaveZip(v) : torchSaveLegacy(v));
  return file;
}

/** The same as safetensors: tensors `<dim>.<0|1>.<key>`, options as metadata strings. */
export function writeHypernetSafetensors(file: string, hn: HnFile): string {
  const tensors = [...hn.modules].flatMap(([dim, mods]) =>
    mods.flatMap((m, i) => [...m].map(([k, t]) => ({ name: `${dim}.${i}.${k}`, dtype: 'F32' as const, shape: t.shape, data: t.data }))),
  );
  const s = hn.spec;
  const meta: Record<string, string> = {
    is_layer_norm: String(s.layerNorm ? 'True' : 'False'),
    activate_output: String(s.activateOutput ? 'True' : 'False'),
    use_dropout: String(s.useDropout ? 'True' : 'False'),
    last_layer_dropout: String(s.lastLayerDropout ? 'True' : 'False'),
  };
  if (typeof s.activation === 'string') meta.activation_func = s.activation;
  writeSafetensors(file, tensors, meta);
  return file;
}

/** ComfyUI's module rebuild, written from its description: Linear per `.weight` key in order, activation unless last in the combined list (or activate_output), LayerNorm taking the next entry. */
export type RefLayer = { kind: 'linear' | 'layernorm'; w: Float32Array; b: Float32Array; shape: number[] } | { kind: 'act'; fn: string };

export function comfyLayers(m: ModuleTensors, spec: HnSpec): RefLayer[] {
  const stems = [...m.keys()].filter((k) => k.endsWith('.weight')).map((k) => k.replace(/\.weight$/, ''));
  const act = spec.activation ?? 'linear';
  const out: RefLayer[] = [];
  let i = 0;
  while (i < stems.length) {
    const w = m.get(`${stems[i]}.weight`)!;
    out.push({ kind: 'linear', w: w.data, b: m.get(`${stems[i]}.bias`)!.data, shape: w.shape });
    if (act !== 'linear' && (i !== stems.length - 1 || spec.activateOutput)) out.push({ kind: 'act', fn: act });
    if (spec.layerNorm) {
      i++;
      const l = m.get(`${stems[i]}.weight`)!;
      out.push({ kind: 'layernorm', w: l.data, b: m.get(`${stems[i]}.bias`)!.data, shape: l.shape });
    }
    i++;
  }
  return out;
}

/** x + module(x)·strength in float64, over rows of width `dim`. */
export function moduleRef(layers: readonly RefLayer[], x: ArrayLike<number>, dim: number, strength: number): Float64Array {
  const rows = x.length / dim;
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let h = Array.from({ length: dim }, (_, j) => x[r * dim + j]);
    for (const l of layers) {
      if (l.kind === 'linear') {
        const [o, n] = l.shape;
        h = Array.from({ length: o }, (_, a) => {
          let s = l.b[a];
          for (let c = 0; c < n; c++) s += l.w[a * n + c] * h[c];
          return s;
        });
      } else if (l.kind === 'layernorm') {
        const mean = h.reduce((a, b) => a + b, 0) / h.length;
        const vr = h.reduce((a, b) => a + (b - mean) ** 2, 0) / h.length;
        h = h.map((v, j) => ((v - mean) / Math.sqrt(vr + 1e-5)) * l.w[j] + l.b[j]);
      } else if (l.kind === 'act') {
        const fn = l.fn;
        h = h.map((v) => activation(fn, v));
      }
    }
    for (let j = 0; j < dim; j++) out[r * dim + j] = x[r * dim + j] + h[j] * strength;
  }
  return out;
}

/** torch's definitions of the activations A1111 and ComfyUI name. */
export function activation(fn: string, v: number): number {
  switch (fn) {
    case 'relu':
      return Math.max(v, 0);
    case 'leakyrelu':
      return v >= 0 ? v : 0.01 * v;
    case 'elu':
      return v > 0 ? v : Math.expm1(v);
    case 'swish':
      return (v * Math.min(Math.max(v + 3, 0), 6)) / 6;
    case 'tanh':
      return Math.tanh(v);
    case 'sigmoid':
      return 1 / (1 + Math.exp(-v));
    case 'softsign':
      return v / (1 + Math.abs(v));
    case 'mish':
      return v * Math.tanh(Math.log1p(Math.exp(v)));
    default:
      throw new Error(`no activation ${fn}`);
  }
}
