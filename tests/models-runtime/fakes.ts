import { GraphBuilder } from '../../engine/onnx/graph.ts';
import type { NetOptions } from '../../engine/onnx/nn.ts';
import { MapWeightSource, type WeightSource } from '../../engine/core/weights.ts';
import type { PartSpec } from '../../engine/models/runtime/part.ts';
import { controlInputName, UNET_IO } from '../../engine/models/families/sd1/graphs/unet-graph.ts';

/** y = 2x + w over [n] vectors: the smallest part with a weight a patch can change. */
export function twiceXPlusW(ws: WeightSource, o: NetOptions): GraphBuilder {
  void o;
  const g = new GraphBuilder('fake');
  const n = ws.shape('w')[0];
  const x = g.input('x', 'float32', [n]);
  // The initializer names the weight it is read from: that is what a patch on `w` finds.
  const w = g.floats('w', [n], () => ws.get('w'), 'w');
  const [twoX] = g.op('Mul', [x, g.scalar(2)]);
  const [y] = g.op('Add', [twoX, w]);
  g.output(y, 'y', 'float32', [n]);
  return g;
}

export function vectorWeights(name: string, data: Float32Array): MapWeightSource {
  return new MapWeightSource(new Map([[name, { shape: [data.length], data }]]));
}

/** The fake part as a runtime spec: weights `fake.w` in the patch maps' names, `w` in the graph's. */
export function fakePart(w: Float32Array, hash = 'f'.repeat(64)): PartSpec {
  return { id: 'fake', hash, weights: vectorWeights('w', w), prefix: 'fake.', build: twiceXPlusW };
}

/**
 * A UNet-shaped graph (the inputs OrtUnet feeds, one skip connection) computing
 * out = 2x + w (+ y when it has the extra input `y`), w of shape [1, C, 1, 1].
 */
export function fakeUnetGraph(ws: WeightSource, withY: boolean): GraphBuilder {
  const g = new GraphBuilder('fake_unet');
  const C = ws.shape('w')[1];
  const x = g.input(UNET_IO.x, 'float32', ['B', C, 'H', 'W']);
  const t = g.input(UNET_IO.timesteps, 'float32', ['B']);
  const ctx = g.input(UNET_IO.context, 'float32', ['B', 'T', 'D']);
  const c0 = g.input(controlInputName(0), 'float32', ['a', 'b', 'c', 'd']);
  const cm = g.input(UNET_IO.controlMid, 'float32', ['e', 'f', 'g', 'h']);
  // Every input is used (times zero), so no optimiser drops one from the graph's inputs.
  const zero = g.scalar(0);
  const sumT = g.op('ReduceSum', [t], { keepdims: 0 })[0];
  const sumC = g.op('ReduceSum', [ctx], { keepdims: 0 })[0];
  let out = g.op('Add', [g.op('Mul', [x, g.scalar(2)])[0], g.floats('w', [1, C, 1, 1], () => ws.get('w'), 'w')])[0];
  for (const v of [sumT, sumC]) out = g.op('Add', [out, g.op('Mul', [v, zero])[0]])[0];
  out = g.op('Add', [g.op('Add', [out, c0])[0], cm])[0];
  if (withY) out = g.op('Add', [out, g.input('y', 'float32', ['B', C, 1, 1])])[0];
  g.output(out, UNET_IO.out, 'float32', ['B', C, 'H', 'W']);
  return g;
}
