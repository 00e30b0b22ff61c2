import type { WeightSource } from '../core/weights.ts';
import { GraphBuilder, MS_DOMAIN, toF16Bytes, type ElemType } from './graph.ts';

/**
 * Neural-network layers as ONNX subgraphs, bound to checkpoint tensors by their own names (so a
 * graph's initializers read like the checkpoint, and weight patches can name what they change).
 *
 * Precision: `float32` everywhere on CPU; with `float16` weights and activations are half, and
 * normalisations and softmax run in float32 (their reductions lose too much in half).
 */

export interface NetOptions {
  dtype: ElemType & ('float32' | 'float16');
  /** Use ORT's fused MultiHeadAttention (com.microsoft) instead of MatMul/Softmax/MatMul. */
  fusedAttention: boolean;
  /** Called for every linear and conv layer, in order; each may add nodes and replace the layer's output. */
  layerHooks?: readonly LayerHook[];
}

/** A linear or conv layer just emitted, named by its checkpoint key (its weight is `${key}.weight`). */
export interface LayerCall {
  readonly key: string;
  readonly kind: 'linear' | 'conv';
  /** The layer's input value and its output (after the bias, and after earlier hooks' changes). */
  readonly input: string;
  readonly output: string;
  /** A conv's geometry, for a hook that runs a conv of its own beside it (a LoCon branch). */
  readonly conv?: ConvGeometry;
}

export interface ConvGeometry {
  readonly kernel: readonly number[];
  readonly strides: readonly number[];
  readonly pads: readonly number[];
}

/**
 * What patches a graph at its layers without the builder knowing: LoRA branches beside a weight
 * (models/patching/low-rank.ts), and later attention patches such as IP-Adapter. `undefined` keeps
 * the output; a value replaces it.
 */
export interface LayerHook {
  layer(net: Net, call: LayerCall): string | undefined;
  /**
   * May replace the value a layer reads before the layer is emitted (what attention's to_k/to_v see:
   * hypernetworks); the layer and every hook's `layer` then see the new input.
   */
  input?(net: Net, call: LayerInput): string | undefined;
  /** Whether `layer` or `input` may change the layer under `key`; a hook without it is taken to touch every layer. */
  touches?(key: string): boolean;
}

/** A linear or conv layer about to be emitted, with the value it would read. */
export interface LayerInput {
  readonly key: string;
  readonly kind: 'linear' | 'conv';
  readonly input: string;
}

export class Net {
  constructor(
    readonly g: GraphBuilder,
    readonly ws: WeightSource,
    readonly opts: NetOptions,
  ) {}

  /** A constant in the graph's precision from computed float32 values. */
  constant(name: string, dims: readonly number[], data: () => Float32Array): string {
    if (this.dtype === 'float16') return this.g.initializer(name, 'float16', dims, () => toF16Bytes(data()));
    return this.g.floats(name, dims, data);
  }

  /** Whether a hook may change layer `key`: a builder that would fuse the layer into something else must not then. */
  hooksTouch(key: string): boolean {
    return (this.opts.layerHooks ?? []).some((h) => h.touches?.(key) ?? true);
  }

  /** The layer's input after every hook with an `input` step has had its say (no hooks: `x` itself). */
  private hookedInput(key: string, kind: 'linear' | 'conv', x: string): string {
    for (const h of this.opts.layerHooks ?? []) if (h.input) x = h.input(this, { key, kind, input: x }) ?? x;
    return x;
  }

  /** The layer's output after every hook has had its say. */
  private hooked(call: LayerCall): string {
    let y = call.output;
    for (const h of this.opts.layerHooks ?? []) y = h.layer(this, { ...call, output: y }) ?? y;
    return y;
  }

  get dtype(): 'float32' | 'float16' {
    return this.opts.dtype;
  }

  has(key: string): boolean {
    return this.ws.has(key);
  }

  shape(key: string): readonly number[] {
    if (!this.ws.has(key)) throw new Error(`weight '${key}' is missing from the checkpoint`);
    return this.ws.shape(key);
  }

