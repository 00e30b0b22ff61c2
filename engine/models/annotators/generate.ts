import fs from 'node:fs';
import path from 'node:path';
import { writeSafetensors } from '../../formats/safetensors.ts';
import { GraphBuilder } from '../../onnx/graph.ts';
import { Rng } from '../generate/rng.ts';

/**
 * Random-weight stand-ins for the community's annotator ONNX files, with their input and output names
 * and shapes, so the preprocessors run end to end without the real weights (tests, demos):
 * - `yolox_l.onnx`: `images` [1, 3, 640, 640] → `output` [1, 8400, 85] (YOLOX raw head, strides 8/16/32,
 *   objectness and classes through a sigmoid as the export has them);
 * - `dw-ll_ucoco_384.onnx`: `input` [N, 3, 384, 288] → `simcc_x` [N, 133, 576], `simcc_y` [N, 133, 768].
 * Each is a few strided convolutions and matrix products; the detections they give are meaningless.
 */

function randn(rng: Rng, n: number, std: number): Float32Array {
  return rng.normal(new Float32Array(n), std);
}

export function yoloxGraph(seed: number): GraphBuilder {
  const g = new GraphBuilder('weft-random-yolox');
  const rng = new Rng(seed);
  const x = g.input('images', 'float32', [1, 3, 640, 640]);
  const heads: string[] = [];
  for (const s of [8, 16, 32]) {
    // outputs of spread ~1.5 on 0..255 pixels; objectness far down and class 0 up, so that only a
    // handful of anchors (3σ and more) become persons
    const w = g.floats(`head${s}.weight`, [85, 3, s, s], () => randn(rng, 85 * 3 * s * s, 1.5 / (128 * Math.sqrt(3) * s)));
    const b = g.floats(`head${s}.bias`, [85], () => {
      const v = randn(rng, 85, 0.3);
      v[0] = v[1] = 0.5;
      v[2] = v[3] = 0.5;
      v[4] = -5.2;
      v[5] = 2;
      return v;
    });
    const y = g.op1('Conv', [x, w, b], { kernel_shape: [s, s], strides: [s, s] });
    heads.push(g.op1('Reshape', [y, g.ints([1, 85, -1])]));
  }
  const all = g.op1('Transpose', [g.op1('Concat', heads, { axis: 2 })], { perm: [0, 2, 1] });
  const [box, rest] = g.op('Split', [all, g.ints([4, 81])], { axis: 2 }, 2);
  g.output(g.op1('Concat', [box, g.op1('Sigmoid', [rest])], { axis: 2 }), 'output', 'float32', [1, 8400, 85]);
  return g;
}

export function dwposeGraph(seed: number): GraphBuilder {
  const g = new GraphBuilder('weft-random-dwpose');
  const rng = new Rng(seed);
  const x = g.input('input', 'float32', ['N', 3, 384, 288]);
  const w = g.floats('stem.weight', [133, 3, 16, 16], () => randn(rng, 133 * 3 * 256, 0.05));
  const f = g.op1('Conv', [x, w], { kernel_shape: [16, 16], strides: [16, 16] }); // [N, 133, 24, 18]
  const fx = g.op1('ReduceMean', [f], { axes: [2], keepdims: 0 }); // [N, 133, 18]
  const fy = g.op1('ReduceMean', [f], { axes: [3], keepdims: 0 }); // [N, 133, 24]
  const mx = g.floats('simcc_x.weight', [18, 576], () => randn(rng, 18 * 576, 0.5));
  const my = g.floats('simcc_y.weight', [24, 768], () => randn(rng, 24 * 768, 0.5));
  g.output(g.op1('MatMul', [fx, mx]), 'simcc_x', 'float32', ['N', 133, 576]);
  g.output(g.op1('MatMul', [fy, my]), 'simcc_y', 'float32', ['N', 133, 768]);
  return g;
}

/** Writes the random DWPose pair into `dir` (e.g. models/annotators); returns the files. */
export function makeRandomDwpose(dir: string, seed: number): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const files = [
    [path.join(dir, 'yolox_l.onnx'), yoloxGraph(seed)],
    [path.join(dir, 'dw-ll_ucoco_384.onnx'), dwposeGraph(seed + 1)],
  ] as const;
  for (const [file, g] of files) fs.writeFileSync(file, g.toBuffer());
  return files.map(([f]) => f);
}

