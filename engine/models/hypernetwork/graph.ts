import type { Net } from '../../onnx/nn.ts';
import type { LayerInputPatch } from '../patching/input-patch.ts';
import type { HnLayer, HnTensor, HypernetActivation } from './read.ts';

/**
 * One hypernetwork module as ONNX nodes: `x + module(x)·strength` (ComfyUI's hypernetwork_patch on the
 * attention k or v input). Linears as x·Wᵀ + b with Wᵀ stored transposed; LayerNorm (ε 1e-5) in float32
 * as the graph's other normalisations; activations as torch defines them (swish is torch's Hardswish,
 * as in A1111 and ComfyUI; LeakyReLU's slope 0.01; ELU's α 1).
 */
export function hypernetPatch(opts: { id: string; source: string; dim: number; index: 0 | 1; layers: readonly HnLayer[] }): LayerInputPatch {
  const { id, dim, index, layers } = opts;
  return {
    id,
    source: opts.source,
    sig: `${opts.source.slice(0, 24)}:${dim}:${index}`,
    apply(n, x, strength) {
      let h = x;
      layers.forEach((l, i) => {
        const name = `${id}.${dim}.${index}.${i}`;
        if (l.kind === 'linear') {
          const [out, inp] = l.weight.shape;
          const wT = constant(n, `${name}.weightT`, [inp, out], l.weight, (d) => transpose(d, out, inp));
          h = n.g.op1('Add', [n.g.op1('MatMul', [h, wT]), constant(n, `${name}.bias`, [out], l.bias)]);
        } else if (l.kind === 'layernorm') {
          const w = float32(n, `${name}.ln_weight`, l.weight);
          const b = float32(n, `${name}.ln_bias`, l.bias);
          h = n.fromCompute32(n.g.op1('LayerNormalization', [n.toCompute32(h), w, b], { axis: -1, epsilon: { float: 1e-5 } }));
        } else {
          h = activation(n, l.fn, h);
        }
      });
      return n.g.op1('Add', [x, n.g.op1('Mul', [h, strength])]);
    },
  };
}

function transpose(d: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(d.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = d[r * cols + c];
  return out;
}

function constant(n: Net, name: string, dims: readonly number[], t: HnTensor, f?: (d: Float32Array) => Float32Array): string {
  if (n.g.hasInitializer(name)) return name;
  return n.constant(name, dims, () => (f ? f(t.read()) : t.read()));
}

function float32(n: Net, name: string, t: HnTensor): string {
  return n.g.hasInitializer(name) ? name : n.g.floats(name, t.shape, () => t.read());
}

function activation(n: Net, fn: Exclude<HypernetActivation, 'linear'>, x: string): string {
  const g = n.g;
  switch (fn) {
    case 'relu':
      return g.op1('Relu', [x]);
    case 'leakyrelu':
      return g.op1('LeakyRelu', [x], { alpha: { float: 0.01 } });
    case 'elu':
      return g.op1('Elu', [x], { alpha: { float: 1 } });
    case 'swish':
      // torch's hardswish: x · min(max(x + 3, 0), 6) / 6.
      return g.op1('Div', [g.op1('Mul', [x, g.op1('Clip', [g.op1('Add', [x, n.scalar(3)]), n.scalar(0), n.scalar(6)])]), n.scalar(6)]);
    case 'tanh':
      return g.op1('Tanh', [x]);
    case 'sigmoid':
      return g.op1('Sigmoid', [x]);
    case 'softsign':
      return g.op1('Softsign', [x]);
    case 'mish':
      return g.op1('Mul', [x, g.op1('Tanh', [g.op1('Softplus', [x])])]);
  }
}
