import { openWeights, type WeightsFile } from '../../formats/open-weights.ts';
import { TorchFile } from '../../formats/pickle/torch-file.ts';
import { PyDict, PyTuple, type PyValue } from '../../formats/pickle/values.ts';

/**
 * A1111 hypernetwork files as ComfyUI's `load_hypernetwork_patch` (comfy_extras/nodes_hypernetwork.py)
 * reads them. The file is a dict: integer keys (the widths whose attention inputs it changes: 768 for
 * SD1's text context, 320/640/1280 for self-attention) each hold two module state dicts, one for k and
 * one for v, plus options. A module is rebuilt from its `*.weight` keys in dict order: each is a
 * Linear, followed by the activation unless it is the list's last entry (or `activate_output`), and
 * with `is_layer_norm` the next `*.weight` entry is a LayerNorm. As ComfyUI counts "last" over that
 * combined list, a layer-norm network's final Linear is activated too (A1111 would not); Weft keeps
 * ComfyUI's reading, since that is what its images show. Dropout is a no-op at inference.
 */

export const ACTIVATIONS = ['linear', 'relu', 'leakyrelu', 'elu', 'swish', 'tanh', 'sigmoid', 'softsign', 'mish'] as const;
export type HypernetActivation = (typeof ACTIVATIONS)[number];

export interface HnTensor {
  readonly key: string;
  readonly shape: readonly number[];
  read(): Float32Array;
}

export type HnLayer =
  | { readonly kind: 'linear'; readonly weight: HnTensor; readonly bias: HnTensor }
  | { readonly kind: 'activation'; readonly fn: Exclude<HypernetActivation, 'linear'> }
  | { readonly kind: 'layernorm'; readonly weight: HnTensor; readonly bias: HnTensor };

export interface HypernetOptions {
  readonly activation: HypernetActivation;
  readonly layerNorm: boolean;
  readonly activateOutput: boolean;
  /** Read and ignored: dropout does nothing at inference. */
  readonly useDropout: boolean;
  readonly lastLayerDropout: boolean;
}

export interface Hypernetwork extends HypernetOptions {
  readonly file: string;
  /** Width → [k module, v module]. */
  readonly modules: ReadonlyMap<number, readonly [readonly HnLayer[], readonly HnLayer[]]>;
}

export class HypernetworkFileError extends Error {
  constructor(file: string, detail: string) {
    super(`hypernetwork ${file}: ${detail}`);
    this.name = 'HypernetworkFileError';
  }
}

/** Python truthiness of an option value. */
function truthy(v: PyValue | string | undefined): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'bigint') return v !== 0n;
  if (typeof v === 'string') return v.length > 0;
  return true;
}

/** The same option in a safetensors file's string metadata (`True`/`False`, `1`/`0`). */
function truthyText(v: string | undefined): boolean {
  return v !== undefined && !['', '0', 'false', 'none', 'null'].includes(v.trim().toLowerCase());
}

function options(file: string, get: (k: string) => PyValue | undefined, bool: (k: string) => boolean): HypernetOptions {
  const act = get('activation_func');
  const activation = act === undefined ? 'linear' : act;
  if (typeof activation !== 'string' || !(ACTIVATIONS as readonly string[]).includes(activation)) {
    throw new HypernetworkFileError(file, `activation_func ${JSON.stringify(activation)} is not one ComfyUI runs (${ACTIVATIONS.join(', ')})`);
  }
  return {
    activation: activation as HypernetActivation,
    layerNorm: bool('is_layer_norm'),
    activateOutput: bool('activate_output'),
    useDropout: bool('use_dropout'),
    lastLayerDropout: bool('last_layer_dropout'),
  };
}

/** One module from its state dict's keys in order (`names` are the module's own keys, `tensor` reads one). */
function buildModule(file: string, where: string, o: HypernetOptions, names: readonly string[], tensor: (k: string) => HnTensor | undefined): HnLayer[] {
  const entries = names.filter((k) => k.endsWith('.weight')).map((k) => k.slice(0, -'.weight'.length));
  const pair = (stem: string): { weight: HnTensor; bias: HnTensor } => {
    const weight = tensor(`${stem}.weight`);
    const bias = tensor(`${stem}.bias`);
    if (!weight || !bias) throw new HypernetworkFileError(file, `${where}: '${stem}' has no ${weight ? 'bias' : 'weight'}`);
    return { weight, bias };
  };
  const layers: HnLayer[] = [];
  for (let i = 0; i < entries.length; i++) {
    const last = i === entries.length - 1;
    const lin = pair(entries[i]);
    if (lin.weight.shape.length !== 2 || lin.bias.shape.length !== 1 || lin.bias.shape[0] !== lin.weight.shape[0]) {
      throw new HypernetworkFileError(
        file,
        `${where}: '${entries[i]}' is not a Linear (weight [${lin.weight.shape.join(', ')}], bias [${lin.bias.shape.join(', ')}])`,
      );
    }
    layers.push({ kind: 'linear', ...lin });
    if (o.activation !== 'linear' && (!last || o.activateOutput)) layers.push({ kind: 'activation', fn: o.activation });
    if (o.layerNorm) {
      i++;
      if (i >= entries.length) throw new HypernetworkFileError(file, `${where}: is_layer_norm is set but '${entries[i - 1]}' has no LayerNorm after it`);
      const ln = pair(entries[i]);
      const width = lin.weight.shape[0];
      if (ln.weight.shape.length !== 1 || ln.weight.shape[0] !== width || ln.bias.shape.length !== 1 || ln.bias.shape[0] !== width) {
        throw new HypernetworkFileError(file, `${where}: '${entries[i]}' is not a LayerNorm over ${width} (weight [${ln.weight.shape.join(', ')}])`);
      }
      layers.push({ kind: 'layernorm', ...ln });
    }
  }
  return layers;
}