/**
 * A random depth network of the exports' signature: NCHW RGB in (any size, multiples of 14 for Depth
 * Anything) → relative depth [1, h, w] at 1/`patch` of the input, non-negative (a ReLU head).
 */
export function depthGraph(seed: number, inputName: string, outputName: string, patch: number): GraphBuilder {
  const g = new GraphBuilder('weft-random-depth');
  const rng = new Rng(seed);
  const x = g.input(inputName, 'float32', [1, 3, 'H', 'W']);
  const w1 = g.floats('patch.weight', [8, 3, patch, patch], () => randn(rng, 8 * 3 * patch * patch, 1 / patch));
  const f = g.op1('Relu', [g.op1('Conv', [x, w1], { kernel_shape: [patch, patch], strides: [patch, patch] })]);
  const w2 = g.floats('head.weight', [1, 8, 3, 3], () => randn(rng, 72, 0.3));
  const d = g.op1('Relu', [g.op1('Conv', [f, w2], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })]);
  g.output(g.op1('Squeeze', [d, g.ints([1])]), outputName, 'float32', [1, 'h', 'w']);
  return g;
}

/** Random Depth Anything V2 (`depth_anything_v2_vits.onnx`) and MiDaS (`dpt_hybrid-midas.onnx`) stand-ins in `dir`. */
export function makeRandomDepth(dir: string, seed: number): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const files = [
    [path.join(dir, 'depth_anything_v2_vits.onnx'), depthGraph(seed, 'image', 'depth', 14)],
    [path.join(dir, 'dpt_hybrid-midas.onnx'), depthGraph(seed + 1, 'pixel_values', 'predicted_depth', 16)],
  ] as const;
  for (const [file, g] of files) fs.writeFileSync(file, g.toBuffer());
  return files.map(([f]) => f);
}

/** A random ControlNetHED_Apache2 state dict (the real names and shapes) as safetensors. */
export function makeRandomHed(file: string, seed: number): void {
  const rng = new Rng(seed);
  const tensors: { name: string; shape: number[]; data: Float32Array }[] = [
    { name: 'norm', shape: [1, 3, 1, 1], data: Float32Array.from([123, 117, 104]) },
  ];
  let cin = 3;
  [
    [2, 64],
    [2, 128],
    [3, 256],
    [3, 512],
    [3, 512],
  ].forEach(([layers, out], i) => {
    for (let j = 0; j < layers; j++) {
      const fan = (j === 0 ? cin : out) * 9;
      tensors.push({ name: `block${i + 1}.convs.${j}.weight`, shape: [out, j === 0 ? cin : out, 3, 3], data: randn(rng, out * fan, Math.sqrt(2 / fan)) });
      tensors.push({ name: `block${i + 1}.convs.${j}.bias`, shape: [out], data: new Float32Array(out) });
    }
    tensors.push({ name: `block${i + 1}.projection.weight`, shape: [1, out, 1, 1], data: randn(rng, out, 1 / Math.sqrt(out)) });
    tensors.push({ name: `block${i + 1}.projection.bias`, shape: [1], data: new Float32Array(1) });
    cin = out;
  });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeSafetensors(
    file,
    tensors.map((t) => ({ ...t, dtype: 'F32' as const })),
  );
}

/** A random LineArt Generator state dict (sk_model.pth's names and shapes) as safetensors. */
export function makeRandomLineart(file: string, seed: number): void {
  const rng = new Rng(seed);
  const tensors: { name: string; shape: number[]; data: Float32Array }[] = [];
  const conv = (name: string, o: number, i: number, k: number, transposed = false): void => {
    const fan = i * k * k;
    tensors.push({ name: `${name}.weight`, shape: transposed ? [i, o, k, k] : [o, i, k, k], data: randn(rng, o * fan, Math.sqrt(2 / fan)) });
    tensors.push({ name: `${name}.bias`, shape: [o], data: randn(rng, o, 0.1) });
  };
  conv('model0.1', 64, 3, 7);
  conv('model1.0', 128, 64, 3);
  conv('model1.3', 256, 128, 3);
  for (let i = 0; i < 3; i++) {
    conv(`model2.${i}.conv_block.1`, 256, 256, 3);
    conv(`model2.${i}.conv_block.5`, 256, 256, 3);
  }
  conv('model3.0', 128, 256, 3, true);
  conv('model3.3', 64, 128, 3, true);
  conv('model4.1', 1, 64, 7);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeSafetensors(
    file,
    tensors.map((t) => ({ ...t, dtype: 'F32' as const })),
  );
}
