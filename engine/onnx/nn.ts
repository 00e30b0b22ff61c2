import type { StoredTensor, WeightSource } from '../core/weights.ts';
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
  /** Plain LoRAs applied at run time, by the bare key of the weight they change (`….weight`). */
  lowRank?: ReadonlyMap<string, readonly LowRankBranch[]>;
}

/**
 * A plain LoRA as a branch beside the layer it patches: y += strength · up(down(x)), with alpha/rank
 * applied to `up` and the strength a graph input, so changing a LoRA's strength changes a feed, not
 * the weights. For a linear or conv layer this equals running W + strength·(α/r)·up·down.
 *
 * Factors enter the graph as the adapter file stores them (dtype, orientation), pointing at its bytes
 * where it has them; the cast, transpose and α/r scaling are constant nodes ORT folds at load, so
 * applying a LoRA copies and converts nothing in JavaScript.
 */
export interface LowRankBranch {
  /** Unique initializer prefix (no '.'). */
  readonly id: string;
  readonly up: LowRankFactor;
  readonly down: LowRankFactor;
  readonly scale: number;
  /** Name of the float32 [1] graph input that carries the strength. */
  readonly strengthInput: string;
}

export interface LowRankFactor {
  readonly shape: readonly number[];
  read(): Float32Array;
  readonly stored?: StoredTensor;
}

const STORED_TYPE: Partial<Record<StoredTensor['dtype'], ElemType>> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

export class Net {
  private readonly strengths = new Map<string, string>();

  constructor(
    readonly g: GraphBuilder,
    readonly ws: WeightSource,
    readonly opts: NetOptions,
  ) {}

  /** A branch strength as a value in the graph's precision (the input is declared on first use). */
  private strength(input: string): string {
    let v = this.strengths.get(input);
    if (!v) {
      this.g.input(input, 'float32', [1]);
      v = this.dtype === 'float16' ? this.cast(input, 'float16') : input;
      this.strengths.set(input, v);
    }
    return v;
  }

  /** A constant in the graph's precision from computed float32 values. */
  private constant(name: string, dims: readonly number[], data: () => Float32Array): string {
    if (this.dtype === 'float16') return this.g.initializer(name, 'float16', dims, () => toF16Bytes(data()));
    return this.g.floats(name, dims, data);
  }

  /** Low-rank branches added to a layer's output `y` (input `x`); `conv` gives the layer's kernel geometry. */
  private withBranches(key: string, x: string, y: string, conv?: { kernel: readonly number[]; strides: number[]; pads: number[] }): string {
    const branches = this.opts.lowRank?.get(`${key}.weight`);
    if (!branches?.length) return y;
    const wShape = this.shape(`${key}.weight`);
    const out = wShape[0];
    const inner = wShape.slice(1).reduce((a, b) => a * b, 1);
    for (const b of branches) {
      const r = b.down.shape[0];
      const scaled = (up: string): string => (b.scale === 1 ? up : this.g.op1('Mul', [up, this.scalar(b.scale)]));
      let h: string;
      if (conv) {
        const down = this.factor(`${b.id}.down`, b.down, [r, ...wShape.slice(1)]);
        h = this.g.op1('Conv', [x, down], { kernel_shape: [...conv.kernel], strides: conv.strides, pads: conv.pads });
        h = this.g.op1('Conv', [this.g.op1('Mul', [h, this.strength(b.strengthInput)]), scaled(this.factor(`${b.id}.up`, b.up, [out, r, 1, 1]))], { kernel_shape: [1, 1] });
      } else {
        const downT = this.g.op1('Transpose', [this.factor(`${b.id}.down`, b.down, [r, inner])], { perm: [1, 0] });
        const upT = this.g.op1('Transpose', [scaled(this.factor(`${b.id}.up`, b.up, [out, r]))], { perm: [1, 0] });
        h = this.g.op1('MatMul', [this.g.op1('Mul', [this.g.op1('MatMul', [x, downT]), this.strength(b.strengthInput)]), upT]);
      }
      // The strength scales the rank-wide middle, not the layer-wide output: r values per position instead of C.
      y = this.g.op1('Add', [y, h]);
    }
    return y;
  }

  /** A LoRA factor in the graph's precision, from the adapter file's bytes where it has them. */
  private factor(name: string, f: LowRankFactor, dims: readonly number[]): string {
    const type = f.stored && STORED_TYPE[f.stored.dtype];
    if (!f.stored || !type) return this.constant(name, dims, () => f.read());
    const v = this.g.storedTensor(name, type, dims, f.stored);
    return type === this.dtype ? v : this.cast(v, this.dtype);
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
  weight(key: string, dims?: readonly number[], transform?: (d: Float32Array, shape: readonly number[]) => Float32Array, name = key): string {
    if (this.g.hasInitializer(name)) return name;
    const shape = this.shape(key);
    const outDims = dims ?? shape;
    const read = (): Float32Array => (transform ? transform(this.ws.get(key), shape) : this.ws.get(key));
    if (this.dtype === 'float16') return this.g.initializer(name, 'float16', outDims, () => toF16Bytes(read()), key);
    return this.g.floats(name, outDims, read, key);
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
    const shape = this.shape(`${key}.weight`);
    const k = shape[2];
    const p = Math.floor(k / 2);
    const inputs = [x, this.weight(`${key}.weight`)];
    if (this.has(`${key}.bias`)) inputs.push(this.weight(`${key}.bias`));
    // ONNX pads are [top, left, bottom, right].
    const pads = opts.pads ?? [p, p, p, p];
    const geometry = { kernel: [shape[2], shape[3]], strides: [opts.stride ?? 1, opts.stride ?? 1], pads: [...pads] };
    const y = this.g.op1('Conv', inputs, { kernel_shape: geometry.kernel, strides: geometry.strides, pads: geometry.pads });
    return this.withBranches(key, x, y, geometry);
  }

  /** torch Linear on the last axis: x·Wᵀ + b, with Wᵀ stored pre-transposed so MatMul needs no Transpose. */
  linear(key: string, x: string): string {
    const [out, inp] = this.shape(`${key}.weight`);
    const w = this.weight(`${key}.weight`, [inp, out], transpose2d, `${key}.weight.T`);
    const y = this.g.op1('MatMul', [x, w]);
    return this.withBranches(key, x, this.has(`${key}.bias`) ? this.g.op1('Add', [y, this.weight(`${key}.bias`)]) : y);
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
    const y = this.g.op1('LayerNormalization', [x32, this.weight32(`${key}.weight`), this.weight32(`${key}.bias`)], { axis: -1, epsilon: { float: eps } });
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
    const split = (t: string): string => this.g.op1('Transpose', [this.g.op1('Reshape', [t, this.g.ints([0, 0, heads, d])])], { perm: [0, 2, 1, 3] });
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
    return this.g.op1('Resize', [x, '', '', target], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' });
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