/** Checks that a module maps `dim` to `dim` through layers that fit each other. */
function checkWidths(file: string, where: string, dim: number, layers: readonly HnLayer[]): void {
  let width = dim;
  for (const l of layers) {
    if (l.kind !== 'linear') continue;
    const [out, inp] = l.weight.shape;
    if (inp !== width) throw new HypernetworkFileError(file, `${where}: '${l.weight.key}' takes ${inp} values, the layer before gives ${width}`);
    width = out;
  }
  if (width !== dim) throw new HypernetworkFileError(file, `${where}: the module ends ${width} wide, it must give back ${dim}`);
}

const dimOf = (k: PyValue): number | undefined => {
  const n = typeof k === 'bigint' ? Number(k) : k;
  return typeof n === 'number' && Number.isInteger(n) && n > 0 && n <= 1 << 16 ? n : undefined;
};

function fromPickle(file: string, t: TorchFile): Hypernetwork {
  const root = t.root;
  if (!(root instanceof PyDict)) throw new HypernetworkFileError(file, 'the pickle does not hold a dict');
  const o = options(
    file,
    (k) => (root.map.has(k) ? root.map.get(k) : undefined),
    (k) => truthy(root.map.get(k)),
  );
  const modules = new Map<number, readonly [HnLayer[], HnLayer[]]>();
  for (const [k, v] of root.map) {
    const dim = dimOf(k);
    if (dim === undefined) continue;
    const pair = Array.isArray(v) ? v : v instanceof PyTuple ? v.items : undefined;
    if (!pair || pair.length < 2 || !(pair[0] instanceof PyDict) || !(pair[1] instanceof PyDict)) {
      throw new HypernetworkFileError(file, `key ${dim} must hold two module state dicts (k, v)`);
    }
    const built = [0, 1].map((index) => {
      const sd = pair[index] as PyDict;
      const where = `${dim}[${index}]`;
      const names = [...sd.map.keys()].filter((x): x is string => typeof x === 'string');
      const layers = buildModule(file, where, o, names, (name) => {
        const flat = `${dim}.${index}.${name}`;
        if (!t.has(flat)) return undefined;
        return { key: flat, shape: t.shape(flat), read: () => t.get(flat) };
      });
      checkWidths(file, where, dim, layers);
      return layers;
    });
    modules.set(dim, [built[0], built[1]]);
  }
  return { file, ...o, modules };
}

/** Natural order of dotted keys (`linear.10` after `linear.2`), for files that do not keep the dict's. */
function naturalCompare(a: string, b: string): number {
  const pa = a.split('.');
  const pb = b.split('.');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] === pb[i]) continue;
    const na = /^\d+$/.test(pa[i]) ? Number(pa[i]) : NaN;
    const nb = /^\d+$/.test(pb[i]) ? Number(pb[i]) : NaN;
    if (!Number.isNaN(na) && !Number.isNaN(nb)) return na - nb;
    return pa[i] < pb[i] ? -1 : 1;
  }
  return pa.length - pb.length;
}

/**
 * A safetensors hypernetwork (converted from a .pt): tensors `<dim>.<0|1>.<module key>`, options in
 * the metadata. ComfyUI reads none of these (its loader looks for integer keys only, so it applies
 * nothing); Weft reads them as the .pt they came from.
 */
function fromFlat(file: string, sf: WeightsFile): Hypernetwork {
  const meta = sf.metadata();
  const o = options(
    file,
    (k) => meta[k],
    (k) => truthyText(meta[k]),
  );
  const byModule = new Map<string, string[]>();
  for (const name of sf.names()) {
    const m = /^(\d+)\.([01])\.(.+)$/.exec(name);
    if (!m) continue;
    const key = `${m[1]}.${m[2]}`;
    byModule.set(key, [...(byModule.get(key) ?? []), m[3]]);
  }
  const modules = new Map<number, readonly [HnLayer[], HnLayer[]]>();
  const dims = [...new Set([...byModule.keys()].map((k) => Number(k.split('.')[0])))].sort((a, b) => a - b);
  for (const dim of dims) {
    const built = [0, 1].map((index) => {
      const where = `${dim}[${index}]`;
      const names = (byModule.get(`${dim}.${index}`) ?? []).sort(naturalCompare);
      if (!names.length) throw new HypernetworkFileError(file, `${dim} has no module ${index} (${index === 0 ? 'k' : 'v'})`);
      const layers = buildModule(file, where, o, names, (name) => {
        const flat = `${dim}.${index}.${name}`;
        if (!sf.has(flat)) return undefined;
        return { key: flat, shape: sf.shape(flat), read: () => sf.get(flat) };
      });
      checkWidths(file, where, dim, layers);
      return layers;
    });
    modules.set(dim, [built[0], built[1]]);
  }
  return { file, ...o, modules };
}

/** Reads a hypernetwork file (.pt/.pth/.ckpt through the safe pickle reader, or safetensors); `wf` is the opened file. */
export function readHypernetwork(file: string, wf: WeightsFile = openWeights(file)): Hypernetwork {
  const hn = wf instanceof TorchFile ? fromPickle(file, wf) : fromFlat(file, wf);
  if (hn.modules.size === 0) throw new HypernetworkFileError(file, 'no module keys (768, 320, 640, 1280, ...): not a hypernetwork');
  return hn;
}