  /** A checkpoint tensor as an initializer in the graph's precision, optionally reshaped/transformed. */
  weight(
    key: string,
    dims?: readonly number[],
    transform?: (d: Float32Array, shape: readonly number[]) => Float32Array,
    name = key,
  ): string {
    if (this.g.hasInitializer(name)) return name;
    const shape = this.shape(key);
    const outDims = dims ?? shape;
    const read = (): Float32Array => (transform ? transform(this.ws.get(key), shape) : this.ws.get(key));
    if (this.dtype === 'float16') return this.g.initializer(name, 'float16', outDims, () => toF16Bytes(read()), key);
    // Untransformed (a reshape keeps the element order): the cache can point at the checkpoint's bytes.
    const direct = !transform && outDims.reduce((a, b) => a * b, 1) === shape.reduce((a, b) => a * b, 1);
    // A plain transpose the cache can do on the checkpoint's 16-bit values (graph.ts, `transposed`).
    const swap =
      transform === transpose2d && shape[0] * shape[1] === shape.reduce((a, b) => a * b, 1) ? ([shape[0], shape[1]] as const) : undefined;
    return this.g.floats(name, outDims, read, key, direct, swap);
  }

  /** A float constant in float32 whatever the precision (for the float32 islands). */
  weight32(key: string, dims?: readonly number[], name = `${key}.f32`): string {
    if (this.g.hasInitializer(name)) return name;
    return this.g.floats(name, dims ?? this.shape(key), () => this.ws.get(key), key);
  }

  /** Constant in the graph's precision. */
  scalar(v: number): string {
    return this.g.scalar(v, this.dtype);
  }

  cast(x: string, to: 'float32' | 'float16'): string {
    return this.g.op1('Cast', [x], { to: to === 'float32' ? 1 : 10 });
  }

  toCompute32(x: string): string {
    return this.dtype === 'float16' ? this.cast(x, 'float32') : x;
  }

  fromCompute32(x: string): string {
    return this.dtype === 'float16' ? this.cast(x, 'float16') : x;
  }

  conv(key: string, x: string, opts: { stride?: number; pads?: readonly [number, number, number, number] } = {}): string {
    x = this.hookedInput(key, 'conv', x);
    const shape = this.shape(`${key}.weight`);
    const k = shape[2];
    const p = Math.floor(k / 2);
    const inputs = [x, this.weight(`${key}.weight`)];
    if (this.has(`${key}.bias`)) inputs.push(this.weight(`${key}.bias`));
    // ONNX pads are [top, left, bottom, right].
    const pads = opts.pads ?? [p, p, p, p];
    const geometry = { kernel: [shape[2], shape[3]], strides: [opts.stride ?? 1, opts.stride ?? 1], pads: [...pads] };
    const y = this.g.op1('Conv', inputs, { kernel_shape: geometry.kernel, strides: geometry.strides, pads: geometry.pads });
    return this.hooked({ key, kind: 'conv', input: x, output: y, conv: geometry });
  }

  /** torch Linear on the last axis: x·Wᵀ + b, with Wᵀ stored pre-transposed so MatMul needs no Transpose. */
  linear(key: string, x: string): string {
    x = this.hookedInput(key, 'linear', x);
    const [out, inp] = this.shape(`${key}.weight`);
    const w = this.weight(`${key}.weight`, [inp, out], transpose2d, `${key}.weight.T`);
    const y = this.g.op1('MatMul', [x, w]);
    const output = this.has(`${key}.bias`) ? this.g.op1('Add', [y, this.weight(`${key}.bias`)]) : y;
    return this.hooked({ key, kind: 'linear', input: x, output });
  }

  silu(x: string): string {
    return this.g.op1('Mul', [x, this.g.op1('Sigmoid', [x])]);
  }

  /** Exact (erf) GELU, as torch's default; ORT fuses this pattern into one kernel. */
  gelu(x: string): string {
    const e = this.g.op1('Erf', [this.g.op1('Div', [x, this.scalar(Math.SQRT2)])]);
    return this.g.op1('Mul', [this.g.op1('Mul', [x, this.scalar(0.5)]), this.g.op1('Add', [e, this.scalar(1)])]);
  }

  /** CLIP's quick_gelu: x·σ(1.702x). */
  quickGelu(x: string): string {
    return this.g.op1('Mul', [x, this.g.op1('Sigmoid', [this.g.op1('Mul', [x, this.scalar(1.702)])])]);
  }

  /**
   * GroupNorm on NCHW as InstanceNormalization over [B, G, C/G·H·W] (valid on every provider,
   * unlike opset-18 GroupNormalization whose per-group scale differs from torch's), then the
   * per-channel affine.
   */
  groupNorm(key: string, x: string, groups: number, eps: number): string {
    const C = this.shape(`${key}.weight`)[0];
    const x32 = this.toCompute32(x);
    const grouped = this.g.op1('Reshape', [x32, this.g.ints([0, groups, -1])]);
    const ones = this.g.floats(this.g.fresh(`${key}.gn_ones`), [groups], () => new Float32Array(groups).fill(1));
    const zeros = this.g.floats(this.g.fresh(`${key}.gn_zeros`), [groups], () => new Float32Array(groups));
    const normed = this.g.op1('InstanceNormalization', [grouped, ones, zeros], { epsilon: { float: eps } });
    const back = this.g.op1('Reshape', [normed, this.g.op1('Shape', [x32])]);
    const scaled = this.g.op1('Mul', [back, this.weight32(`${key}.weight`, [C, 1, 1])]);
    return this.fromCompute32(this.g.op1('Add', [scaled, this.weight32(`${key}.bias`, [C, 1, 1])]));
  }

  layerNorm(key: string, x: string, eps: number): string {
    const x32 = this.toCompute32(x);
    const y = this.g.op1('LayerNormalization', [x32, this.weight32(`${key}.weight`), this.weight32(`${key}.bias`)], {
      axis: -1,
      epsilon: { float: eps },
    });
    return this.fromCompute32(y);
  }

  /**
   * softmax(q kᵀ/√d) v over [B, T, heads·d] projections; `bias` is an additive mask broadcast to
   * [B, heads, Tq, Tk] (CLIP's causal mask). The fused path hands the whole thing to ORT's
   * MultiHeadAttention, which picks flash/memory-efficient kernels on GPUs.
   */
  attention(q: string, k: string, v: string, heads: number, width: number, bias?: string): string {
    if (this.opts.fusedAttention && !bias) {
      return this.g.op1('MultiHeadAttention', [q, k, v], { num_heads: heads }, MS_DOMAIN);
    }
    const d = width / heads;
    const split = (t: string): string =>
      this.g.op1('Transpose', [this.g.op1('Reshape', [t, this.g.ints([0, 0, heads, d])])], { perm: [0, 2, 1, 3] });
    const qh = split(q);
    const kT = this.g.op1('Transpose', [this.g.op1('Reshape', [k, this.g.ints([0, 0, heads, d])])], { perm: [0, 2, 3, 1] });
    const vh = split(v);
    let logits = this.g.op1('MatMul', [this.g.op1('Mul', [qh, this.scalar(1 / Math.sqrt(d))]), kT]);
    logits = this.toCompute32(logits);
    if (bias) logits = this.g.op1('Add', [logits, bias]);
    const p = this.fromCompute32(this.g.op1('Softmax', [logits], { axis: -1 }));
    const o = this.g.op1('MatMul', [p, vh]);
    return this.g.op1('Reshape', [this.g.op1('Transpose', [o], { perm: [0, 2, 1, 3] }), this.g.ints([0, 0, width])]);
  }

  /** [B, C, H, W] → [B, H·W, C]. */
  toTokens(x: string, channels: number): string {
    return this.g.op1('Transpose', [this.g.op1('Reshape', [x, this.g.ints([0, channels, -1])])], { perm: [0, 2, 1] });
  }

  /** [B, H·W, C] → the shape of `like` ([B, C, H, W]). */
  fromTokens(t: string, like: string): string {
    return this.g.op1('Reshape', [this.g.op1('Transpose', [t], { perm: [0, 2, 1] }), this.g.op1('Shape', [like])]);
  }

  /** Nearest-neighbour resize of NCHW `x` to the spatial size of `like` (torch's 'nearest'). */
  resizeNearestLike(x: string, like: string): string {
    const sizes = this.g.op1('Shape', [like]);
    const nc = this.g.op1('Slice', [this.g.op1('Shape', [x]), this.g.ints([0]), this.g.ints([2])]);
    const hw = this.g.op1('Slice', [sizes, this.g.ints([2]), this.g.ints([4])]);
    const target = this.g.op1('Concat', [nc, hw], { axis: 0 });
    return this.g.op1('Resize', [x, '', '', target], {
      mode: 'nearest',
      coordinate_transformation_mode: 'asymmetric',
      nearest_mode: 'floor',
    });
  }

  /** Nearest 2× upsampling (VAE decoder). */
  upsample2x(x: string): string {
    const scales = this.g.floats(this.g.fresh('up2_scales'), [4], () => new Float32Array([1, 1, 2, 2]));
    return this.g.op1('Resize', [x, '', scales], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' });
  }
}

export function transpose2d(d: Float32Array, shape: readonly number[]): Float32Array {
  const [r, c] = shape;
  const out = new Float32Array(d.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = d[i * c + j];
  return out;
}
